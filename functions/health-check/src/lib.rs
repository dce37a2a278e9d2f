//! health-check (SPEC §3.5): `GET /health/{tenant}`, and on its EventBridge
//! schedule (every 5 minutes) a sweep over every tenant that
//! - refreshes any connection not refreshed for `keepalive` (default 7 days),
//!   so an idle-expiry policy of the org never expires it;
//! - probes the org (`/limits`, which also gives the API usage): a revoked
//!   token is found within one cycle, an outage is counted per day (DEGRADED,
//!   never DISCONNECTED);
//! - replays work parked while the tenant could not be written;
//! - logs every tenant's status with its sentence and remedy.
//!
//! The scheduled event's `time` is the sweep's "now".
//!
//! The HTTP route answers a tenant's status, integration user, rights,
//! failures and gap windows: like the admin API it requires the admin
//! credential (IAM in AWS, the bearer token locally) and refuses anything else
//! with the admin API's 401 before reading anything.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use learnlink_adapters::lambda::{AdminAuth, admin_authorized, error_response, json_response, path_param};
use learnlink_core::connection::{LinkStatus, Links, TokenProvider, drain_parked, update_connection};
use learnlink_core::health::{Health, Probe};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{
    ConnectionStore, JobQueue, ParkStore, QueueStats, SalesforceApi, SecretStore, TenantStore,
};
use learnlink_core::salesforce::SalesforceError;
use learnlink_core::tenant::{SecretNames, Tenant};
use learnlink_core::{Classify, PortError};
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;

/// Parked jobs replayed per tenant per sweep.
pub const DRAIN_PER_SWEEP: usize = 5_000;

pub struct Deps {
    pub tenants: Arc<dyn TenantStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub queues: Arc<dyn QueueStats>,
    pub connections: Arc<dyn ConnectionStore>,
    pub parking: Arc<dyn ParkStore>,
    pub salesforce: Arc<dyn SalesforceApi>,
    pub sync_queue: Arc<dyn JobQueue>,
    pub names: SecretNames,
    pub dead_letter_queues: Vec<String>,
    /// The sync queue's URL: its depth is the backlog shown in the status.
    pub sync_queue_url: Option<String>,
    pub keepalive: time::Duration,
    pub tokens: TokenProvider,
    /// How the HTTP route authenticates callers (the admin API's credential).
    pub auth: AdminAuth,
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

impl Deps {
    fn links(&self) -> Links<'_> {
        learnlink_adapters::links(
            self.secrets.as_ref(),
            self.salesforce.as_ref(),
            self.connections.as_ref(),
            &self.names,
        )
    }

    fn probe(&self) -> Probe<'_> {
        Probe {
            secrets: self.secrets.as_ref(),
            queues: self.queues.as_ref(),
            connections: self.connections.as_ref(),
            parking: self.parking.as_ref(),
            names: &self.names,
            dead_letter_queues: &self.dead_letter_queues,
            sync_queue: self.sync_queue_url.as_deref(),
            keepalive: self.keepalive,
        }
    }
}

pub async fn http(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> ApiGatewayV2httpResponse {
    if !admin_authorized(&deps.auth, req) {
        return error_response(401, "unauthorized", "a valid admin credential is required");
    }
    let raw = path_param(req, "tenant").unwrap_or("");
    let not_found = || error_response(404, "unknown_tenant", &format!("no tenant named {raw:?}"));
    let Ok(id) = TenantId::parse(raw) else { return not_found() };
    let tenant = match deps.tenants.get_tenant(&id).await {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    match deps.probe().check(&tenant, now).await {
        Ok(h) => json_response(200, &json!(h)),
        Err(e) => unavailable(&e),
    }
}

fn unavailable(e: &PortError) -> ApiGatewayV2httpResponse {
    tracing::error!(error = %e.chain(), "health check failed");
    error_response(503, "unavailable", "the health of this tenant cannot be read right now; retry later")
}

/// Keep-alive and probe of one connected tenant.
async fn exercise(deps: &Deps, tenant: &Tenant, now: OffsetDateTime) -> Result<(), PortError> {
    let links = deps.links();
    let state = deps.connections.connection(&tenant.id).await?.unwrap_or_default();
    if state.status == LinkStatus::Disconnected {
        return Ok(()); // only a relink helps; nothing to try
    }
    let mut session = match deps.tokens.session(&links, tenant).await {
        Ok(s) => s,
        Err(e) if e.parks_work() => return Ok(()),
        Err(e) => return Err(PortError::new(e.class(), learnlink_core::error::error_chain(&e))),
    };
    let due = state.last_refresh_at.is_none_or(|t| now - t >= deps.keepalive);
    if due {
        match deps.tokens.refreshed(&links, tenant, &session, || now).await {
            Ok(s) => {
                tracing::info!(tenant = %tenant.id, "keep-alive refresh done");
                session = s;
            }
            Err(e) if e.parks_work() => return Ok(()),
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, error = %learnlink_core::error::error_chain(&e), "keep-alive refresh failed");
                return Ok(()); // counted by the provider
            }
        }
    }
    let mut probe = deps.salesforce.limits(&session.session()).await;
    if matches!(probe, Err(SalesforceError::SessionExpired)) {
        match deps.tokens.refreshed(&links, tenant, &session, || now).await {
            Ok(s) => probe = deps.salesforce.limits(&s.session()).await,
            Err(e) if e.parks_work() => return Ok(()),
            Err(_) => return Ok(()), // counted by the provider
        }
    }
    match probe {
        Ok(limits) => {
            // Sforce-Limit-Info of the probe's own answer; /limits if absent.
            let usage = deps
                .salesforce
                .last_usage(&session.instance_url)
                .unwrap_or_else(|| learnlink_core::budget::ApiUsage::from_limit(&limits.daily_api_requests));
            update_connection(deps.connections.as_ref(), &tenant.id, |s| {
                s.api_usage = Some(usage);
                s.last_probe_at = Some(now);
            })
            .await?;
        }
        Err(e) => {
            let text = learnlink_core::error::error_chain(&e);
            tracing::warn!(tenant = %tenant.id, class = %e.class(), error = %text, "Salesforce probe failed");
            update_connection(deps.connections.as_ref(), &tenant.id, |s| {
                s.record_failure(now, text.clone());
                s.last_probe_at = Some(now);
            })
            .await?;
        }
    }
    Ok(())
}

/// The scheduled sweep over every tenant.
pub async fn sweep(deps: &Deps, now: OffsetDateTime) -> Result<Value, PortError> {
    let mut out: Vec<Health> = Vec::new();
    for t in deps.tenants.list_tenants().await? {
        if !t.paused
            && let Err(e) = exercise(deps, &t, now).await
        {
            tracing::warn!(tenant = %t.id, error = %e.chain(), "could not exercise the connection");
        }
        let state = deps.connections.connection(&t.id).await?.unwrap_or_default();
        if !t.paused && state.status == LinkStatus::Connected {
            match drain_parked(deps.parking.as_ref(), deps.sync_queue.as_ref(), &t.id, DRAIN_PER_SWEEP).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(tenant = %t.id, error = %e.chain(), "replaying parked work failed; next sweep continues")
                }
            }
        }
        let h = deps.probe().check(&t, now).await?;
        tracing::info!(tenant = %t.id, status = ?h.status, cause = ?h.cause, sentence = %h.sentence, parked = h.parked,
            failures_today = h.failures_today, dlq_depth = h.dlq_depth, "tenant health");
        out.push(h);
    }
    Ok(json!({"tenants": out}))
}

pub async fn handle(deps: &Deps, event: Value) -> Result<Value, HandlerError> {
    if event.get("requestContext").is_some() {
        let req: ApiGatewayV2httpRequest = serde_json::from_value(event)?;
        return Ok(serde_json::to_value(http(deps, &req, OffsetDateTime::now_utc()).await)?);
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let now = event
            .get("time")
            .and_then(Value::as_str)
            .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        return Ok(sweep(deps, now).await?);
    }
    Err(HandlerError::UnknownEvent("neither an HTTP API request nor a scheduled event".into()))
}

#[cfg(test)]
mod tests;
