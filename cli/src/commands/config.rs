//! `learnlink config get|set|validate|export|import|diff|versions` → the
//! `/admin/tenants/{tenant}/config…` operations.

use super::{Ctx, change_line, read_config_file, write_file};
use crate::api::Doc;
use crate::api::{ConfigDocument, DiffChange};
use crate::commands::tenant::secret_counts;
use crate::error::{Failure, exit};
use crate::jsonpath::{self, PathError};
use crate::output::compact;
use crate::timearg::short;
use learnlink_core::config::{ChangeOp, diff as core_diff, strip_secrets};
use serde_json::{Value, json};
use std::path::Path;

fn path_failure(e: PathError) -> Failure {
    match e {
        PathError::Invalid(m) => Failure::invalid(m),
        PathError::NotFound(m) => Failure::not_found(m),
    }
}

fn conflict_hint(f: Failure, tenant: &str, expected: u64) -> Failure {
    if f.exit == exit::CONFLICT {
        f.or_hint(format!(
            "someone else changed {tenant}'s configuration since version {expected}: `learnlink config diff {tenant}` shows what changed; run the command again"
        ))
    } else {
        f
    }
}

/// Print changes, one per line (nothing about secret values).
fn print_changes(ctx: &Ctx, changes: &[DiffChange]) -> Result<(), Failure> {
    let out = &ctx.out;
    if changes.is_empty() {
        return out.line("no changes");
    }
    for c in changes {
        out.line(format!("  {}", change_line(out.color, &c.path, &c.op, c.from.as_ref(), c.to.as_ref())))?;
    }
    Ok(())
}

fn core_changes(a: &Value, b: &Value) -> Vec<DiffChange> {
    core_diff(a, b)
        .into_iter()
        .map(|c| DiffChange {
            path: c.path,
            op: match c.op {
                ChangeOp::Added => "added",
                ChangeOp::Removed => "removed",
                ChangeOp::Changed => "changed",
            }
            .into(),
            from: c.from,
            to: c.to,
        })
        .collect()
}

fn describe(doc: &ConfigDocument) -> String {
    let mut s = format!("{}: configuration version {}", doc.tenant, doc.version);
    if !doc.changed_at.is_empty() {
        s.push_str(&format!(", changed {}", short(&doc.changed_at)));
    }
    if let Some(c) = secret_counts(&doc.webhook_secrets) {
        s.push_str(&format!("; webhook secrets: {c}"));
    }
    s
}

pub async fn get(ctx: &Ctx, tenant: &str, version: Option<u64>, path: Option<&str>) -> Result<(), Failure> {
    let tokens = path.map(jsonpath::parse).transpose().map_err(path_failure)?;
    let doc = ctx.client.get_config(tenant, version).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    let Some(tokens) = tokens else {
        if out.json {
            return out.json_value(&doc.raw);
        }
        out.note(format!("# {}", describe(&doc.data)));
        return out.json_value(&strip_secrets(&doc.data.config).0);
    };
    let value = jsonpath::get(&doc.data.config, &tokens).ok_or_else(|| {
        Failure::not_found(format!(
            "{tenant}'s configuration (version {}) has nothing at {}",
            doc.data.version,
            jsonpath::pointer(&tokens)
        ))
    })?;
    match value {
        Value::String(s) if !out.json => out.line(s),
        v => out.json_value(v),
    }
}

pub async fn set(ctx: &Ctx, tenant: &str, path: &str, value: Option<&str>, unset: bool) -> Result<(), Failure> {
    let tokens = jsonpath::parse(path).map_err(path_failure)?;
    let current = ctx.client.get_config(tenant, None).await.map_err(|e| ctx.fail(e))?;
    let before = strip_secrets(&current.data.config).0;
    let mut after = before.clone();
    if unset {
        jsonpath::unset(&mut after, &tokens).map_err(path_failure)?;
    } else {
        let v = jsonpath::parse_value(value.unwrap_or_default());
        jsonpath::set(&mut after, &tokens, v).map_err(path_failure)?;
    }
    let out = &ctx.out;
    if after == before {
        if out.json {
            return out.json_value(&current.raw);
        }
        return out.say(format!(
            "No change: {} is already {} (version {}).",
            jsonpath::pointer(&tokens),
            jsonpath::get(&before, &tokens).map(compact).unwrap_or_default(),
            current.data.version
        ));
    }
    let expected = current.data.version;
    let stored = ctx
        .client
        .put_config(tenant, &after, Some(expected))
        .await
        .map_err(|e| conflict_hint(ctx.fail(e), tenant, expected))?;
    if out.json {
        return out.json_value(&stored.raw);
    }
    if !out.quiet {
        print_changes(ctx, &core_changes(&before, &stored.data.config))?;
    }
    out.say(format!("{tenant}: configuration version {} (was {expected}).", stored.data.version))
}

pub async fn validate(ctx: &Ctx, tenant: &str, file: &Path) -> Result<(), Failure> {
    let config = read_config_file(file)?;
    let doc = ctx.client.validate_config(tenant, &config).await.map_err(|e| {
        let f = ctx.fail(e);
        if f.exit == exit::INVALID && !f.violations.is_empty() {
            let n = f.violations.len();
            Failure {
                hint: Some(format!(
                    "fix the {n} violation(s) above (paths are JSON pointers into {}) and validate again",
                    file.display()
                )),
                ..f
            }
        } else {
            f
        }
    })?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    out.say(format!("{} is a valid configuration for {tenant}.", file.display()))
}

pub async fn export(ctx: &Ctx, tenant: &str, version: Option<u64>, output: Option<&Path>) -> Result<(), Failure> {
    let doc = ctx.client.get_config(tenant, version).await.map_err(|e| ctx.fail(e))?;
    // The API never returns secrets; strip anyway so an export can never carry one.
    let config = strip_secrets(&doc.data.config).0;
    let mut text =
        serde_json::to_string_pretty(&config).map_err(|e| Failure::unexpected(format!("cannot print JSON: {e}")))?;
    text.push('\n');
    let out = &ctx.out;
    match output {
        None => out.raw(&text),
        Some(p) => {
            write_file(p, text.as_bytes())?;
            if out.json {
                return out.json_value(&json!({"tenant": doc.data.tenant, "version": doc.data.version, "file": p}));
            }
            out.note(format!("Wrote {tenant}'s configuration (version {}) to {}.", doc.data.version, p.display()));
            Ok(())
        }
    }
}

pub async fn import(ctx: &Ctx, tenant: &str, file: &Path, if_version: Option<u64>) -> Result<(), Failure> {
    let config = read_config_file(file)?;
    let stored = ctx.client.put_config(tenant, &config, if_version).await.map_err(|e| {
        let f = ctx.fail(e);
        match if_version {
            Some(v) if f.exit == exit::CONFLICT => f.or_hint(format!(
                "{tenant}'s configuration is no longer version {v}: `learnlink config diff {tenant} --file {}` shows what differs",
                file.display()
            )),
            _ => f,
        }
    })?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&stored.raw);
    }
    let v = stored.data.version;
    if v > 1 && !out.quiet {
        // What this import changed, as the API records it (best effort).
        if let Ok(d) = ctx.client.diff_config(tenant, Some(v - 1), Some(v)).await {
            print_changes(ctx, &d.data.changes)?;
        }
    }
    out.say(format!("Imported {} as {tenant}'s configuration version {v}.", file.display()))?;
    if let Some(s) = secret_counts(&stored.data.webhook_secrets) {
        out.say(format!("Webhook secrets: {s} (stored in Secrets Manager, never returned)."))?;
    }
    Ok(())
}

pub async fn diff(ctx: &Ctx, tenant: &str, from: Option<u64>, to: Option<u64>) -> Result<(), Failure> {
    let d = ctx.client.diff_config(tenant, from, to).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&d.raw);
    }
    let from = if d.data.from == 0 { "(nothing)".to_string() } else { format!("version {}", d.data.from) };
    out.say(format!("{tenant}: {from} → version {}", d.data.to))?;
    print_changes(ctx, &d.data.changes)
}

pub async fn diff_file(ctx: &Ctx, tenant: &str, from: Option<u64>, file: &Path) -> Result<(), Failure> {
    let local = read_config_file(file)?;
    let (local, secrets) = strip_secrets(&local);
    let current: Doc<ConfigDocument> = ctx.client.get_config(tenant, from).await.map_err(|e| ctx.fail(e))?;
    let server = strip_secrets(&current.data.config).0;
    let changes = core_diff(&server, &local);
    let out = &ctx.out;
    if out.json {
        return out.json_value(&json!({
            "tenant": current.data.tenant,
            "from": current.data.version,
            "file": file,
            "changes": changes,
        }));
    }
    out.say(format!("{tenant}: version {} → {}", current.data.version, file.display()))?;
    print_changes(ctx, &core_changes(&server, &local))?;
    if !secrets.is_empty() {
        let names: Vec<&str> = secrets.keys().map(String::as_str).collect();
        out.note(format!(
            "note: the file carries webhook secrets for {} (not compared: secrets are write-only)",
            names.join(", ")
        ));
    }
    Ok(())
}

pub async fn versions(ctx: &Ctx, tenant: &str) -> Result<(), Failure> {
    let doc = ctx.client.list_versions(tenant).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    let mut t = out.table(["version", "changed"]);
    for (i, v) in doc.data.versions.iter().enumerate() {
        let version = if i == 0 { format!("{} (current)", v.version) } else { v.version.to_string() };
        t.add_row([version, short(&v.changed_at)]);
    }
    out.print_table(&t)
}
