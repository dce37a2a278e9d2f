//! Messages on the sync and backfill queues. Every message carries a format
//! version so a deployment can drain messages written by an older one.

use crate::model::TenantId;
use crate::webhook::LmsEvent;
use serde::{Deserialize, Serialize};

pub const JOB_FORMAT_VERSION: u32 = 1;

/// A unit of work for sync-worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyncJob {
    /// One canonical LMS event from webhook-ingest (job 1).
    LmsEvent { tenant: TenantId, source: String, event: LmsEvent },
}

impl SyncJob {
    pub fn tenant(&self) -> &TenantId {
        match self {
            SyncJob::LmsEvent { tenant, .. } => tenant,
        }
    }

    /// A stable id for the job, used as the SQS batch entry id's basis and in logs.
    pub fn describe(&self) -> String {
        match self {
            SyncJob::LmsEvent { tenant, event, .. } => format!("{tenant}/{}", event.id),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    job: T,
}

pub fn encode(job: &SyncJob) -> String {
    // A derive-serialized enum of strings and numbers cannot fail to serialize.
    serde_json::to_string(&Envelope { v: JOB_FORMAT_VERSION, job }).unwrap_or_default()
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JobDecodeError {
    #[error("the message is not a learnlink job: {0}")]
    NotAJob(String),
    #[error("the message has job format version {0}; this worker reads version {JOB_FORMAT_VERSION}")]
    UnknownVersion(u32),
}

pub fn decode(body: &str) -> Result<SyncJob, JobDecodeError> {
    #[derive(Deserialize)]
    struct V {
        v: u32,
    }
    let v: V = serde_json::from_str(body).map_err(|e| JobDecodeError::NotAJob(e.to_string()))?;
    if v.v != JOB_FORMAT_VERSION {
        return Err(JobDecodeError::UnknownVersion(v.v));
    }
    let env: Envelope<SyncJob> = serde_json::from_str(body).map_err(|e| JobDecodeError::NotAJob(e.to_string()))?;
    Ok(env.job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Enrollment, EnrollmentStatus};
    use crate::webhook::{EventKind, EventPayload};
    use time::macros::datetime;

    #[test]
    fn round_trip() {
        let job = SyncJob::LmsEvent {
            tenant: TenantId::parse("acme").unwrap(),
            source: "lms".into(),
            event: LmsEvent {
                id: "evt_1".into(),
                kind: EventKind::EnrollmentCreated,
                occurred_at: datetime!(2026-11-23 10:00 UTC),
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
                    updated_at: datetime!(2026-11-23 10:00 UTC),
                }),
            },
        };
        let s = encode(&job);
        assert!(s.starts_with(r#"{"v":1,"kind":"lms_event""#), "{s}");
        assert_eq!(decode(&s).unwrap(), job);
    }

    #[test]
    fn poison_is_named() {
        assert!(matches!(decode("garbage"), Err(JobDecodeError::NotAJob(_))));
        assert_eq!(decode(r#"{"v":9,"kind":"x"}"#), Err(JobDecodeError::UnknownVersion(9)));
        assert!(matches!(decode(r#"{"v":1,"kind":"nope"}"#), Err(JobDecodeError::NotAJob(_))));
    }
}
