//! admin-api (SPEC §8): the JSON HTTP API behind the `learnlink` CLI.
//!
//! This slice serves tenants (`GET /admin/tenants`, `GET|PUT
//! /admin/tenants/{id}`); configuration versions, logs, review, DLQ and
//! backfill routes arrive with the admin API work. Authentication: API
//! Gateway's IAM authorizer in AWS, a bearer token on the local stack. Every
//! error is `{"error": {"code", "message"}}`.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use learnlink_adapters::lambda::{AdminAuth, body_bytes, error_response, json_response};
use learnlink_core::PortError;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{SecretStore, TenantStore};
use learnlink_core::tenant::{SalesforceEnvironment, SecretNames, Tenant, WebhookSecrets, WebhookSource};
use learnlink_core::webhook::Dialect;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

pub struct Deps {
    pub tenants: Arc<dyn TenantStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub names: SecretNames,
    pub auth: AdminAuth,
}

fn authorized(deps: &Deps, req: &ApiGatewayV2httpRequest) -> bool {
    match &deps.auth {
        // API Gateway rejects unsigned requests before they reach us; the
        // authorizer context proves the IAM authorizer ran.
        AdminAuth::Iam => req.request_context.authorizer.as_ref().is_some_and(|a| a.iam.is_some()),
        AdminAuth::Bearer(token) => {
            let given = req
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes()))
        }
    }
}

fn unavailable(e: &PortError) -> ApiGatewayV2httpResponse {
    tracing::error!(error = %e.chain(), "admin request failed");
    error_response(503, "unavailable", "a store learnlink depends on failed; retry later")
}

pub async fn handle(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> ApiGatewayV2httpResponse {
    if !authorized(deps, req) {
        return error_response(401, "unauthorized", "a valid admin credential is required");
    }
    let method = req.request_context.http.method.as_str();
    let path = req.raw_path.as_deref().unwrap_or("");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["admin", "tenants"]) => match deps.tenants.list_tenants().await {
            Ok(ts) => json_response(200, &json!({"tenants": ts})),
            Err(e) => unavailable(&e),
        },
        ("GET", ["admin", "tenants", id]) => {
            let Ok(id) = TenantId::parse(id) else { return unknown_tenant(id) };
            match deps.tenants.get_tenant(&id).await {
                Ok(Some(t)) => json_response(200, &json!({"tenant": t})),
                Ok(None) => unknown_tenant(id.as_str()),
                Err(e) => unavailable(&e),
            }
        }
        ("PUT", ["admin", "tenants", id]) => put_tenant(deps, id, req, now).await,
        (_, ["admin", "tenants", ..]) => {
            error_response(405, "method_not_allowed", &format!("{method} is not supported on {path}"))
        }
        _ => error_response(404, "not_found", &format!("no admin route {method} {path}")),
    }
}

fn unknown_tenant(id: &str) -> ApiGatewayV2httpResponse {
    error_response(404, "unknown_tenant", &format!("no tenant named {id:?}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantInput {
    name: String,
    salesforce: SalesforceEnvironment,
    salesforce_client_id: String,
    #[serde(default)]
    sources: Vec<WebhookSource>,
    /// Source name → 1 or 2 active secrets. Write-only: never returned.
    #[serde(default)]
    webhook_secrets: BTreeMap<String, Vec<String>>,
}

/// Every violation, as `(path, message)`.
fn validate(id: &str, t: &TenantInput) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Err(e) = TenantId::parse(id) {
        v.push(("/id".to_string(), e.to_string()));
    }
    if t.name.trim().is_empty() {
        v.push(("/name".into(), "must not be blank".into()));
    }
    if t.salesforce_client_id.trim().is_empty() {
        v.push(("/salesforce_client_id".into(), "must not be blank".into()));
    }
    if let SalesforceEnvironment::MyDomain(url) = &t.salesforce
        && !(url.starts_with("https://") || url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost"))
    {
        v.push(("/salesforce/my_domain".into(), "must be an https:// URL".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, s) in t.sources.iter().enumerate() {
        let ok = (1..=32).contains(&s.name.len())
            && s.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            v.push((format!("/sources/{i}/name"), "use 1-32 lowercase letters, digits or '-'".into()));
        }
        if !seen.insert(s.name.as_str()) {
            v.push((format!("/sources/{i}/name"), format!("duplicate source name {:?}", s.name)));
        }
        let n = t.webhook_secrets.get(&s.name).map_or(0, Vec::len);
        if s.dialect == Dialect::Canonical && !(1..=2).contains(&n) {
            v.push((
                format!("/webhook_secrets/{}", s.name),
                format!("a signed source needs 1 or 2 active secrets, got {n}"),
            ));
        }
    }
    for (name, secrets) in &t.webhook_secrets {
        if !t.sources.iter().any(|s| &s.name == name) {
            v.push((format!("/webhook_secrets/{name}"), "names no source".into()));
        }
        for (j, s) in secrets.iter().enumerate() {
            if s.len() < 16 {
                v.push((format!("/webhook_secrets/{name}/{j}"), "must be at least 16 characters".into()));
            }
        }
    }
    v
}

async fn put_tenant(
    deps: &Deps,
    id: &str,
    req: &ApiGatewayV2httpRequest,
    now: OffsetDateTime,
) -> ApiGatewayV2httpResponse {
    let body = match body_bytes(req) {
        Ok(b) => b,
        Err(why) => return error_response(400, "malformed_body", &why),
    };
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let input: TenantInput = match serde_path_to_error::deserialize(de) {
        Ok(t) => t,
        Err(e) => {
            let path = e.path().to_string();
            return json_response(
                422,
                &json!({"error": {"code": "invalid_tenant", "message": "the tenant document is invalid",
                        "violations": [{"path": format!("/{}", path.replace('.', "/")).replace("//", "/"), "message": e.into_inner().to_string()}]}}),
            );
        }
    };
    let violations = validate(id, &input);
    if !violations.is_empty() {
        let list: Vec<Value> = violations.iter().map(|(p, m)| json!({"path": p, "message": m})).collect();
        return json_response(
            422,
            &json!({"error": {"code": "invalid_tenant", "message": format!("the tenant document has {} violation(s)", list.len()), "violations": list}}),
        );
    }
    let Ok(tid) = TenantId::parse(id) else { return unknown_tenant(id) };
    let existing = match deps.tenants.get_tenant(&tid).await {
        Ok(t) => t,
        Err(e) => return unavailable(&e),
    };
    let tenant = Tenant {
        id: tid.clone(),
        name: input.name,
        salesforce: input.salesforce,
        salesforce_client_id: input.salesforce_client_id,
        sources: input.sources,
        created_at: existing.as_ref().map_or(now, |t| t.created_at),
    };
    // Secrets first: a tenant is never visible without its webhook secrets.
    let secrets = WebhookSecrets { sources: input.webhook_secrets };
    let doc = SecretString::from(serde_json::to_string(&secrets).unwrap_or_default());
    if let Err(e) = deps.secrets.put_secret(&deps.names.webhook_secrets(&tid), &doc).await {
        return unavailable(&e);
    }
    if let Err(e) = deps.tenants.put_tenant(&tenant).await {
        return unavailable(&e);
    }
    tracing::info!(tenant = %tid, created = existing.is_none(), "tenant stored");
    json_response(if existing.is_some() { 200 } else { 201 }, &json!({"tenant": tenant}))
}

#[cfg(test)]
mod tests;
