//! LMS emulator for learnlink's tests (SPEC §9.2): the canonical LMS REST API
//! with API-key auth, an optional rate limit (429 + `Retry-After`) and cursor
//! paging over a deterministic generated data set, learner reads by id and
//! learner mutations, batched imports (upsert, deactivate, lookup) with
//! groups, enrollments that change over time (every version kept), and
//! emission of signed webhooks to a target URL.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! lms_emulator::serve(listener, lms_emulator::Config::default()).await
//! # }
//! ```

pub mod api;
pub mod data;
pub mod enrollments;
pub mod groups;
pub mod learners;
pub mod prng;
pub mod state;
pub mod webhooks;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

pub use data::DatasetParams;
pub use state::{Config, LmsState, RateLimit};

/// Largest `POST /api/v1/learners/upsert` body (1000 learners with fields).
pub const UPSERT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The emulator's HTTP routes.
pub fn router(state: LmsState) -> Router {
    Router::new()
        .route("/api/v1/learners", get(api::learners).post(learners::create))
        .route("/api/v1/learners/{id}", get(learners::get_one).patch(learners::update))
        .route("/api/v1/learners/{id}/deactivate", post(learners::deactivate))
        .route("/api/v1/learners/upsert", post(learners::upsert).layer(DefaultBodyLimit::max(UPSERT_BODY_LIMIT)))
        .route("/api/v1/learners/deactivate", post(learners::deactivate_many))
        .route("/api/v1/learners/lookup", post(learners::lookup))
        .route("/api/v1/groups", get(groups::list).post(groups::create))
        .route("/api/v1/groups/{id}/members", get(groups::members))
        .route("/api/v1/groups/{id}/members/{learner_id}", put(groups::add_member).delete(groups::remove_member))
        .route("/api/v1/enrollments", get(api::enrollments))
        .route("/api/v1/enrollments/count", get(api::enrollments_count))
        .route("/api/v1/departments", get(api::departments))
        .route("/api/v1/courses", get(api::courses))
        .route("/api/{*rest}", get(api::not_found).post(api::not_found))
        .route("/__emulator/dataset", post(dataset))
        .route("/__emulator/webhooks/emit", post(emit))
        .route("/__emulator/enrollments/advance", post(advance))
        .route("/__emulator/reset", post(reset))
        .route("/__emulator/stats", get(stats))
        .route("/__emulator/welcome-emails", get(learners::welcome_emails))
        .route("/__emulator/rate-limit", get(get_rate_limit).post(set_rate_limit))
        .with_state(state)
}

/// Serves the emulator on `listener`.
pub async fn serve(listener: tokio::net::TcpListener, config: Config) -> std::io::Result<()> {
    serve_state(listener, LmsState::new(config)).await
}

/// Serves an existing state.
pub async fn serve_state(listener: tokio::net::TcpListener, state: LmsState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": { "code": "invalid_request", "message": message.into() } }))).into_response()
}

/// `POST /__emulator/dataset`: regenerates the data set from the parameters.
async fn dataset(State(state): State<LmsState>, body: Bytes) -> Response {
    let params: DatasetParams = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    if let Err(e) = params.validate() {
        return admin_error(StatusCode::BAD_REQUEST, e.0);
    }
    let generated = tokio::task::spawn_blocking(move || data::generate(params)).await;
    match generated {
        Ok(d) => {
            let summary = json!({
                "seed": params.seed,
                "learners": d.learners.len(),
                "departments": d.departments.len(),
                "courses": d.courses.len(),
                "enrollments": d.enrollments.len(),
            });
            state.set_data(d);
            Json(summary).into_response()
        }
        Err(e) => admin_error(StatusCode::INTERNAL_SERVER_ERROR, format!("generation failed: {e}")),
    }
}

/// `POST /__emulator/webhooks/emit`.
async fn emit(State(state): State<LmsState>, body: Bytes) -> Response {
    let req: webhooks::EmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    match webhooks::emit(&state, req).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}

/// `POST /__emulator/enrollments/advance` (see [`enrollments`]): moves the
/// chosen enrollments forward, every version kept.
async fn advance(State(state): State<LmsState>, body: Bytes) -> Response {
    let req: enrollments::AdvanceRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    let data = state.data();
    match data.advance_selection(&req) {
        Ok(chosen) => {
            let done = data.advance_enrollments(&chosen, req.steps, state.now_ms());
            state.stats().enrollment_versions += done.versions;
            Json(done).into_response()
        }
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}

/// `POST /__emulator/reset`: the configured data set again (learner changes
/// gone), counters zeroed, no rate limit.
async fn reset(State(state): State<LmsState>) -> Response {
    let params = state.config().dataset;
    let d = if params.validate().is_ok() {
        tokio::task::spawn_blocking(move || data::generate(params)).await.unwrap_or_default()
    } else {
        data::Dataset::default()
    };
    state.set_data(d);
    *state.stats() = state::Stats::default();
    state.set_rate_limit(None);
    Json(json!({ "ok": true })).into_response()
}

async fn stats(State(state): State<LmsState>) -> Response {
    let s = state.stats().clone();
    Json(s).into_response()
}

/// `POST /__emulator/rate-limit` with `{"requests": N, "window_ms": M}` (at
/// most N authorized `/api/**` requests per M ms) or `null` (no limit).
async fn set_rate_limit(State(state): State<LmsState>, body: Bytes) -> Response {
    let limit: Option<RateLimit> = match serde_json::from_slice(&body) {
        Ok(l) => l,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("invalid body: {e}")),
    };
    if limit.is_some_and(|l| l.window_ms == 0) {
        return admin_error(StatusCode::BAD_REQUEST, "window_ms must be at least 1");
    }
    state.set_rate_limit(limit);
    Json(json!({ "rate_limit": limit })).into_response()
}

/// `GET /__emulator/rate-limit`.
async fn get_rate_limit(State(state): State<LmsState>) -> Response {
    Json(json!({ "rate_limit": state.rate_limit() })).into_response()
}
