//! HRIS emulator for learnlink's tests (SPEC §5.1): a Merge-style unified HRIS
//! API with API-key + account-token auth, employees in cursor pages ordered by
//! `(modified_at, id)` that never skip nor repeat while records change, groups,
//! a deterministic generated data set, and injected faults.
//!
//! API (`Authorization: Bearer <key>` and `X-Account-Token: <token>`):
//! - `GET /api/hris/v1/employees?modified_after=&cursor=&page_size=`
//! - `GET /api/hris/v1/employees/{id}`
//! - `GET /api/hris/v1/groups?cursor=&page_size=`
//!
//! Admin (no auth): `POST /__emulator/employees` (upsert an array),
//! `PATCH|DELETE /__emulator/employees/{id}`, `POST /__emulator/groups`,
//! `POST /__emulator/dataset`, `GET /__emulator/stats`, `POST /__emulator/reset`,
//! `GET|POST /__emulator/faults`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! hris_emulator::serve(listener, hris_emulator::Config::default()).await
//! # }
//! ```

pub mod api;
pub mod data;
/// The generator of the data sets: the LMS emulator's.
pub use lms_emulator::prng;
pub mod state;
pub mod store;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

pub use data::DatasetParams;
pub use state::{Config, Faults, HrisState};
pub use store::{Employee, EmploymentStatus, Group};

/// The emulator's HTTP routes.
pub fn router(state: HrisState) -> Router {
    Router::new()
        .route("/api/hris/v1/employees", get(api::employees))
        .route("/api/hris/v1/employees/{id}", get(api::employee))
        .route("/api/hris/v1/groups", get(api::groups))
        .route("/api/{*rest}", get(api::not_found).post(api::not_found))
        .route("/__emulator/employees", post(upsert_employees))
        .route("/__emulator/employees/{id}", patch(patch_employee).delete(delete_employee))
        .route("/__emulator/groups", post(upsert_groups))
        .route("/__emulator/dataset", post(dataset))
        .route("/__emulator/stats", get(stats))
        .route("/__emulator/reset", post(reset))
        .route("/__emulator/faults", get(get_faults).post(set_faults))
        .with_state(state)
}

/// Serves the emulator on `listener`.
pub async fn serve(listener: tokio::net::TcpListener, config: Config) -> std::io::Result<()> {
    serve_state(listener, HrisState::new(config)).await
}

/// Serves an existing state.
pub async fn serve_state(listener: tokio::net::TcpListener, state: HrisState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": { "code": "invalid_request", "message": message.into() } }))).into_response()
}

/// A JSON array of objects (or one object).
fn objects(body: &[u8]) -> Result<Vec<Map<String, Value>>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(m) => Ok(m),
                _ => Err(admin_error(StatusCode::BAD_REQUEST, format!("item {i} is not a JSON object"))),
            })
            .collect(),
        Ok(Value::Object(m)) => Ok(vec![m]),
        Ok(_) => Err(admin_error(StatusCode::BAD_REQUEST, "the body must be a JSON array of objects")),
        Err(e) => Err(admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {e}"))),
    }
}

/// `POST /__emulator/employees`: upserts (replaces by id) each employee; a
/// missing `id` is generated, a missing `modified_at` stamped with the clock
/// (after every other). Answers `{"upserted": n, "employees": [...]}`.
async fn upsert_employees(State(state): State<HrisState>, body: Bytes) -> Response {
    let items = match objects(&body) {
        Ok(items) => items,
        Err(r) => return r,
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut store = state.store_mut();
    for (i, mut m) in items.into_iter().enumerate() {
        if !m.contains_key("id") {
            m.insert("id".to_owned(), Value::String(store.mint_id()));
        }
        let explicit = m.contains_key("modified_at");
        if !explicit {
            m.insert("modified_at".to_owned(), Value::String(store::rfc3339_ms(0)));
        }
        let e: Employee = match serde_json::from_value(Value::Object(m)) {
            Ok(e) => e,
            Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("item {i}: invalid employee: {e}")),
        };
        if let Err(e) = e.validate() {
            return admin_error(StatusCode::BAD_REQUEST, format!("item {i}: {e}"));
        }
        parsed.push((e, explicit));
    }
    let now = state.now_ms();
    let out: Vec<Employee> = parsed.into_iter().map(|(e, explicit)| store.put_employee(e, explicit, now)).collect();
    drop(store);
    Json(json!({ "upserted": out.len(), "employees": out })).into_response()
}

/// `PATCH /__emulator/employees/{id}`: merges the body's fields, restamps
/// `modified_at` (unless given).
async fn patch_employee(State(state): State<HrisState>, Path(id): Path<String>, body: Bytes) -> Response {
    let patch = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return admin_error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    let now = state.now_ms();
    let mut store = state.store_mut();
    change_answer(store.patch_employee(&id, &patch, now))
}

/// `DELETE /__emulator/employees/{id}`: `remote_was_deleted: true`, restamped.
async fn delete_employee(State(state): State<HrisState>, Path(id): Path<String>) -> Response {
    let now = state.now_ms();
    let mut store = state.store_mut();
    change_answer(store.delete_employee(&id, now))
}

fn change_answer(r: Result<Employee, store::ChangeError>) -> Response {
    match r {
        Ok(e) => Json(e).into_response(),
        Err(store::ChangeError::NotFound) => admin_error(StatusCode::NOT_FOUND, "no such employee"),
        Err(store::ChangeError::Invalid(m)) => admin_error(StatusCode::BAD_REQUEST, m),
    }
}

/// `POST /__emulator/groups`: upserts each group; a missing `id` is generated.
async fn upsert_groups(State(state): State<HrisState>, body: Bytes) -> Response {
    let items = match objects(&body) {
        Ok(items) => items,
        Err(r) => return r,
    };
    let mut store = state.store_mut();
    let mut parsed = Vec::with_capacity(items.len());
    for (i, mut m) in items.into_iter().enumerate() {
        if !m.contains_key("id") {
            m.insert("id".to_owned(), Value::String(store.mint_id()));
        }
        match serde_json::from_value::<Group>(Value::Object(m)) {
            Ok(g) if !g.id.is_empty() => parsed.push(g),
            Ok(_) => return admin_error(StatusCode::BAD_REQUEST, format!("item {i}: id must be a non-empty string")),
            Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("item {i}: invalid group: {e}")),
        }
    }
    let out: Vec<Group> = parsed.into_iter().map(|g| store.put_group(g)).collect();
    drop(store);
    Json(json!({ "upserted": out.len(), "groups": out })).into_response()
}

/// `POST /__emulator/dataset {"employees": N, "groups": G, "seed": S}`:
/// replaces every employee and group with the generated data set.
async fn dataset(State(state): State<HrisState>, body: Bytes) -> Response {
    let params: DatasetParams = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    if let Err(e) = params.validate() {
        return admin_error(StatusCode::BAD_REQUEST, e.0);
    }
    match tokio::task::spawn_blocking(move || data::generate(params)).await {
        Ok(generated) => {
            let summary = json!({
                "seed": params.seed,
                "employees": generated.employee_count(),
                "groups": generated.group_count(),
                "max_modified_at": generated.max_modified_at().map(store::rfc3339_ms),
            });
            state.set_store(generated);
            Json(summary).into_response()
        }
        Err(e) => admin_error(StatusCode::INTERNAL_SERVER_ERROR, format!("generation failed: {e}")),
    }
}

/// `GET /__emulator/stats`: the counters, the pending faults, the sizes.
async fn stats(State(state): State<HrisState>) -> Response {
    let mut v = serde_json::to_value(state.stats().clone()).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        let store = state.store();
        obj.insert("employees".to_owned(), json!(store.employee_count()));
        obj.insert("groups".to_owned(), json!(store.group_count()));
        obj.insert("faults".to_owned(), json!(state.pending_faults()));
    }
    Json(v).into_response()
}

/// `POST /__emulator/reset`: the configured data set again, counters zeroed,
/// no pending faults.
async fn reset(State(state): State<HrisState>) -> Response {
    let params = state.config().dataset;
    let generated = if params.validate().is_ok() {
        tokio::task::spawn_blocking(move || data::generate(params)).await.unwrap_or_default()
    } else {
        store::Store::default()
    };
    state.set_store(generated);
    *state.stats() = state::Stats::default();
    state.set_faults(None);
    Json(json!({ "ok": true })).into_response()
}

/// `POST /__emulator/faults {"status": 429, "count": N}` (or `null`): the next
/// N `/api/**` requests are answered `status` (429 with `Retry-After: 1`).
async fn set_faults(State(state): State<HrisState>, body: Bytes) -> Response {
    let faults: Option<Faults> = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    if faults.is_some_and(|f| !(400..=599).contains(&f.status)) {
        return admin_error(StatusCode::BAD_REQUEST, "status must be between 400 and 599");
    }
    state.set_faults(faults);
    Json(json!({ "faults": state.pending_faults() })).into_response()
}

/// `GET /__emulator/faults`.
async fn get_faults(State(state): State<HrisState>) -> Response {
    Json(json!({ "faults": state.pending_faults() })).into_response()
}
