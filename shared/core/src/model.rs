//! Canonical LMS entities (SPEC §2) and tenant identity.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

/// A tenant id: one LMS site connected to one Salesforce org.
/// Lowercase letters, digits and `-`, 2 to 63 characters, starting with a
/// letter or digit — safe in URLs, secret names and DynamoDB keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant id {0:?}: use 2-63 lowercase letters, digits or '-', starting with a letter or digit")]
pub struct InvalidTenantId(pub String);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, InvalidTenantId> {
        let ok = (2..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && s.as_bytes()[0] != b'-';
        if ok { Ok(TenantId(s.to_owned())) } else { Err(InvalidTenantId(s.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Enrollment status in the LMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    Enrolled,
    InProgress,
    Completed,
    Expired,
}

impl EnrollmentStatus {
    /// The value of the `Status__c` picklist in Salesforce.
    pub fn salesforce_label(self) -> &'static str {
        match self {
            EnrollmentStatus::Enrolled => "Enrolled",
            EnrollmentStatus::InProgress => "In Progress",
            EnrollmentStatus::Completed => "Completed",
            EnrollmentStatus::Expired => "Expired",
        }
    }
}

/// SPEC §2 Enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub id: String,
    pub learner_id: String,
    pub course_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub course_title: Option<String>,
    pub status: EnrollmentStatus,
    #[serde(default)]
    pub progress_pct: Option<f64>,
    #[serde(default)]
    pub score: Option<f64>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub enrolled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// SPEC §2 Certification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certification {
    pub id: String,
    pub learner_id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub issued_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// SPEC §2 Learner, as the LMS API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learner {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub department_id: Option<String>,
    /// Custom profile fields (title, location, ...).
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// SPEC §2 Department: a tree through `parent_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<String>,
}

/// Salesforce DateTime literal as the REST API accepts and prints it
/// (`2026-05-12T10:00:00.000Z`).
pub fn salesforce_datetime(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    // Written digit by digit: this runs for every date of every record.
    fn push(out: &mut Vec<u8>, v: u32, width: u32) {
        let mut div = 10u32.pow(width - 1);
        while div > 0 {
            out.push(b'0' + ((v / div) % 10) as u8);
            div /= 10;
        }
    }
    let mut out = Vec::with_capacity(24);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        // Outside what Salesforce accepts anyway; keep the sign and digits.
        return format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            year,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        );
    }
    push(&mut out, year as u32, 4);
    out.push(b'-');
    push(&mut out, u32::from(u8::from(t.month())), 2);
    out.push(b'-');
    push(&mut out, u32::from(t.day()), 2);
    out.push(b'T');
    push(&mut out, u32::from(t.hour()), 2);
    out.push(b':');
    push(&mut out, u32::from(t.minute()), 2);
    out.push(b':');
    push(&mut out, u32::from(t.second()), 2);
    out.push(b'.');
    push(&mut out, u32::from(t.millisecond()), 3);
    out.push(b'Z');
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("acme-eu-2").is_ok());
        for bad in ["", "a", "-acme", "Acme", "ac me", "acme/x", "acme_x", &"a".repeat(64)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn salesforce_datetime_has_millis_and_z() {
        let t = time::macros::datetime!(2026-05-12 10:00:00.5 +02:00);
        assert_eq!(salesforce_datetime(t), "2026-05-12T08:00:00.500Z");
        let t = time::macros::datetime!(0987-01-02 03:04:05.067 UTC);
        assert_eq!(salesforce_datetime(t), "0987-01-02T03:04:05.067Z");
        let t = time::macros::datetime!(9999-12-31 23:59:59.999 UTC);
        assert_eq!(salesforce_datetime(t), "9999-12-31T23:59:59.999Z");
    }
}
