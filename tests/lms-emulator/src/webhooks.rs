//! Webhook emission: turns enrollments into signed deliveries of learnlink's
//! `canonical` dialect and POSTs them to a target URL, optionally with duplicates
//! and in a shuffled order.

use std::collections::BTreeMap;

use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::data::{Dataset, Enrollment, parse_id};
use crate::prng::SplitMix64;
use crate::state::LmsState;

/// Header carrying the canonical dialect's signature.
pub const SIGNATURE_HEADER: &str = "Learnlink-Signature";

/// Body of `POST /__emulator/webhooks/emit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmitRequest {
    pub target_url: String,
    #[serde(default = "default_dialect")]
    pub dialect: String,
    /// HMAC secret; without it deliveries are sent unsigned.
    #[serde(default)]
    pub secret: Option<String>,
    /// The first `count` enrollments in (updated_at, id) order ...
    #[serde(default)]
    pub count: Option<usize>,
    /// ... or these enrollments, in this order.
    #[serde(default)]
    pub enrollment_ids: Option<Vec<String>>,
    #[serde(default = "default_events_per_delivery")]
    pub events_per_delivery: usize,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Share (percent) of deliveries sent a second time.
    #[serde(default)]
    pub duplicate_pct: u32,
    /// Shuffle deliveries (deterministically).
    #[serde(default)]
    pub reorder: bool,
    /// Overrides every event's type.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Overrides the signature timestamp (Unix seconds), e.g. to send stale ones.
    #[serde(default)]
    pub timestamp: Option<i64>,
}

fn default_dialect() -> String {
    "canonical".to_owned()
}

fn default_events_per_delivery() -> usize {
    1
}

fn default_concurrency() -> usize {
    4
}

/// Summary answered by the emit endpoint.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmitReport {
    /// HTTP requests attempted (duplicates included).
    pub deliveries: usize,
    /// Events carried by those requests (duplicates included).
    pub events: usize,
    /// Deliveries that were re-sends.
    pub duplicates: usize,
    /// Response status → count.
    pub statuses: BTreeMap<String, usize>,
    /// Requests that got no HTTP response.
    pub errors: usize,
}

/// One canonical event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub data: Enrollment,
}

#[derive(Serialize)]
struct Body<'a> {
    events: &'a [Event],
}

/// The canonical event for an enrollment.
pub fn canonical_event(e: Enrollment, updated_ms: i64, enrolled_ms: i64, type_override: Option<&str>) -> Event {
    let event_type = match type_override {
        Some(t) => t.to_owned(),
        None if e.status == "completed" => "enrollment.completed".to_owned(),
        None if updated_ms == enrolled_ms => "enrollment.created".to_owned(),
        None => "enrollment.updated".to_owned(),
    };
    Event { id: format!("evt_{}_{}", e.id, updated_ms), event_type, occurred_at: e.updated_at.clone(), data: e }
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return format!("t={t},v1="),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks the request and selects the enrollments (indexes).
pub fn select(data: &Dataset, req: &EmitRequest) -> Result<Vec<u32>, String> {
    if req.dialect != "canonical" {
        return Err(format!("dialect '{}' is not supported yet; supported: canonical", req.dialect));
    }
    match reqwest::Url::parse(&req.target_url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => return Err("target_url must be an http(s) URL".to_owned()),
    }
    if !(1..=100).contains(&req.events_per_delivery) {
        return Err("events_per_delivery must be between 1 and 100".to_owned());
    }
    if !(1..=256).contains(&req.concurrency) {
        return Err("concurrency must be between 1 and 256".to_owned());
    }
    if req.duplicate_pct > 100 {
        return Err("duplicate_pct must be between 0 and 100".to_owned());
    }
    match (&req.count, &req.enrollment_ids) {
        (Some(_), Some(_)) => Err("give either count or enrollment_ids, not both".to_owned()),
        (None, None) => Err("give count or enrollment_ids".to_owned()),
        (Some(n), None) => Ok(data.enrollments_order.iter().take(*n).copied().collect()),
        (None, Some(ids)) => ids
            .iter()
            .map(|id| {
                parse_id(id, 'E')
                    .filter(|i| (*i as usize) < data.enrollments.len())
                    .ok_or_else(|| format!("unknown enrollment id {id}"))
            })
            .collect(),
    }
}

/// One HTTP delivery: its body and the number of events it carries.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: Vec<u8>,
    pub events: usize,
}

/// What to send, in which order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub deliveries: Vec<Delivery>,
    /// Indexes into `deliveries`, duplicates included.
    pub order: Vec<usize>,
    pub duplicates: usize,
}

/// Builds the deliveries and the send order: originals first, then the re-sent
/// ones; everything shuffled when `reorder` is set. Deterministic.
pub fn plan(data: &Dataset, req: &EmitRequest, selected: &[u32]) -> Plan {
    let events: Vec<Event> = selected
        .iter()
        .filter_map(|i| {
            let row = data.enrollments.get(*i as usize)?;
            let e = data.enrollment(*i)?;
            Some(canonical_event(e, row.updated_at, row.enrolled_at, req.event_type.as_deref()))
        })
        .collect();
    let deliveries: Vec<Delivery> = events
        .chunks(req.events_per_delivery.max(1))
        .map(|chunk| Delivery {
            body: serde_json::to_vec(&Body { events: chunk }).unwrap_or_default(),
            events: chunk.len(),
        })
        .collect();
    let n = deliveries.len();
    let seed = data.params.map_or(0, |p| p.seed) ^ 0x5EED_F00D_DE11_7E27;
    let mut rng = SplitMix64::new(seed);
    let duplicates = (n * req.duplicate_pct as usize + 50) / 100;
    let mut candidates: Vec<usize> = (0..n).collect();
    shuffle(&mut candidates, &mut rng);
    let mut dups: Vec<usize> = candidates.into_iter().take(duplicates).collect();
    dups.sort_unstable();
    let mut order: Vec<usize> = (0..n).collect();
    order.extend(dups);
    if req.reorder {
        shuffle(&mut order, &mut rng);
    }
    Plan { deliveries, order, duplicates }
}

fn shuffle(v: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = usize::try_from(rng.below(i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Sends the deliveries.
pub async fn emit(state: &LmsState, req: EmitRequest) -> Result<EmitReport, String> {
    let data = state.data();
    let selected = select(&data, &req)?;
    let Plan { deliveries, order, duplicates } = plan(&data, &req, &selected);
    drop(data);
    let client = state.client().clone();
    let url = req.target_url.clone();
    let secret = req.secret.clone();
    let timestamp = req.timestamp;
    let results: Vec<(Option<u16>, usize)> =
        futures::stream::iter(order.into_iter().filter_map(|i| deliveries.get(i).cloned()))
            .map(|Delivery { body, events: n_events }| {
                let client = client.clone();
                let url = url.clone();
                let secret = secret.clone();
                async move {
                    let mut rb = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json");
                    if let Some(s) = &secret {
                        let t = timestamp.unwrap_or_else(now_secs);
                        rb = rb.header(SIGNATURE_HEADER, sign(s, t, &body));
                    }
                    let status = match rb.body(body).send().await {
                        Ok(resp) => Some(resp.status().as_u16()),
                        Err(e) => {
                            tracing::warn!(error = %e, "webhook delivery failed");
                            None
                        }
                    };
                    (status, n_events)
                }
            })
            .buffer_unordered(req.concurrency.max(1))
            .collect()
            .await;
    let mut report = EmitReport { duplicates, ..EmitReport::default() };
    for (status, n_events) in results {
        report.deliveries += 1;
        report.events += n_events;
        match status {
            Some(s) => *report.statuses.entry(s.to_string()).or_default() += 1,
            None => report.errors += 1,
        }
    }
    {
        let mut stats = state.stats();
        stats.webhooks_sent += report.deliveries as u64;
        stats.webhook_events_sent += report.events as u64;
        stats.webhook_errors += report.errors as u64;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_format() {
        let s = sign("secret", 1_700_000_000, b"{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
    }
}
