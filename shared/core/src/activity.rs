//! The activity log (SPEC §7): one entry per record outcome, kept 90 days,
//! queryable by tenant, time, learner and outcome; and a summary per run,
//! kept 30 days.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How long activity entries and run summaries live (DynamoDB TTL).
pub const ACTIVITY_TTL: time::Duration = time::Duration::days(90);
pub const RUN_TTL: time::Duration = time::Duration::days(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Linked,
    Unlinked,
    Skipped,
    Ambiguous,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Linked,
        Outcome::Unlinked,
        Outcome::Skipped,
        Outcome::Ambiguous,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Linked => "linked",
            Outcome::Unlinked => "unlinked",
            Outcome::Skipped => "skipped",
            Outcome::Ambiguous => "ambiguous",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    LmsToSalesforce,
    SalesforceToLms,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `webhook`, `import`, `backfill`, … with the run id: `webhook:<run>`.
    pub job: String,
    pub direction: Direction,
    /// The Salesforce object or LMS entity written.
    pub object: String,
    pub lms_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salesforce_id: Option<String>,
    pub outcome: Outcome,
    /// A learnlink reason (`stale`, `out_of_scope`, …) or Salesforce's error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityFilter {
    pub outcome: Option<Outcome>,
    pub learner: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl ActivityFilter {
    pub fn matches(&self, e: &ActivityEntry) -> bool {
        self.outcome.is_none_or(|o| o == e.outcome)
            && self.learner.as_ref().is_none_or(|l| e.learner_id.as_ref() == Some(l))
            && self.since.is_none_or(|s| e.at >= s)
            && self.until.is_none_or(|u| e.at <= u)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivityPage {
    pub entries: Vec<ActivityEntry>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub job: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// The CSV header of an activity export.
pub const CSV_HEADER: [&str; 10] =
    ["at", "job", "direction", "object", "lms_id", "learner_id", "salesforce_id", "outcome", "reason", "message"];

/// Entries as CSV (RFC 4180), header first.
pub fn to_csv(entries: &[ActivityEntry]) -> String {
    let mut out: Vec<u8> = Vec::new();
    crate::csv::write_row(&mut out, CSV_HEADER.iter().copied());
    for e in entries {
        let at = e.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let direction = match e.direction {
            Direction::LmsToSalesforce => "lms_to_salesforce",
            Direction::SalesforceToLms => "salesforce_to_lms",
        };
        let row = [
            at.as_str(),
            e.job.as_str(),
            direction,
            e.object.as_str(),
            e.lms_id.as_str(),
            e.learner_id.as_deref().unwrap_or(""),
            e.salesforce_id.as_deref().unwrap_or(""),
            e.outcome.as_str(),
            e.reason.as_deref().unwrap_or(""),
            e.message.as_deref().unwrap_or(""),
        ];
        crate::csv::write_row(&mut out, row);
    }
    // Only UTF-8 strings were written.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn entry(outcome: Outcome, learner: &str, minute: i64) -> ActivityEntry {
        ActivityEntry {
            at: datetime!(2026-11-23 10:00 UTC) + time::Duration::minutes(minute),
            job: "webhook:r1".into(),
            direction: Direction::LmsToSalesforce,
            object: "LMS_Enrollment__c".into(),
            lms_id: "E1".into(),
            learner_id: Some(learner.into()),
            salesforce_id: None,
            outcome,
            reason: Some("INVALID_FIELD".into()),
            message: Some("Foreign key \"L1\", not found".into()),
        }
    }

    #[test]
    fn filter_combines_every_criterion() {
        let e = entry(Outcome::Failed, "L1", 5);
        assert!(ActivityFilter::default().matches(&e));
        assert!(
            ActivityFilter { outcome: Some(Outcome::Failed), learner: Some("L1".into()), ..Default::default() }
                .matches(&e)
        );
        assert!(!ActivityFilter { outcome: Some(Outcome::Created), ..Default::default() }.matches(&e));
        assert!(!ActivityFilter { learner: Some("L2".into()), ..Default::default() }.matches(&e));
        assert!(!ActivityFilter { since: Some(datetime!(2026-11-23 10:06 UTC)), ..Default::default() }.matches(&e));
        assert!(!ActivityFilter { until: Some(datetime!(2026-11-23 10:04 UTC)), ..Default::default() }.matches(&e));
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let csv = to_csv(&[entry(Outcome::Failed, "L1", 0)]);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("at,job,direction,object,lms_id,learner_id,salesforce_id,outcome,reason,message")
        );
        assert_eq!(
            lines.next(),
            Some(
                "2026-11-23T10:00:00Z,webhook:r1,lms_to_salesforce,LMS_Enrollment__c,E1,L1,,failed,INVALID_FIELD,\"Foreign key \"\"L1\"\", not found\""
            )
        );
        assert_eq!(Outcome::parse("ambiguous"), Some(Outcome::Ambiguous));
        assert_eq!(Outcome::parse("nope"), None);
    }
}
