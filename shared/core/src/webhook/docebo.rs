//! Docebo's webhook dialect (SPEC §4.1).
//!
//! Docebo groups events of one type in one delivery ("send multiple
//! payloads"), at most 25 per grouping per its documentation. Every message
//! has Docebo's common properties `message_id`, `webhook_id`,
//! `original_domain`, `event`, `fired_by_batch_action`, and either one
//! `payload` or, grouped, a `payloads` array:
//!
//! ```json
//! {"message_id": "wh-5f1d7c", "webhook_id": 5, "original_domain": "acme.docebosaas.com",
//!  "event": "course.enrollment.completed", "fired_by_batch_action": false,
//!  "payloads": [{"fired_at": "2026-03-01 10:00:00", "user_id": 13006, "username": "jill.smith",
//!                "course_id": 91, "course_code": "SEC-103", "course_name": "Security Awareness 103",
//!                "enrollment_date": "2026-02-01 09:00:00", "completion_date": "2026-03-01 10:00:00",
//!                "status": "completed", "level": "student", "score": 92.5}]}
//! ```
//!
//! Authentication: Docebo lets the administrator set a client secret on
//! the webhook and signs deliveries with it. learnlink expects
//! `X-Docebo-Signature: <hex HMAC-SHA256 of the raw body>` keyed with the
//! source's secret (a `sha256=` prefix is tolerated), compared in constant
//! time against each active secret. The header name and encoding are
//! learnlink's reading of that scheme: the documentation at hand names the
//! shared secret but not the header, so check it against a real delivery
//! before relying on it in production.
//!
//! Events: `course.enrollment.created` → created, `course.enrollment.updated`
//! → updated, `course.enrollment.completed` → completed. A delivery with
//! more than 25 payloads, none, or a payload whose own `event` differs from
//! the message's (mixed types) is refused with 400.
//!
//! Mapping: Docebo enrollments have no id of their own (one per user and
//! course), so the enrollment id is `<user_id>:<course_id>`
//! ([`super::natural_enrollment_id`]); learner = `user_id`, course =
//! `course_id`, title = `course_name`. Dates are Docebo's
//! `YYYY-MM-DD HH:MM:SS` in UTC (RFC 3339 is accepted too). updated_at =
//! `fired_at`, Docebo's time of the change; enrolled_at =
//! `enrollment_date`; completed_at = `completion_date`. Status from
//! `status` (`subscribed` → enrolled, `in_progress`, `completed`), else from
//! the event; an enrollment past its `date_expire_validity` that is not
//! completed is expired. Score = `score`; progress is 100 for completed
//! enrollments and otherwise unknown (Docebo sends no percentage).
//! Event id = `message_id` for a single payload, `<message_id>#<index>` in a
//! group: Docebo retries a message as it was, so a retry is recognised.

use super::fields::{self, Encoding, Node};
use super::{EventKind, EventPayload, Headers, LmsEvent, Rejection, natural_enrollment_id, unknown_type};
use crate::model::{Enrollment, EnrollmentStatus};

pub const SIGNATURE_HEADER: &str = "X-Docebo-Signature";
pub const EVENT_TYPES: [&str; 3] =
    ["course.enrollment.created", "course.enrollment.updated", "course.enrollment.completed"];
/// Most payloads Docebo groups into one delivery.
pub const MAX_PAYLOADS: usize = 25;
const STATUSES: [&str; 3] = ["subscribed", "in_progress", "completed"];

/// The header value for `body` signed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    fields::sign_hex(secret, body)
}

pub fn verify(headers: &(impl Headers + ?Sized), body: &[u8], secrets: &[String]) -> Result<(), Rejection> {
    fields::verify_header_hmac(SIGNATURE_HEADER, headers.get(SIGNATURE_HEADER), Encoding::Hex, body, secrets)
}

pub fn parse(body: &[u8]) -> Result<Vec<LmsEvent>, Rejection> {
    let v = fields::json(body)?;
    let r = fields::root(&v);
    r.object()?;
    let message_id = r.field("message_id").id()?;
    let event = r.field("event");
    let event_name = event.str()?;
    let kind = kind_of(event_name).ok_or_else(|| unknown_type(&event.path, event_name, &EVENT_TYPES))?;
    r.field("fired_by_batch_action").opt_bool()?;
    let (single, group) = (r.field("payload"), r.field("payloads"));
    let items: Vec<(String, Node<'_>)> = match (single.is_present(), group.is_present()) {
        (true, true) => return Err(r.err("has both payload and payloads; a Docebo message carries one of them")),
        (false, false) => return Err(group.err("is missing (and so is payload)")),
        (true, false) => vec![(message_id.clone(), single)],
        (false, true) => {
            let items = group.array()?;
            if items.is_empty() {
                return Err(group.err("the delivery contains no events"));
            }
            if items.len() > MAX_PAYLOADS {
                return Err(
                    group.err(format!("{} events in one delivery; Docebo groups at most {MAX_PAYLOADS}", items.len()))
                );
            }
            items.into_iter().enumerate().map(|(i, n)| (format!("{message_id}#{i}"), n)).collect()
        }
    };
    let mut events = Vec::with_capacity(items.len());
    for (id, p) in items {
        p.object()?;
        // A grouped payload may repeat its event; it must be the message's.
        if let Some(own) = p.field("event").opt_str()?
            && own != event_name
        {
            return Err(p.field("event").err(format!(
                "{own:?} differs from the message's {event_name:?}; a Docebo delivery groups events of one type"
            )));
        }
        let (enrollment, occurred_at) = enrollment(&p, kind)?;
        events.push(LmsEvent { id, kind, occurred_at, payload: EventPayload::Enrollment(enrollment) });
    }
    Ok(events)
}

fn kind_of(event: &str) -> Option<EventKind> {
    match event {
        "course.enrollment.created" => Some(EventKind::EnrollmentCreated),
        "course.enrollment.updated" => Some(EventKind::EnrollmentUpdated),
        "course.enrollment.completed" => Some(EventKind::EnrollmentCompleted),
        _ => None,
    }
}

fn enrollment(p: &Node<'_>, kind: EventKind) -> Result<(Enrollment, time::OffsetDateTime), Rejection> {
    let fired_at = p.field("fired_at").time()?;
    let learner_id = p.field("user_id").id()?;
    let course_id = p.field("course_id").id()?;
    let course_title = p.field("course_name").opt_str()?.map(str::to_string);
    let enrolled_at = p.field("enrollment_date").opt_time()?;
    let completed_at = p.field("completion_date").opt_time()?;
    let expires = p.field_any(&["date_expire_validity", "enrollment_date_expire_validity"]).opt_time()?;
    let score = p.field("score").opt_number(true)?;
    let status_node = p.field("status");
    let mut status = match status_node.opt_str()? {
        Some("subscribed" | "enrolled") => EnrollmentStatus::Enrolled,
        Some("in_progress") => EnrollmentStatus::InProgress,
        Some("completed") => EnrollmentStatus::Completed,
        Some(other) => {
            return Err(status_node
                .err(format!("unsupported enrollment status {other:?}; expected one of {}", STATUSES.join(", "))));
        }
        None => match kind {
            EventKind::EnrollmentCompleted => EnrollmentStatus::Completed,
            EventKind::EnrollmentCreated => EnrollmentStatus::Enrolled,
            _ => EnrollmentStatus::InProgress,
        },
    };
    if status != EnrollmentStatus::Completed && expires.is_some_and(|e| e <= fired_at) {
        status = EnrollmentStatus::Expired;
    }
    let completed = status == EnrollmentStatus::Completed;
    // The natural key becomes the Salesforce external id: checked like the ids it joins.
    let id = natural_enrollment_id(&learner_id, &course_id);
    fields::check_id(&format!("{}.user_id:course_id (the enrollment id)", p.path), &id)?;
    let enrollment = Enrollment {
        id,
        learner_id,
        course_id,
        course_title,
        status,
        progress_pct: completed.then_some(100.0),
        score,
        enrolled_at,
        completed_at: if completed { completed_at } else { None },
        updated_at: fired_at,
    };
    Ok((enrollment, fired_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use time::macros::datetime;

    fn payload(user: u32, status: &str) -> Value {
        json!({
            "fired_at": "2026-03-01 10:00:00",
            "user_id": user,
            "username": format!("user{user}"),
            "course_id": 91,
            "course_code": "SEC-103",
            "course_name": "Security Awareness 103",
            "enrollment_date": "2026-02-01 09:00:00",
            "completion_date": if status == "completed" { json!("2026-03-01 10:00:00") } else { Value::Null },
            "status": status,
            "level": "student",
            "score": if status == "completed" { json!(92.5) } else { Value::Null }
        })
    }

    fn message(event: &str, payloads: Vec<Value>) -> Value {
        json!({"message_id": "wh-5f1d7c", "webhook_id": 5, "original_domain": "acme.docebosaas.com",
               "event": event, "fired_by_batch_action": true, "payloads": payloads})
    }

    fn bytes(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn headers(sig: &str) -> Vec<(String, String)> {
        vec![("x-docebo-signature".to_string(), sig.to_string())]
    }

    fn enrollment_of(ev: &LmsEvent) -> &Enrollment {
        match &ev.payload {
            EventPayload::Enrollment(e) => e,
            EventPayload::Certification(_) => panic!("not an enrollment"),
        }
    }

    #[test]
    fn a_single_payload_is_one_event() {
        let b = json!({"message_id": "wh-1", "webhook_id": 5, "original_domain": "acme.docebosaas.com",
                       "event": "course.enrollment.completed", "fired_by_batch_action": false,
                       "payload": payload(13006, "completed")});
        let evs = parse(&bytes(&b)).unwrap();
        assert_eq!(evs.len(), 1);
        let ev = &evs[0];
        assert_eq!((ev.id.as_str(), ev.kind), ("wh-1", EventKind::EnrollmentCompleted));
        let e = enrollment_of(ev);
        assert_eq!((e.id.as_str(), e.learner_id.as_str(), e.course_id.as_str()), ("13006:91", "13006", "91"));
        assert_eq!(e.course_title.as_deref(), Some("Security Awareness 103"));
        assert_eq!((e.status, e.progress_pct, e.score), (EnrollmentStatus::Completed, Some(100.0), Some(92.5)));
        assert_eq!(e.enrolled_at, Some(datetime!(2026-02-01 09:00:00 UTC)));
        assert_eq!(e.completed_at, Some(datetime!(2026-03-01 10:00:00 UTC)));
        assert_eq!(ev.updated_at(), datetime!(2026-03-01 10:00:00 UTC), "Docebo's fired_at");
    }

    #[test]
    fn a_group_of_25_is_25_events_with_distinct_ids() {
        let b = message("course.enrollment.updated", (0..25).map(|u| payload(u, "in_progress")).collect());
        let evs = parse(&bytes(&b)).unwrap();
        assert_eq!(evs.len(), 25);
        let ids: std::collections::HashSet<&str> = evs.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 25);
        assert_eq!(evs[24].id, "wh-5f1d7c#24");
        assert!(evs.iter().all(|e| e.kind == EventKind::EnrollmentUpdated));
        assert_eq!(enrollment_of(&evs[3]).status, EnrollmentStatus::InProgress);
        assert_eq!(enrollment_of(&evs[3]).progress_pct, None);
        // Parsing the same message again gives the same ids: a retry is a duplicate.
        assert_eq!(parse(&bytes(&b)).unwrap(), evs);
    }

    #[test]
    fn twenty_six_are_refused() {
        let b = message("course.enrollment.created", (0..26).map(|u| payload(u, "subscribed")).collect());
        let r = parse(&bytes(&b)).unwrap_err();
        assert_eq!((r.status, r.code), (400, "malformed_body"));
        assert_eq!(r.message, "payloads: 26 events in one delivery; Docebo groups at most 25");
    }

    #[test]
    fn mixed_types_are_refused() {
        let mut ps: Vec<Value> = (0..3).map(|u| payload(u, "in_progress")).collect();
        ps[1]["event"] = json!("course.enrollment.updated");
        ps[2]["event"] = json!("course.enrollment.completed");
        let r = parse(&bytes(&message("course.enrollment.updated", ps))).unwrap_err();
        assert_eq!((r.status, r.code), (400, "malformed_body"));
        assert!(r.message.starts_with("payloads[2].event: \"course.enrollment.completed\" differs"), "{}", r.message);
    }

    #[test]
    fn statuses_and_expiry() {
        let mut p = payload(1, "subscribed");
        p["date_expire_validity"] = json!("2026-02-15 00:00:00");
        let ev = parse(&bytes(&message("course.enrollment.updated", vec![p]))).unwrap().remove(0);
        assert_eq!(enrollment_of(&ev).status, EnrollmentStatus::Expired);
        let mut p = payload(1, "subscribed");
        p.as_object_mut().unwrap().remove("status");
        let ev = parse(&bytes(&message("course.enrollment.created", vec![p]))).unwrap().remove(0);
        assert_eq!(enrollment_of(&ev).status, EnrollmentStatus::Enrolled);
        let mut p = payload(1, "in_progress");
        p["fired_at"] = json!("2026-03-01T10:00:00.250Z");
        let ev = parse(&bytes(&message("course.enrollment.updated", vec![p]))).unwrap().remove(0);
        assert_eq!(ev.updated_at(), datetime!(2026-03-01 10:00:00.25 UTC), "RFC 3339 accepted");
    }

    #[test]
    fn signature_with_either_of_two_secrets() {
        let b = bytes(&message("course.enrollment.updated", vec![payload(1, "in_progress")]));
        let secrets = vec!["old-0123456789abcdef".to_string(), "new-0123456789abcdef".to_string()];
        assert_eq!(verify(&headers(&sign("new-0123456789abcdef", &b)), &b, &secrets), Ok(()));
        assert_eq!(verify(&headers(&sign("old-0123456789abcdef", &b)), &b, &secrets), Ok(()));
        let prefixed = format!("sha256={}", sign("old-0123456789abcdef", &b));
        assert_eq!(verify(&headers(&prefixed), &b, &secrets), Ok(()));
    }

    #[test]
    fn bad_signatures_are_refused() {
        let b = bytes(&message("course.enrollment.updated", vec![payload(1, "in_progress")]));
        let s = vec!["s3cret-0123456789abcdef".to_string()];
        let err = |h: &[(String, String)], b: &[u8]| verify(h, b, &s).unwrap_err();
        assert_eq!(err(&[], &b).code, "missing_signature");
        assert_eq!(err(&headers(&sign("other", &b)), &b).code, "invalid_signature");
        assert_eq!(err(&headers(&sign("s3cret-0123456789abcdef", &b)), b"{}").code, "invalid_signature");
        assert_eq!(err(&headers("0123"), &b).code, "invalid_signature");
        assert_eq!(err(&headers(&sign("other", &b)), &b).status, 401);
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let ok = || message("course.enrollment.updated", vec![payload(1, "in_progress")]);
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut b = ok();
            f(&mut b);
            b
        };
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!("x"), "malformed_body", "the body: expected an object"),
            (
                edit(&|b| b["event"] = json!("user.created")),
                "unknown_event_type",
                "event: unknown event type \"user.created\"",
            ),
            (
                edit(&|b| {
                    b.as_object_mut().unwrap().remove("event");
                }),
                "malformed_body",
                "event: is missing",
            ),
            (
                edit(&|b| {
                    b.as_object_mut().unwrap().remove("message_id");
                }),
                "malformed_body",
                "message_id: is missing",
            ),
            (
                edit(&|b| {
                    b.as_object_mut().unwrap().remove("payloads");
                }),
                "malformed_body",
                "payloads: is missing",
            ),
            (edit(&|b| b["payload"] = json!({})), "malformed_body", "has both payload and payloads"),
            (edit(&|b| b["payloads"] = json!([])), "malformed_body", "payloads: the delivery contains no events"),
            (edit(&|b| b["payloads"] = json!({})), "malformed_body", "payloads: expected an array"),
            (edit(&|b| b["payloads"][0]["user_id"] = json!(null)), "malformed_body", "payloads[0].user_id: is missing"),
            (
                edit(&|b| b["payloads"][0]["fired_at"] = json!("01/03/2026")),
                "malformed_body",
                "payloads[0].fired_at: \"01/03/2026\" is not a timestamp",
            ),
            (
                edit(&|b| b["payloads"][0]["status"] = json!("suspended")),
                "malformed_body",
                "payloads[0].status: unsupported enrollment status \"suspended\"",
            ),
            (
                edit(&|b| b["payloads"][0]["score"] = json!("high")),
                "malformed_body",
                "payloads[0].score: expected a number",
            ),
            (edit(&|b| b["payloads"][0] = json!(7)), "malformed_body", "payloads[0]: expected an object"),
            (
                // Found by the webhook_dialects fuzz check: 200 + 1 + 100 characters.
                edit(&|b| {
                    b["payloads"][0]["user_id"] = json!("u".repeat(200));
                    b["payloads"][0]["course_id"] = json!("c".repeat(100));
                }),
                "malformed_body",
                "payloads[0].user_id:course_id (the enrollment id): longer than 255 characters",
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
