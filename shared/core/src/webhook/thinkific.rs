//! Thinkific's webhook dialect (SPEC §4.1).
//!
//! Header `X-Thinkific-Hmac-Sha256`: the hex HMAC-SHA256 of the raw body,
//! keyed with the source's secret (Thinkific signs with the app's API
//! secret). There is no timestamp in the signature, so replays are caught
//! by the event-id deduplication (7 days) instead of a time window.
//!
//! Body, one event per delivery, as Thinkific sends it:
//!
//! ```json
//! {"id": "20190131192004041953291", "resource": "enrollment", "action": "progress",
//!  "tenant_id": "59", "created_at": "2019-01-31T19:20:04.019Z",
//!  "payload": {"id": 4, "user": {"id": 95, "email": "john@doe.com", "first_name": "John", "last_name": "Doe"},
//!              "course": {"id": 25, "name": "Lorem ipsum"}, "course_id": 25,
//!              "percentage_completed": "24.0", "activated_at": "...", "started_at": "...",
//!              "completed_at": null, "created_at": "...", "updated_at": "...", "expiry_date": null,
//!              "free_trial": false}}
//! ```
//!
//! Mapping to the canonical enrollment:
//! - event id = `id` (Thinkific's event id); kind: `enrollment.created` →
//!   created, `enrollment.progress` → updated, `enrollment.completed` →
//!   completed; other resources or actions → 400 `unknown_event_type`;
//! - enrollment id = `payload.id`, learner = `payload.user.id` (or
//!   `payload.user_id`), course = `payload.course.id` (or `payload.course_id`),
//!   course title = `payload.course.name`; numeric ids become strings;
//! - progress = `payload.percentage_completed`, a percentage 0-100 that
//!   Thinkific quotes (`"24.0"`); a number is accepted too;
//! - status: `expired: true` (present in Thinkific's enrollment resource) →
//!   expired; `enrollment.completed` or 100 % → completed; above 0 % → in
//!   progress; else enrolled. `completed_at` is kept for completed
//!   enrollments only (Thinkific fills it on others in its samples);
//! - enrolled_at = `payload.activated_at`, else `payload.created_at`;
//! - updated_at = `payload.updated_at` (Thinkific's own; required: it orders
//!   events, SPEC §4.2); occurred_at = `created_at` of the event;
//! - no score: Thinkific enrollments carry none.

use super::fields::{self, Encoding, Node};
use super::{EventKind, EventPayload, Headers, LmsEvent, Rejection, unknown_type};
use crate::model::{Enrollment, EnrollmentStatus};

pub const SIGNATURE_HEADER: &str = "X-Thinkific-Hmac-Sha256";
/// The `resource.action` pairs learnlink accepts.
pub const EVENT_TYPES: [&str; 3] = ["enrollment.created", "enrollment.progress", "enrollment.completed"];

/// The header value Thinkific sends for `body` signed with `secret`.
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
    let id = r.field("id").id()?;
    let resource = r.field("resource").str()?;
    let action = r.field("action").str()?;
    let kind = match (resource, action) {
        ("enrollment", "created") => EventKind::EnrollmentCreated,
        ("enrollment", "progress") => EventKind::EnrollmentUpdated,
        ("enrollment", "completed") => EventKind::EnrollmentCompleted,
        _ => return Err(unknown_type("resource.action", &format!("{resource}.{action}"), &EVENT_TYPES)),
    };
    r.field("tenant_id").id()?;
    let occurred_at = r.field("created_at").time()?;
    let p = r.field("payload");
    p.object()?;
    let enrollment = enrollment(&p, kind)?;
    Ok(vec![LmsEvent { id, kind, occurred_at, payload: EventPayload::Enrollment(enrollment) }])
}

fn enrollment(p: &Node<'_>, kind: EventKind) -> Result<Enrollment, Rejection> {
    let id = p.field("id").id()?;
    let user = p.field("user");
    let learner_id = if user.is_present() {
        user.object()?;
        user.field("id").id()?
    } else if p.field("user_id").is_present() {
        p.field("user_id").id()?
    } else {
        return Err(user.missing());
    };
    let course = p.field("course");
    let (course_id, course_title) = if course.is_present() {
        course.object()?;
        (course.field("id").id()?, course.field("name").opt_str()?.map(str::to_string))
    } else if p.field("course_id").is_present() {
        (p.field("course_id").id()?, None)
    } else {
        return Err(course.missing());
    };
    let pct = p.field("percentage_completed").opt_percent(true)?;
    let expired = p.field("expired").opt_bool()?.unwrap_or(false);
    let completed_at = p.field("completed_at").opt_time()?;
    let activated_at = p.field("activated_at").opt_time()?;
    let created_at = p.field("created_at").opt_time()?;
    p.field("started_at").opt_time()?;
    p.field("expiry_date").opt_time()?;
    let updated_at = p.field("updated_at").time()?;
    let status = if expired {
        EnrollmentStatus::Expired
    } else if kind == EventKind::EnrollmentCompleted || pct.is_some_and(|p| p >= 100.0) {
        EnrollmentStatus::Completed
    } else if pct.is_some_and(|p| p > 0.0) {
        EnrollmentStatus::InProgress
    } else {
        EnrollmentStatus::Enrolled
    };
    let completed = status == EnrollmentStatus::Completed;
    Ok(Enrollment {
        id,
        learner_id,
        course_id,
        course_title,
        status,
        progress_pct: if completed { Some(pct.unwrap_or(100.0)) } else { pct },
        score: None,
        enrolled_at: activated_at.or(created_at),
        completed_at: if completed { completed_at } else { None },
        updated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use time::macros::datetime;

    fn body(action: &str) -> Value {
        json!({
            "id": "20260301100000123000042",
            "resource": "enrollment",
            "action": action,
            "tenant_id": "59",
            "created_at": "2026-03-01T10:00:00.123Z",
            "payload": {
                "activated_at": "2026-02-01T09:00:00.000Z",
                "completed_at": "2026-03-01T10:00:00.000Z",
                "course": {"id": 25, "name": "Security Awareness 201"},
                "course_id": 25,
                "created_at": "2026-02-01T09:00:00.000Z",
                "expiry_date": null,
                "free_trial": false,
                "id": 4,
                "percentage_completed": "24.0",
                "started_at": "2026-02-02T09:00:00.000Z",
                "updated_at": "2026-03-01T10:00:00.000Z",
                "user": {"email": "john@doe.com", "first_name": "John", "id": 95, "last_name": "Doe"}
            }
        })
    }

    fn bytes(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn headers(sig: &str) -> Vec<(String, String)> {
        vec![("x-thinkific-hmac-sha256".to_string(), sig.to_string())]
    }

    fn enrollment_of(ev: &LmsEvent) -> &Enrollment {
        match &ev.payload {
            EventPayload::Enrollment(e) => e,
            EventPayload::Certification(_) => panic!("not an enrollment"),
        }
    }

    #[test]
    fn a_progress_event_becomes_an_in_progress_enrollment() {
        let evs = parse(&bytes(&body("progress"))).unwrap();
        assert_eq!(evs.len(), 1);
        let ev = &evs[0];
        assert_eq!(ev.id, "20260301100000123000042");
        assert_eq!(ev.kind, EventKind::EnrollmentUpdated);
        assert_eq!(ev.occurred_at, datetime!(2026-03-01 10:00:00.123 UTC));
        let e = enrollment_of(ev);
        assert_eq!((e.id.as_str(), e.learner_id.as_str(), e.course_id.as_str()), ("4", "95", "25"));
        assert_eq!(e.course_title.as_deref(), Some("Security Awareness 201"));
        assert_eq!(e.status, EnrollmentStatus::InProgress);
        assert_eq!(e.progress_pct, Some(24.0));
        assert_eq!(e.completed_at, None, "Thinkific's completed_at is ignored before completion");
        assert_eq!(e.enrolled_at, Some(datetime!(2026-02-01 09:00:00 UTC)));
        assert_eq!(ev.updated_at(), datetime!(2026-03-01 10:00:00 UTC), "the vendor's updated_at");
    }

    #[test]
    fn created_completed_and_expired() {
        let mut b = body("created");
        b["payload"]["percentage_completed"] = json!("0");
        let e = parse(&bytes(&b)).unwrap().remove(0);
        assert_eq!(e.kind, EventKind::EnrollmentCreated);
        assert_eq!(enrollment_of(&e).status, EnrollmentStatus::Enrolled);

        let mut b = body("completed");
        b["payload"]["percentage_completed"] = json!(100.0);
        let e = parse(&bytes(&b)).unwrap().remove(0);
        assert_eq!(e.kind, EventKind::EnrollmentCompleted);
        let en = enrollment_of(&e);
        assert_eq!(en.status, EnrollmentStatus::Completed);
        assert_eq!(en.completed_at, Some(datetime!(2026-03-01 10:00:00 UTC)));
        assert_eq!(en.progress_pct, Some(100.0));

        let mut b = body("progress");
        b["payload"]["expired"] = json!(true);
        assert_eq!(enrollment_of(&parse(&bytes(&b)).unwrap()[0]).status, EnrollmentStatus::Expired);

        // user_id / course_id without the nested objects.
        let mut b = body("progress");
        let p = b["payload"].as_object_mut().unwrap();
        p.remove("user");
        p.remove("course");
        p.insert("user_id".into(), json!("L000001"));
        let e = parse(&bytes(&b)).unwrap().remove(0);
        assert_eq!((enrollment_of(&e).learner_id.as_str(), enrollment_of(&e).course_id.as_str()), ("L000001", "25"));
    }

    #[test]
    fn signature_with_either_of_two_secrets() {
        let b = bytes(&body("progress"));
        let secrets = vec!["old-0123456789abcdef".to_string(), "new-0123456789abcdef".to_string()];
        assert_eq!(verify(&headers(&sign("new-0123456789abcdef", &b)), &b, &secrets), Ok(()));
        assert_eq!(verify(&headers(&sign("old-0123456789abcdef", &b)), &b, &secrets), Ok(()));
        assert_eq!(verify(&headers(&sign("old-0123456789abcdef", &b).to_uppercase()), &b, &secrets), Ok(()));
    }

    #[test]
    fn bad_signatures_are_refused() {
        let b = bytes(&body("progress"));
        let s = vec!["s3cret-0123456789abcdef".to_string()];
        let code = |h: &[(String, String)], b: &[u8]| verify(h, b, &s).unwrap_err();
        assert_eq!(code(&[], &b).code, "missing_signature");
        assert_eq!(code(&headers(""), &b).code, "missing_signature");
        assert_eq!(code(&headers(&sign("other", &b)), &b).code, "invalid_signature");
        assert_eq!(code(&headers(&sign("s3cret-0123456789abcdef", &b)), b"{}").code, "invalid_signature");
        assert_eq!(code(&headers("zz"), &b).code, "invalid_signature");
        assert_eq!(code(&headers(&fields::sign_base64("s3cret-0123456789abcdef", &b)), &b).code, "invalid_signature");
        assert_eq!(code(&headers(&sign("other", &b)), &b).status, 401);
        assert_eq!(verify(&headers(&sign("x", &b)), &b, &[]).unwrap_err().status, 401);
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!([]), "malformed_body", "the body: expected an object"),
            (
                {
                    let mut b = body("progress");
                    b["action"] = json!("trial");
                    b
                },
                "unknown_event_type",
                "resource.action: unknown event type \"enrollment.trial\"",
            ),
            (
                {
                    let mut b = body("progress");
                    b["resource"] = json!("order");
                    b["action"] = json!("created");
                    b
                },
                "unknown_event_type",
                "order.created",
            ),
            (
                {
                    let mut b = body("progress");
                    b.as_object_mut().unwrap().remove("id");
                    b
                },
                "malformed_body",
                "id: is missing",
            ),
            (
                {
                    let mut b = body("progress");
                    b.as_object_mut().unwrap().remove("tenant_id");
                    b
                },
                "malformed_body",
                "tenant_id: is missing",
            ),
            (
                {
                    let mut b = body("progress");
                    b["created_at"] = json!("yesterday");
                    b
                },
                "malformed_body",
                "created_at: \"yesterday\" is not a timestamp",
            ),
            (
                {
                    let mut b = body("progress");
                    b["payload"] = json!("x");
                    b
                },
                "malformed_body",
                "payload: expected an object",
            ),
            (
                {
                    let mut b = body("progress");
                    b["payload"]["percentage_completed"] = json!("lots");
                    b
                },
                "malformed_body",
                "payload.percentage_completed: expected a number",
            ),
            (
                {
                    let mut b = body("progress");
                    b["payload"]["percentage_completed"] = json!(140);
                    b
                },
                "malformed_body",
                "payload.percentage_completed: 140 is outside 0..=100",
            ),
            (
                {
                    let mut b = body("progress");
                    b["payload"].as_object_mut().unwrap().remove("updated_at");
                    b
                },
                "malformed_body",
                "payload.updated_at: is missing",
            ),
            (
                {
                    let mut b = body("progress");
                    b["payload"]["user"]["id"] = json!("");
                    b
                },
                "malformed_body",
                "payload.user.id: must not be blank",
            ),
            (
                {
                    let mut b = body("progress");
                    b["payload"]["user"] = json!(null);
                    b
                },
                "malformed_body",
                "payload.user: is missing",
            ),
            (
                {
                    let mut b = body("progress");
                    b["payload"]["id"] = json!(1.5);
                    b
                },
                "malformed_body",
                "payload.id: expected a string or an integer id",
            ),
            (
                {
                    let mut b = body("progress");
                    b["payload"]["expired"] = json!("no");
                    b
                },
                "malformed_body",
                "payload.expired: expected true or false",
            ),
        ];
        for (b, code, needle) in cases {
            let r = parse(&bytes(&b)).unwrap_err();
            assert_eq!(r.status, 400, "{b}");
            assert_eq!(r.code, code, "{b}: {}", r.message);
            assert!(r.message.contains(needle), "{:?} lacks {needle:?}", r.message);
        }
        assert!(parse(b"{nope").unwrap_err().message.starts_with("the body is not valid JSON"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
