//! Skilljar's webhook dialect (SPEC §4.1).
//!
//! Skilljar does not sign its webhooks (it sends only `Content-Type` and
//! `User-Agent: skilljar`). The source is authenticated by a secret token
//! in the URL registered with Skilljar: `POST /webhooks/{tenant}/{source}/{token}`,
//! where the token is one of the source's secrets (two may be active during
//! a rotation). The comparison is constant-time: the SHA-256 digests of the
//! token and of each secret are compared with `subtle`, so neither the
//! position of the first difference nor the secret's length shows in the
//! timing, and every secret is checked. Register the URL with a token of
//! URL-safe characters (letters, digits, `-`, `_`, `.`), or percent-encode
//! it; the gateway decodes it.
//!
//! Body, one event per delivery, as Skilljar sends it:
//!
//! ```json
//! {"event_type": "COURSE_ENROLLMENT", "timestamp": "2026-03-01T10:00:00.066475+00:00",
//!  "user": {"id": "3456789hijklmno", "email": "jane@example.com", "first_name": "Jane", "last_name": "Doe"},
//!  "course": {"id": "12345abcdefg", "published_course_id": "abcdefg12345", "title": "Example Course",
//!             "url": "https://example.skilljar.com/example-course"},
//!  "domain": {"id": "2345678defghij", "name": "example.skilljar.com"}}
//! ```
//!
//! Events: `COURSE_ENROLLMENT` → created (enrolled), `LESSON_COMPLETION` →
//! updated (in progress), `COURSE_COMPLETION` → completed; other Skilljar
//! events (`DOMAIN_ENROLLMENT`, `PURCHASE`, …) → 400 `unknown_event_type`.
//! A `course_progress` object, when the delivery carries one, adds
//! `enrolled_at`, `completed_at`, `percent_complete` (0-100) and `score`.
//!
//! Mapping: Skilljar events carry no event id and no enrollment id.
//! Enrollment id = `<user.id>:<course.id>` ([`super::natural_enrollment_id`]);
//! event id = `<event_type>:<user.id>:<course.id>[:<lesson.id>]:<timestamp>`
//! (the timestamp has microseconds, and a redelivery repeats the body, so
//! the id is stable and distinct per event). updated_at and occurred_at =
//! `timestamp`, Skilljar's time of the event; course title = `course.title`.

use super::fields::{self, Node};
use super::{EventKind, EventPayload, LmsEvent, Rejection, natural_enrollment_id, unknown_type};
use crate::model::{Enrollment, EnrollmentStatus};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const EVENT_TYPES: [&str; 3] = ["COURSE_ENROLLMENT", "LESSON_COMPLETION", "COURSE_COMPLETION"];

pub fn verify(url_token: Option<&str>, secrets: &[String]) -> Result<(), Rejection> {
    let token = url_token.filter(|t| !t.is_empty()).ok_or_else(|| {
        Rejection::unauthorized(
            "missing_token",
            "this source authenticates with a secret token in the URL: post to /webhooks/{tenant}/{source}/{token}",
        )
    })?;
    if secrets.is_empty() {
        return Err(Rejection::unauthorized("invalid_token", "no webhook secret is configured for this source"));
    }
    let given = Sha256::digest(token.as_bytes());
    let mut ok = subtle::Choice::from(0u8);
    for s in secrets {
        ok |= Sha256::digest(s.as_bytes()).ct_eq(&given);
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(Rejection::unauthorized("invalid_token", "the token in the URL is not one of this source's secrets"))
    }
}

pub fn parse(body: &[u8]) -> Result<Vec<LmsEvent>, Rejection> {
    let v = fields::json(body)?;
    let r = fields::root(&v);
    r.object()?;
    let ty = r.field("event_type");
    let (kind, status) = match ty.str()? {
        "COURSE_ENROLLMENT" => (EventKind::EnrollmentCreated, EnrollmentStatus::Enrolled),
        "LESSON_COMPLETION" => (EventKind::EnrollmentUpdated, EnrollmentStatus::InProgress),
        "COURSE_COMPLETION" => (EventKind::EnrollmentCompleted, EnrollmentStatus::Completed),
        other => return Err(unknown_type(&ty.path, other, &EVENT_TYPES)),
    };
    let ts = r.field("timestamp");
    let at = ts.time()?;
    let user = r.field("user");
    user.object()?;
    let learner_id = user.field("id").id()?;
    let course = r.field("course");
    course.object()?;
    let course_id = course.field("id").id()?;
    let course_title = course.field("title").opt_str()?.map(str::to_string);
    let lesson_id = match r.field("lesson") {
        l if l.is_present() => {
            l.object()?;
            l.field("id").opt_id()?
        }
        _ => None,
    };
    let progress = Progress::read(&r.field("course_progress"))?;
    let completed = status == EnrollmentStatus::Completed;
    let event_type = ty.str()?;
    let id = match &lesson_id {
        Some(l) => format!("{event_type}:{learner_id}:{course_id}:{l}:{}", ts.str()?),
        None => format!("{event_type}:{learner_id}:{course_id}:{}", ts.str()?),
    };
    fields::check_id("the derived event id", &id)?;
    let enrollment = Enrollment {
        id: natural_enrollment_id(&learner_id, &course_id),
        learner_id,
        course_id,
        course_title,
        status,
        progress_pct: if completed { Some(progress.percent.unwrap_or(100.0)) } else { progress.percent },
        score: progress.score,
        enrolled_at: progress.enrolled_at,
        completed_at: if completed { progress.completed_at.or(Some(at)) } else { None },
        updated_at: at,
    };
    Ok(vec![LmsEvent { id, kind, occurred_at: at, payload: EventPayload::Enrollment(enrollment) }])
}

#[derive(Default)]
struct Progress {
    enrolled_at: Option<time::OffsetDateTime>,
    completed_at: Option<time::OffsetDateTime>,
    percent: Option<f64>,
    score: Option<f64>,
}

impl Progress {
    fn read(n: &Node<'_>) -> Result<Progress, Rejection> {
        if !n.is_present() {
            return Ok(Progress::default());
        }
        n.object()?;
        Ok(Progress {
            enrolled_at: n.field("enrolled_at").opt_time()?,
            completed_at: n.field("completed_at").opt_time()?,
            percent: n.field("percent_complete").opt_percent(true)?,
            score: n.field("score").opt_number(true)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use time::macros::datetime;

    fn body(ty: &str) -> Value {
        json!({
            "event_type": ty,
            "timestamp": "2026-03-01T10:00:00.066475+00:00",
            "user": {"first_name": "Jane", "last_name": "Doe", "id": "3456789hijklmno", "email": "jane@example.com"},
            "course": {"id": "12345abcdefg", "published_course_id": "abcdefg12345", "title": "Example Course",
                       "url": "http://example.skilljar.com/example-course"},
            "domain": {"id": "2345678defghij", "name": "example.skilljar.com"},
            "purchase": {"order_id": "ABCD1234", "original_price": "0.00", "purchase_price": "0.00",
                         "currency_code": "USD", "payment_processor": "NONE"},
            "domain_access_code": "access"
        })
    }

    fn bytes(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn enrollment_of(ev: &LmsEvent) -> &Enrollment {
        match &ev.payload {
            EventPayload::Enrollment(e) => e,
            EventPayload::Certification(_) => panic!("not an enrollment"),
        }
    }

    #[test]
    fn an_enrollment_event() {
        let ev = parse(&bytes(&body("COURSE_ENROLLMENT"))).unwrap().remove(0);
        assert_eq!(ev.kind, EventKind::EnrollmentCreated);
        assert_eq!(ev.id, "COURSE_ENROLLMENT:3456789hijklmno:12345abcdefg:2026-03-01T10:00:00.066475+00:00");
        assert_eq!(ev.updated_at(), datetime!(2026-03-01 10:00:00.066475 UTC), "Skilljar's timestamp");
        let e = enrollment_of(&ev);
        assert_eq!(e.id, "3456789hijklmno:12345abcdefg");
        assert_eq!((e.learner_id.as_str(), e.course_id.as_str()), ("3456789hijklmno", "12345abcdefg"));
        assert_eq!(e.course_title.as_deref(), Some("Example Course"));
        assert_eq!((e.status, e.progress_pct, e.score), (EnrollmentStatus::Enrolled, None, None));
    }

    #[test]
    fn progress_and_completion() {
        let mut b = body("LESSON_COMPLETION");
        b["lesson"] = json!({"id": "les-9", "title": "Intro"});
        b["course_progress"] = json!({"enrolled_at": "2026-02-01T09:00:00Z", "percent_complete": 40});
        let ev = parse(&bytes(&b)).unwrap().remove(0);
        assert!(ev.id.contains(":les-9:"), "{}", ev.id);
        let e = enrollment_of(&ev);
        assert_eq!((e.status, e.progress_pct), (EnrollmentStatus::InProgress, Some(40.0)));
        assert_eq!(e.enrolled_at, Some(datetime!(2026-02-01 09:00:00 UTC)));

        let mut b = body("COURSE_COMPLETION");
        b["course_progress"] = json!({"completed_at": "2026-03-01T09:59:00Z", "score": "88.5"});
        let ev = parse(&bytes(&b)).unwrap().remove(0);
        let e = enrollment_of(&ev);
        assert_eq!(ev.kind, EventKind::EnrollmentCompleted);
        assert_eq!((e.status, e.progress_pct, e.score), (EnrollmentStatus::Completed, Some(100.0), Some(88.5)));
        assert_eq!(e.completed_at, Some(datetime!(2026-03-01 09:59:00 UTC)));
    }

    #[test]
    fn the_token_is_one_of_two_secrets() {
        let s = vec!["tok-old-0123456789abcdef".to_string(), "tok-new-0123456789abcdef".to_string()];
        assert_eq!(verify(Some("tok-old-0123456789abcdef"), &s), Ok(()));
        assert_eq!(verify(Some("tok-new-0123456789abcdef"), &s), Ok(()));
    }

    #[test]
    fn bad_or_missing_tokens_are_refused() {
        let s = vec!["tok-0123456789abcdef".to_string()];
        for (token, code) in [
            (None, "missing_token"),
            (Some(""), "missing_token"),
            (Some("tok-0123456789abcdeX"), "invalid_token"),
            (Some("tok-0123456789abcdef "), "invalid_token"),
            (Some("tok"), "invalid_token"),
        ] {
            let r = verify(token, &s).unwrap_err();
            assert_eq!((r.status, r.code), (401, code), "{token:?}");
            assert!(!r.message.contains("tok-"), "never echo a token: {}", r.message);
        }
        assert_eq!(verify(Some("tok-0123456789abcdef"), &[]).unwrap_err().status, 401);
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut b = body("COURSE_ENROLLMENT");
            f(&mut b);
            b
        };
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!(1), "malformed_body", "the body: expected an object"),
            (
                edit(&|b| b["event_type"] = json!("DOMAIN_ENROLLMENT")),
                "unknown_event_type",
                "event_type: unknown event type \"DOMAIN_ENROLLMENT\"",
            ),
            (
                edit(&|b| {
                    b.as_object_mut().unwrap().remove("event_type");
                }),
                "malformed_body",
                "event_type: is missing",
            ),
            (edit(&|b| b["timestamp"] = json!("soon")), "malformed_body", "timestamp: \"soon\" is not a timestamp"),
            (
                edit(&|b| {
                    b.as_object_mut().unwrap().remove("user");
                }),
                "malformed_body",
                "user: is missing",
            ),
            (edit(&|b| b["user"]["id"] = json!(" ")), "malformed_body", "user.id: must not be blank"),
            (edit(&|b| b["course"] = json!([])), "malformed_body", "course: expected an object"),
            (
                edit(&|b| b["course_progress"] = json!({"percent_complete": 400})),
                "malformed_body",
                "course_progress.percent_complete: 400 is outside 0..=100",
            ),
            (edit(&|b| b["course"]["title"] = json!(false)), "malformed_body", "course.title: expected a string"),
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

        #[test]
        fn verify_never_panics(t in ".{0,80}") {
            let _ = verify(Some(&t), &["k".repeat(16)]);
        }
    }
}
