//! health-check (SPEC §3.5): `GET /health/{tenant}` and a sweep over every
//! tenant on its EventBridge schedule (every 5 minutes).

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use learnlink_adapters::lambda::{error_response, json_response, path_param};
use learnlink_core::PortError;
use learnlink_core::health::{Health, Probe};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{QueueStats, SecretStore, TenantStore};
use learnlink_core::tenant::{SecretNames, Tenant};
use serde_json::{Value, json};
use std::sync::Arc;

pub struct Deps {
    pub tenants: Arc<dyn TenantStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub queues: Arc<dyn QueueStats>,
    pub names: SecretNames,
    pub dead_letter_queues: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("health-check cannot handle this event: {0}")]
    UnknownEvent(String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("the HTTP request event is invalid: {0}")]
    BadRequestEvent(#[from] serde_json::Error),
}

pub async fn observe(deps: &Deps, tenant: &Tenant) -> Result<Health, PortError> {
    Probe {
        secrets: deps.secrets.as_ref(),
        queues: deps.queues.as_ref(),
        names: &deps.names,
        dead_letter_queues: &deps.dead_letter_queues,
    }
    .check(tenant)
    .await
}

pub async fn http(deps: &Deps, req: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    let raw = path_param(req, "tenant").unwrap_or("");
    let not_found = || error_response(404, "unknown_tenant", &format!("no tenant named {raw:?}"));
    let Ok(id) = TenantId::parse(raw) else { return not_found() };
    let tenant = match deps.tenants.get_tenant(&id).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    match observe(deps, &tenant).await {
        Ok(h) => json_response(200, &json!(h)),
        Err(e) => unavailable(&e),
    }
}

fn unavailable(e: &PortError) -> ApiGatewayV2httpResponse {
    tracing::error!(error = %e.chain(), "health check failed");
    error_response(503, "unavailable", "the health of this tenant cannot be read right now; retry later")
}

/// The scheduled sweep: every tenant's health, logged; the summary returned.
pub async fn sweep(deps: &Deps) -> Result<Value, PortError> {
    let mut out = Vec::new();
    for t in deps.tenants.list_tenants().await? {
        let h = observe(deps, &t).await?;
        tracing::info!(tenant = %t.id, status = ?h.status, cause = ?h.cause, dlq_depth = h.dlq_depth, "tenant health");
        out.push(h);
    }
    Ok(json!({"tenants": out}))
}

pub async fn handle(deps: &Deps, event: Value) -> Result<Value, HandlerError> {
    if event.get("requestContext").is_some() {
        let req: ApiGatewayV2httpRequest = serde_json::from_value(event)?;
        return Ok(serde_json::to_value(http(deps, &req).await)?);
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return Ok(sweep(deps).await?);
    }
    Err(HandlerError::UnknownEvent("neither an HTTP API request nor a scheduled event".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use learnlink_adapters::dynamo::memory::MemoryState;
    use learnlink_adapters::secrets::memory::MemorySecrets;
    use learnlink_adapters::sqs::memory::MemoryQueueStats;
    use secrecy::SecretString;

    async fn deps(dlq: u64) -> Deps {
        let state = Arc::new(MemoryState::new());
        state.seed_config(
            &TenantId::parse("acme").unwrap(),
            json!({"name": "Acme", "salesforce": {"environment": "production", "client_id": "c"}}),
            time::OffsetDateTime::UNIX_EPOCH,
        );
        let secrets = Arc::new(MemorySecrets::new());
        secrets.put_secret("learnlink/acme/salesforce", &SecretString::from("{}")).await.unwrap();
        let queues = Arc::new(MemoryQueueStats::default());
        queues.depths.lock().unwrap().insert("dlq".into(), dlq);
        Deps { tenants: state, secrets, queues, names: SecretNames::default(), dead_letter_queues: vec!["dlq".into()] }
    }

    fn http_event(tenant: &str) -> Value {
        json!({"version": "2.0", "routeKey": "GET /health/{tenant}", "rawPath": format!("/health/{tenant}"),
               "headers": {}, "pathParameters": {"tenant": tenant},
               "requestContext": {"http": {"method": "GET", "path": format!("/health/{tenant}"), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                                  "routeKey": "GET /health/{tenant}", "stage": "$default", "timeEpoch": 0},
               "isBase64Encoded": false})
    }

    #[tokio::test]
    async fn http_answers_status_and_404() {
        let d = deps(2).await;
        let r = handle(&d, http_event("acme")).await.unwrap();
        assert_eq!(r["statusCode"], 200);
        let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["status"], "DEGRADED");
        let r = handle(&d, http_event("nobody")).await.unwrap();
        assert_eq!(r["statusCode"], 404);
    }

    #[tokio::test]
    async fn schedule_sweeps_every_tenant() {
        let d = deps(0).await;
        let ev = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
                        "account": "123456789012", "time": "2026-11-23T10:00:00Z", "region": "us-east-1",
                        "resources": ["arn:aws:events:us-east-1:123456789012:rule/health"], "detail": {}});
        let r = handle(&d, ev).await.unwrap();
        assert_eq!(r["tenants"][0]["status"], "CONNECTED");
        assert!(handle(&d, json!({"foo": 1})).await.is_err());
    }
}
