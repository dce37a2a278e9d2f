//! Salesforce REST client (reqwest + rustls). This slice carries what job 1's
//! walking skeleton needs: token refresh and Composite + sObject Collections
//! upserts. Every failure is mapped onto the taxonomy.

pub mod memory;

use async_trait::async_trait;
use learnlink_core::ports::SalesforceApi;
use learnlink_core::salesforce::{
    API_VERSION, RecordOutcome, SalesforceError, Session, TokenSet, classify_error_code, classify_http_status,
};
use learnlink_core::sync::CompositeCall;
use learnlink_core::{ErrorClass, PortError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;

#[derive(Clone)]
pub struct SalesforceClient {
    http: reqwest::Client,
}

impl SalesforceClient {
    pub fn new() -> Result<Self, PortError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("learnlink/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PortError::permanent("building the Salesforce HTTP client").with_source(e))?;
        Ok(SalesforceClient { http })
    }
}

fn transport(what: &str, e: reqwest::Error) -> SalesforceError {
    // No URL in the message: query strings could carry data.
    let e = e.without_url();
    SalesforceError::Transport(PortError::retryable(format!("{what}: the request did not complete")).with_source(e))
}

/// Turn a non-success data API answer into an error. Salesforce's error
/// bodies are `[{"message": ..., "errorCode": ...}]`.
fn api_error(status: u16, body: &str) -> SalesforceError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let first = parsed.as_ref().and_then(|v| v.as_array()).and_then(|a| a.first()).cloned();
    let code = first.as_ref().and_then(|e| e.get("errorCode")).and_then(Value::as_str).unwrap_or("").to_string();
    let message = first.as_ref().and_then(|e| e.get("message")).and_then(Value::as_str).unwrap_or("").to_string();
    if status == 401 || code == "INVALID_SESSION_ID" {
        return SalesforceError::SessionExpired;
    }
    let class = if code.is_empty() { classify_http_status(status) } else { classify_error_code(&code) };
    SalesforceError::Api { class, status, code: if code.is_empty() { format!("HTTP_{status}") } else { code }, message }
}

#[async_trait]
impl SalesforceApi for SalesforceClient {
    async fn composite_upsert(
        &self,
        session: &Session,
        call: &CompositeCall,
    ) -> Result<Vec<Vec<RecordOutcome>>, SalesforceError> {
        let url = format!("{}/services/data/{API_VERSION}/composite", session.instance_url.trim_end_matches('/'));
        let resp = self
            .http
            .post(url)
            .bearer_auth(session.access_token.expose_secret())
            .json(&call.request_body())
            .send()
            .await
            .map_err(|e| transport("Composite request", e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| transport("reading the Composite response", e))?;
        if status != 200 {
            return Err(api_error(status, &text));
        }
        let body: Value = serde_json::from_str(&text).map_err(|e| {
            SalesforceError::Transport(PortError::retryable(format!("the Composite response is not JSON: {e}")))
        })?;
        Ok(call.parse_response(&body))
    }

    async fn refresh(
        &self,
        login_url: &str,
        client_id: &str,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, SalesforceError> {
        let url = format!("{}/services/oauth2/token", login_url.trim_end_matches('/'));
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        let resp = self.http.post(url).form(&form).send().await.map_err(|e| transport("token refresh", e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| transport("reading the token response", e))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            let error = body.get("error").and_then(Value::as_str).unwrap_or("");
            let description = body.get("error_description").and_then(Value::as_str).unwrap_or("").to_string();
            if error == "invalid_grant" {
                return Err(SalesforceError::InvalidGrant { description });
            }
            return Err(SalesforceError::Api {
                class: classify_http_status(status),
                status,
                code: if error.is_empty() { format!("HTTP_{status}") } else { error.to_string() },
                message: description,
            });
        }
        token_set_from_response(&body, refresh_token)
    }
}

/// Read a token endpoint answer. Under Refresh Token Rotation it carries a
/// new refresh token; without rotation it carries none and the old one stays.
pub fn token_set_from_response(body: &Value, previous_refresh: &SecretString) -> Result<TokenSet, SalesforceError> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let bad = |what: &str| {
        SalesforceError::Transport(PortError::new(ErrorClass::Retryable, format!("the token response has no {what}")))
    };
    let access = field("access_token").ok_or_else(|| bad("access_token"))?;
    let instance_url = field("instance_url").ok_or_else(|| bad("instance_url"))?;
    let refresh = field("refresh_token").map(SecretString::from).unwrap_or_else(|| previous_refresh.clone());
    let (org_id, user_id) = match field("id") {
        Some(id) => {
            let mut parts = id.rsplit('/');
            let user = parts.next().map(str::to_string);
            let org = parts.next().map(str::to_string);
            (org, user)
        }
        None => (None, None),
    };
    Ok(TokenSet {
        access_token: SecretString::from(access),
        refresh_token: refresh,
        instance_url,
        issued_at: field("issued_at"),
        user_id,
        org_id,
        env: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use learnlink_core::Classify;
    use serde_json::json;

    async fn mock(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    fn session(url: &str) -> Session {
        Session { instance_url: url.to_string(), access_token: SecretString::from("tok") }
    }

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
            (503, json!("<html>down</html>"), "HTTP_503", ErrorClass::Retryable),
            (
                400,
                json!([{"message": "bad", "errorCode": "MALFORMED_QUERY"}]),
                "MALFORMED_QUERY",
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
            let err = SalesforceClient::new().unwrap().composite_upsert(&session(&url), &call()).await.unwrap_err();
            assert_eq!(err.code(), code, "{status}");
            assert_eq!(err.class(), class, "{status}");
        }
    }

    #[tokio::test]
    async fn garbage_200_is_retryable_not_success() {
        let url = mock(Router::new().route("/services/data/v62.0/composite", post(|| async { "not json" }))).await;
        let err = SalesforceClient::new().unwrap().composite_upsert(&session(&url), &call()).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Retryable);
    }

    #[tokio::test]
    async fn unreachable_host_is_retryable() {
        let err = SalesforceClient::new()
            .unwrap()
            .composite_upsert(&session("http://127.0.0.1:1"), &call())
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Retryable);
    }

    #[tokio::test]
    async fn refresh_reads_rotation_and_invalid_grant() {
        let url = mock(Router::new().route(
            "/services/oauth2/token",
            post(|body: String| async move {
                if body.contains("refresh_token=good") {
                    (StatusCode::OK, axum::Json(json!({"access_token": "A2", "refresh_token": "R2",
                        "instance_url": "https://x", "id": "https://login/id/00Dorg/005user", "issued_at": "1", "token_type": "Bearer"})))
                } else {
                    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})))
                }
            }),
        ))
        .await;
        let c = SalesforceClient::new().unwrap();
        let t = c.refresh(&url, "cid", &SecretString::from("good")).await.unwrap();
        assert_eq!(t.refresh_token.expose_secret(), "R2");
        assert_eq!(t.org_id.as_deref(), Some("00Dorg"));
        assert_eq!(t.user_id.as_deref(), Some("005user"));
        let e = c.refresh(&url, "cid", &SecretString::from("bad")).await.unwrap_err();
        assert!(matches!(e, SalesforceError::InvalidGrant { .. }));
        assert_eq!(e.class(), ErrorClass::Permanent);
    }
}
