//! Salesforce wire concepts the core reasons about: records to upsert, the
//! outcome of each, token sets, and the classification of Salesforce errors
//! into the product's taxonomy. The HTTP client lives in the adapters.
//!
//! Submodules hold the wire formats of each API the client speaks:
//! [`oauth`] (web-server flow + PKCE, token responses, userinfo),
//! [`rest`] (versions, CRUD, upsert by external id, generic Composite),
//! [`query`] (query / queryAll pages and cursors) and [`bulk`] (Bulk API 2.0
//! ingest: job documents, CSV upload plan, result matching).

pub mod bulk;
pub mod oauth;
pub mod query;
pub mod rest;

use crate::error::{Classify, ErrorClass, PortError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The REST API version learnlink speaks.
pub const API_VERSION: &str = "v62.0";

/// One record to upsert by external id.
#[derive(Debug, Clone, PartialEq)]
pub struct SfRecord {
    pub sobject: &'static str,
    pub external_id_field: &'static str,
    pub external_id: String,
    /// The JSON body sent in an sObject Collections request, including
    /// `attributes` and the external id field itself.
    pub body: RecordBody,
}

/// A record's JSON body, kept serialized: a batch's records are written
/// into the Composite request as they are (no JSON tree per record to
/// build, copy and drop). Always the text of one JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordBody(String);

impl RecordBody {
    /// The body of any serializable object (a struct or a map).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Self {
        // Structs and maps of strings, numbers and nulls cannot fail to serialize.
        RecordBody(serde_json::to_string(value).unwrap_or_else(|_| "{}".into()))
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// The body as a JSON map (for fakes, Bulk CSV rows and tests).
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// One field's value.
    pub fn get(&self, field: &str) -> Option<Value> {
        self.to_map().remove(field)
    }
}

impl From<Map<String, Value>> for RecordBody {
    fn from(m: Map<String, Value>) -> Self {
        RecordBody::of(&m)
    }
}

/// Classify a Salesforce error code (`statusCode` in a collection result,
/// `errorCode` in an error array) — SPEC §4.4.
pub fn classify_error_code(code: &str) -> ErrorClass {
    match code {
        "UNABLE_TO_LOCK_ROW"
        | "SERVER_UNAVAILABLE"
        | "SERVER_ERROR"
        | "UNKNOWN_EXCEPTION"
        | "QUERY_TIMEOUT"
        | "ALL_OR_NONE_OPERATION_ROLLED_BACK" => ErrorClass::Retryable,
        "REQUEST_LIMIT_EXCEEDED" | "TXN_SECURITY_LIMIT" | "CONCURRENT_REQUESTS_LIMIT_EXCEEDED" => ErrorClass::Throttled,
        _ => ErrorClass::Permanent,
    }
}

/// Classify an HTTP status from Salesforce when the body names no code.
pub fn classify_http_status(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::Throttled,
        408 | 500..=599 => ErrorClass::Retryable,
        _ => ErrorClass::Permanent,
    }
}

/// The outcome of writing one record.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    Created { id: String },
    Updated { id: String },
    Failed(RecordFailure),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordFailure {
    pub class: ErrorClass,
    /// Salesforce's `statusCode`, or a learnlink code for transport failures.
    pub code: String,
    pub message: String,
}

impl RecordOutcome {
    pub fn failure_class(&self) -> Option<ErrorClass> {
        match self {
            RecordOutcome::Failed(f) => Some(f.class),
            _ => None,
        }
    }
}

/// The tokens of a connection, as stored in the tenant's secret (SPEC §3.2).
/// `Debug` never prints the tokens.
#[derive(Clone, Deserialize)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub instance_url: String,
    #[serde(default)]
    pub issued_at: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("instance_url", &self.instance_url)
            .field("issued_at", &self.issued_at)
            .field("user_id", &self.user_id)
            .field("org_id", &self.org_id)
            .finish()
    }
}

#[derive(Serialize)]
struct TokenSetWire<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    instance_url: &'a str,
    issued_at: &'a Option<String>,
    user_id: &'a Option<String>,
    org_id: &'a Option<String>,
    env: &'a Option<String>,
}

impl TokenSet {
    /// The secret document. The result is itself a secret.
    pub fn to_secret_json(&self) -> SecretString {
        let wire = TokenSetWire {
            access_token: self.access_token.expose_secret(),
            refresh_token: self.refresh_token.expose_secret(),
            instance_url: &self.instance_url,
            issued_at: &self.issued_at,
            user_id: &self.user_id,
            org_id: &self.org_id,
            env: &self.env,
        };
        // Serializing plain strings and options cannot fail.
        SecretString::from(serde_json::to_string(&wire).unwrap_or_default())
    }

    pub fn from_secret_json(s: &SecretString) -> Result<TokenSet, PortError> {
        serde_json::from_str(s.expose_secret()).map_err(|e| {
            // serde_json's message names the field, never the value.
            PortError::permanent(format!("the stored Salesforce token secret is not valid: {e}"))
        })
    }

    pub fn session(&self) -> Session {
        Session { instance_url: self.instance_url.clone(), access_token: self.access_token.clone() }
    }
}

/// What a data API call needs.
#[derive(Clone)]
pub struct Session {
    pub instance_url: String,
    pub access_token: SecretString,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("instance_url", &self.instance_url).finish_non_exhaustive()
    }
}

/// A failed Salesforce call.
#[derive(Debug, thiserror::Error)]
pub enum SalesforceError {
    /// 401 `INVALID_SESSION_ID`: the access token is expired; refresh.
    #[error("the Salesforce session is expired or invalid (INVALID_SESSION_ID)")]
    SessionExpired,
    /// The token endpoint refused the refresh token (`invalid_grant`).
    #[error("Salesforce refused the refresh token: {description}")]
    InvalidGrant { description: String },
    /// The API answered with an error.
    #[error("Salesforce answered {status} {code}: {message}")]
    Api { class: ErrorClass, status: u16, code: String, message: String },
    /// Nothing usable came back (network, timeout, unparseable body).
    #[error(transparent)]
    Transport(#[from] PortError),
    /// The request was refused before it was sent: the caller's input is
    /// not valid (an sObject name with a space, an empty IN list, …).
    #[error("invalid Salesforce request: {reason}")]
    InvalidRequest { reason: String },
}

impl Classify for SalesforceError {
    fn class(&self) -> ErrorClass {
        match self {
            SalesforceError::SessionExpired => ErrorClass::Retryable,
            SalesforceError::InvalidGrant { description } => {
                // Concurrent use of one refresh token is transient (SPEC §3.3).
                if description.contains("already being processed") {
                    ErrorClass::Retryable
                } else {
                    ErrorClass::Permanent
                }
            }
            SalesforceError::Api { class, .. } => *class,
            SalesforceError::Transport(e) => e.class,
            SalesforceError::InvalidRequest { .. } => ErrorClass::Permanent,
        }
    }
}

impl SalesforceError {
    pub fn code(&self) -> String {
        match self {
            SalesforceError::SessionExpired => "INVALID_SESSION_ID".into(),
            SalesforceError::InvalidGrant { .. } => "invalid_grant".into(),
            SalesforceError::Api { code, .. } => code.clone(),
            SalesforceError::Transport(_) => "TRANSPORT".into(),
            SalesforceError::InvalidRequest { .. } => "INVALID_REQUEST".into(),
        }
    }

    pub fn invalid(reason: impl Into<String>) -> Self {
        SalesforceError::InvalidRequest { reason: reason.into() }
    }

    /// A 2xx answer whose body could not be read: the outcome is unknown, so
    /// the work is retried rather than counted as done.
    pub fn unreadable(what: &str, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        SalesforceError::Transport(
            PortError::retryable(format!("{what}: Salesforce's answer could not be read")).with_source(cause),
        )
    }

    /// Salesforce answered 2xx with a body of the wrong shape.
    pub fn unexpected(what: &str, why: &str) -> Self {
        SalesforceError::Transport(PortError::retryable(format!("{what}: unexpected answer from Salesforce: {why}")))
    }

    /// The failure as a per-record failure (for the records a failed call carried).
    pub fn to_record_failure(&self) -> RecordFailure {
        RecordFailure { class: self.class(), code: self.code(), message: crate::error::error_chain(self) }
    }
}

/// `errorCode` and `message` of a Salesforce error body. The REST and Bulk
/// APIs answer `[{"errorCode": .., "message": ..}]`; some resources answer a
/// single object; the OAuth endpoints answer `{"error", "error_description"}`.
pub fn parse_error_body(body: &str) -> Option<(String, String)> {
    let v: Value = serde_json::from_str(body).ok()?;
    let first = match &v {
        Value::Array(a) => a.first()?,
        other => other,
    };
    let s = |k: &str| first.get(k).and_then(Value::as_str).map(str::to_string);
    let code = s("errorCode").or_else(|| s("statusCode")).or_else(|| s("error"))?;
    let message = s("message").or_else(|| s("error_description")).unwrap_or_default();
    Some((code, message))
}

/// Turn a non-success answer of the data APIs (REST, Composite, Bulk 2.0)
/// into an error of the taxonomy. 401 (or `INVALID_SESSION_ID`) means the
/// access token is expired; otherwise the class is the worse of what the
/// code and what the HTTP status say (a 5xx is never permanent, a lock
/// error is retryable whatever its status). The body is never echoed: only
/// Salesforce's code and message are kept.
pub fn error_from_response(status: u16, body: &str) -> SalesforceError {
    match parse_error_body(body) {
        Some((code, _)) if status == 401 || code == "INVALID_SESSION_ID" => SalesforceError::SessionExpired,
        None if status == 401 => SalesforceError::SessionExpired,
        Some((code, message)) => {
            let class = classify_error_code(&code).worst(classify_http_status(status));
            SalesforceError::Api { class, status, code, message }
        }
        None => SalesforceError::Api {
            class: classify_http_status(status),
            status,
            code: format!("HTTP_{status}"),
            message: format!(
                "Salesforce answered HTTP {status} without a Salesforce error document ({} bytes)",
                body.len()
            ),
        },
    }
}

/// Salesforce record ids are 15 (case-sensitive) or 18 characters.
pub fn is_record_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_taxonomy() {
        assert_eq!(classify_error_code("UNABLE_TO_LOCK_ROW"), ErrorClass::Retryable);
        assert_eq!(classify_error_code("SERVER_UNAVAILABLE"), ErrorClass::Retryable);
        assert_eq!(classify_error_code("REQUEST_LIMIT_EXCEEDED"), ErrorClass::Throttled);
        for c in ["INVALID_FIELD", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "REQUIRED_FIELD_MISSING", "DUPLICATE_VALUE"] {
            assert_eq!(classify_error_code(c), ErrorClass::Permanent, "{c}");
        }
        assert_eq!(classify_http_status(503), ErrorClass::Retryable);
        assert_eq!(classify_http_status(429), ErrorClass::Throttled);
        assert_eq!(classify_http_status(400), ErrorClass::Permanent);
    }

    #[test]
    fn token_set_round_trips_and_never_prints_tokens() {
        let json = SecretString::from(
            r#"{"access_token":"AT-123","refresh_token":"RT-456","instance_url":"https://x.my.salesforce.com"}"#,
        );
        let t = TokenSet::from_secret_json(&json).unwrap();
        let dbg = format!("{t:?} {:?}", t.session());
        assert!(!dbg.contains("AT-123") && !dbg.contains("RT-456"), "{dbg}");
        let back = TokenSet::from_secret_json(&t.to_secret_json()).unwrap();
        assert_eq!(back.access_token.expose_secret(), "AT-123");
        assert_eq!(back.refresh_token.expose_secret(), "RT-456");
    }

    #[test]
    fn bad_token_json_does_not_echo_the_secret() {
        let e = TokenSet::from_secret_json(&SecretString::from(r#"{"access_token":"AT-SECRET"}"#)).unwrap_err();
        assert!(!e.message.contains("AT-SECRET"), "{}", e.message);
        assert_eq!(e.class, ErrorClass::Permanent);
    }

    #[test]
    fn error_bodies_in_every_shape() {
        let e =
            error_from_response(404, r#"{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}"#);
        assert_eq!((e.code().as_str(), e.class()), ("NOT_FOUND", ErrorClass::Permanent));
        let e = error_from_response(400, r#"[{"errorCode":"UNABLE_TO_LOCK_ROW","message":"locked"}]"#);
        assert_eq!(e.class(), ErrorClass::Retryable);
        let e = error_from_response(502, r#"[{"errorCode":"INVALID_FIELD","message":"odd"}]"#);
        assert_eq!(e.class(), ErrorClass::Retryable, "a 5xx is never permanent");
        let e = error_from_response(500, "<html>oops, token=AT-123</html>");
        assert_eq!((e.code().as_str(), e.class()), ("HTTP_500", ErrorClass::Retryable));
        assert!(!e.to_string().contains("AT-123"), "the body is never echoed: {e}");
        assert!(matches!(error_from_response(401, ""), SalesforceError::SessionExpired));
        assert!(matches!(
            error_from_response(403, r#"[{"errorCode":"INVALID_SESSION_ID","message":"x"}]"#),
            SalesforceError::SessionExpired
        ));
        let e = SalesforceError::invalid("bad name");
        assert_eq!((e.code().as_str(), e.class()), ("INVALID_REQUEST", ErrorClass::Permanent));
        assert!(is_record_id("001dM00003jU9GxQAK") && is_record_id("001dM00003jU9Gx") && !is_record_id("001/x"));
    }

    #[test]
    fn concurrent_refresh_is_retryable_but_revocation_is_not() {
        let busy = SalesforceError::InvalidGrant { description: "token request is already being processed".into() };
        let revoked = SalesforceError::InvalidGrant { description: "expired access/refresh token".into() };
        assert_eq!(busy.class(), ErrorClass::Retryable);
        assert_eq!(revoked.class(), ErrorClass::Permanent);
    }
}
