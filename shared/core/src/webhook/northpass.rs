//! Northpass's webhook dialect (SPEC §4.1).
//!
//! Header `X-Northpass-Hmac-SHA256`: the base64 (standard alphabet, padded)
//! HMAC-SHA256 of the raw body, keyed with the source's secret. No
//! timestamp: replays are caught by the event-id deduplication.
//!
//! Body: a JSON:API document, one event per delivery. `data` is the event
//! (Northpass names event types `<what>_events` and puts the event time in
//! `attributes.created_at`); the enrollment's state is in its attributes,
//! the enrollment, learner and course are relationships, and the learner
//! (`people`) and course (`courses`) resources are in `included`:
//!
//! ```json
//! {"data": {"id": "8f14e45f-…", "type": "course_progress_updated_events",
//!           "attributes": {"created_at": "2026-03-01T10:00:00Z", "updated_at": "2026-03-01T10:00:00Z",
//!                          "status": "in_progress", "progress": 40, "score": null,
//!                          "enrolled_at": "2026-02-01T09:00:00Z", "completed_at": null},
//!           "relationships": {"enrollment": {"data": {"id": "e-1", "type": "enrollments"}},
//!                             "learner": {"data": {"id": "p-1", "type": "people"}},
//!                             "course": {"data": {"id": "c-1", "type": "courses"}}}},
//!  "included": [{"id": "p-1", "type": "people", "attributes": {"email": "…", "first_name": "…", "last_name": "…"}},
//!               {"id": "c-1", "type": "courses", "attributes": {"name": "Onboarding 101"}}]}
//! ```
//!
//! Event types: `course_enrollment_created_events` → created,
//! `course_progress_updated_events` → updated, `course_completed_events` →
//! completed (Northpass's published samples show the envelope and the
//! `_events` naming, e.g. `learner_created_events`; these three names are
//! learnlink's for the enrollment events). `included` is read at the top
//! level as JSON:API places it, or inside `data` where Northpass's samples
//! put it. `relationships.person` is accepted for `learner`.
//!
//! Mapping: event id = `data.id`; enrollment id, learner and course = the
//! relationship ids; course title = the included course's `name`;
//! progress = `attributes.progress` (a number, 0-100); status =
//! `attributes.status` (`enrolled|in_progress|completed|expired`), else
//! derived from the type and the progress; updated_at =
//! `attributes.updated_at`, else the event's `created_at` (Northpass's own
//! time of the change); occurred_at = `attributes.created_at`.

use super::fields::{self, Encoding, Node};
use super::{EventKind, EventPayload, Headers, LmsEvent, Rejection, unknown_type};
use crate::model::{Enrollment, EnrollmentStatus};

pub const SIGNATURE_HEADER: &str = "X-Northpass-Hmac-SHA256";
pub const EVENT_TYPES: [&str; 3] =
    ["course_enrollment_created_events", "course_progress_updated_events", "course_completed_events"];
const STATUSES: [&str; 4] = ["enrolled", "in_progress", "completed", "expired"];

/// The header value Northpass sends for `body` signed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    fields::sign_base64(secret, body)
}

pub fn verify(headers: &(impl Headers + ?Sized), body: &[u8], secrets: &[String]) -> Result<(), Rejection> {
    fields::verify_header_hmac(SIGNATURE_HEADER, headers.get(SIGNATURE_HEADER), Encoding::Base64, body, secrets)
}

pub fn parse(body: &[u8]) -> Result<Vec<LmsEvent>, Rejection> {
    let v = fields::json(body)?;
    let r = fields::root(&v);
    r.object()?;
    let data = r.field("data");
    data.object()?;
    let id = data.field("id").id()?;
    let ty = data.field("type");
    let kind = match ty.str()? {
        "course_enrollment_created_events" => EventKind::EnrollmentCreated,
        "course_progress_updated_events" => EventKind::EnrollmentUpdated,
        "course_completed_events" => EventKind::EnrollmentCompleted,
        other => return Err(unknown_type(&ty.path, other, &EVENT_TYPES)),
    };
    let a = data.field("attributes");
    a.object()?;
    let occurred_at = a.field("created_at").time()?;
    let updated_at = a.field("updated_at").opt_time()?.unwrap_or(occurred_at);
    let progress = a.field("progress").opt_percent(false)?;
    let score = a.field("score").opt_number(false)?;
    let enrolled_at = a.field("enrolled_at").opt_time()?;
    let completed_at = a.field("completed_at").opt_time()?;
    let status_node = a.field("status");
    let status = match status_node.opt_str()? {
        Some("enrolled") => EnrollmentStatus::Enrolled,
        Some("in_progress") => EnrollmentStatus::InProgress,
        Some("completed") => EnrollmentStatus::Completed,
        Some("expired") => EnrollmentStatus::Expired,
        Some(other) => {
            return Err(status_node.err(format!("unknown status {other:?}; expected one of {}", STATUSES.join(", "))));
        }
        None if kind == EventKind::EnrollmentCompleted => EnrollmentStatus::Completed,
        None if progress.is_some_and(|p| p > 0.0) => EnrollmentStatus::InProgress,
        None => EnrollmentStatus::Enrolled,
    };

    let rel = data.field("relationships");
    rel.object()?;
    let enrollment_id = related(&rel.field("enrollment"), "enrollments")?;
    let learner_id = related(&rel.field_any(&["learner", "person"]), "people")?;
    let course_id = related(&rel.field("course"), "courses")?;

    let included = if r.field("included").is_present() { r.field("included") } else { data.field("included") };
    let mut course_title = None;
    if included.is_present() {
        for item in included.array()? {
            item.object()?;
            let (item_type, item_id) = (item.field("type").str()?, item.field("id").id()?);
            if item_type == "courses" && item_id == course_id {
                let attrs = item.field("attributes");
                course_title = attrs.field_any(&["name", "title"]).opt_str()?.map(str::to_string);
            }
        }
    }

    let enrollment = Enrollment {
        id: enrollment_id,
        learner_id,
        course_id,
        course_title,
        status,
        progress_pct: progress,
        score,
        enrolled_at,
        completed_at,
        updated_at,
    };
    Ok(vec![LmsEvent { id, kind, occurred_at, payload: EventPayload::Enrollment(enrollment) }])
}

/// The id of a to-one relationship `{"data": {"id", "type"}}`, checking the type.
fn related(rel: &Node<'_>, expected_type: &str) -> Result<String, Rejection> {
    let d = rel.field("data");
    if !rel.is_present() {
        return Err(rel.missing());
    }
    d.object()?;
    if let Some(t) = d.field("type").opt_str()?
        && t != expected_type
    {
        return Err(d.field("type").err(format!("expected {expected_type:?}, got {t:?}")));
    }
    d.field("id").id()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use time::macros::datetime;

    fn body(ty: &str) -> Value {
        json!({
            "data": {
                "id": "8f14e45f-ceea-467f-a8f0-000000000001",
                "type": ty,
                "links": {},
                "attributes": {
                    "created_at": "2026-03-01T10:00:05Z",
                    "updated_at": "2026-03-01T10:00:00Z",
                    "status": "in_progress",
                    "progress": 40,
                    "score": null,
                    "enrolled_at": "2026-02-01T09:00:00Z",
                    "completed_at": null
                },
                "relationships": {
                    "enrollment": {"data": {"id": "E0000007", "type": "enrollments"}},
                    "learner": {"data": {"id": "L000003", "type": "people"}},
                    "course": {"data": {"id": "C002", "type": "courses"}},
                    "school": {"data": {"id": "00000000-0000-0000-0000-000000000000", "type": "schools"}}
                }
            },
            "included": [
                {"id": "L000003", "type": "people", "attributes": {"email": "jill@example.com", "first_name": "Jill", "last_name": "Smith", "full_name": "Jill Smith"}},
                {"id": "C002", "type": "courses", "attributes": {"name": "Security Awareness 103"}}
            ]
        })
    }

    fn bytes(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn headers(sig: &str) -> Vec<(String, String)> {
        vec![("x-northpass-hmac-sha256".to_string(), sig.to_string())]
    }

    fn enrollment_of(ev: &LmsEvent) -> &Enrollment {
        match &ev.payload {
            EventPayload::Enrollment(e) => e,
            EventPayload::Certification(_) => panic!("not an enrollment"),
        }
    }

    #[test]
    fn a_progress_event_becomes_an_enrollment() {
        let ev = parse(&bytes(&body("course_progress_updated_events"))).unwrap().remove(0);
        assert_eq!(ev.id, "8f14e45f-ceea-467f-a8f0-000000000001");
        assert_eq!(ev.kind, EventKind::EnrollmentUpdated);
        assert_eq!(ev.occurred_at, datetime!(2026-03-01 10:00:05 UTC));
        assert_eq!(ev.updated_at(), datetime!(2026-03-01 10:00:00 UTC), "the vendor's updated_at");
        let e = enrollment_of(&ev);
        assert_eq!((e.id.as_str(), e.learner_id.as_str(), e.course_id.as_str()), ("E0000007", "L000003", "C002"));
        assert_eq!(e.course_title.as_deref(), Some("Security Awareness 103"));
        assert_eq!((e.status, e.progress_pct, e.score), (EnrollmentStatus::InProgress, Some(40.0), None));
        assert_eq!(e.enrolled_at, Some(datetime!(2026-02-01 09:00:00 UTC)));
    }

    #[test]
    fn variants_of_the_envelope() {
        // Completed, status derived from the type; included inside data; person for learner; no updated_at.
        let mut b = body("course_completed_events");
        let a = b["data"]["attributes"].as_object_mut().unwrap();
        a.remove("status");
        a.remove("updated_at");
        a.insert("score".into(), json!(92.5));
        let included = b.as_object_mut().unwrap().remove("included").unwrap();
        b["data"]["included"] = included;
        let rel = b["data"]["relationships"].as_object_mut().unwrap();
        let learner = rel.remove("learner").unwrap();
        rel.insert("person".into(), learner);
        let ev = parse(&bytes(&b)).unwrap().remove(0);
        let e = enrollment_of(&ev);
        assert_eq!((e.status, e.score), (EnrollmentStatus::Completed, Some(92.5)));
        assert_eq!(e.learner_id, "L000003");
        assert_eq!(e.course_title.as_deref(), Some("Security Awareness 103"));
        assert_eq!(ev.updated_at(), datetime!(2026-03-01 10:00:05 UTC), "the event time when no updated_at");

        // Created without status or progress: enrolled; no included at all: no title.
        let mut b = body("course_enrollment_created_events");
        let a = b["data"]["attributes"].as_object_mut().unwrap();
        a.remove("status");
        a.remove("progress");
        b.as_object_mut().unwrap().remove("included");
        let ev = parse(&bytes(&b)).unwrap().remove(0);
        assert_eq!(ev.kind, EventKind::EnrollmentCreated);
        assert_eq!(enrollment_of(&ev).status, EnrollmentStatus::Enrolled);
        assert_eq!(enrollment_of(&ev).course_title, None);
    }

    #[test]
    fn signature_is_base64_with_either_of_two_secrets() {
        let b = bytes(&body("course_progress_updated_events"));
        let secrets = vec!["old-0123456789abcdef".to_string(), "new-0123456789abcdef".to_string()];
        let sig = sign("new-0123456789abcdef", &b);
        assert_eq!(sig.len(), 44);
        assert_eq!(verify(&headers(&sig), &b, &secrets), Ok(()));
        assert_eq!(verify(&headers(&sign("old-0123456789abcdef", &b)), &b, &secrets), Ok(()));
    }

    #[test]
    fn bad_signatures_are_refused() {
        let b = bytes(&body("course_progress_updated_events"));
        let s = vec!["s3cret-0123456789abcdef".to_string()];
        let err = |h: &[(String, String)], b: &[u8]| verify(h, b, &s).unwrap_err();
        assert_eq!(err(&[], &b).code, "missing_signature");
        assert_eq!(err(&headers(&sign("other", &b)), &b).code, "invalid_signature");
        assert_eq!(err(&headers(&sign("s3cret-0123456789abcdef", &b)), b"{}").code, "invalid_signature");
        assert_eq!(err(&headers("!!!"), &b).code, "invalid_signature");
        // The hex form of the right HMAC is not what Northpass sends.
        assert_eq!(err(&headers(&fields::sign_hex("s3cret-0123456789abcdef", &b)), &b).code, "invalid_signature");
        assert_eq!(err(&headers(&sign("other", &b)), &b).status, 401);
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let t = "course_progress_updated_events";
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut b = body(t);
            f(&mut b);
            b
        };
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"data": []}), "malformed_body", "data: expected an object"),
            (json!({}), "malformed_body", "data: is missing"),
            (
                edit(&|b| b["data"]["type"] = json!("learner_created_events")),
                "unknown_event_type",
                "data.type: unknown event type \"learner_created_events\"",
            ),
            (
                edit(&|b| b["data"]["attributes"]["progress"] = json!("40")),
                "malformed_body",
                "data.attributes.progress: expected a number",
            ),
            (
                edit(&|b| b["data"]["attributes"]["progress"] = json!(-1)),
                "malformed_body",
                "data.attributes.progress: -1 is outside 0..=100",
            ),
            (
                edit(&|b| b["data"]["attributes"]["status"] = json!("paused")),
                "malformed_body",
                "data.attributes.status: unknown status \"paused\"",
            ),
            (
                edit(&|b| b["data"]["attributes"]["created_at"] = json!(17)),
                "malformed_body",
                "data.attributes.created_at: expected a string",
            ),
            (
                edit(&|b| {
                    b["data"]["attributes"].as_object_mut().unwrap().remove("created_at");
                }),
                "malformed_body",
                "data.attributes.created_at: is missing",
            ),
            (
                edit(&|b| {
                    b["data"]["relationships"].as_object_mut().unwrap().remove("enrollment");
                }),
                "malformed_body",
                "data.relationships.enrollment: is missing",
            ),
            (
                edit(&|b| b["data"]["relationships"]["course"]["data"]["type"] = json!("people")),
                "malformed_body",
                "data.relationships.course.data.type: expected \"courses\"",
            ),
            (
                edit(&|b| b["data"]["relationships"]["learner"]["data"]["id"] = json!("")),
                "malformed_body",
                "data.relationships.learner.data.id: must not be blank",
            ),
            (edit(&|b| b["included"] = json!({})), "malformed_body", "included: expected an array"),
            (
                edit(&|b| b["included"][1]["attributes"]["name"] = json!(3)),
                "malformed_body",
                "included[1].attributes.name: expected a string",
            ),
            (
                edit(&|b| {
                    b["data"].as_object_mut().unwrap().remove("id");
                }),
                "malformed_body",
                "data.id: is missing",
            ),
        ];
        for (b, code, needle) in cases {
            let r = parse(&bytes(&b)).unwrap_err();
            assert_eq!(r.status, 400, "{b}");
            assert_eq!(r.code, code, "{b}: {}", r.message);
            assert!(r.message.contains(needle), "{:?} lacks {needle:?}", r.message);
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
