//! learnlink's own webhook dialect.
//!
//! Header `Learnlink-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`
//! (several `v1=` entries are allowed, for secret rotation on the sender side);
//! timestamps more than [`REPLAY_WINDOW_SECS`] away from now are refused.
//!
//! Body: `{"events":[{"id","type","occurred_at","data":{...}}]}` where `data`
//! is the canonical Enrollment or Certification of SPEC §2.

use super::fields::check_id;
use super::{EventKind, EventPayload, Headers, LmsEvent, MAX_EVENTS_PER_DELIVERY, Rejection};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use time::OffsetDateTime;

pub const SIGNATURE_HEADER: &str = "Learnlink-Signature";
pub const REPLAY_WINDOW_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// The signature header value for `body` signed with `secret` at `t`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body).finalize().into_bytes()))
}

fn mac(secret: &str, t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

#[cold]
fn unreachable_hmac() -> ! {
    // hmac::Hmac::new_from_slice only fails for fixed-size-key MACs.
    panic!("HMAC-SHA256 accepts keys of any length")
}

pub fn verify(
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    secrets: &[String],
    now: OffsetDateTime,
) -> Result<(), Rejection> {
    // An empty header is a missing one, as the vendor dialects have it.
    let header = headers.get(SIGNATURE_HEADER).map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| {
        Rejection::unauthorized("missing_signature", format!("the {SIGNATURE_HEADER} header is missing"))
    })?;
    let mut t: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(malformed_header)?;
        match k {
            "t" => t = Some(v.parse().map_err(|_| malformed_header())?),
            "v1" => sigs.push(hex::decode(v).map_err(|_| malformed_header())?),
            _ => {} // unknown schemes are ignored, as Stripe-style headers allow
        }
    }
    let t = t.ok_or_else(malformed_header)?;
    if sigs.is_empty() {
        return Err(malformed_header());
    }
    if (now.unix_timestamp() - t).abs() > REPLAY_WINDOW_SECS {
        return Err(Rejection::unauthorized(
            "stale_timestamp",
            format!("the signature timestamp is more than {REPLAY_WINDOW_SECS} seconds from now"),
        ));
    }
    if secrets.is_empty() {
        return Err(Rejection::unauthorized("invalid_signature", "no webhook secret is configured for this source"));
    }
    // Every combination is checked, each in constant time.
    let mut ok = false;
    for secret in secrets {
        for sig in &sigs {
            ok |= mac(secret, t, body).verify_slice(sig).is_ok();
        }
    }
    if ok { Ok(()) } else { Err(Rejection::unauthorized("invalid_signature", "the signature does not match the body")) }
}

fn malformed_header() -> Rejection {
    Rejection::unauthorized(
        "invalid_signature",
        format!("the {SIGNATURE_HEADER} header is not of the form t=<unix>,v1=<hex>"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBody {
    events: Vec<WireEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    data: serde_json::Value,
}

pub fn parse(body: &[u8]) -> Result<Vec<LmsEvent>, Rejection> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let wire: WireBody = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            Rejection::malformed(format!("the body is not a valid event envelope: {inner}"))
        } else {
            Rejection::malformed(format!("{path}: {inner}"))
        }
    })?;
    if wire.events.is_empty() {
        return Err(Rejection::malformed("events: the delivery contains no events"));
    }
    if wire.events.len() > MAX_EVENTS_PER_DELIVERY {
        return Err(Rejection::malformed(format!(
            "events: {} events in one delivery; the limit is {MAX_EVENTS_PER_DELIVERY}",
            wire.events.len()
        )));
    }
    wire.events.into_iter().enumerate().map(|(i, ev)| event(i, ev)).collect()
}

fn event(i: usize, ev: WireEvent) -> Result<LmsEvent, Rejection> {
    check_id(&format!("events[{i}].id"), &ev.id)?;
    let kind = EventKind::parse(&ev.kind).ok_or_else(|| {
        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        Rejection::unknown_event_type(format!(
            "events[{i}].type: unknown event type {:?}; expected one of {}",
            ev.kind,
            known.join(", ")
        ))
    })?;
    let data_err = |e: serde_path_to_error::Error<serde_json::Error>| {
        let path = e.path().to_string();
        let sep = if path == "." { String::new() } else { format!(".{path}") };
        Rejection::malformed(format!("events[{i}].data{sep}: {}", e.into_inner()))
    };
    let payload = if kind.is_enrollment() {
        let e: crate::model::Enrollment = serde_path_to_error::deserialize(ev.data).map_err(data_err)?;
        check_id(&format!("events[{i}].data.id"), &e.id)?;
        check_id(&format!("events[{i}].data.learner_id"), &e.learner_id)?;
        check_id(&format!("events[{i}].data.course_id"), &e.course_id)?;
        if let Some(p) = e.progress_pct
            && !(0.0..=100.0).contains(&p)
        {
            return Err(Rejection::malformed(format!("events[{i}].data.progress_pct: {p} is outside 0..=100")));
        }
        EventPayload::Enrollment(e)
    } else {
        let c: crate::model::Certification = serde_path_to_error::deserialize(ev.data).map_err(data_err)?;
        check_id(&format!("events[{i}].data.id"), &c.id)?;
        check_id(&format!("events[{i}].data.learner_id"), &c.learner_id)?;
        if c.name.trim().is_empty() {
            return Err(Rejection::malformed(format!("events[{i}].data.name: must not be blank")));
        }
        EventPayload::Certification(c)
    };
    Ok(LmsEvent { id: ev.id, kind, occurred_at: ev.occurred_at, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00:00 UTC);

    fn headers(v: &str) -> Vec<(String, String)> {
        vec![("learnlink-signature".to_string(), v.to_string())]
    }

    fn body() -> Vec<u8> {
        br#"{"events":[{"id":"evt_1","type":"enrollment.completed","occurred_at":"2026-11-23T09:59:00Z",
        "data":{"id":"E1","learner_id":"L1","course_id":"C1","status":"completed","progress_pct":100,
        "score":92.5,"enrolled_at":"2026-11-01T00:00:00Z","completed_at":"2026-11-23T09:58:00Z",
        "updated_at":"2026-11-23T09:58:00Z"}}]}"#
            .to_vec()
    }

    #[test]
    fn good_signature_verifies() {
        let b = body();
        let h = headers(&sign("s3cret", NOW.unix_timestamp(), &b));
        assert_eq!(verify(&h, &b, &["s3cret".into()], NOW), Ok(()));
    }

    #[test]
    fn either_of_two_rotating_secrets_verifies() {
        let b = body();
        let h = headers(&sign("new", NOW.unix_timestamp(), &b));
        assert_eq!(verify(&h, &b, &["old".into(), "new".into()], NOW), Ok(()));
    }

    #[test]
    fn bad_signatures_are_refused_with_their_reason() {
        let b = body();
        let t = NOW.unix_timestamp();
        let s = vec!["s3cret".to_string()];
        let code = |h: &[(String, String)], b: &[u8]| verify(h, b, &s, NOW).unwrap_err().code;
        assert_eq!(code(&[], &b), "missing_signature");
        assert_eq!(code(&headers(""), &b), "missing_signature");
        assert_eq!(code(&headers("  "), &b), "missing_signature");
        assert_eq!(code(&headers(&sign("other", t, &b)), &b), "invalid_signature");
        assert_eq!(code(&headers(&sign("s3cret", t, &b)), b"{}"), "invalid_signature");
        assert_eq!(code(&headers(&sign("s3cret", t - 301, &b)), &b), "stale_timestamp");
        assert_eq!(code(&headers(&sign("s3cret", t + 301, &b)), &b), "stale_timestamp");
        assert_eq!(code(&headers("garbage"), &b), "invalid_signature");
        assert_eq!(code(&headers("t=abc,v1=00"), &b), "invalid_signature");
        assert_eq!(code(&headers(&format!("t={t}")), &b), "invalid_signature");
        assert_eq!(code(&headers(&format!("t={t},v1=zz")), &b), "invalid_signature");
        let no_secrets: Vec<String> = vec![];
        let h = headers(&sign("s3cret", t, &b));
        assert_eq!(verify(&h, &b, &no_secrets, NOW).unwrap_err().status, 401);
    }

    #[test]
    fn parses_an_enrollment_event() {
        let evs = parse(&body()).unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].kind, EventKind::EnrollmentCompleted);
        assert_eq!(evs[0].record_key(), ("enrollment", "E1"));
        assert_eq!(evs[0].updated_at(), datetime!(2026-11-23 09:58:00 UTC));
    }

    #[test]
    fn malformed_bodies_name_the_problem() {
        let cases: &[(&str, &str, &str)] = &[
            ("not json", "malformed_body", "not a valid event envelope"),
            ("[]", "malformed_body", "not a valid event envelope"),
            (r#"{"events":[]}"#, "malformed_body", "no events"),
            (
                r#"{"events":[{"id":"e","type":"x.y","occurred_at":"2026-11-23T09:59:00Z","data":{}}]}"#,
                "unknown_event_type",
                "events[0].type",
            ),
            (
                r#"{"events":[{"id":"","type":"enrollment.created","occurred_at":"2026-11-23T09:59:00Z","data":{}}]}"#,
                "malformed_body",
                "events[0].id: must not be blank",
            ),
            (
                r#"{"events":[{"id":"e","type":"enrollment.created","occurred_at":"yesterday","data":{}}]}"#,
                "malformed_body",
                "events[0].occurred_at",
            ),
            (
                r#"{"events":[{"id":"e","type":"enrollment.created","occurred_at":"2026-11-23T09:59:00Z",
               "data":{"id":"E1","learner_id":"L1","course_id":"C1","status":"done","updated_at":"2026-11-23T09:58:00Z"}}]}"#,
                "malformed_body",
                "events[0].data.status",
            ),
            (
                r#"{"events":[{"id":"e","type":"enrollment.created","occurred_at":"2026-11-23T09:59:00Z",
               "data":{"id":"E1","learner_id":"L1","course_id":"C1","status":"enrolled"}}]}"#,
                "malformed_body",
                "updated_at",
            ),
            (
                r#"{"events":[{"id":"e","type":"enrollment.created","occurred_at":"2026-11-23T09:59:00Z",
               "data":{"id":"E1","learner_id":"L1","course_id":"C1","status":"enrolled","progress_pct":140,"updated_at":"2026-11-23T09:58:00Z"}}]}"#,
                "malformed_body",
                "events[0].data.progress_pct",
            ),
            (
                r#"{"events":[{"id":"e","type":"certification.issued","occurred_at":"2026-11-23T09:59:00Z",
               "data":{"id":"C1","learner_id":"L1","name":" ","updated_at":"2026-11-23T09:58:00Z"}}]}"#,
                "malformed_body",
                "events[0].data.name",
            ),
        ];
        for (body, code, needle) in cases {
            let r = parse(body.as_bytes()).unwrap_err();
            assert_eq!(r.status, 400, "{body}");
            assert_eq!(r.code, *code, "{body}: {}", r.message);
            assert!(r.message.contains(needle), "{body}: {:?} lacks {needle:?}", r.message);
        }
    }

    #[test]
    fn too_many_events_is_refused() {
        let ev = r#"{"id":"e","type":"enrollment.created","occurred_at":"2026-11-23T09:59:00Z","data":{"id":"E1","learner_id":"L1","course_id":"C1","status":"enrolled","updated_at":"2026-11-23T09:58:00Z"}}"#;
        let body = format!(r#"{{"events":[{}]}}"#, vec![ev; 101].join(","));
        assert!(parse(body.as_bytes()).unwrap_err().message.contains("limit is 100"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn verify_never_panics(h in ".{0,80}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = verify(&headers(&h), &bytes, &["k".to_string()], NOW);
        }
    }
}
