//! `learnlink tenant create|list|show` → `POST /admin/tenants`, `GET /admin/tenants`,
//! `GET /admin/tenants/{tenant}`.

use super::{Ctx, read_config_file};
use crate::cli::TenantCreateArgs;
use crate::error::{Failure, exit};
use crate::output::Output;
use crate::timearg::short;
use comfy_table::Color;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The flags of `tenant create`, applied over a starting document.
#[derive(Debug, Default)]
pub struct ConfigFlags {
    pub name: Option<String>,
    pub environment: Option<Value>,
    pub client_id: Option<String>,
    pub sources: Vec<(String, String)>,
    /// (source, secret): the secret already read (never `@file`).
    pub secrets: Vec<(String, String)>,
}

fn object<'a>(parent: &'a mut Map<String, Value>, key: &str) -> Result<&'a mut Map<String, Value>, Failure> {
    let v = parent.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
    v.as_object_mut().ok_or_else(|| Failure::invalid(format!("/{key} in the configuration file is not an object")))
}

/// The configuration to create: `base` (a file, or `{}`) with the flags over it.
/// Sources named by flags are added, or have their dialect replaced; a secret
/// for a source not declared adds it with the canonical dialect.
pub fn build_config(base: Value, flags: ConfigFlags) -> Result<Value, Failure> {
    let Value::Object(mut doc) = base else {
        return Err(Failure::invalid("the configuration file must hold a JSON object"));
    };
    if let Some(n) = flags.name {
        doc.insert("name".into(), Value::String(n));
    }
    if flags.environment.is_some() || flags.client_id.is_some() {
        let sf = object(&mut doc, "salesforce")?;
        if let Some(e) = flags.environment {
            sf.insert("environment".into(), e);
        }
        if let Some(c) = flags.client_id {
            sf.insert("client_id".into(), Value::String(c));
        }
    }
    if flags.sources.is_empty() && flags.secrets.is_empty() {
        return Ok(Value::Object(doc));
    }
    let webhooks = object(&mut doc, "webhooks")?;
    let sources = webhooks.entry("sources").or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(sources) = sources else {
        return Err(Failure::invalid("/webhooks/sources in the configuration file is not an array"));
    };
    let position = |sources: &Vec<Value>, name: &str| {
        sources.iter().position(|s| s.get("name").and_then(Value::as_str) == Some(name))
    };
    for (name, dialect) in flags.sources {
        match position(sources, &name) {
            Some(i) => {
                if let Some(o) = sources[i].as_object_mut() {
                    o.insert("dialect".into(), Value::String(dialect));
                }
            }
            None => sources.push(json!({"name": name, "dialect": dialect})),
        }
    }
    for (name, secret) in flags.secrets {
        let i = match position(sources, &name) {
            Some(i) => i,
            None => {
                sources.push(json!({"name": name, "dialect": "canonical"}));
                sources.len() - 1
            }
        };
        let Some(o) = sources[i].as_object_mut() else {
            return Err(Failure::invalid(format!("/webhooks/sources/{i} in the configuration file is not an object")));
        };
        let list = o.entry("secrets").or_insert_with(|| Value::Array(Vec::new()));
        match list {
            Value::Array(l) => l.push(Value::String(secret)),
            _ => return Err(Failure::invalid(format!("/webhooks/sources/{i}/secrets is not an array"))),
        }
    }
    Ok(Value::Object(doc))
}

/// A secret given as `secret` or `@file` (the file's content, without the final newline).
pub fn read_secret(source: &str, given: &str) -> Result<String, Failure> {
    match given.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| Failure::invalid(format!("cannot read the webhook secret of {source} from {path}: {e}"))),
        None => Ok(given.to_string()),
    }
}

/// "lms: 1, hr: 2" from the API's secret counts.
pub fn secret_counts(counts: &BTreeMap<String, u64>) -> Option<String> {
    let parts: Vec<String> = counts.iter().filter(|(_, n)| **n > 0).map(|(s, n)| format!("{s}: {n}")).collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

pub async fn create(ctx: &Ctx, a: TenantCreateArgs) -> Result<(), Failure> {
    let base = match &a.config {
        Some(p) => read_config_file(p)?,
        None => Value::Object(Map::new()),
    };
    let mut secrets = Vec::new();
    for (source, given) in &a.webhook_secrets {
        secrets.push((source.clone(), read_secret(source, given)?));
    }
    let flags =
        ConfigFlags { name: a.name, environment: a.salesforce, client_id: a.client_id, sources: a.sources, secrets };
    let config = build_config(base, flags)?;
    let doc = ctx.client.create_tenant(&a.id, &config).await.map_err(|e| {
        let id = &a.id;
        let f = ctx.fail(e);
        if f.exit == exit::CONFLICT {
            f.or_hint(format!("`learnlink config import {id} <file>` stores a new version of an existing tenant"))
        } else {
            f
        }
    })?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    let name = doc.data.config.get("name").and_then(Value::as_str).unwrap_or(&a.id).to_string();
    out.say(format!(
        "Created tenant {} ({name}): configuration version {}.",
        out.bold(&doc.data.tenant),
        doc.data.version
    ))?;
    if let Some(s) = secret_counts(&doc.data.webhook_secrets) {
        out.say(format!("Webhook secrets stored in Secrets Manager ({s})."))?;
    }
    Ok(())
}

fn paused_cell(out: &Output, paused: bool) -> comfy_table::Cell {
    if paused { out.cell("yes", Some(Color::Blue)) } else { out.cell("no", None) }
}

pub async fn list(ctx: &Ctx) -> Result<(), Failure> {
    let doc = ctx.client.list_tenants().await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    if doc.data.tenants.is_empty() {
        out.say("No tenants yet: `learnlink tenant create <id> …` adds one.")?;
        return Ok(());
    }
    let mut t = out.table(["id", "name", "version", "paused", "updated"]);
    for s in &doc.data.tenants {
        t.add_row(vec![
            out.cell(&s.id, None),
            out.cell(&s.name, None),
            out.cell(s.version, None),
            paused_cell(out, s.paused),
            out.cell(short(&s.updated_at), None),
        ]);
    }
    out.print_table(&t)
}

pub async fn show(ctx: &Ctx, tenant: &str) -> Result<(), Failure> {
    let doc = ctx.client.get_tenant(tenant).await.map_err(|e| ctx.fail(e))?;
    let out = &ctx.out;
    if out.json {
        return out.json_value(&doc.raw);
    }
    let s = &doc.data;
    let mut t = out.table(["id", "name", "version", "paused", "created", "updated"]);
    t.add_row(vec![
        out.cell(&s.id, None),
        out.cell(&s.name, None),
        out.cell(s.version, None),
        paused_cell(out, s.paused),
        out.cell(short(&s.created_at), None),
        out.cell(short(&s.updated_at), None),
    ]);
    out.print_table(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_build_a_whole_configuration() {
        let flags = ConfigFlags {
            name: Some("Acme".into()),
            environment: Some(json!("sandbox")),
            client_id: Some("3MVG9abc".into()),
            sources: vec![("lms".into(), "canonical".into())],
            secrets: vec![("lms".into(), "0123456789abcdef".into())],
        };
        let doc = build_config(json!({}), flags).unwrap();
        assert_eq!(
            doc,
            json!({
                "name": "Acme",
                "salesforce": {"environment": "sandbox", "client_id": "3MVG9abc"},
                "webhooks": {"sources": [{"name": "lms", "dialect": "canonical", "secrets": ["0123456789abcdef"]}]}
            })
        );
        assert!(learnlink_core::config::validate(&doc).is_ok());
    }

    #[test]
    fn flags_override_the_file_and_keep_the_rest() {
        let file = json!({
            "name": "Old",
            "salesforce": {"environment": "production", "client_id": "keep"},
            "sync": {"create_contacts": true},
            "webhooks": {"sources": [{"name": "lms", "dialect": "canonical"}]}
        });
        let flags = ConfigFlags {
            name: Some("New".into()),
            environment: Some(json!({"my_domain": "https://acme.my.salesforce.com"})),
            sources: vec![("hr".into(), "canonical".into())],
            secrets: vec![("lms".into(), "s".repeat(16)), ("other".into(), "t".repeat(16))],
            ..Default::default()
        };
        let doc = build_config(file, flags).unwrap();
        assert_eq!(doc["name"], "New");
        assert_eq!(doc["salesforce"]["client_id"], "keep");
        assert_eq!(doc["salesforce"]["environment"]["my_domain"], "https://acme.my.salesforce.com");
        assert_eq!(doc["sync"]["create_contacts"], true);
        let names: Vec<&str> =
            doc["webhooks"]["sources"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["lms", "hr", "other"]);
        assert_eq!(doc["webhooks"]["sources"][0]["secrets"], json!(["s".repeat(16)]));
    }

    #[test]
    fn files_of_the_wrong_shape_are_invalid_input() {
        assert_eq!(build_config(json!([]), ConfigFlags::default()).unwrap_err().exit, 4);
        let flags = ConfigFlags { client_id: Some("x".into()), ..Default::default() };
        assert_eq!(build_config(json!({"salesforce": "x"}), flags).unwrap_err().exit, 4);
    }

    #[test]
    fn secrets_come_from_files_without_the_newline() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.txt");
        std::fs::write(&p, "abcdefghijklmnop\n").unwrap();
        assert_eq!(read_secret("lms", &format!("@{}", p.display())).unwrap(), "abcdefghijklmnop");
        assert_eq!(read_secret("lms", "plain").unwrap(), "plain");
        let e = read_secret("lms", "@/nonexistent/x").unwrap_err();
        assert_eq!(e.exit, 4);
        let counts: BTreeMap<String, u64> = [("lms".to_string(), 1), ("hr".to_string(), 0)].into();
        assert_eq!(secret_counts(&counts).as_deref(), Some("lms: 1"));
    }
}
