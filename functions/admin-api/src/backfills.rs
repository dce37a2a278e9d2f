//! `/admin/tenants/{tenant}/backfills` (SPEC §6.5): the tenant's backfills
//! with their progress, one backfill (with its shards on request), and
//! cancel. Starting one (`POST …/backfills`) is the backfill-fanout
//! function's route: it plans the shards.

use crate::{Answer, Deps, Fail, current, int_param, param};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use learnlink_adapters::lambda::json_response;
use learnlink_core::backfill::engine::{self, ControlError};
use learnlink_core::backfill::{progress, valid_id};
use serde_json::json;
use time::OffsetDateTime;

/// Backfills listed when `limit` is not given.
const DEFAULT_LIMIT: u64 = 20;
/// The most a list holds.
const MAX_LIMIT: u64 = 100;

/// The id as a message shows it (a long one shortened).
fn shown(id: &str) -> String {
    let mut s: String = id.chars().take(80).collect();
    if s.len() < id.len() {
        s.push('…');
    }
    format!("{s:?}")
}

/// 400 unless `id` can be a backfill id.
fn checked_id(id: &str) -> Result<&str, Fail> {
    if valid_id(id) {
        Ok(id)
    } else {
        Err(Fail::bad_request(
            "invalid_backfill_id",
            format!(
                "{} is not a backfill id (1 to 64 letters, digits, dashes and underscores, as in bf-20261123T100000-3f9a1c2e)",
                shown(id)
            ),
        ))
    }
}

fn control_fail(e: ControlError) -> Fail {
    match e {
        ControlError::NotFound(_) => Fail::new(404, "backfill_not_found", e.to_string()),
        ControlError::AlreadyFinal { .. } => Fail::new(409, "backfill_finished", e.to_string()),
        ControlError::Contended(_) => Fail::new(409, "backfill_contended", e.to_string()),
        ControlError::Port(e) => e.into(),
    }
}

/// `GET /admin/tenants/{t}/backfills?limit=N` (1..=100, default 20): newest
/// first, each with its progress.
pub(crate) async fn list(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> Answer {
    let stored = current(deps, raw).await?;
    let limit = int_param(req, "limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT) as usize;
    let backfills = deps.backfills.list_backfills(&stored.tenant, limit).await?;
    let mut out = Vec::with_capacity(backfills.len());
    for b in backfills.into_iter().take(limit) {
        let shards = deps.backfills.shards(&stored.tenant, &b.id).await?;
        let p = progress(&b, &shards, now);
        out.push(json!({ "backfill": b, "progress": p }));
    }
    Ok(json_response(200, &json!({ "backfills": out })))
}

/// `GET /admin/tenants/{t}/backfills/{id}?shards=true`: the backfill, its
/// progress and (on request) every shard.
pub(crate) async fn get(
    deps: &Deps,
    raw: &str,
    id: &str,
    req: &ApiGatewayV2httpRequest,
    now: OffsetDateTime,
) -> Answer {
    let stored = current(deps, raw).await?;
    let id = checked_id(id)?;
    let with_shards = match param(req, "shards") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(Fail::bad_request("invalid_parameter", "shards must be true or false")),
    };
    let view =
        engine::view(deps.backfills.as_ref(), &stored.tenant, id, with_shards, now).await.map_err(control_fail)?;
    Ok(json_response(200, &json!(view)))
}

/// `POST /admin/tenants/{t}/backfills/{id}/cancel`: the backfill becomes
/// `cancelled` (workers stop at their next page; what was written stays).
/// A kill switch still engaged is restored by the scheduler's next sweep.
pub(crate) async fn cancel(deps: &Deps, raw: &str, id: &str, now: OffsetDateTime) -> Answer {
    let stored = current(deps, raw).await?;
    let id = checked_id(id)?;
    let b = engine::cancel(deps.backfills.as_ref(), &stored.tenant, id, now).await.map_err(control_fail)?;
    tracing::info!(tenant = %stored.tenant, backfill = %b.id, "backfill cancelled by an admin");
    let shards = deps.backfills.shards(&stored.tenant, &b.id).await?;
    let p = progress(&b, &shards, now);
    Ok(json_response(200, &json!({ "backfill": b, "progress": p })))
}
