#![recursion_limit = "256"]
//! Salesforce emulator for learnlink's tests (SPEC §9.1).
//!
//! An in-memory org speaking Salesforce's wire format: OAuth (web-server flow with
//! PKCE, Refresh Token Rotation, userinfo, revoke; production and sandbox login
//! hosts), the REST API (versions, resources, describe, record CRUD and upsert by
//! external id, sObject Collections, Composite, Composite Graph, Composite Batch,
//! SOQL query / queryAll with `nextRecordsUrl` paging, limits), Bulk API 2.0 ingest
//! and query jobs, validation from the schema, an automation stand-in, the
//! `Sforce-Limit-Info` header and the daily limit, plus test-only admin endpoints
//! under `/__emulator` ([`admin`]).
//!
//! The schema of learnlink's objects is loaded from the SFDX package in
//! `infra/salesforce/` ([`metadata`]); standard objects are built in ([`standard`]).
//! Behaviour that is a guess rather than documented Salesforce behaviour is listed in
//! [`guesses`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! sf_emulator::serve(listener, sf_emulator::Config::default()).await
//! # }
//! ```

pub mod admin;
pub mod automation;
pub mod bulk;
pub mod errors;
pub mod guesses;
pub mod ids;
pub mod metadata;
pub mod oauth;
pub mod rest;
pub mod schema;
pub mod seed;
pub mod soql;
pub mod standard;
pub mod state;
pub mod store;
pub mod tokens;
pub mod values;
pub mod write;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};

pub use state::{Config, FaultKind, Settings, SfState};

/// Largest request body accepted (Bulk uploads: 150 MB, plus headroom).
pub const MAX_BODY_BYTES: usize = 160 * 1024 * 1024;

fn oauth_routes() -> Router<SfState> {
    Router::new()
        .route("/services/oauth2/authorize", get(oauth::authorize))
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/revoke", post(oauth::revoke).get(oauth::revoke))
        .route("/services/oauth2/userinfo", get(oauth::userinfo).post(oauth::userinfo))
        .route("/id/{org}/{user}", get(oauth::identity))
        .route("/setup/secur/RemoteAccessErrorPage.apexp", get(oauth::remote_access_error_page))
}

/// The emulator's HTTP routes.
pub fn router(state: SfState) -> Router {
    Router::new()
        .merge(oauth_routes())
        .nest("/sandbox", oauth_routes())
        .route("/services/data", get(rest::versions))
        .route("/services/data/", get(rest::versions))
        .route("/services/data/{*rest}", any(rest::data_handler))
        .nest("/__emulator", admin::router())
        .fallback(rest::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the emulator on `listener` until the future is dropped. When
/// `config.public_url` is unset, it becomes `http://<bound address>`. Fails when the
/// metadata package cannot be loaded.
pub async fn serve(listener: tokio::net::TcpListener, mut config: Config) -> std::io::Result<()> {
    if config.public_url.is_none() {
        let addr = listener.local_addr()?;
        config.public_url = Some(format!("http://{addr}"));
    }
    let state = SfState::try_new(config).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    serve_state(listener, state).await
}

/// Serves an existing state (lets a test keep a handle on it).
pub async fn serve_state(listener: tokio::net::TcpListener, state: SfState) -> std::io::Result<()> {
    use axum::ServiceExt as _;
    use tower::Layer as _;
    // Real Salesforce answers `//services/data/...` like `/services/data/...`
    // (the `sf` CLI sends such paths); the rewrite must happen before routing.
    let app = axum::middleware::map_request(collapse_slashes).layer(router(state));
    axum::serve(listener, app.into_make_service()).await
}

/// Collapse runs of `/` in the request path (the query string is untouched).
async fn collapse_slashes(mut req: axum::extract::Request) -> axum::extract::Request {
    let path = req.uri().path();
    if path.contains("//") {
        let mut collapsed = String::with_capacity(path.len());
        for c in path.chars() {
            if !(c == '/' && collapsed.ends_with('/')) {
                collapsed.push(c);
            }
        }
        let rebuilt = match req.uri().query() {
            Some(q) => format!("{collapsed}?{q}"),
            None => collapsed,
        };
        if let Ok(pq) = axum::http::uri::PathAndQuery::try_from(rebuilt) {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}
