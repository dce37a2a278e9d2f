//! The sync queue's dead-letter queue (SPEC §4.5): `GET /admin/dlq` (every
//! message, those no job can be read from with `tenant: null`),
//! `GET /admin/tenants/{tenant}/dlq` and `POST …/dlq/replay`.
//!
//! Listing never removes anything; a replay sends each message back to the
//! sync queue before it deletes it from the DLQ.

use crate::{Answer, Deps, Fail, current, rfc3339};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use learnlink_adapters::lambda::{body_bytes, json_response};
use learnlink_core::job::{SyncJob, decode};
use learnlink_core::model::TenantId;
use learnlink_core::ports::DeadLetter;
use serde_json::{Value, json};
use std::collections::HashSet;

/// The most messages one listing looks at.
pub(crate) const SCAN_MAX: usize = 1000;
/// The most message ids one replay takes.
const MAX_IDS: usize = 1000;

/// A dead-lettered message as the API shows it, with the tenant of its job
/// (None: no job can be read from it).
fn shown(letter: &DeadLetter) -> (Option<TenantId>, Value) {
    let base = |tenant: Option<&TenantId>, event: Option<&str>, record: Option<String>, description: String| {
        json!({
            "message_id": letter.message_id,
            "receive_count": letter.receive_count,
            "sent_at": rfc3339(letter.sent_at),
            "tenant": tenant,
            "event_id": event,
            "record": record,
            "description": description,
        })
    };
    match decode(&letter.body) {
        Ok(job) => {
            let v = match &job {
                SyncJob::LmsEvent { tenant, source, event } => {
                    let (entity, id) = event.record_key();
                    let record = format!("{entity} {id}");
                    let description = format!(
                        "{} of {record} from source {source:?} (LMS updated_at {})",
                        event.kind.as_str(),
                        rfc3339(event.updated_at())
                    );
                    base(Some(tenant), Some(&event.id), Some(record), description)
                }
                SyncJob::LmsEvents { tenant, source, events } => {
                    let what = |e: &learnlink_core::webhook::LmsEvent| {
                        let (entity, id) = e.record_key();
                        format!("{} of {entity} {id}", e.kind.as_str())
                    };
                    match events.as_slice() {
                        [one] => {
                            let (entity, id) = one.record_key();
                            let description = format!(
                                "{} from source {source:?} (LMS updated_at {})",
                                what(one),
                                rfc3339(one.updated_at())
                            );
                            base(Some(tenant), Some(&one.id), Some(format!("{entity} {id}")), description)
                        }
                        many => {
                            let mut description = format!(
                                "{} events of one delivery from source {source:?}: {}",
                                many.len(),
                                many.iter().take(3).map(what).collect::<Vec<_>>().join("; ")
                            );
                            if many.len() > 3 {
                                description.push_str(&format!("; and {} more", many.len() - 3));
                            }
                            base(Some(tenant), None, None, description)
                        }
                    }
                }
                SyncJob::ImportPage { tenant, run_id, page, .. } => {
                    base(Some(tenant), None, None, format!("page {page} of import run {run_id}"))
                }
                SyncJob::BackfillShard { tenant, backfill_id, shard } => {
                    base(Some(tenant), None, None, format!("shard {shard} of backfill {backfill_id}"))
                }
            };
            (Some(job.tenant().clone()), v)
        }
        Err(e) => {
            let mut why = e.to_string();
            if why.len() > 300 {
                let mut cut = 300;
                while !why.is_char_boundary(cut) {
                    cut -= 1;
                }
                why.truncate(cut);
                why.push('…');
            }
            (None, base(None, None, None, why))
        }
    }
}

pub(crate) async fn list_all(deps: &Deps) -> Answer {
    let letters = deps.dlq.list(SCAN_MAX).await?;
    let messages: Vec<Value> = letters.iter().map(|l| shown(l).1).collect();
    Ok(json_response(200, &json!({ "messages": messages })))
}

/// The tenant's messages: (message id, as shown).
async fn of_tenant(deps: &Deps, tenant: &TenantId) -> Result<Vec<(String, Value)>, Fail> {
    let letters = deps.dlq.list(SCAN_MAX).await?;
    Ok(letters
        .iter()
        .filter_map(|l| {
            let (t, v) = shown(l);
            (t.as_ref() == Some(tenant)).then(|| (l.message_id.clone(), v))
        })
        .collect())
}

pub(crate) async fn list(deps: &Deps, raw: &str) -> Answer {
    let stored = current(deps, raw).await?;
    let messages: Vec<Value> = of_tenant(deps, &stored.tenant).await?.into_iter().map(|(_, v)| v).collect();
    Ok(json_response(200, &json!({"tenant": stored.tenant, "messages": messages})))
}

/// The message ids of an optional `{"message_ids": [...]}` body (None: all).
fn ids_of(req: &ApiGatewayV2httpRequest) -> Result<Option<Vec<String>>, Fail> {
    let bytes = body_bytes(req).map_err(|why| Fail::bad_request("malformed_body", why))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Fail::bad_request("malformed_body", format!("the body is not JSON: {e}")))?;
    let shape = || {
        Fail::bad_request(
            "malformed_body",
            format!("the body must be {{\"message_ids\": [1 to {MAX_IDS} message ids]}}, or empty for every message"),
        )
    };
    let obj = body.as_object().ok_or_else(shape)?;
    if let Some(k) = obj.keys().find(|k| *k != "message_ids") {
        return Err(Fail::bad_request("malformed_body", format!("unknown property {k:?}: only message_ids is taken")));
    }
    let Some(list) = obj.get("message_ids") else { return Ok(None) };
    let list = list.as_array().filter(|l| !l.is_empty() && l.len() <= MAX_IDS).ok_or_else(shape)?;
    let mut ids = Vec::with_capacity(list.len());
    let mut seen = HashSet::new();
    for v in list {
        let id = v.as_str().filter(|s| !s.is_empty() && s.len() <= 255).ok_or_else(shape)?;
        if seen.insert(id) {
            ids.push(id.to_string());
        }
    }
    Ok(Some(ids))
}

pub(crate) async fn replay(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest) -> Answer {
    let stored = current(deps, raw).await?;
    let tenant = &stored.tenant;
    let asked = ids_of(req)?;
    let mine: Vec<String> = of_tenant(deps, tenant).await?.into_iter().map(|(id, _)| id).collect();
    let ids = match asked {
        None => mine,
        Some(ids) => {
            let known: HashSet<&str> = mine.iter().map(String::as_str).collect();
            let unknown: Vec<&str> = ids.iter().map(String::as_str).filter(|id| !known.contains(id)).collect();
            if !unknown.is_empty() {
                return Err(Fail::new(
                    404,
                    "unknown_message",
                    format!(
                        "the dead-letter queue holds no message {} of tenant {}; nothing was replayed",
                        unknown.join(", "),
                        tenant.as_str()
                    ),
                ));
            }
            ids
        }
    };
    let replayed = if ids.is_empty() { Vec::new() } else { deps.dlq.replay(&ids).await? };
    tracing::info!(tenant = %tenant, asked = ids.len(), replayed = replayed.len(), "dead-lettered messages replayed");
    Ok(json_response(200, &json!({"tenant": tenant, "replayed": replayed.len(), "message_ids": replayed})))
}
