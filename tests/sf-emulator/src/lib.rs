//! Salesforce emulator for learnlink's tests (SPEC §9.1).
//!
//! An in-memory org speaking Salesforce's wire format: OAuth refresh with Refresh
//! Token Rotation, `INVALID_SESSION_ID`, sObject Collections upsert by external id,
//! Composite, a SOQL subset with `nextRecordsUrl` paging, the `Sforce-Limit-Info`
//! header and the daily limit, plus test-only admin endpoints under `/__emulator`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! sf_emulator::serve(listener, sf_emulator::Config::default()).await
//! # }
//! ```

pub mod admin;
pub mod errors;
pub mod ids;
pub mod oauth;
pub mod rest;
pub mod schema;
pub mod soql;
pub mod state;
pub mod store;
pub mod tokens;
pub mod values;
pub mod write;

use axum::Router;
use axum::http::Method;
use axum::routing::{get, patch, post};

pub use state::{Config, FaultKind, SfState};

/// The emulator's HTTP routes.
pub fn router(state: SfState) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/revoke", post(oauth::revoke))
        .route("/services/data", get(rest::versions))
        .route("/services/data/", get(rest::versions))
        .route(
            "/services/data/{version}/composite/sobjects/{sobject}/{field}",
            patch(rest::collections::upsert_handler)
                .fallback(|m: Method| async move { rest::method_not_allowed(&m, "PATCH") }),
        )
        .route(
            "/services/data/{version}/composite",
            post(rest::composite::composite_handler)
                .fallback(|m: Method| async move { rest::method_not_allowed(&m, "POST") }),
        )
        .route(
            "/services/data/{version}/query",
            get(rest::query::query_handler)
                .fallback(|m: Method| async move { rest::method_not_allowed(&m, "GET, HEAD") }),
        )
        .route(
            "/services/data/{version}/queryAll",
            get(rest::query::query_all_handler)
                .fallback(|m: Method| async move { rest::method_not_allowed(&m, "GET, HEAD") }),
        )
        .route(
            "/services/data/{version}/query/{locator}",
            get(rest::query::query_more_handler)
                .fallback(|m: Method| async move { rest::method_not_allowed(&m, "GET, HEAD") }),
        )
        .nest("/__emulator", admin::router())
        .fallback(rest::not_found)
        .with_state(state)
}

/// Serves the emulator on `listener` until the future is dropped. When
/// `config.public_url` is unset, it becomes `http://<bound address>`.
pub async fn serve(listener: tokio::net::TcpListener, mut config: Config) -> std::io::Result<()> {
    if config.public_url.is_none() {
        let addr = listener.local_addr()?;
        config.public_url = Some(format!("http://{addr}"));
    }
    serve_state(listener, SfState::new(config)).await
}

/// Serves an existing state (lets a test keep a handle on it).
pub async fn serve_state(listener: tokio::net::TcpListener, state: SfState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
