//! The tenant configuration (SPEC §7, §8): one versioned JSON document per
//! tenant, validated against `tenant-config.schema.json` (the same schema the
//! OpenAPI document carries), plus checks a schema cannot express. Every
//! violation is reported with its JSON pointer; nothing is stored unless the
//! document is valid.

mod diff;
mod model;

pub use diff::{Change, ChangeOp, diff};
pub use model::*;

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The JSON Schema of the document.
pub const SCHEMA: &str = include_str!("tenant-config.schema.json");

/// One problem with a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// JSON pointer into the document (`""` for the whole document).
    pub path: String,
    pub message: String,
}

impl Violation {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Violation { path: path.into(), message: message.into() }
    }
}

static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| format!("the embedded schema is not JSON: {e}"))?;
    jsonschema::validator_for(&schema).map_err(|e| format!("the embedded schema is invalid: {e}"))
});

/// Validate a document: the schema first (every violation), then the rules
/// the schema cannot say. On success, the typed configuration.
pub fn validate(doc: &Value) -> Result<TenantConfig, Vec<Violation>> {
    let validator = match &*VALIDATOR {
        Ok(v) => v,
        Err(e) => return Err(vec![Violation::new("", e.clone())]),
    };
    let mut violations: Vec<Violation> =
        validator.iter_errors(doc).map(|e| Violation::new(e.instance_path().to_string(), e.to_string())).collect();
    if !violations.is_empty() {
        violations.sort_by(|a, b| a.path.cmp(&b.path).then(a.message.cmp(&b.message)));
        violations.dedup();
        return Err(violations);
    }
    let config: TenantConfig = match serde_json::from_value(doc.clone()) {
        Ok(c) => c,
        Err(e) => {
            return Err(vec![Violation::new("", format!("the document does not fit the configuration model: {e}"))]);
        }
    };
    let semantic = config.check();
    if semantic.is_empty() { Ok(config) } else { Err(semantic) }
}

/// Take the write-only webhook secrets out of a document: the document to
/// store, and the secrets by source name (only sources that carried some).
pub fn strip_secrets(doc: &Value) -> (Value, BTreeMap<String, Vec<String>>) {
    let mut doc = doc.clone();
    let mut secrets = BTreeMap::new();
    if let Some(sources) = doc.pointer_mut("/webhooks/sources").and_then(Value::as_array_mut) {
        for s in sources {
            let name = s.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            if let Some(obj) = s.as_object_mut()
                && let Some(Value::Array(list)) = obj.remove("secrets")
            {
                secrets.insert(name, list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect());
            }
        }
    }
    (doc, secrets)
}

/// Take the write-only LMS API key (and the HRIS credentials, see
/// [`hris_credentials`]) out of a document: the document to store, and the
/// LMS key if one was given.
pub fn strip_lms_key(doc: &Value) -> (Value, Option<String>) {
    let mut doc = doc.clone();
    if let Some(h) = doc.pointer_mut("/import/hris").and_then(Value::as_object_mut) {
        h.remove("api_key");
        h.remove("account_token");
    }
    let key = doc
        .pointer_mut("/lms")
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove("api_key"))
        .and_then(|v| v.as_str().map(str::to_string));
    (doc, key)
}

/// The write-only HRIS credentials a document gives: `(api_key, account_token)`.
pub fn hris_credentials(doc: &Value) -> Option<(String, String)> {
    let h = doc.pointer("/import/hris")?;
    let key = h.get("api_key")?.as_str()?.to_string();
    let token = h.get("account_token")?.as_str()?.to_string();
    Some((key, token))
}

#[cfg(test)]
mod tests;
