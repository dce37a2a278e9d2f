//! Webhook ingest (SPEC §4.1): verification and parsing of LMS deliveries
//! into canonical [`LmsEvent`]s. Pure: the caller supplies headers, the
//! token of the URL (if any), the raw body, the tenant's secrets and the
//! current time.
//!
//! | dialect     | authentication                                         | events per delivery |
//! |-------------|--------------------------------------------------------|---------------------|
//! | `canonical` | `Learnlink-Signature: t=..,v1=<hex HMAC of "t.body">`  | up to 100           |
//! | `thinkific` | `X-Thinkific-Hmac-Sha256`: hex HMAC of the body        | 1                   |
//! | `northpass` | `X-Northpass-Hmac-SHA256`: base64 HMAC of the body     | 1                   |
//! | `docebo`    | `X-Docebo-Signature`: hex HMAC of the body             | up to 25, one type  |
//! | `skilljar`  | unsigned; a secret token as the last URL path segment  | 1                   |
//!
//! Every HMAC is SHA-256 keyed with one of the source's secrets (two may be
//! active during a rotation) and compared in constant time; so is the
//! Skilljar URL token.

pub mod canonical;
pub mod docebo;
mod fields;
pub mod northpass;
pub mod skilljar;
pub mod thinkific;

use crate::model::{Certification, Enrollment};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Largest body accepted from an LMS (bytes). Larger deliveries get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most events accepted in one delivery.
pub const MAX_EVENTS_PER_DELIVERY: usize = 100;

/// The webhook dialect a source speaks (SPEC §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// learnlink's own events, signed with a timestamp.
    Canonical,
    /// Thinkific `enrollment.created|progress|completed`.
    Thinkific,
    /// Northpass, JSON:API envelopes.
    Northpass,
    /// Docebo `course.enrollment.created|updated|completed`, up to 25 per delivery.
    Docebo,
    /// Skilljar, unsigned: a secret token in the URL path.
    Skilljar,
}

impl Dialect {
    pub const ALL: [Dialect; 5] =
        [Dialect::Canonical, Dialect::Thinkific, Dialect::Northpass, Dialect::Docebo, Dialect::Skilljar];

    /// The name in the tenant configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Canonical => "canonical",
            Dialect::Thinkific => "thinkific",
            Dialect::Northpass => "northpass",
            Dialect::Docebo => "docebo",
            Dialect::Skilljar => "skilljar",
        }
    }

    pub fn parse(s: &str) -> Option<Dialect> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Whether deliveries authenticate with a secret token in the URL
    /// (`POST /webhooks/{tenant}/{source}/{token}`) instead of a signature.
    pub fn authenticates_by_url_token(self) -> bool {
        matches!(self, Dialect::Skilljar)
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a delivery was refused; maps one-to-one onto the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// One sentence naming the problem. Never contains the body or a secret.
    pub message: String,
}

impl Rejection {
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Rejection { status: 401, code, message: message.into() }
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        Rejection { status: 400, code: "malformed_body", message: message.into() }
    }
    pub fn unknown_event_type(message: impl Into<String>) -> Self {
        Rejection { status: 400, code: "unknown_event_type", message: message.into() }
    }
    pub fn too_large(len: usize) -> Self {
        Rejection {
            status: 413,
            code: "body_too_large",
            message: format!("the body has {len} bytes; the limit is {MAX_BODY_BYTES}"),
        }
    }
    pub fn unknown_tenant(tenant: &str) -> Self {
        Rejection { status: 404, code: "unknown_tenant", message: format!("no tenant named {tenant:?}") }
    }
    pub fn unknown_source(tenant: &str, source: &str) -> Self {
        Rejection {
            status: 404,
            code: "unknown_source",
            message: format!("tenant {tenant:?} has no webhook source named {source:?}"),
        }
    }
    /// A URL token sent to a source whose dialect is signed: that URL does
    /// not exist for it (the token is not looked at).
    pub fn no_token_route(tenant: &str, source: &str, dialect: Dialect) -> Self {
        Rejection {
            status: 404,
            code: "unknown_route",
            message: format!(
                "source {source:?} of tenant {tenant:?} speaks {dialect}, which is signed and takes no token in its \
                 URL; post to /webhooks/{tenant}/{source}"
            ),
        }
    }
}

/// Case-insensitive header access supplied by the caller.
pub trait Headers {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Headers for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Headers::get(self.as_slice(), name)
    }
}

/// What happened in the LMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "enrollment.created")]
    EnrollmentCreated,
    #[serde(rename = "enrollment.updated")]
    EnrollmentUpdated,
    #[serde(rename = "enrollment.completed")]
    EnrollmentCompleted,
    #[serde(rename = "certification.issued")]
    CertificationIssued,
    #[serde(rename = "certification.updated")]
    CertificationUpdated,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::EnrollmentCreated,
        EventKind::EnrollmentUpdated,
        EventKind::EnrollmentCompleted,
        EventKind::CertificationIssued,
        EventKind::CertificationUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::EnrollmentCreated => "enrollment.created",
            EventKind::EnrollmentUpdated => "enrollment.updated",
            EventKind::EnrollmentCompleted => "enrollment.completed",
            EventKind::CertificationIssued => "certification.issued",
            EventKind::CertificationUpdated => "certification.updated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_enrollment(self) -> bool {
        matches!(self, EventKind::EnrollmentCreated | EventKind::EnrollmentUpdated | EventKind::EnrollmentCompleted)
    }
}

/// The record an event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entity", content = "record", rename_all = "snake_case")]
pub enum EventPayload {
    Enrollment(Enrollment),
    Certification(Certification),
}

/// A canonical LMS event, whatever dialect it arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmsEvent {
    /// The LMS's event id: the deduplication key.
    pub id: String,
    pub kind: EventKind,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub payload: EventPayload,
}

impl LmsEvent {
    /// The LMS `updated_at` of the record: the ordering key (SPEC §4.2).
    pub fn updated_at(&self) -> OffsetDateTime {
        match &self.payload {
            EventPayload::Enrollment(e) => e.updated_at,
            EventPayload::Certification(c) => c.updated_at,
        }
    }

    /// A key naming the LMS record the event is about.
    pub fn record_key(&self) -> (&'static str, &str) {
        match &self.payload {
            EventPayload::Enrollment(e) => ("enrollment", e.id.as_str()),
            EventPayload::Certification(c) => ("certification", c.id.as_str()),
        }
    }
}

/// Verify a delivery's authenticity (constant-time, on the raw body).
/// `url_token` is the last path segment of `POST /webhooks/{tenant}/{source}/{token}`
/// (already percent-decoded), `None` on the route without it. Signed
/// dialects look at their header only; a token-authenticated dialect at the
/// token only. The caller answers a token sent to a signed dialect with
/// [`Rejection::no_token_route`] (see [`Dialect::authenticates_by_url_token`]).
pub fn verify(
    dialect: Dialect,
    headers: &(impl Headers + ?Sized),
    url_token: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: OffsetDateTime,
) -> Result<(), Rejection> {
    match dialect {
        Dialect::Canonical => canonical::verify(headers, body, secrets, now),
        Dialect::Thinkific => thinkific::verify(headers, body, secrets),
        Dialect::Northpass => northpass::verify(headers, body, secrets),
        Dialect::Docebo => docebo::verify(headers, body, secrets),
        Dialect::Skilljar => skilljar::verify(url_token, secrets),
    }
}

/// Parse a verified delivery into canonical events.
pub fn parse(dialect: Dialect, body: &[u8]) -> Result<Vec<LmsEvent>, Rejection> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Rejection::too_large(body.len()));
    }
    match dialect {
        Dialect::Canonical => canonical::parse(body),
        Dialect::Thinkific => thinkific::parse(body),
        Dialect::Northpass => northpass::parse(body),
        Dialect::Docebo => docebo::parse(body),
        Dialect::Skilljar => skilljar::parse(body),
    }
}

/// The unknown-event-type answer: names the path, the type and what is known.
pub(crate) fn unknown_type(path: &str, got: &str, known: &[&str]) -> Rejection {
    let got: String = got.chars().take(80).collect();
    Rejection::unknown_event_type(format!("{path}: unknown event type {got:?}; expected one of {}", known.join(", ")))
}

/// The enrollment id learnlink gives an enrollment whose LMS has no
/// enrollment id of its own (Docebo, Skilljar): the LMS allows one
/// enrollment per learner and course, so the pair is the natural key.
pub fn natural_enrollment_id(learner_id: &str, course_id: &str) -> String {
    format!("{learner_id}:{course_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_schema_lists_every_dialect() {
        let schema: serde_json::Value = serde_json::from_str(crate::config::SCHEMA).unwrap();
        let listed: Vec<&str> = schema["$defs"]["source"]["properties"]["dialect"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ours: Vec<&str> = Dialect::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(listed, ours);
        for d in Dialect::ALL {
            assert_eq!(Dialect::parse(d.as_str()), Some(d));
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
        assert_eq!(Dialect::ALL.iter().filter(|d| d.authenticates_by_url_token()).count(), 1);
    }

    #[test]
    fn every_dialect_refuses_an_oversized_body() {
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        for d in Dialect::ALL {
            let r = parse(d, &big).unwrap_err();
            assert_eq!((r.status, r.code), (413, "body_too_large"), "{d}");
        }
    }

    #[test]
    fn a_token_route_is_only_for_token_dialects() {
        let r = Rejection::no_token_route("acme", "lms", Dialect::Thinkific);
        assert_eq!((r.status, r.code), (404, "unknown_route"));
        assert!(r.message.contains("/webhooks/acme/lms"));
    }
}
