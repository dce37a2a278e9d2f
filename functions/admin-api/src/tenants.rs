//! `/admin/tenants`, `/admin/tenants/{tenant}`, `/admin/tenants/{tenant}/status`.

use crate::config::{document, store_lms_key, store_secrets};
use crate::{Answer, Deps, Fail, current, json_body, rfc3339};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use learnlink_adapters::lambda::json_response;
use learnlink_core::config::{Violation, strip_lms_key, strip_secrets, validate};
use learnlink_core::health::Probe;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{PutConfigError, StoredConfig};
use learnlink_core::tenant::Tenant;
use serde_json::{Value, json};
use time::OffsetDateTime;

fn summary(c: &StoredConfig) -> Value {
    json!({
        "id": c.tenant,
        "name": c.doc.get("name").and_then(Value::as_str).unwrap_or_default(),
        "version": c.version,
        "paused": c.doc.get("paused").and_then(Value::as_bool).unwrap_or(false),
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.changed_at),
    })
}

pub(crate) async fn list(deps: &Deps) -> Answer {
    let mut configs = deps.configs.list_configs().await?;
    configs.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    Ok(json_response(200, &json!({"tenants": configs.iter().map(summary).collect::<Vec<_>>()})))
}

pub(crate) async fn get(deps: &Deps, raw: &str) -> Answer {
    Ok(json_response(200, &summary(&current(deps, raw).await?)))
}

pub(crate) async fn create(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> Answer {
    let body = json_body(req)?;
    let Some(obj) = body.as_object() else {
        return Err(Fail::invalid(
            "invalid_tenant",
            vec![Violation { path: String::new(), message: "must be an object with id and config".into() }],
        ));
    };
    let mut violations = Vec::new();
    for k in obj.keys().filter(|k| *k != "id" && *k != "config") {
        violations.push(Violation { path: format!("/{k}"), message: "unknown property".into() });
    }
    let id = match obj.get("id").and_then(Value::as_str) {
        Some(raw) => match TenantId::parse(raw) {
            Ok(id) => Some(id),
            Err(e) => {
                violations.push(Violation { path: "/id".into(), message: e.to_string() });
                None
            }
        },
        None => {
            violations.push(Violation { path: "/id".into(), message: "a string tenant id is required".into() });
            None
        }
    };
    let config = obj.get("config").cloned().unwrap_or(Value::Null);
    if let Err(vs) = validate(&config) {
        violations.extend(vs.into_iter().map(|v| Violation { path: format!("/config{}", v.path), ..v }));
    }
    let (doc, secrets) = strip_secrets(&strip_lms_key(&config).0);
    let missing = crate::config::sources_without_secrets(&doc, &secrets, &Default::default());
    violations.extend(missing.into_iter().map(|v| Violation { path: format!("/config{}", v.path), ..v }));
    let Some(id) = id.filter(|_| violations.is_empty()) else {
        return Err(Fail::invalid("invalid_tenant", violations));
    };
    if deps.configs.current_config(&id).await?.is_some() {
        return Err(Fail::new(409, "tenant_exists", format!("a tenant named {:?} exists already", id.as_str())));
    }
    // Secrets first: a tenant is never visible without its webhook secrets.
    let counts = store_secrets(deps, &id, &doc, secrets).await?;
    store_lms_key(deps, &id, &config).await?;
    let stored = match deps.configs.put_config(&id, None, &doc, now).await {
        Ok(s) => s,
        Err(PutConfigError::Conflict { .. }) => {
            return Err(Fail::new(409, "tenant_exists", format!("a tenant named {:?} exists already", id.as_str())));
        }
        Err(PutConfigError::Port(e)) => return Err(e.into()),
    };
    tracing::info!(tenant = %id, version = stored.version, "tenant created");
    Ok(json_response(201, &document(&stored, &counts)))
}

pub(crate) async fn status(deps: &Deps, raw: &str, now: OffsetDateTime) -> Answer {
    let stored = current(deps, raw).await?;
    let tenant = Tenant::from_stored(&stored)?;
    let health = Probe {
        secrets: deps.secrets.as_ref(),
        queues: deps.queues.as_ref(),
        connections: deps.connections.as_ref(),
        parking: deps.parking.as_ref(),
        names: &deps.names,
        dead_letter_queues: &deps.dead_letter_queues,
        sync_queue: deps.sync_queue_url.as_deref(),
        keepalive: deps.keepalive,
    }
    .check(&tenant, now)
    .await?;
    Ok(json_response(200, &json!(health)))
}
