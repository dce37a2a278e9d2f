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
    /// One canonical LMS event: a parked, held or replayed job (job 1).
    LmsEvent { tenant: TenantId, source: String, event: LmsEvent },
    /// The events of one webhook delivery (or a slice of a large one), in
    /// delivery order: one message per delivery keeps the queue shallow and
    /// lets a worker batch gather thousands of events.
    LmsEvents { tenant: TenantId, source: String, events: Vec<LmsEvent> },
    /// One page of an import run (SPEC §5.2): the run's first page, or the
    /// page after the previous one. Each page enqueues the next.
    ImportPage {
        tenant: TenantId,
        run_id: String,
        /// 1 for the first page.
        page: u32,
        #[serde(default)]
        dry_run: bool,
        step: ImportStep,
    },
    /// One shard of a backfill (SPEC §6.2), on the backfill queue.
    BackfillShard { tenant: TenantId, backfill_id: String, shard: u32 },
}

/// Where an import page comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum ImportStep {
    /// The run's first query, from the checkpoint minus the lookback.
    Start,
    /// Salesforce's `nextRecordsUrl`.
    SalesforceNext { url: String },
    /// The HRIS's `next` cursor.
    HrisNext { cursor: String },
}

impl SyncJob {
    pub fn tenant(&self) -> &TenantId {
        match self {
            SyncJob::LmsEvent { tenant, .. }
            | SyncJob::LmsEvents { tenant, .. }
            | SyncJob::ImportPage { tenant, .. }
            | SyncJob::BackfillShard { tenant, .. } => tenant,
        }
    }

    /// A stable id for the job, used as the SQS batch entry id's basis and in logs.
    pub fn describe(&self) -> String {
        match self {
            SyncJob::LmsEvent { tenant, event, .. } => format!("{tenant}/{}", event.id),
            SyncJob::LmsEvents { tenant, events, .. } => match (events.first(), events.len()) {
                (Some(e), 1) => format!("{tenant}/{}", e.id),
                (Some(e), n) => format!("{tenant}/{}+{}", e.id, n - 1),
                (None, _) => format!("{tenant}/(no events)"),
            },
            SyncJob::ImportPage { tenant, run_id, page, .. } => format!("{tenant}/import:{run_id}/page {page}"),
            SyncJob::BackfillShard { tenant, backfill_id, shard } => {
                format!("{tenant}/backfill:{backfill_id}/shard {shard}")
            }
        }
    }

    /// The canonical events the job carries, in order.
    pub fn events(&self) -> &[LmsEvent] {
        match self {
            SyncJob::LmsEvent { event, .. } => std::slice::from_ref(event),
            SyncJob::LmsEvents { events, .. } => events,
            SyncJob::ImportPage { .. } | SyncJob::BackfillShard { .. } => &[],
        }
    }

    /// The source the job's events came from.
    pub fn source(&self) -> &str {
        match self {
            SyncJob::LmsEvent { source, .. } | SyncJob::LmsEvents { source, .. } => source,
            SyncJob::ImportPage { .. } => "import",
            SyncJob::BackfillShard { .. } => "backfill",
        }
    }
}

/// The largest message body [`pack`] produces: SQS takes 256 KiB per
/// message and per SendMessageBatch call; this leaves room for attributes.
pub const MAX_MESSAGE_BYTES: usize = 200 * 1024;

/// One message of a packed delivery: its encoded body and the range of the
/// delivery's events it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    pub body: String,
    pub events: std::ops::Range<usize>,
}

/// The events of one delivery as few messages as fit in `max_bytes` each,
/// in order. A delivery is encoded once when it fits (the usual case); a
/// larger one is halved until every part fits. An event that alone exceeds
/// `max_bytes` travels alone (SQS then refuses it and the LMS is asked to
/// redeliver, so nothing is lost silently).
pub fn pack(tenant: &TenantId, source: &str, events: &[LmsEvent], max_bytes: usize) -> Vec<Packed> {
    let mut out = Vec::new();
    pack_range(tenant, source, events, 0..events.len(), max_bytes, &mut out);
    out
}

fn pack_range(
    tenant: &TenantId,
    source: &str,
    events: &[LmsEvent],
    range: std::ops::Range<usize>,
    max_bytes: usize,
    out: &mut Vec<Packed>,
) {
    if range.is_empty() {
        return;
    }
    let body = encode_events(tenant, source, &events[range.clone()]);
    if body.len() <= max_bytes || range.len() == 1 {
        out.push(Packed { body, events: range });
        return;
    }
    let mid = range.start + range.len() / 2;
    pack_range(tenant, source, events, range.start..mid, max_bytes, out);
    pack_range(tenant, source, events, mid..range.end, max_bytes, out);
}

/// `encode(&SyncJob::LmsEvents { .. })` without cloning the events.
fn encode_events(tenant: &TenantId, source: &str, events: &[LmsEvent]) -> String {
    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Borrowed<'a> {
        LmsEvents { tenant: &'a TenantId, source: &'a str, events: &'a [LmsEvent] },
    }
    serde_json::to_string(&Envelope { v: JOB_FORMAT_VERSION, job: Borrowed::LmsEvents { tenant, source, events } })
        .unwrap_or_default()
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

    fn event(n: usize, title_len: usize) -> LmsEvent {
        LmsEvent {
            id: format!("evt_{n}"),
            kind: EventKind::EnrollmentUpdated,
            occurred_at: datetime!(2026-11-23 10:00 UTC),
            payload: EventPayload::Enrollment(Enrollment {
                id: format!("E{n}"),
                learner_id: "L1".into(),
                course_id: "C1".into(),
                course_title: Some("x".repeat(title_len)),
                status: EnrollmentStatus::Enrolled,
                progress_pct: None,
                score: None,
                enrolled_at: None,
                completed_at: None,
                updated_at: datetime!(2026-11-23 10:00 UTC),
            }),
        }
    }

    #[test]
    fn a_delivery_that_fits_is_one_message_read_back_as_the_events() {
        let tenant = TenantId::parse("acme").unwrap();
        let events: Vec<_> = (0..100).map(|n| event(n, 20)).collect();
        let packed = pack(&tenant, "lms", &events, MAX_MESSAGE_BYTES);
        assert_eq!(packed.len(), 1);
        assert_eq!(packed[0].events, 0..100);
        let job = decode(&packed[0].body).unwrap();
        assert_eq!(job, SyncJob::LmsEvents { tenant: tenant.clone(), source: "lms".into(), events: events.clone() });
        assert_eq!(job.events(), &events[..]);
        assert_eq!(job.source(), "lms");
        assert_eq!(job.describe(), "acme/evt_0+99");
        assert!(pack(&tenant, "lms", &[], MAX_MESSAGE_BYTES).is_empty());
    }

    #[test]
    fn a_large_delivery_is_split_in_order_under_the_limit() {
        let tenant = TenantId::parse("acme").unwrap();
        let events: Vec<_> = (0..37).map(|n| event(n, 1000)).collect();
        let packed = pack(&tenant, "lms", &events, 8 * 1024);
        assert!(packed.len() >= 5, "{}", packed.len());
        let mut next = 0;
        let mut back = Vec::new();
        for p in &packed {
            assert!(p.body.len() <= 8 * 1024, "{}", p.body.len());
            assert_eq!(p.events.start, next);
            next = p.events.end;
            back.extend(decode(&p.body).unwrap().events().to_vec());
        }
        assert_eq!(next, 37);
        assert_eq!(back, events);
        // An event larger than the limit travels alone (SQS refuses it; the
        // LMS is asked to redeliver).
        let big = vec![event(1, 10), event(2, 20_000), event(3, 10)];
        let packed = pack(&tenant, "lms", &big, 8 * 1024);
        assert_eq!(packed.iter().map(|p| p.events.clone()).collect::<Vec<_>>(), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn poison_is_named() {
        assert!(matches!(decode("garbage"), Err(JobDecodeError::NotAJob(_))));
        assert_eq!(decode(r#"{"v":9,"kind":"x"}"#), Err(JobDecodeError::UnknownVersion(9)));
        assert!(matches!(decode(r#"{"v":1,"kind":"nope"}"#), Err(JobDecodeError::NotAJob(_))));
    }
}
