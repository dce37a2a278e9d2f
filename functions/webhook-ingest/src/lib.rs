//! webhook-ingest (SPEC §4.1): `POST /webhooks/{tenant}/{source}` (and
//! `POST /webhooks/{tenant}/{source}/{token}` for dialects authenticated by a
//! URL token, Skilljar) → verify, parse the source's dialect into canonical
//! events, deduplicate by event id (read before the send, remembered after
//! it), enqueue the fresh ones as one message per
//! delivery (`job::pack`; split only past SQS's size limit), answer 202.
//!
//! Nothing is enqueued for a rejected request, and rejections are logged
//! without the body (and never with the URL token). Answers: 202 accepted;
//! 401 bad or missing signature or token; 400 malformed body / unknown event
//! type; 404 unknown tenant or source, or a token URL for a signed dialect;
//! 413 too large; 503 when a store or the queue fails (the LMS retries).

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use learnlink_adapters::lambda::{body_bytes, error_response, header_pairs, json_response, path_param};
use learnlink_core::PortError;
use learnlink_core::job;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{Claim, DedupeStore, JobQueue, SecretStore, TenantStore};
use learnlink_core::tenant::{SecretNames, Tenant, WebhookSecrets};
use learnlink_core::webhook::{self, MAX_BODY_BYTES, Rejection};
use secrecy::ExposeSecret;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How long a tenant or its secrets are cached in a warm instance. Two
/// secrets may be active during a rotation, so a short staleness is safe.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Event ids are remembered this long.
const DEDUPE_TTL: time::Duration = time::Duration::days(7);

pub struct Deps {
    pub tenants: Arc<dyn TenantStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub dedupe: Arc<dyn DedupeStore>,
    pub queue: Arc<dyn JobQueue>,
    pub names: SecretNames,
    cache: Mutex<HashMap<TenantId, (Instant, Tenant, WebhookSecrets)>>,
}

impl Deps {
    pub fn new(
        tenants: Arc<dyn TenantStore>,
        secrets: Arc<dyn SecretStore>,
        dedupe: Arc<dyn DedupeStore>,
        queue: Arc<dyn JobQueue>,
        names: SecretNames,
    ) -> Self {
        Deps { tenants, secrets, dedupe, queue, names, cache: Mutex::new(HashMap::new()) }
    }

    /// The tenant and its webhook secrets; `None` for an unknown tenant
    /// (never cached, so a tenant created a moment ago is found).
    async fn tenant(&self, id: &TenantId) -> Result<Option<(Tenant, WebhookSecrets)>, PortError> {
        if let Some((at, t, s)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some((t.clone(), s.clone())));
        }
        let Some(tenant) = self.tenants.get_tenant(id).await? else { return Ok(None) };
        let secrets = match self.secrets.get_secret(&self.names.webhook_secrets(id)).await? {
            Some(s) => serde_json::from_str::<WebhookSecrets>(s.expose_secret()).map_err(|e| {
                PortError::permanent(format!("the webhook secrets document of tenant {id} is invalid: {e}"))
            })?,
            None => WebhookSecrets::default(),
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), (Instant::now(), tenant.clone(), secrets.clone()));
        Ok(Some((tenant, secrets)))
    }
}

fn reject(tenant: &str, source: &str, r: &Rejection) -> ApiGatewayV2httpResponse {
    tracing::warn!(tenant, source, status = r.status, code = r.code, reason = %r.message, "webhook rejected");
    error_response(r.status, r.code, &r.message)
}

fn unavailable(tenant: &str, e: &PortError) -> ApiGatewayV2httpResponse {
    tracing::error!(tenant, class = %e.class, error = %e.chain(), "webhook not accepted: a dependency failed");
    error_response(503, "unavailable", "learnlink could not accept the delivery right now; retry later")
}

pub async fn handle(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> ApiGatewayV2httpResponse {
    let tenant_raw = path_param(req, "tenant").unwrap_or("");
    let source = path_param(req, "source").unwrap_or("");
    let Ok(tenant_id) = TenantId::parse(tenant_raw) else {
        return reject(tenant_raw, source, &Rejection::unknown_tenant(tenant_raw));
    };
    let (tenant, secrets) = match deps.tenant(&tenant_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return reject(tenant_raw, source, &Rejection::unknown_tenant(tenant_raw)),
        Err(e) => return unavailable(tenant_raw, &e),
    };
    let Some(src) = tenant.source(source) else {
        return reject(tenant_raw, source, &Rejection::unknown_source(tenant_raw, source));
    };
    let body = match body_bytes(req) {
        Ok(b) => b,
        Err(why) => return reject(tenant_raw, source, &Rejection::malformed(why)),
    };
    if body.len() > MAX_BODY_BYTES {
        return reject(tenant_raw, source, &Rejection::too_large(body.len()));
    }
    let token = path_param(req, "token");
    if token.is_some() && !src.dialect.authenticates_by_url_token() {
        return reject(tenant_raw, source, &Rejection::no_token_route(tenant_raw, source, src.dialect));
    }
    let headers = header_pairs(req);
    if let Err(r) = webhook::verify(src.dialect, &headers, token, &body, secrets.for_source(source), now) {
        return reject(tenant_raw, source, &r);
    }
    let events = match webhook::parse(src.dialect, &body) {
        Ok(evs) => evs,
        Err(r) => return reject(tenant_raw, source, &r),
    };
    let dialect = src.dialect.as_str();

    // Deduplicate by event id: one read for the delivery; the ids are
    // remembered only once their message is in the queue.
    let keys: Vec<String> = events.iter().map(|ev| format!("{tenant_id}#{source}#{}", ev.id)).collect();
    let answers = match deps.dedupe.seen_many(&keys, now).await {
        Ok(a) => a,
        Err(e) => return unavailable(tenant_raw, &e),
    };
    let mut fresh = Vec::new();
    let mut fresh_keys = Vec::new();
    let mut duplicates = 0usize;
    for ((ev, key), answer) in events.into_iter().zip(keys).zip(answers) {
        match answer {
            Claim::Fresh => {
                fresh_keys.push(key);
                fresh.push(ev);
            }
            Claim::Duplicate => duplicates += 1,
        }
    }
    // One message per delivery (split only past SQS's size limit).
    let (bodies, ranges): (Vec<String>, Vec<_>) =
        job::pack(&tenant_id, source, &fresh, job::MAX_MESSAGE_BYTES).into_iter().map(|m| (m.body, m.events)).unzip();
    let results = deps.queue.send_encoded(&bodies).await;
    let mut failed: Option<PortError> = None;
    let mut sent: Vec<String> = Vec::new();
    for (range, res) in ranges.into_iter().zip(results) {
        match res {
            Ok(()) => sent.extend(fresh_keys[range].iter().cloned()),
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    let accepted = sent.len();
    if let Err(e) = deps.dedupe.remember_many(&sent, now, DEDUPE_TTL).await {
        // The events are in the queue; a redelivery would be enqueued again,
        // which idempotent writes absorb.
        tracing::warn!(tenant = tenant_raw, error = %e.chain(), "could not remember event ids");
    }
    if let Some(e) = failed {
        // Some events were not enqueued (nor remembered): ask the LMS to
        // redeliver; the ones that were enqueued are duplicates then.
        return unavailable(tenant_raw, &e);
    }
    tracing::info!(tenant = tenant_raw, source, dialect, accepted, duplicates, "webhook accepted");
    json_response(202, &json!({"accepted": accepted, "duplicates": duplicates}))
}

#[cfg(test)]
mod tests;
