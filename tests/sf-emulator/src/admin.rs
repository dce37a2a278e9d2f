//! Test-only endpoints under `/__emulator` (no authentication): mint connections,
//! expire sessions, revoke tokens, seed and dump records, inject faults, set
//! limits, read statistics, reset.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::oauth::token_response;
use crate::soql::{Cell, OrderedObject};
use crate::state::{FaultKind, SfState};
use crate::store::WriteCtx;
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
        .route("/stats", get(stats))
        .route("/faults", post(faults))
        .route("/limits", post(limits))
        .route("/reset", post(reset))
}

/// `POST /__emulator/connections`: a fresh token family for the integration user.
async fn connections(State(state): State<SfState>) -> Response {
    let set = state.org().tokens.connect(state.org15(), now_ms());
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
/// as creates, all or none). `attributes` is optional; `CreatedDate`,
/// `LastModifiedDate` and `SystemModstamp` may be set. Records are authored by the
/// admin user, not the integration user.
async fn insert_records(State(state): State<SfState>, Path(sobject): Path<String>, body: Bytes) -> Response {
    let records: Vec<Json> = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let schema = state.schema();
    let Some(object) = schema.object_index(&sobject) else {
        return admin_error(StatusCode::NOT_FOUND, format!("unknown sObject {sobject}"));
    };
    let user = state.identity().admin_user_id.clone();
    let opts = WriteOptions {
        all_or_none: true,
        lock_fault: false,
        admin: true,
        ctx: WriteCtx { user_id: &user, now_ms: now_ms() },
    };
    let results = {
        let mut org = state.org();
        write_records(schema, &mut org.store, object, Operation::Insert, &records, opts)
    };
    if results.iter().all(|r| r.success) {
        let ids: Vec<Json> = results.iter().map(|r| json!({ "id": r.id.clone().unwrap_or_default() })).collect();
        (StatusCode::CREATED, AxumJson(Json::Array(ids))).into_response()
    } else {
        (StatusCode::BAD_REQUEST, AxumJson(json!({ "error": "validation failed", "results": results }))).into_response()
    }
}

/// `GET /__emulator/records/{SObject}`: every record with every field, in creation
/// order.
async fn dump_records(State(state): State<SfState>, Path(sobject): Path<String>) -> Response {
    let schema = state.schema();
    let Some(object) = schema.object_index(&sobject) else {
        return admin_error(StatusCode::NOT_FOUND, format!("unknown sObject {sobject}"));
    };
    let Some(def) = schema.objects.get(object) else {
        return admin_error(StatusCode::NOT_FOUND, format!("unknown sObject {sobject}"));
    };
    let org = state.org();
    let rows: Vec<OrderedObject> = org
        .store
        .table(object)
        .map(|t| {
            t.records
                .iter()
                .map(|r| {
                    OrderedObject(
                        def.fields
                            .iter()
                            .enumerate()
                            .map(|(i, f)| (f.name.clone(), Cell::Plain(r.get(i).to_json())))
                            .collect(),
                    )
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
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

/// `POST /__emulator/faults {"kind": ..., "count": n}`: the next `n` API requests
/// fail (`unable_to_lock_row`: the next `n` write requests).
async fn faults(State(state): State<SfState>, body: Bytes) -> Response {
    let req: FaultRequest = match parse(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut org = state.org();
    for _ in 0..req.count.min(1_000_000) {
        org.faults.push_back(req.kind);
    }
    AxumJson(json!({ "pending": org.faults.len() })).into_response()
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

async fn reset(State(state): State<SfState>) -> Response {
    state.reset();
    AxumJson(json!({ "ok": true })).into_response()
}
