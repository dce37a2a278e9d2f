//! Test-only endpoints under `/__emulator` (no authentication). Every body is JSON.
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `POST /connections` | `{}` | a token response (new token family for the integration user) |
//! | `POST /sessions/expire` | `{}` | every access token invalid (refresh still works) |
//! | `POST /tokens/revoke` | `{}` | every token family revoked (password reset) |
//! | `POST /records/{SObject}[?lenient=true]` | `[{field: value, ...}]` | 201 `[{"id"}]`; all or none; `Id`, audit and system fields may be set |
//! | `GET /records/{SObject}[?deleted=true]` | | every (live, or also deleted) record with every field |
//! | `PATCH /records/{SObject}/{id}` | `{field: value}` | 200 `{"id"}`: admin update (any stored field) |
//! | `DELETE /records/{SObject}/{id}` | | 204: to the recycle bin |
//! | `GET /stats` | | counters (`api_calls`, `by_kind`, `by_endpoint`, `totals`, `records_written`, `faults_injected`, `faults_injected_by_kind`, ...) |
//! | `POST /faults` | `{"kind", "count"?, "scope"?, "latency_ms"?}` | `{"pending", "standing"}`: the next `count` (default 1) matching requests fail; kinds: server_error, server_unavailable, unable_to_lock_row, request_limit_exceeded, invalid_session, latency |
//! | `POST /faults` with `"rate"` | `{"kind", "rate", "seed"?, "count"?, "scope"?, "latency_ms"?}` | a standing fault: each matching request fails with probability `rate` (0 < rate ≤ 1; seeded splitmix64 draws, so a seed and a request sequence give the same hits) until cleared, or until `count` hits; `pending` is `null` while one has no end |
//! | `GET /faults`, `DELETE /faults` | | pending faults (rate faults with `rate`, `seen`, `hits`) / clear them |
//! | `POST /limits` | `{"daily_api_limit"?, "query_page_size"?, "api_used"?}` | the limits |
//! | `GET|POST /settings` | any of [`crate::state::Settings`] | the settings |
//! | `GET /automation`, `DELETE /automation` | | side effects of the automation stand-in / clear them |
//! | `GET /org` | | identity: org id, users, profiles, permission sets, metadata source |
//! | `POST /integration-user` | `{"profile"?, "modify_all_data"?}` | change the integration user's rights |
//! | `GET /bulk` | | Bulk API jobs (states and counts) |
//! | `POST /reset` | `{}` | a freshly seeded org |

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json as AxumJson, Router};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;

use crate::oauth::token_response;
use crate::seed;
use crate::state::{Fault, FaultKind, FaultRng, Settings, SfState};
use crate::store::WriteCtx;
use crate::tokens::LoginHost;
use crate::values::now_ms;
use crate::write::{Operation, WriteOptions, write_records};

fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, AxumJson(json!({ "error": message.into() }))).into_response()
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))
}

/// The admin router (mounted at `/__emulator`).
pub fn router() -> Router<SfState> {
    Router::new()
        .route("/connections", post(connections))
        .route("/sessions/expire", post(expire_sessions))
        .route("/tokens/revoke", post(revoke_tokens))
        .route("/records/{sobject}", post(insert_records).get(dump_records))
        .route("/records/{sobject}/{id}", patch(update_record).delete(delete_record))
        .route("/stats", get(stats))
        .route("/faults", post(faults).get(list_faults).delete(clear_faults))
        .route("/limits", post(limits))
        .route("/settings", post(set_settings).get(get_settings))
        .route("/clock", post(advance_clock).get(get_clock))
        .route("/automation", get(automation).delete(clear_automation))
        .route("/org", get(org_info))
        .route("/integration-user", post(integration_user))
        .route("/bulk", get(bulk_jobs))
        .route("/reset", post(reset))
}

/// `POST /__emulator/connections`: a fresh token family for the integration user.
async fn connections(State(state): State<SfState>) -> Response {
    let host = if state.config().sandbox { LoginHost::Sandbox } else { LoginHost::Production };
    let set = {
        let org15 = state.org15();
        let mut org = state.org();
        let user = org.identity.integration_user_id.clone();
        org.tokens.connect(&org15, &user, "refresh_token api", host, now_ms())
    };
    AxumJson(token_response(&state, &set)).into_response()
}

async fn expire_sessions(State(state): State<SfState>) -> Response {
    state.org().tokens.expire_sessions();
    AxumJson(json!({ "ok": true })).into_response()
}

async fn revoke_tokens(State(state): State<SfState>) -> Response {
    state.org().tokens.revoke_all();
    AxumJson(json!({ "ok": true })).into_response()
}

/// `POST /__emulator/records/{SObject}`: inserts an array of field maps (validated
/// as creates, all or none). `attributes` is optional; `Id`, audit and system fields
/// may be set; references are not checked for existence; `?lenient=true` skips the
/// required-field check. Records are authored by the admin user, not the
/// integration user, and do not fire the automation stand-in.
async fn insert_records(
    State(state): State<SfState>,
    Path(sobject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let records: Vec<Json> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let schema = state.schema();
    let Some(object) = schema.object_index(&sobject) else {
        return admin_error(StatusCode::NOT_FOUND, format!("unknown sObject {sobject}"));
    };
    let lenient = q.get("lenient").is_some_and(|v| v == "true" || v == "1");
    let results = {
        let mut org = state.org();
        let identity = org.identity.clone();
        let ctx = WriteCtx { user_id: &identity.admin_user_id, org_id: &identity.org_id, now_ms: now_ms() };
        let mut opts = WriteOptions::api(ctx, false);
        opts.all_or_none = true;
        opts.admin = true;
        opts.lenient = lenient;
        write_records(schema, &mut org.store, object, Operation::Insert, &records, opts)
    };
    if results.iter().all(|r| r.success) {
        let ids: Vec<Json> = results.iter().map(|r| json!({ "id": r.id.clone().unwrap_or_default() })).collect();
        (StatusCode::CREATED, AxumJson(Json::Array(ids))).into_response()
    } else {
        (StatusCode::BAD_REQUEST, AxumJson(json!({ "error": "validation failed", "results": results }))).into_response()
    }
}

/// `PATCH /__emulator/records/{SObject}/{id}`: admin update.
async fn update_record(
    State(state): State<SfState>,
    Path((sobject, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut map: Map<String, Json> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let schema = state.schema();
    let Some(object) = schema.object_index(&sobject) else {
        return admin_error(StatusCode::NOT_FOUND, format!("unknown sObject {sobject}"));
    };
    map.insert("Id".into(), Json::String(id));
    let results = {
        let mut org = state.org();
        let identity = org.identity.clone();
        let ctx = WriteCtx { user_id: &identity.admin_user_id, org_id: &identity.org_id, now_ms: now_ms() };
        let mut opts = WriteOptions::api(ctx, false);
        opts.admin = true;
        opts.lenient = true;
        write_records(schema, &mut org.store, object, Operation::Update, &[Json::Object(map)], opts)
    };
    match results.first() {
        Some(r) if r.success => AxumJson(json!({ "id": r.id })).into_response(),
        Some(r) => {
            (StatusCode::BAD_REQUEST, AxumJson(json!({ "error": "validation failed", "results": [r] }))).into_response()
        }
        None => admin_error(StatusCode::BAD_REQUEST, "nothing written"),
    }
}

async fn delete_record(State(state): State<SfState>, Path((_sobject, id)): Path<(String, String)>) -> Response {
    let mut org = state.org();
    let identity = org.identity.clone();
    let ctx = WriteCtx { user_id: &identity.admin_user_id, org_id: &identity.org_id, now_ms: now_ms() };
    let r = crate::write::delete_records(state.schema(), &mut org.store, &[id], false, false, true, ctx);
    match r.first() {
        Some(r) if r.success => StatusCode::NO_CONTENT.into_response(),
        Some(r) => {
            (StatusCode::BAD_REQUEST, AxumJson(json!({ "error": "not deleted", "results": [r] }))).into_response()
        }
        None => admin_error(StatusCode::BAD_REQUEST, "nothing deleted"),
    }
}

/// `GET /__emulator/records/{SObject}`: every record with every field, in creation
/// order (`?deleted=true`: recycle bin included, with `IsDeleted`).
async fn dump_records(
    State(state): State<SfState>,
    Path(sobject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let schema = state.schema();
    let (Some(object), Some(def)) = (schema.object_index(&sobject), schema.object(&sobject)) else {
        return admin_error(StatusCode::NOT_FOUND, format!("unknown sObject {sobject}"));
    };
    let deleted = q.get("deleted").is_some_and(|v| v == "true" || v == "1");
    let org = state.org();
    let rows: Vec<Json> = org
        .store
        .table(object)
        .map(|t| {
            t.records
                .iter()
                .filter(|r| deleted || !r.deleted)
                .map(|r| {
                    let m: Map<String, Json> =
                        def.fields.iter().enumerate().map(|(i, f)| (f.name.clone(), r.get(i).to_json())).collect();
                    Json::Object(m)
                })
                .collect()
        })
        .unwrap_or_default();
    AxumJson(rows).into_response()
}

async fn stats(State(state): State<SfState>) -> Response {
    let org = state.org();
    AxumJson(org.stats.clone()).into_response()
}

#[derive(Deserialize)]
struct FaultRequest {
    kind: FaultKind,
    /// Hits (default 1; with a `rate`: until cleared).
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    latency_ms: u64,
    /// Probability (0 < rate <= 1) that each matching request is hit.
    #[serde(default)]
    rate: Option<f64>,
    /// Seed of the rate's draws (default: a fixed one).
    #[serde(default)]
    seed: Option<u64>,
}

/// The draws of a rate fault without a seed.
const DEFAULT_FAULT_SEED: u64 = 0x5EED_FA17_0000_0001;

const SCOPES: [&str; 6] = ["query", "collections", "composite", "bulk", "rest", "auth"];

/// `POST /__emulator/faults {"kind", "count", "scope", "latency_ms", "rate", "seed"}`:
/// the next `count` API requests (of kind `scope`, if given) fail, or are
/// delayed (`latency`); `unable_to_lock_row` applies to write requests only.
/// With a `rate`, the fault stands: each matching request is hit with that
/// probability (seeded draws), until cleared or `count` hits are used up.
/// Answers the hits still pending (`null` when a standing fault has no end)
/// and the number of standing faults.
async fn faults(State(state): State<SfState>, body: Bytes) -> Response {
    let req: FaultRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Some(s) = &req.scope {
        if !SCOPES.contains(&s.as_str()) {
            return admin_error(StatusCode::BAD_REQUEST, format!("unknown scope {s}; one of {SCOPES:?}"));
        }
    }
    if let Some(r) = req.rate {
        if !(r > 0.0 && r <= 1.0) {
            return admin_error(StatusCode::BAD_REQUEST, "rate must be greater than 0 and at most 1");
        }
    }
    let remaining = match (req.rate, req.count) {
        (None, c) => Some(c.unwrap_or(1)),
        (Some(_), c) => c,
    };
    let mut org = state.org();
    if remaining != Some(0) {
        org.faults.push_back(Fault {
            kind: req.kind,
            scope: req.scope,
            remaining,
            latency_ms: req.latency_ms,
            rate: req.rate,
            seen: req.rate.map(|_| 0),
            hits: 0,
            rng: FaultRng::new(req.seed.unwrap_or(DEFAULT_FAULT_SEED)),
        });
    }
    AxumJson(pending(&org.faults)).into_response()
}

/// `{"pending": hits left (null: a standing fault without end), "standing": rate faults}`.
fn pending(faults: &std::collections::VecDeque<Fault>) -> Json {
    let endless = faults.iter().any(|f| f.remaining.is_none());
    let left: usize = faults.iter().filter_map(|f| f.remaining).sum();
    let standing = faults.iter().filter(|f| f.rate.is_some()).count();
    json!({ "pending": if endless { Json::Null } else { json!(left) }, "standing": standing })
}

async fn list_faults(State(state): State<SfState>) -> Response {
    let org = state.org();
    let list: Vec<&Fault> = org.faults.iter().collect();
    AxumJson(json!({ "faults": list })).into_response()
}

async fn clear_faults(State(state): State<SfState>) -> Response {
    state.org().faults.clear();
    AxumJson(json!({ "pending": 0, "standing": 0 })).into_response()
}

#[derive(Deserialize)]
struct LimitsRequest {
    daily_api_limit: Option<u64>,
    query_page_size: Option<usize>,
    /// Sets the API calls already used today.
    api_used: Option<u64>,
}

async fn limits(State(state): State<SfState>, body: Bytes) -> Response {
    let req: LimitsRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut org = state.org();
    if let Some(l) = req.daily_api_limit {
        org.daily_api_limit = l;
    }
    if let Some(p) = req.query_page_size {
        org.query_page_size = p.clamp(1, 2000);
    }
    if let Some(u) = req.api_used {
        let _ = org.api_used_today();
        org.api_used = u;
    }
    let used = org.api_used_today();
    AxumJson(json!({
        "daily_api_limit": org.daily_api_limit,
        "query_page_size": org.query_page_size,
        "api_used": used,
    }))
    .into_response()
}

/// `POST /__emulator/settings`: merges the given settings (see [`Settings`]).
async fn set_settings(State(state): State<SfState>, body: Bytes) -> Response {
    let patch: Map<String, Json> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut org = state.org();
    let mut current = match serde_json::to_value(&org.settings) {
        Ok(Json::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in patch {
        if !current.contains_key(&k) {
            return admin_error(StatusCode::BAD_REQUEST, format!("unknown setting {k}"));
        }
        current.insert(k, v);
    }
    match serde_json::from_value::<Settings>(Json::Object(current)) {
        Ok(s) => {
            org.settings = s;
            AxumJson(&org.settings).into_response()
        }
        Err(e) => admin_error(StatusCode::BAD_REQUEST, format!("invalid settings: {e}")),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    /// Move the clock forward by this much (token idle TTLs, session
    /// timeouts and the daily API counter all follow it).
    advance_ms: i64,
}

async fn advance_clock(AxumJson(body): AxumJson<Advance>) -> Response {
    if body.advance_ms < 0 {
        return admin_error(StatusCode::BAD_REQUEST, "the clock only moves forward");
    }
    let offset = crate::values::advance_clock_ms(body.advance_ms);
    AxumJson(serde_json::json!({"offset_ms": offset, "now_ms": crate::values::now_ms()})).into_response()
}

async fn get_clock() -> Response {
    AxumJson(serde_json::json!({"offset_ms": crate::values::clock_offset_ms(), "now_ms": crate::values::now_ms()}))
        .into_response()
}

async fn get_settings(State(state): State<SfState>) -> Response {
    let org = state.org();
    AxumJson(&org.settings).into_response()
}

async fn automation(State(state): State<SfState>) -> Response {
    let org = state.org();
    let bypassed = crate::automation::bypassed(
        state.schema(),
        &org.store,
        &org.identity.integration_user_id,
        &org.identity.org_id,
    );
    AxumJson(json!({
        "enabled": org.settings.automation,
        "bypassed_for_integration_user": bypassed,
        "count": org.store.effects.len(),
        "effects": org.store.effects,
    }))
    .into_response()
}

async fn clear_automation(State(state): State<SfState>) -> Response {
    state.org().store.effects.clear();
    AxumJson(json!({ "count": 0 })).into_response()
}

async fn org_info(State(state): State<SfState>) -> Response {
    let org = state.org();
    AxumJson(json!({
        "identity": org.identity,
        "instance_url": state.base_url(),
        "login_url": crate::oauth::login_base(&state, if org.identity.sandbox { LoginHost::Sandbox } else { LoginHost::Production }),
        "metadata_source": state.schema().metadata_source,
        "objects": state.schema().objects.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
        "live_token_families": org.tokens.live_families(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct RightsRequest {
    profile: Option<String>,
    modify_all_data: Option<bool>,
}

/// `POST /__emulator/integration-user {"profile": "System Administrator", "modify_all_data": true}`.
async fn integration_user(State(state): State<SfState>, body: Bytes) -> Response {
    let req: RightsRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut org = state.org();
    let identity = org.identity.clone();
    match seed::set_integration_rights(
        state.schema(),
        &mut org.store,
        &identity,
        req.profile.as_deref(),
        req.modify_all_data,
    ) {
        Ok(()) => AxumJson(json!({ "ok": true })).into_response(),
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn bulk_jobs(State(state): State<SfState>) -> Response {
    let org = state.org();
    let jobs: Vec<Json> = org
        .bulk
        .list
        .iter()
        .map(|j| {
            json!({
                "id": j.id,
                "kind": if j.kind == crate::bulk::JobKind::Ingest { "ingest" } else { "query" },
                "object": j.object,
                "operation": j.operation,
                "state": j.state.name(),
                "numberRecordsProcessed": j.processed,
                "numberRecordsFailed": j.failed,
                "errorMessage": j.error_message,
            })
        })
        .collect();
    AxumJson(json!({ "jobs": jobs })).into_response()
}

async fn reset(State(state): State<SfState>) -> Response {
    state.reset();
    AxumJson(json!({ "ok": true })).into_response()
}
