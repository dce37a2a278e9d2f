//! The Salesforce client (reqwest + rustls/ring): the product's only way to
//! Salesforce.
//!
//! - [`oauth`]: authorize URL (web-server flow + PKCE S256 + state), code
//!   exchange, refresh under Refresh Token Rotation, userinfo, revoke;
//! - [`rest`]: versions, CRUD, upsert by external id, generic Composite,
//!   `/limits`;
//! - [`query`]: query / queryAll page by page (a checkpointable cursor) or
//!   all pages at once, always following `nextRecordsUrl`;
//! - [`bulk`]: Bulk API 2.0 ingest with a streamed CSV upload, polling with
//!   backoff, and streamed result parsing matched back to the input, in two
//!   halves a resumed worker can split ([`SalesforceApi::bulk_submit`],
//!   [`SalesforceApi::bulk_outcomes`]);
//! - Composite + sObject Collections upserts planned by `sync::plan`
//!   ([`SalesforceApi::composite_upsert`]).
//!
//! Wire formats, parsing and classification live in the core
//! (`learnlink_core::salesforce`); this module does the HTTP. Every failure
//! is a [`SalesforceError`] of the one taxonomy, keeping Salesforce's code
//! and message and the transport cause, never a token or a request body.
//! Every response's `Sforce-Limit-Info` is recorded per instance
//! ([`SalesforceClient::api_usage`]).

pub mod bulk;
pub mod memory;
pub mod oauth;
pub mod query;
pub mod rest;
#[cfg(test)]
mod testkit;

use async_trait::async_trait;
use futures::future::BoxFuture;
use learnlink_core::budget::ApiUsage;
use learnlink_core::ports::SalesforceApi;
use learnlink_core::salesforce::bulk::{MAX_UPLOAD_BYTES, PollSchedule};
use learnlink_core::salesforce::oauth::OAuthClient;
use learnlink_core::salesforce::{
    API_VERSION, RecordOutcome, SalesforceError, Session, SfRecord, TokenSet, error_from_response,
    oauth::parse_token_response,
};
use learnlink_core::sync::CompositeCall;
use learnlink_core::{ErrorClass, PortError};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Waits between polls. Injected so tests run without waiting.
pub trait Sleeper: Send + Sync {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The real clock: `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// How the client behaves; `ClientConfig::default()` is production's.
#[derive(Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Whole-request timeout of ordinary calls.
    pub request_timeout: Duration,
    /// Whole-request timeout of a Bulk CSV upload (up to 100 MB).
    pub upload_timeout: Duration,
    /// Bulk job polling.
    pub poll: PollSchedule,
    /// Bytes of CSV per Bulk job (Salesforce: 100 MB before base64).
    pub max_upload_bytes: u64,
    /// Size of the chunks a Bulk upload is streamed in.
    pub upload_chunk_bytes: usize,
    /// Upper bound on pages [`SalesforceClient::query_all_pages`] follows.
    pub max_query_pages: usize,
    pub sleeper: Arc<dyn Sleeper>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
            upload_timeout: Duration::from_secs(600),
            poll: PollSchedule::default(),
            max_upload_bytes: MAX_UPLOAD_BYTES,
            upload_chunk_bytes: 256 * 1024,
            max_query_pages: 10_000,
            sleeper: Arc::new(TokioSleeper),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("upload_timeout", &self.upload_timeout)
            .field("poll", &self.poll)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("upload_chunk_bytes", &self.upload_chunk_bytes)
            .field("max_query_pages", &self.max_query_pages)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct UsageBook {
    by_instance: HashMap<String, ApiUsage>,
    latest: Option<ApiUsage>,
}

/// The Salesforce client. Cheap to clone; clones share the connection pool
/// and the API usage seen.
#[derive(Clone)]
pub struct SalesforceClient {
    http: reqwest::Client,
    config: ClientConfig,
    usage: Arc<Mutex<UsageBook>>,
}

impl fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesforceClient").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SalesforceClient {
    pub fn new() -> Result<Self, PortError> {
        Self::with_config(ClientConfig::default())
    }

    pub fn with_config(config: ClientConfig) -> Result<Self, PortError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("learnlink/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the bearer token elsewhere: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PortError::permanent("building the Salesforce HTTP client").with_source(e))?;
        Ok(SalesforceClient { http, config, usage: Arc::new(Mutex::new(UsageBook::default())) })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn book(&self) -> std::sync::MutexGuard<'_, UsageBook> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest `Sforce-Limit-Info` usage seen from this org (instance).
    pub fn api_usage(&self, instance_url: &str) -> Option<ApiUsage> {
        self.book().by_instance.get(instance_url.trim_end_matches('/')).copied()
    }

    /// The latest usage seen from any org.
    pub fn latest_api_usage(&self) -> Option<ApiUsage> {
        self.book().latest
    }

    fn note_usage(&self, instance: &str, headers: &HeaderMap) {
        let usage = headers.get("sforce-limit-info").and_then(|v| v.to_str().ok()).and_then(ApiUsage::parse_header);
        if let Some(u) = usage {
            let mut book = self.book();
            book.by_instance.insert(instance.trim_end_matches('/').to_string(), u);
            book.latest = Some(u);
        }
    }

    /// Send a request; record the usage header of whatever comes back.
    async fn send(
        &self,
        what: &str,
        instance: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SalesforceError> {
        let resp = req.send().await.map_err(|e| transport(what, e))?;
        self.note_usage(instance, resp.headers());
        Ok(resp)
    }

    /// Send with the session's bearer token; read the whole answer.
    async fn call(
        &self,
        what: &str,
        session: &Session,
        req: reqwest::RequestBuilder,
    ) -> Result<Reply, SalesforceError> {
        let resp =
            self.send(what, &session.instance_url, req.bearer_auth(session.access_token.expose_secret())).await?;
        Reply::read(what, resp).await
    }

    /// A data API call whose success is a JSON document.
    async fn call_json(
        &self,
        what: &str,
        session: &Session,
        req: reqwest::RequestBuilder,
    ) -> Result<Value, SalesforceError> {
        let reply = self.call(what, session, req).await?;
        if !reply.success() {
            return Err(error_from_response(reply.status, &reply.body));
        }
        reply.json(what)
    }

    /// `instance_url` + a `/services/…` path.
    fn url(session: &Session, path: &str) -> Result<String, SalesforceError> {
        Ok(format!("{}{path}", base_url(&session.instance_url)?))
    }
}

/// A complete answer.
struct Reply {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Reply {
    async fn read(what: &str, resp: reqwest::Response) -> Result<Reply, SalesforceError> {
        let status = resp.status().as_u16();
        let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.text().await.map_err(|e| transport(&format!("reading the answer to {what}"), e))?;
        Ok(Reply { status, location, body })
    }

    fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn json(&self, what: &str) -> Result<Value, SalesforceError> {
        serde_json::from_str(&self.body).map_err(|e| SalesforceError::unreadable(what, e))
    }
}

/// Check an instance (or login) base URL and trim its slash.
fn base_url(url: &str) -> Result<&str, SalesforceError> {
    let base = url.trim_end_matches('/');
    let host = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://"));
    match host {
        Some(h) if !h.is_empty() && !h.contains(['/', '?', '#', ' ', '@']) => Ok(base),
        _ => Err(SalesforceError::invalid(format!("{url:?} is not a Salesforce instance URL (https://host)"))),
    }
}

/// A request that did not complete. No URL in the message (query strings
/// carry SOQL); the reqwest error stays as the cause.
fn transport(what: &str, e: reqwest::Error) -> SalesforceError {
    let e = e.without_url();
    let (class, why) = if e.is_timeout() {
        (ErrorClass::Retryable, "timed out")
    } else if e.is_connect() {
        (ErrorClass::Retryable, "could not connect")
    } else if e.is_builder() {
        (ErrorClass::Permanent, "could not be built")
    } else {
        (ErrorClass::Retryable, "did not complete")
    };
    SalesforceError::Transport(PortError::new(class, format!("{what}: the request {why}")).with_source(e))
}

#[async_trait]
impl SalesforceApi for SalesforceClient {
    async fn composite_upsert(
        &self,
        session: &Session,
        call: &CompositeCall,
    ) -> Result<Vec<Vec<RecordOutcome>>, SalesforceError> {
        let url = Self::url(session, &format!("/services/data/{API_VERSION}/composite"))?;
        let request =
            self.http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(call.request_bytes());
        let reply = self.call("Composite request", session, request).await?;
        if reply.status != 200 {
            return Err(error_from_response(reply.status, &reply.body));
        }
        let body = reply.json("the Composite response")?;
        Ok(call.parse_response(&body))
    }

    async fn refresh(
        &self,
        login_url: &str,
        client_id: &str,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, SalesforceError> {
        self.refresh_token(login_url, &OAuthClient::public(client_id), refresh_token).await
    }

    async fn exchange_code(
        &self,
        login_url: &str,
        client_id: &str,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: &SecretString,
    ) -> Result<TokenSet, SalesforceError> {
        SalesforceClient::exchange_code(
            self,
            login_url,
            &OAuthClient::public(client_id),
            code,
            redirect_uri,
            code_verifier,
        )
        .await
    }

    fn last_usage(&self, instance_url: &str) -> Option<learnlink_core::budget::ApiUsage> {
        self.api_usage(instance_url)
    }

    async fn limits(&self, session: &Session) -> Result<learnlink_core::budget::OrgLimits, SalesforceError> {
        SalesforceClient::limits(self, session).await
    }

    async fn query(
        &self,
        session: &Session,
        soql: &str,
    ) -> Result<Vec<serde_json::Map<String, Value>>, SalesforceError> {
        self.query_records(session, soql).await
    }

    async fn query_page(
        &self,
        session: &Session,
        cursor: &learnlink_core::salesforce::query::QueryCursor,
    ) -> Result<learnlink_core::salesforce::query::QueryPage, SalesforceError> {
        SalesforceClient::query_page(self, session, cursor).await
    }

    async fn bulk_submit(
        &self,
        session: &Session,
        records: &[SfRecord],
    ) -> Result<learnlink_core::salesforce::bulk::BulkSubmission, SalesforceError> {
        SalesforceClient::bulk_submit(self, session, records).await
    }

    async fn bulk_outcomes(
        &self,
        session: &Session,
        jobs: &[String],
        records: &[SfRecord],
    ) -> Result<learnlink_core::salesforce::bulk::BulkReport, SalesforceError> {
        SalesforceClient::bulk_outcomes(self, session, jobs, records).await
    }

    async fn create_record(&self, session: &Session, sobject: &str, body: &Value) -> Result<String, SalesforceError> {
        self.create(session, sobject, record_fields(body)?).await
    }

    async fn update_record(
        &self,
        session: &Session,
        sobject: &str,
        id: &str,
        body: &Value,
    ) -> Result<(), SalesforceError> {
        self.update(session, sobject, id, record_fields(body)?).await
    }
}

/// A record body for the REST resources: a JSON object.
fn record_fields(body: &Value) -> Result<&serde_json::Map<String, Value>, SalesforceError> {
    body.as_object().ok_or_else(|| SalesforceError::invalid("a record body must be a JSON object"))
}

/// Read a token endpoint answer. Under Refresh Token Rotation it carries a
/// new refresh token; without rotation it carries none and the old one stays.
pub fn token_set_from_response(body: &Value, previous_refresh: &SecretString) -> Result<TokenSet, SalesforceError> {
    parse_token_response(body, Some(previous_refresh))
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use learnlink_core::Classify;
    use serde_json::json;

    fn call() -> CompositeCall {
        use learnlink_core::model::{Enrollment, EnrollmentStatus};
        use learnlink_core::webhook::{EventKind, EventPayload, LmsEvent};
        let t = time::macros::datetime!(2026-11-23 10:00 UTC);
        let ev = LmsEvent {
            id: "e".into(),
            kind: EventKind::EnrollmentCreated,
            occurred_at: t,
            payload: EventPayload::Enrollment(Enrollment {
                id: "E1".into(),
                learner_id: "L1".into(),
                course_id: "C1".into(),
                course_title: None,
                status: EnrollmentStatus::Enrolled,
                progress_pct: None,
                score: None,
                enrolled_at: None,
                completed_at: None,
                updated_at: t,
            }),
        };
        learnlink_core::sync::plan([(0, &ev)]).remove(0)
    }

    #[tokio::test]
    async fn errors_map_onto_the_taxonomy() {
        let cases: Vec<(u16, Value, &str, ErrorClass)> = vec![
            (
                401,
                json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]),
                "INVALID_SESSION_ID",
                ErrorClass::Retryable,
            ),
            (
                403,
                json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
                "REQUEST_LIMIT_EXCEEDED",
                ErrorClass::Throttled,
            ),
            (429, json!("slow down"), "HTTP_429", ErrorClass::Throttled),
            (503, json!("<html>down</html>"), "HTTP_503", ErrorClass::Retryable),
            (
                500,
                json!([{"message": "An unexpected error occurred", "errorCode": "UNKNOWN_EXCEPTION"}]),
                "UNKNOWN_EXCEPTION",
                ErrorClass::Retryable,
            ),
            (
                400,
                json!([{"message": "unable to obtain exclusive access to this record", "errorCode": "UNABLE_TO_LOCK_ROW"}]),
                "UNABLE_TO_LOCK_ROW",
                ErrorClass::Retryable,
            ),
            (
                400,
                json!([{"message": "bad", "errorCode": "MALFORMED_QUERY"}]),
                "MALFORMED_QUERY",
                ErrorClass::Permanent,
            ),
            (
                403,
                json!([{"message": "no access", "errorCode": "INSUFFICIENT_ACCESS"}]),
                "INSUFFICIENT_ACCESS",
                ErrorClass::Permanent,
            ),
        ];
        for (status, body, code, class) in cases {
            let b = body.clone();
            let url = mock(Router::new().route(
                "/services/data/v62.0/composite",
                post(move || {
                    let b = b.clone();
                    async move { (StatusCode::from_u16(status).unwrap(), axum::Json(b)) }
                }),
            ))
            .await;
            let err = client().composite_upsert(&session(&url), &call()).await.unwrap_err();
            assert_eq!(err.code(), code, "{status}");
            assert_eq!(err.class(), class, "{status}");
            if let SalesforceError::Api { message, .. } = &err
                && body.is_array()
            {
                assert_eq!(Some(message.as_str()), body[0]["message"].as_str(), "Salesforce's message is kept");
            }
        }
    }

    #[tokio::test]
    async fn composite_upsert_reads_outcomes_and_usage() {
        let url = mock(Router::new().route(
            "/services/data/v62.0/composite",
            post(|axum::Json(req): axum::Json<Value>| async move {
                assert_eq!(req["allOrNone"], false);
                assert_eq!(req["compositeRequest"][0]["method"], "PATCH");
                (
                    [("sforce-limit-info", "api-usage=45/15000")],
                    axum::Json(json!({"compositeResponse": [{"referenceId": "upsert0", "httpStatusCode": 200, "httpHeaders": {},
                        "body": [{"id": "a0B000000000001AAA", "success": true, "errors": [], "created": true}]}]})),
                )
            }),
        ))
        .await;
        let c = client();
        let out = c.composite_upsert(&session(&url), &call()).await.unwrap();
        assert_eq!(out[0][0], RecordOutcome::Created { id: "a0B000000000001AAA".into() });
        assert_eq!(c.api_usage(&url), Some(ApiUsage { used: 45, limit: 15000 }));
        assert_eq!(c.clone().latest_api_usage(), Some(ApiUsage { used: 45, limit: 15000 }), "clones share usage");
    }

    #[tokio::test]
    async fn garbage_200_is_retryable_not_success() {
        let url = mock(Router::new().route("/services/data/v62.0/composite", post(|| async { "not json" }))).await;
        let err = client().composite_upsert(&session(&url), &call()).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Retryable);
        assert!(std::error::Error::source(&err).is_some(), "the parse error is kept as the cause");
    }

    #[tokio::test]
    async fn unreachable_host_is_retryable() {
        let err = client().composite_upsert(&session(&refused_url().await), &call()).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Retryable);
        assert!(err.to_string().contains("could not connect"), "{err}");
        let chain = learnlink_core::error::error_chain(&err);
        assert!(!chain.contains("tok"), "{chain}");
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_retryably() {
        let url = mock(Router::new().route(
            "/services/data/v62.0/composite",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        ))
        .await;
        let c = SalesforceClient::with_config(ClientConfig {
            request_timeout: Duration::from_millis(200),
            ..ClientConfig::default()
        })
        .unwrap();
        let err = c.composite_upsert(&session(&url), &call()).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Retryable);
        assert!(err.to_string().contains("timed out"), "{err}");
    }

    #[tokio::test]
    async fn bad_instance_urls_are_refused_before_sending() {
        for bad in ["", "ftp://x", "https://", "https://x/path", "https://user@x"] {
            let err = client().composite_upsert(&session(bad), &call()).await.unwrap_err();
            assert_eq!((err.class(), err.code().as_str()), (ErrorClass::Permanent, "INVALID_REQUEST"), "{bad}");
        }
    }

    #[test]
    fn token_set_from_response_keeps_the_old_refresh_token_without_rotation() {
        let old = SecretString::from("R1");
        let body =
            json!({"access_token": "A2", "instance_url": "https://x.my.salesforce.com", "id": "https://l/id/00D/005"});
        let t = token_set_from_response(&body, &old).unwrap();
        assert_eq!(t.refresh_token.expose_secret(), "R1");
        assert_eq!((t.org_id.as_deref(), t.user_id.as_deref()), (Some("00D"), Some("005")));
    }
}
