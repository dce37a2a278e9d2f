//! `/admin/tenants/{tenant}/config` and its `validate`, `versions`, `diff`.

use crate::{Answer, Deps, Fail, current, int_param, json_body, rfc3339};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use learnlink_adapters::lambda::json_response;
use learnlink_core::config::{Violation, diff as diff_docs, strip_lms_key, strip_secrets, validate as validate_doc};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{PutConfigError, StoredConfig};
use learnlink_core::tenant::WebhookSecrets;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// The API's view of a stored version: never a secret, only how many.
pub(crate) fn document(c: &StoredConfig, secret_counts: &BTreeMap<String, usize>) -> Value {
    json!({
        "tenant": c.tenant,
        "version": c.version,
        "changed_at": rfc3339(c.changed_at),
        "config": c.doc,
        "webhook_secrets": secret_counts,
    })
}

fn source_names(doc: &Value) -> Vec<(usize, String, String)> {
    doc.pointer("/webhooks/sources")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, s)| {
                    let name = s.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                    let dialect = s.get("dialect").and_then(Value::as_str).unwrap_or_default().to_string();
                    (i, name, dialect)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Signed sources that would have no active secret after this change.
pub(crate) fn sources_without_secrets(
    doc: &Value,
    new: &BTreeMap<String, Vec<String>>,
    existing: &WebhookSecrets,
) -> Vec<Violation> {
    source_names(doc)
        .into_iter()
        .filter(|(_, name, dialect)| {
            dialect == "canonical" && new.get(name).is_none_or(Vec::is_empty) && existing.for_source(name).is_empty()
        })
        .map(|(i, name, _)| Violation {
            path: format!("/webhooks/sources/{i}/secrets"),
            message: format!("source {name:?} is signed and has no secret yet: give 1 or 2"),
        })
        .collect()
}

async fn existing_secrets(deps: &Deps, id: &TenantId) -> Result<WebhookSecrets, Fail> {
    match deps.secrets.get_secret(&deps.names.webhook_secrets(id)).await? {
        Some(s) => serde_json::from_str(s.expose_secret()).map_err(|e| {
            Fail::from(learnlink_core::PortError::permanent(format!("the webhook secrets of {id} are unreadable: {e}")))
        }),
        None => Ok(WebhookSecrets::default()),
    }
}

fn counts(doc: &Value, secrets: &WebhookSecrets) -> BTreeMap<String, usize> {
    source_names(doc).into_iter().map(|(_, name, _)| (name.clone(), secrets.for_source(&name).len())).collect()
}

/// Merge the new secrets into the stored ones (sources that no longer exist
/// lose theirs) and store them if anything changed. Returns the counts.
pub(crate) async fn store_secrets(
    deps: &Deps,
    id: &TenantId,
    doc: &Value,
    new: BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, usize>, Fail> {
    let existing = existing_secrets(deps, id).await?;
    let mut merged = WebhookSecrets::default();
    for (_, name, _) in source_names(doc) {
        let list = match new.get(&name) {
            Some(l) if !l.is_empty() => l.clone(),
            _ => existing.for_source(&name).to_vec(),
        };
        if !list.is_empty() {
            merged.sources.insert(name, list);
        }
    }
    if merged.sources != existing.sources {
        let text = serde_json::to_string(&merged).unwrap_or_default();
        deps.secrets.put_secret(&deps.names.webhook_secrets(id), &SecretString::from(text)).await?;
    }
    Ok(counts(doc, &merged))
}

/// Store the LMS API key if the document gives one (write-only, like the
/// webhook secrets).
pub(crate) async fn store_lms_key(deps: &Deps, id: &TenantId, body: &Value) -> Result<(), Fail> {
    if let (_, Some(key)) = strip_lms_key(body) {
        let text = json!({ "api_key": key }).to_string();
        deps.secrets.put_secret(&deps.names.lms_key(id), &SecretString::from(text)).await?;
    }
    if let Some((key, token)) = learnlink_core::config::hris_credentials(body) {
        let text = json!({ "api_key": key, "account_token": token }).to_string();
        deps.secrets.put_secret(&deps.names.hris_key(id), &SecretString::from(text)).await?;
    }
    Ok(())
}

pub(crate) async fn get(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest) -> Answer {
    let latest = current(deps, raw).await?;
    let stored = match int_param(req, "version", 1, u64::MAX)? {
        None => latest,
        Some(v) if v == latest.version => latest,
        Some(v) => deps.configs.config_version(&latest.tenant, v).await?.ok_or_else(|| {
            Fail::new(404, "unknown_version", format!("tenant {raw:?} has no configuration version {v}"))
        })?,
    };
    let secrets = existing_secrets(deps, &stored.tenant).await?;
    Ok(json_response(200, &document(&stored, &counts(&stored.doc, &secrets))))
}

fn if_match(req: &ApiGatewayV2httpRequest) -> Result<Option<u64>, Fail> {
    match req.headers.get(http::header::IF_MATCH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(|s| s.trim().trim_matches('"'))
            .and_then(|s| s.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| Fail::bad_request("invalid_parameter", "If-Match must be a configuration version number")),
    }
}

/// Validate a document for this tenant: the schema, the rules beyond it,
/// and that every signed source ends up with a secret.
async fn check(deps: &Deps, id: &TenantId, body: &Value) -> Result<(Value, BTreeMap<String, Vec<String>>), Fail> {
    let mut violations = validate_doc(body).err().unwrap_or_default();
    let (doc, secrets) = strip_secrets(&strip_lms_key(body).0);
    let existing = existing_secrets(deps, id).await?;
    violations.extend(sources_without_secrets(&doc, &secrets, &existing));
    if violations.is_empty() { Ok((doc, secrets)) } else { Err(Fail::invalid("invalid_config", violations)) }
}

pub(crate) async fn put(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> Answer {
    let expected = if_match(req)?;
    let latest = current(deps, raw).await?;
    let body = json_body(req)?;
    let (doc, secrets) = check(deps, &latest.tenant, &body).await?;
    let expected = expected.unwrap_or(latest.version);
    if expected != latest.version {
        return Err(conflict(raw, expected, Some(latest.version)));
    }
    let counts = store_secrets(deps, &latest.tenant, &doc, secrets).await?;
    store_lms_key(deps, &latest.tenant, &body).await?;
    match deps.configs.put_config(&latest.tenant, Some(expected), &doc, now).await {
        Ok(stored) => {
            tracing::info!(
                tenant = raw,
                version = stored.version,
                changes = diff_docs(&latest.doc, &doc).len(),
                "configuration stored"
            );
            Ok(json_response(200, &document(&stored, &counts)))
        }
        Err(PutConfigError::Conflict { current }) => Err(conflict(raw, expected, current)),
        Err(PutConfigError::Port(e)) => Err(e.into()),
    }
}

fn conflict(raw: &str, expected: u64, current: Option<u64>) -> Fail {
    let now = current.map(|v| format!("version {v}")).unwrap_or_else(|| "an unknown version".into());
    Fail::new(
        409,
        "version_conflict",
        format!("the configuration of {raw:?} changed: you edited version {expected}, the current one is {now}"),
    )
}

pub(crate) async fn validate(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest) -> Answer {
    let latest = current(deps, raw).await?;
    let body = json_body(req)?;
    check(deps, &latest.tenant, &body).await?;
    Ok(json_response(200, &json!({"valid": true})))
}

pub(crate) async fn versions(deps: &Deps, raw: &str) -> Answer {
    let latest = current(deps, raw).await?;
    let list = deps.configs.config_versions(&latest.tenant).await?;
    let versions: Vec<Value> =
        list.into_iter().map(|(v, at)| json!({"version": v, "changed_at": rfc3339(at)})).collect();
    Ok(json_response(200, &json!({"tenant": latest.tenant, "versions": versions})))
}

pub(crate) async fn diff(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest) -> Answer {
    let latest = current(deps, raw).await?;
    let to = int_param(req, "to", 1, u64::MAX)?.unwrap_or(latest.version);
    let from = match int_param(req, "from", 1, u64::MAX)? {
        Some(f) => f,
        None => to.saturating_sub(1),
    };
    let load = |v: u64| {
        let latest = &latest;
        async move {
            if v == 0 {
                return Ok(json!({}));
            }
            if v == latest.version {
                return Ok(latest.doc.clone());
            }
            match deps.configs.config_version(&latest.tenant, v).await? {
                Some(c) => Ok(c.doc),
                None => {
                    Err(Fail::new(404, "unknown_version", format!("tenant {raw:?} has no configuration version {v}")))
                }
            }
        }
    };
    let a = load(from).await?;
    let b = load(to).await?;
    let changes = diff_docs(&a, &b);
    Ok(json_response(200, &json!({"tenant": latest.tenant, "from": from, "to": to, "changes": changes})))
}
