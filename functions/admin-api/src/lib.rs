//! admin-api (SPEC §7, §8): the JSON HTTP API behind the `learnlink` CLI,
//! described by `infra/openapi.yaml`.
//!
//! Tenants and their versioned configuration (validate, versions, diff),
//! connection status, the activity log (JSON or CSV) and run summaries, the
//! review queue (resolve an ambiguous Contact) and the dead-letter queue
//! (list, replay), backfills (list, progress, cancel; starting one is the
//! backfill-fanout function's route) and the enrollments export (CSV).
//! Authentication: API Gateway's IAM authorizer in AWS, a bearer token on
//! the local stack. Every error is `{"error": {"code", "message"}}` (422s add
//! `violations`, each with a JSON pointer).

mod activity;
mod backfills;
mod config;
mod dlq;
mod exports;
mod imports;
mod review;
mod tenants;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use learnlink_adapters::lambda::{AdminAuth, body_bytes, error_response, json_response};
use learnlink_core::PortError;
use learnlink_core::config::Violation;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{
    ActivityLog, BackfillStore, ConfigStore, ConnectionStore, DeadLetterQueue, JobQueue, LinkStore, LmsEnrollments,
    ParkStore, QueueStats, ReviewStore, SecretStore, StoredConfig,
};
use learnlink_core::tenant::SecretNames;
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;

pub struct Deps {
    pub configs: Arc<dyn ConfigStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub activity: Arc<dyn ActivityLog>,
    pub connections: Arc<dyn ConnectionStore>,
    pub parking: Arc<dyn ParkStore>,
    pub sync_queue: Arc<dyn JobQueue>,
    pub keepalive: time::Duration,
    pub queues: Arc<dyn QueueStats>,
    pub dead_letter_queues: Vec<String>,
    /// The sync queue's URL: its depth is the backlog shown in the status.
    pub sync_queue_url: Option<String>,
    pub names: SecretNames,
    pub auth: AdminAuth,
    /// The review queue (ambiguous Contacts) and the links an admin chooses.
    pub review: Arc<dyn ReviewStore>,
    pub links: Arc<dyn LinkStore>,
    /// The sync queue's dead-letter queue (replays go to `sync_queue`'s queue).
    pub dlq: Arc<dyn DeadLetterQueue>,
    /// Imports: their state, and what a preview reads (Salesforce through
    /// this instance's token cache, the HRIS, the LMS).
    pub imports: Arc<dyn learnlink_core::ports::ImportStore>,
    pub salesforce: Arc<dyn learnlink_core::ports::SalesforceApi>,
    pub tokens: learnlink_core::connection::TokenProvider,
    pub lms_writer: Arc<dyn learnlink_core::ports::LmsWriter>,
    pub hris: Arc<dyn learnlink_core::ports::HrisApi>,
    /// Backfills and their shards (list, progress, cancel).
    pub backfills: Arc<dyn BackfillStore>,
    /// The LMS's enrollments by window (the enrollments export).
    pub lms_enrollments: Arc<dyn LmsEnrollments>,
}

/// An answer that is not a success: status, stable code, one sentence.
pub(crate) struct Fail {
    status: u16,
    code: &'static str,
    message: String,
    violations: Vec<Violation>,
}

impl Fail {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Fail {
        Fail { status, code, message: message.into(), violations: Vec::new() }
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> Fail {
        Fail::new(400, code, message)
    }
    fn unknown_tenant(id: &str) -> Fail {
        Fail::new(404, "unknown_tenant", format!("no tenant named {id:?}"))
    }
    fn invalid(code: &'static str, violations: Vec<Violation>) -> Fail {
        let message = format!("the document has {} violation(s); nothing was stored", violations.len());
        Fail { status: 422, code, message, violations }
    }
    fn response(&self) -> ApiGatewayV2httpResponse {
        if self.violations.is_empty() {
            return error_response(self.status, self.code, &self.message);
        }
        json_response(
            self.status,
            &json!({"error": {"code": self.code, "message": self.message, "violations": self.violations}}),
        )
    }
}

impl From<PortError> for Fail {
    fn from(e: PortError) -> Fail {
        tracing::error!(class = %e.class, error = %e.chain(), "admin request failed");
        Fail::new(503, "unavailable", "a store learnlink depends on failed; retry later")
    }
}

pub(crate) type Answer = Result<ApiGatewayV2httpResponse, Fail>;

pub async fn handle(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> ApiGatewayV2httpResponse {
    if !learnlink_adapters::lambda::admin_authorized(&deps.auth, req) {
        return error_response(401, "unauthorized", "a valid admin credential is required");
    }
    match route(deps, req, now).await {
        Ok(r) => r,
        Err(f) => f.response(),
    }
}

async fn route(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> Answer {
    let method = req.request_context.http.method.as_str();
    let path = req.raw_path.as_deref().unwrap_or("");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["admin", "tenants"]) => tenants::list(deps).await,
        ("POST", ["admin", "tenants"]) => tenants::create(deps, req, now).await,
        ("GET", ["admin", "tenants", t]) => tenants::get(deps, t).await,
        ("GET", ["admin", "tenants", t, "status"]) => tenants::status(deps, t, now).await,
        ("GET", ["admin", "tenants", t, "config"]) => config::get(deps, t, req).await,
        ("PUT", ["admin", "tenants", t, "config"]) => config::put(deps, t, req, now).await,
        ("POST", ["admin", "tenants", t, "config", "validate"]) => config::validate(deps, t, req).await,
        ("GET", ["admin", "tenants", t, "config", "versions"]) => config::versions(deps, t).await,
        ("GET", ["admin", "tenants", t, "config", "diff"]) => config::diff(deps, t, req).await,
        ("GET", ["admin", "tenants", t, "activity"]) => activity::list(deps, t, req).await,
        ("GET", ["admin", "tenants", t, "runs"]) => activity::runs(deps, t, req).await,
        ("GET", ["admin", "tenants", t, "review"]) => review::list(deps, t, req).await,
        ("POST", ["admin", "tenants", t, "review", learner, "resolve"]) => {
            review::resolve(deps, t, learner, req, now).await
        }
        ("GET", ["admin", "tenants", t, "dlq"]) => dlq::list(deps, t).await,
        ("POST", ["admin", "tenants", t, "dlq", "replay"]) => dlq::replay(deps, t, req).await,
        ("GET", ["admin", "dlq"]) => dlq::list_all(deps).await,
        ("POST", ["admin", "tenants", t, "imports"]) => imports::start(deps, t, req, now).await,
        ("GET", ["admin", "tenants", t, "imports"]) => imports::state(deps, t).await,
        ("POST", ["admin", "tenants", t, "imports", "preview"]) => imports::preview(deps, t, req, now).await,
        ("GET", ["admin", "tenants", t, "backfills"]) => backfills::list(deps, t, req, now).await,
        ("GET", ["admin", "tenants", t, "backfills", id]) => backfills::get(deps, t, id, req, now).await,
        ("POST", ["admin", "tenants", t, "backfills", id, "cancel"]) => backfills::cancel(deps, t, id, now).await,
        ("GET", ["admin", "tenants", t, "exports", "enrollments"]) => exports::enrollments(deps, t, req, now).await,
        _ => Err(Fail::new(404, "not_found", format!("no admin route {method} {path}"))),
    }
}

/// The tenant's current configuration, or 404.
pub(crate) async fn current(deps: &Deps, raw: &str) -> Result<StoredConfig, Fail> {
    let id = TenantId::parse(raw).map_err(|_| Fail::unknown_tenant(raw))?;
    deps.configs.current_config(&id).await?.ok_or_else(|| Fail::unknown_tenant(raw))
}

/// The JSON body, or 400 naming the problem.
pub(crate) fn json_body(req: &ApiGatewayV2httpRequest) -> Result<Value, Fail> {
    let bytes = body_bytes(req).map_err(|why| Fail::bad_request("malformed_body", why))?;
    if bytes.is_empty() {
        return Err(Fail::bad_request("malformed_body", "the request needs a JSON body"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Fail::bad_request("malformed_body", format!("the body is not JSON: {e}")))
}

/// A query parameter.
pub(crate) fn param<'a>(req: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    req.query_string_parameters.first(name)
}

/// A positive integer query parameter, or 400 naming it.
pub(crate) fn int_param(req: &ApiGatewayV2httpRequest, name: &str, min: u64, max: u64) -> Result<Option<u64>, Fail> {
    match param(req, name) {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Fail::bad_request(
                "invalid_parameter",
                format!("{name} must be a whole number from {min} to {max}"),
            )),
        },
    }
}

/// An RFC 3339 query parameter, or 400 naming it.
pub(crate) fn time_param(req: &ApiGatewayV2httpRequest, name: &str) -> Result<Option<OffsetDateTime>, Fail> {
    match param(req, name) {
        None => Ok(None),
        Some(v) => OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
            .map(Some)
            .map_err(|_| Fail::bad_request("invalid_parameter", format!("{name} must be an RFC 3339 date-time"))),
    }
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests;
