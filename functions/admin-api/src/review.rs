//! `/admin/tenants/{tenant}/review` (the learners whose Contact is ambiguous,
//! SPEC §4.3) and `…/review/{learner}/resolve` (an admin's choice).
//!
//! Resolving stores the choice as a `Chosen` link first (the worker links the
//! Contact on the learner's next record), then sends every held job back to
//! the sync queue, releases what was sent, and removes the item once nothing
//! is held for it.

use crate::{Answer, Deps, Fail, current, int_param, json_body, param};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine as _;
use learnlink_adapters::lambda::json_response;
use learnlink_core::ErrorClass;
use learnlink_core::job::{SyncJob, decode};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{LearnerLink, LinkState};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Held jobs sent back per round.
const HELD_PAGE: usize = 100;
/// Rounds of sending held jobs back (10,000 pages: far beyond any learner's records).
const MAX_ROUNDS: usize = 10_000;
/// Attempts at removing the item when the worker holds one more job meanwhile.
const REMOVE_ATTEMPTS: usize = 3;
const CURSOR_PREFIX: &str = "review:";

fn encode_cursor(learner: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{learner}"))
}

fn decode_cursor(cursor: &str) -> Result<String, Fail> {
    let bad = || Fail::bad_request("invalid_cursor", "the cursor is not one this API issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(CURSOR_PREFIX).filter(|l| !l.is_empty()).map(str::to_string).ok_or_else(bad)
}

/// A path segment as the learner id it encodes.
pub(crate) fn path_segment(raw: &str) -> Option<String> {
    let s = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
    (!s.is_empty() && s.len() <= 255).then(|| s.into_owned())
}

pub(crate) async fn list(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest) -> Answer {
    let stored = current(deps, raw).await?;
    let limit = int_param(req, "limit", 1, 1000)?.unwrap_or(100) as usize;
    let after = param(req, "cursor").map(decode_cursor).transpose()?;
    let (items, next) = deps.review.review_items(&stored.tenant, after.as_deref(), limit).await?;
    Ok(json_response(
        200,
        &json!({"tenant": stored.tenant, "items": items, "next_cursor": next.as_deref().map(encode_cursor)}),
    ))
}

/// `{"contact_id": "003…"}`, or 400 naming the problem.
fn contact_of(body: &Value) -> Result<String, Fail> {
    let shape =
        || Fail::bad_request("malformed_body", "the body must be {\"contact_id\": \"<Salesforce Contact id>\"}");
    let obj = body.as_object().ok_or_else(shape)?;
    if let Some(k) = obj.keys().find(|k| *k != "contact_id") {
        return Err(Fail::bad_request("malformed_body", format!("unknown property {k:?}: only contact_id is taken")));
    }
    match obj.get("contact_id").and_then(Value::as_str) {
        Some(c) if !c.trim().is_empty() && c.len() <= 255 => Ok(c.trim().to_string()),
        _ => Err(shape()),
    }
}

pub(crate) async fn resolve(
    deps: &Deps,
    raw: &str,
    raw_learner: &str,
    req: &ApiGatewayV2httpRequest,
    now: OffsetDateTime,
) -> Answer {
    let stored = current(deps, raw).await?;
    let tenant = &stored.tenant;
    let contact = contact_of(&json_body(req)?)?;
    let unknown = |l: &str| {
        Fail::new(404, "unknown_learner", format!("learner {l:?} is not in the review queue of {}", tenant.as_str()))
    };
    let learner = path_segment(raw_learner).ok_or_else(|| unknown(raw_learner))?;
    let item = deps.review.review_item(tenant, &learner).await?.ok_or_else(|| unknown(&learner))?;
    if !item.candidates.contains(&contact) {
        return Err(Fail::new(
            422,
            "not_a_candidate",
            format!(
                "Contact {contact} is not a candidate for learner {learner:?}; the candidates are {}",
                item.candidates.join(", ")
            ),
        ));
    }
    // The choice first: the jobs sent back find it.
    let link = LearnerLink {
        learner_id: learner.clone(),
        contact_id: contact.clone(),
        account_id: None,
        state: LinkState::Chosen,
        at: now,
    };
    deps.links.put_links(tenant, &[link]).await?;
    let mut released = 0u64;
    for attempt in 1..=REMOVE_ATTEMPTS {
        released += send_back(deps, tenant, &learner).await?;
        match deps.review.remove_item(tenant, &learner).await {
            Ok(()) => break,
            // The worker held one more job meanwhile: send that back too.
            Err(e) if e.class == ErrorClass::Retryable && attempt < REMOVE_ATTEMPTS => continue,
            Err(e) if e.class == ErrorClass::Retryable => {
                let left = deps.review.review_item(tenant, &learner).await?.map_or(0, |i| i.held);
                tracing::error!(tenant = %tenant, learner = %learner, left, "held records could not all be sent back");
                return Err(Fail::new(
                    409,
                    "still_held",
                    format!(
                        "Contact {contact} is chosen for learner {learner:?} and {released} record(s) were sent back, \
                         but {left} held record(s) could not be read by this version and stay held"
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(tenant = %tenant, learner = %learner, contact = %contact, released, "review item resolved");
    Ok(json_response(
        200,
        &json!({"tenant": tenant, "learner_id": learner, "contact_id": contact, "released": released}),
    ))
}

/// Send the learner's held jobs back to the sync queue and release what was
/// sent; the count released. Jobs this version cannot read stay held.
async fn send_back(deps: &Deps, tenant: &TenantId, learner: &str) -> Result<u64, Fail> {
    let mut released = 0u64;
    for _ in 0..MAX_ROUNDS {
        let (held, more) = deps.review.held(tenant, learner, HELD_PAGE).await?;
        let mut keys = Vec::new();
        let mut jobs: Vec<SyncJob> = Vec::new();
        for (key, body) in held {
            match decode(&body) {
                Ok(job) if job.tenant() == tenant => {
                    keys.push(key);
                    jobs.push(job);
                }
                Ok(_) => tracing::error!(tenant = %tenant, key = %key, "a held job belongs to another tenant: kept"),
                Err(e) => tracing::error!(tenant = %tenant, key = %key, error = %e, "a held job is unreadable: kept"),
            }
        }
        if jobs.is_empty() {
            break; // nothing (readable) is held
        }
        let results = deps.sync_queue.send(&jobs).await;
        let sent: Vec<String> = keys.into_iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(k, _)| k).collect();
        deps.review.release(tenant, learner, &sent).await?;
        released += sent.len() as u64;
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            tracing::error!(tenant = %tenant, learner = %learner, error = %e.chain(), "sending held jobs back failed");
            return Err(Fail::new(
                503,
                "unavailable",
                format!(
                    "{released} held record(s) were sent back, the others stay held: resolve again in a moment \
                     (the choice is stored)"
                ),
            ));
        }
        if !more {
            break;
        }
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor("L 1/ü")).ok(), Some("L 1/ü".to_string()));
        for bad in ["zz", "!!", &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("other:L1")] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
        assert_eq!(path_segment("L%201%2Fx").as_deref(), Some("L 1/x"));
        assert_eq!(path_segment("%FF"), None);
    }
}
