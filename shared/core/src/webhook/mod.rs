//! Webhook ingest (SPEC §4.1): verification and parsing of LMS deliveries
//! into canonical [`LmsEvent`]s. Pure: the caller supplies headers, the raw
//! body, the tenant's secrets and the current time.

pub mod canonical;

use crate::model::{Certification, Enrollment};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Largest body accepted from an LMS (bytes). Larger deliveries get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most events accepted in one delivery.
pub const MAX_EVENTS_PER_DELIVERY: usize = 100;

/// The webhook dialect a source speaks. Only the canonical dialect exists in
/// this slice; the vendor dialects of SPEC §4.1 are added with job 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Canonical,
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
pub fn verify(
    dialect: Dialect,
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    secrets: &[String],
    now: OffsetDateTime,
) -> Result<(), Rejection> {
    match dialect {
        Dialect::Canonical => canonical::verify(headers, body, secrets, now),
    }
}

/// Parse a verified delivery into canonical events.
pub fn parse(dialect: Dialect, body: &[u8]) -> Result<Vec<LmsEvent>, Rejection> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Rejection::too_large(body.len()));
    }
    match dialect {
        Dialect::Canonical => canonical::parse(body),
    }
}
