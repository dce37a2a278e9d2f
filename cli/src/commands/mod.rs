//! The commands. Each API command maps to operations of `infra/openapi.yaml`.

pub mod backfill;
pub mod config;
pub mod connect;
pub mod dlq;
pub mod export;
pub mod import;
pub mod logs;
pub mod review;
pub mod stack;
pub mod status;
pub mod tenant;

use crate::api::{ApiError, Client};
use crate::cli::{BackfillCmd, Command, ConfigCmd, DlqCmd, ExportCmd, ImportCmd, ReviewCmd, TenantCmd};
use crate::error::Failure;
use crate::output::{Output, compact, paint};
use comfy_table::Color;
use serde_json::Value;
use std::io::Read as _;
use std::path::Path;

/// What an API command runs with.
pub struct Ctx {
    pub client: Client,
    pub out: Output,
    /// `--timeout` when given: also how long `--watch` / `--wait` follow.
    pub timeout: Option<u64>,
}

impl Ctx {
    /// An API error as a failure, with the hint for where the API came from.
    pub fn fail(&self, e: ApiError) -> Failure {
        e.into_failure(self.client.origin())
    }
}

/// Run an API command.
pub async fn run(ctx: &Ctx, command: Command) -> Result<(), Failure> {
    match command {
        Command::Tenant(TenantCmd::Create(a)) => tenant::create(ctx, a).await,
        Command::Tenant(TenantCmd::List) => tenant::list(ctx).await,
        Command::Tenant(TenantCmd::Show { tenant }) => tenant::show(ctx, &tenant).await,
        Command::Status(a) => status::run(ctx, a.tenant.as_deref()).await,
        Command::Config(c) => match c {
            ConfigCmd::Get { tenant, version, path } => config::get(ctx, &tenant, version, path.as_deref()).await,
            ConfigCmd::Set { tenant, path, value, unset } => {
                config::set(ctx, &tenant, &path, value.as_deref(), unset).await
            }
            ConfigCmd::Validate { tenant, file } => config::validate(ctx, &tenant, &file).await,
            ConfigCmd::Export { tenant, version, output } => {
                config::export(ctx, &tenant, version, output.as_deref()).await
            }
            ConfigCmd::Import { tenant, file, if_version } => config::import(ctx, &tenant, &file, if_version).await,
            ConfigCmd::Diff { tenant, from, to, file } => match file {
                Some(f) => config::diff_file(ctx, &tenant, from, &f).await,
                None => config::diff(ctx, &tenant, from, to).await,
            },
            ConfigCmd::Versions { tenant } => config::versions(ctx, &tenant).await,
        },
        Command::Connect(a) => connect::run(ctx, &a).await,
        Command::Logs(a) => logs::logs(ctx, a).await,
        Command::Runs(a) => logs::runs(ctx, &a.tenant, a.limit).await,
        Command::Review(ReviewCmd::List { tenant }) => review::list(ctx, &tenant).await,
        Command::Review(ReviewCmd::Resolve { tenant, learner, contact }) => {
            review::resolve(ctx, &tenant, &learner, &contact).await
        }
        Command::Dlq(DlqCmd::List { tenant }) => dlq::list(ctx, tenant.as_deref()).await,
        Command::Dlq(DlqCmd::Replay { tenant, ids }) => dlq::replay(ctx, &tenant, &ids).await,
        Command::Import(ImportCmd::Preview { tenant, limit }) => import::preview(ctx, &tenant, limit).await,
        Command::Import(ImportCmd::Run { tenant, dry_run, no_wait, timeout }) => {
            import::run(ctx, &tenant, dry_run, !no_wait, timeout).await
        }
        Command::Import(ImportCmd::Status { tenant }) => import::status(ctx, &tenant).await,
        Command::Backfill(BackfillCmd::Start { tenant, since, until, only_changed, wait }) => {
            backfill::start(ctx, &tenant, &since, until.as_deref(), only_changed, wait).await
        }
        Command::Backfill(BackfillCmd::Status { tenant, id, watch }) => {
            backfill::status(ctx, &tenant, id.as_deref(), watch).await
        }
        Command::Backfill(BackfillCmd::Cancel { tenant, id }) => backfill::cancel(ctx, &tenant, id.as_deref()).await,
        Command::Export(ExportCmd::Enrollments { tenant, since, until, output }) => {
            export::enrollments(ctx, &tenant, &since, until.as_deref(), output.as_deref()).await
        }
        Command::Up(_) | Command::Down(_) => {
            Err(Failure::unexpected("`up` and `down` run the local stack, not an admin API command"))
        }
    }
}

/// A JSON file (`-`: stdin).
pub fn read_json_file(path: &Path) -> Result<Value, Failure> {
    let shown = path.display();
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| Failure::invalid(format!("cannot read stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| Failure::invalid(format!("cannot read {shown}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| Failure::invalid(format!("{shown} is not JSON: {e}")))
}

/// A configuration document from a file. A document as `config get --json`
/// prints it (`{"tenant", "version", "config", …}`) is taken for its `config`.
pub fn read_config_file(path: &Path) -> Result<Value, Failure> {
    let v = read_json_file(path)?;
    config_of(v).map_err(|m| Failure::invalid(format!("{}: {m}", path.display())))
}

/// The configuration in a document (see [`read_config_file`]).
pub fn config_of(v: Value) -> Result<Value, String> {
    match v {
        Value::Object(mut o) => {
            if !o.contains_key("name") && o.get("config").is_some_and(Value::is_object) && o.contains_key("version") {
                return Ok(o.remove("config").unwrap_or_default());
            }
            Ok(Value::Object(o))
        }
        other => Err(format!("a configuration is a JSON object, not {}", kind(&other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Write a file whole (through a temporary file beside it, then renamed).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::unexpected(format!("cannot write {}: {e}", path.display()));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

/// Whether a path points into write-only secrets (their values are never shown).
pub fn is_secret_path(path: &str) -> bool {
    path.split('/').any(|seg| seg == "secrets")
}

/// One change as a line: `+ /path = value`, `- /path (was value)`, `~ /path: old → new`.
pub fn change_line(color: bool, path: &str, op: &str, from: Option<&Value>, to: Option<&Value>) -> String {
    let show = |v: Option<&Value>| {
        if is_secret_path(path) {
            "(write-only secret)".to_string()
        } else {
            v.map(compact).unwrap_or_else(|| "null".into())
        }
    };
    match op {
        "added" => paint(color, &format!("+ {path} = {}", show(to)), Some(Color::Green)),
        "removed" => paint(color, &format!("- {path} (was {})", show(from)), Some(Color::Red)),
        _ => paint(color, &format!("~ {path}: {} → {}", show(from), show(to)), Some(Color::Yellow)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_from_config_get_json_are_taken_for_their_config() {
        let doc = json!({"tenant": "acme", "version": 3, "config": {"name": "Acme"}, "webhook_secrets": {}});
        assert_eq!(config_of(doc).unwrap(), json!({"name": "Acme"}));
        let plain = json!({"name": "Acme", "salesforce": {}});
        assert_eq!(config_of(plain.clone()).unwrap(), plain);
        assert!(config_of(json!([1])).unwrap_err().contains("an array"));
    }

    #[test]
    fn change_lines_hide_secrets() {
        assert_eq!(
            change_line(false, "/sync/create_contacts", "changed", Some(&json!(false)), Some(&json!(true))),
            "~ /sync/create_contacts: false → true"
        );
        assert_eq!(change_line(false, "/name", "added", None, Some(&json!("A"))), "+ /name = \"A\"");
        assert_eq!(change_line(false, "/import", "removed", Some(&json!({"x": 1})), None), "- /import (was {\"x\":1})");
        let l = change_line(false, "/webhooks/sources/0/secrets", "added", None, Some(&json!(["s3cr3t-value-1234"])));
        assert!(!l.contains("s3cr3t"), "{l}");
    }

    #[test]
    fn files_are_written_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out.json");
        write_file(&p, b"{}\n").unwrap();
        write_file(&p, b"{\"a\":1}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"a\":1}\n");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let bad = read_json_file(&d.path().join("missing.json")).unwrap_err();
        assert_eq!(bad.exit, 4);
        std::fs::write(d.path().join("x.json"), "{nope").unwrap();
        assert!(read_json_file(&d.path().join("x.json")).unwrap_err().message.contains("is not JSON"));
    }
}
