//! Round trip between the emulator and learnlink's core: deliveries the
//! emulator renders in every dialect of SPEC §4.1 verify and parse with the
//! core's verifier and parser into the same canonical events as the
//! canonical dialect — up to what a vendor's payload cannot carry, spelled
//! out in `expected` below. Then the same over HTTP through the emit endpoint.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use learnlink_core::model::{Enrollment, EnrollmentStatus};
use learnlink_core::webhook::{self, Dialect, EventPayload, LmsEvent, natural_enrollment_id};
use lms_emulator::data::{DatasetParams, generate};
use lms_emulator::webhooks::{self as wh, EmitRequest};
use serde_json::{Value, json};
use time::OffsetDateTime;

const SECRET: &str = "whsec-roundtrip-0123456789";
const OTHER: &str = "whsec-rotated-out-012345";

fn core_dialect(d: wh::Dialect) -> Dialect {
    Dialect::parse(d.as_str()).unwrap()
}

fn request(dialect: wh::Dialect, ids: &[String], per: usize) -> EmitRequest {
    serde_json::from_value(json!({
        "target_url": "http://127.0.0.1:9/webhooks/acme/src",
        "dialect": dialect.as_str(),
        "secret": SECRET,
        "enrollment_ids": ids,
        "events_per_delivery": per,
    }))
    .unwrap()
}

/// The first `n` enrollments (in update order) of distinct learner and
/// course pairs. Docebo and Skilljar allow one enrollment per pair (and
/// learnlink keys theirs by it); the generator can give a learner the same
/// course twice, which those LMSs cannot have.
fn distinct_pairs(data: &lms_emulator::data::Dataset, n: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for &i in &data.enrollments_order {
        let row = &data.enrollments[i as usize];
        if seen.insert((row.learner, row.course)) {
            out.push(lms_emulator::data::enrollment_id(i));
            if out.len() == n {
                break;
            }
        }
    }
    out
}

fn enrollment(ev: &LmsEvent) -> &Enrollment {
    match &ev.payload {
        EventPayload::Enrollment(e) => e,
        EventPayload::Certification(_) => panic!("not an enrollment: {ev:?}"),
    }
}

/// What a dialect's canonical enrollment is, given the canonical dialect's:
/// the fields the vendor's payload cannot carry are what learnlink makes of
/// their absence.
fn expected(d: wh::Dialect, canonical: &Enrollment) -> Enrollment {
    let mut e = canonical.clone();
    let completed = e.status == EnrollmentStatus::Completed;
    match d {
        wh::Dialect::Canonical | wh::Dialect::Northpass => {}
        // Thinkific enrollments have no score.
        wh::Dialect::Thinkific => e.score = None,
        // Docebo: no enrollment id (learner:course), no progress percentage.
        wh::Dialect::Docebo => {
            e.id = natural_enrollment_id(&e.learner_id, &e.course_id);
            e.progress_pct = completed.then_some(100.0);
        }
        // Skilljar: no enrollment id, no expiry event (a lesson completion).
        wh::Dialect::Skilljar => {
            e.id = natural_enrollment_id(&e.learner_id, &e.course_id);
            if e.status == EnrollmentStatus::Expired {
                e.status = EnrollmentStatus::InProgress;
            }
        }
    }
    e
}

/// Verify and parse every delivery the emulator renders for `req`.
fn render_and_parse(data: &lms_emulator::data::Dataset, req: &EmitRequest) -> Vec<LmsEvent> {
    let dialect = wh::Dialect::parse(&req.dialect).unwrap();
    let selected = wh::select(data, req).unwrap();
    let now = OffsetDateTime::now_utc();
    let secrets = vec![OTHER.to_string(), SECRET.to_string()];
    let url = wh::delivery_url(dialect, &req.target_url, Some(SECRET)).unwrap();
    let token = (dialect == wh::Dialect::Skilljar).then(|| url.rsplit('/').next().unwrap().to_string());
    let mut events = Vec::new();
    for d in wh::deliveries(data, req, &selected) {
        let headers: Vec<(String, String)> = wh::auth_headers(dialect, SECRET, now.unix_timestamp(), &d.body)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let cd = core_dialect(dialect);
        webhook::verify(cd, &headers, token.as_deref(), &d.body, &secrets, now)
            .unwrap_or_else(|r| panic!("{}: {r}", dialect.as_str()));
        // A changed body does not verify (Skilljar is unsigned: its token only).
        if dialect != wh::Dialect::Skilljar {
            let mut tampered = d.body.clone();
            tampered.push(b' ');
            assert!(webhook::verify(cd, &headers, None, &tampered, &secrets, now).is_err());
        }
        let evs = webhook::parse(cd, &d.body).unwrap_or_else(|r| panic!("{}: {r}", dialect.as_str()));
        assert_eq!(evs.len(), d.events);
        events.extend(evs);
    }
    events
}

fn by_learner_course(evs: Vec<LmsEvent>) -> BTreeMap<(String, String), LmsEvent> {
    let n = evs.len();
    let m: BTreeMap<(String, String), LmsEvent> = evs
        .into_iter()
        .map(|ev| {
            let e = enrollment(&ev);
            ((e.learner_id.clone(), e.course_id.clone()), ev)
        })
        .collect();
    assert_eq!(m.len(), n, "one event per enrollment");
    m
}

#[test]
fn every_dialect_parses_into_the_canonical_events() {
    let data =
        generate(DatasetParams { seed: 11, learners: 60, departments: 3, courses: 8, enrollments_per_learner: 3 });
    let n = 150;
    let ids = distinct_pairs(&data, n);
    assert_eq!(ids.len(), n);
    let canonical = by_learner_course(render_and_parse(&data, &request(wh::Dialect::Canonical, &ids, 10)));
    assert_eq!(canonical.len(), n);
    let statuses: HashSet<String> = canonical.values().map(|e| format!("{:?}", enrollment(e).status)).collect();
    assert_eq!(statuses.len(), 4, "all four statuses are exercised: {statuses:?}");

    for dialect in [wh::Dialect::Thinkific, wh::Dialect::Northpass, wh::Dialect::Docebo, wh::Dialect::Skilljar] {
        let per = if dialect == wh::Dialect::Docebo { 25 } else { 1 };
        let events = render_and_parse(&data, &request(dialect, &ids, per));
        let event_ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(event_ids.len(), n, "{}: distinct event ids", dialect.as_str());
        // Rendering again gives the same event ids: a re-send is a duplicate.
        let again: Vec<String> =
            render_and_parse(&data, &request(dialect, &ids, per)).into_iter().map(|e| e.id).collect();
        assert_eq!(again, events.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
        let got = by_learner_course(events);
        assert_eq!(got.len(), n, "{}", dialect.as_str());
        for (key, c) in &canonical {
            let v = &got[key];
            let name = dialect.as_str();
            assert_eq!(v.kind, c.kind, "{name} {key:?}");
            assert_eq!(v.updated_at(), c.updated_at(), "{name} {key:?}: the vendor's own time");
            assert_eq!(v.occurred_at, c.occurred_at, "{name} {key:?}");
            assert_eq!(enrollment(v), &expected(dialect, enrollment(c)), "{name} {key:?}");
        }
    }
}

#[test]
fn docebo_deliveries_hold_at_most_25_events_of_one_type() {
    let data =
        generate(DatasetParams { seed: 5, learners: 100, departments: 3, courses: 8, enrollments_per_learner: 3 });
    let req = request(wh::Dialect::Docebo, &distinct_pairs(&data, 250), 25);
    let selected = wh::select(&data, &req).unwrap();
    let ds = wh::deliveries(&data, &req, &selected);
    assert!(ds.iter().any(|d| d.events == 25));
    for d in &ds {
        let evs = webhook::parse(Dialect::Docebo, &d.body).unwrap();
        assert!(evs.len() <= 25);
        assert!(evs.iter().all(|e| e.kind == evs[0].kind), "one type per delivery");
    }
    assert_eq!(ds.iter().map(|d| d.events).sum::<usize>(), 250);
}

// ---------------------------------------------------------------- over HTTP

/// A delivery as received: path, headers, body.
type Received1 = (String, Vec<(String, String)>, Vec<u8>);

#[derive(Default)]
struct Received {
    deliveries: Vec<Received1>,
}

async fn receiver() -> (String, Arc<Mutex<Received>>, tokio::task::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Received::default()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/webhooks/{*rest}",
        post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let h = headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned())).collect();
                g.lock().unwrap().deliveries.push((uri.path().to_owned(), h, body.to_vec()));
                StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/acme", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, got, task)
}

#[tokio::test]
async fn the_emit_endpoint_sends_every_dialect_verifiably() {
    let lms = common::start().await;
    lms.dataset(5, 40, 3, 6, 3).await;
    let (base, got, task) = receiver().await;
    let token = "tok en/0123456789abcdef";
    for dialect in wh::Dialect::ALL {
        got.lock().unwrap().deliveries.clear();
        let per = if dialect == wh::Dialect::Docebo { 25 } else { 1 };
        let secret = if dialect == wh::Dialect::Skilljar { token } else { SECRET };
        let body = json!({"target_url": format!("{base}/{}", dialect.as_str()), "dialect": dialect.as_str(),
                          "secret": secret, "count": 30, "events_per_delivery": per, "duplicate_pct": 20, "reorder": true});
        let r = lms.client.post(lms.url("/__emulator/webhooks/emit")).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let report: Value = r.json().await.unwrap();
        assert!(report["events"].as_u64().unwrap() >= 30, "{report}");
        let rec = got.lock().unwrap();
        assert_eq!(rec.deliveries.len() as u64, report["deliveries"].as_u64().unwrap());
        let mut ids = HashSet::new();
        for (path, headers, body) in &rec.deliveries {
            assert!(headers.iter().any(|(k, v)| k == "content-type" && v == "application/json"));
            let last = path.rsplit('/').next().unwrap();
            let token_seg = percent_encoding::percent_decode_str(last).decode_utf8().unwrap().into_owned();
            let url_token = (dialect == wh::Dialect::Skilljar).then_some(token_seg.as_str());
            if dialect == wh::Dialect::Skilljar {
                assert_eq!(path, &format!("/webhooks/acme/skilljar/{}", "tok%20en%2F0123456789abcdef"));
            } else {
                assert_eq!(path, &format!("/webhooks/acme/{}", dialect.as_str()));
            }
            let secrets = vec![secret.to_string()];
            let cd = core_dialect(dialect);
            webhook::verify(cd, headers, url_token, body, &secrets, OffsetDateTime::now_utc())
                .unwrap_or_else(|r| panic!("{}: {r}", dialect.as_str()));
            for ev in webhook::parse(cd, body).unwrap() {
                ids.insert(ev.id);
            }
        }
        assert_eq!(ids.len(), 30, "{}: every enrollment once, re-sends share ids", dialect.as_str());
    }
    task.abort();
}
