//! `LmsEnrollments` (backfills): the LMS client against the LMS emulator
//! started in-process and against mock servers, and the in-memory fake.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use learnlink_adapters::lms::{LmsClient, MemoryLms, retry_after};
use learnlink_core::backfill::Window;
use learnlink_core::model::{Enrollment, EnrollmentStatus};
use learnlink_core::ports::{EnrollmentPage, LmsConnection, LmsEnrollments};
use learnlink_core::{ErrorClass, PortError};
use secrecy::SecretString;
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const KEY: &str = "sekrit-lms-key-456";

fn conn(base: &str) -> LmsConnection {
    LmsConnection { base_url: base.to_string(), api_key: SecretString::from(KEY) }
}

/// A server on a port of its own, stopped when dropped.
struct Server {
    base: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<F>(run: impl FnOnce(tokio::net::TcpListener) -> F) -> Server
where
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    learnlink_adapters::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    Server { base, task: tokio::spawn(run(listener)) }
}

async fn emulator() -> Server {
    let config = lms_emulator::Config { api_key: KEY.to_string(), ..lms_emulator::Config::default() };
    serve(|listener| lms_emulator::serve(listener, config)).await
}

async fn mock(router: Router) -> Server {
    serve(|listener| async move { axum::serve(listener, router).await }).await
}

async fn admin(base: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// Every page of the window, asserting paging ends.
async fn every_page(
    lms: &dyn LmsEnrollments,
    c: &LmsConnection,
    window: &Window,
    limit: u32,
) -> Result<(Vec<Enrollment>, usize), PortError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 1..10_000 {
        let EnrollmentPage { enrollments, next_cursor } =
            lms.enrollments_page(c, window, cursor.as_deref(), limit).await?;
        assert!(enrollments.len() <= limit.clamp(1, 1000) as usize);
        out.extend(enrollments);
        match next_cursor {
            None => return Ok((out, pages)),
            Some(next) => cursor = Some(next),
        }
    }
    panic!("paging did not end");
}

/// Each id exactly once, every one inside the window, in `(updated_at, id)` order.
fn assert_exact(got: &[Enrollment], window: &Window, expected: &[&Enrollment]) {
    let ids: HashSet<&str> = got.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "each id once");
    assert!(got.iter().all(|e| window.contains(e.updated_at)), "none outside the window");
    assert!(got.windows(2).all(|w| (w[0].updated_at, &w[0].id) < (w[1].updated_at, &w[1].id)), "in order");
    let want: Vec<&str> = expected.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(got.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), want);
}

fn everything_window() -> Window {
    Window::new(datetime!(2000-01-01 0:00 UTC), datetime!(2100-01-01 0:00 UTC)).unwrap()
}

#[tokio::test]
async fn the_client_counts_and_pages_a_window_of_the_emulator() {
    let emu = emulator().await;
    let body = json!({"seed": 21, "learners": 1000, "departments": 5, "courses": 12, "enrollments_per_learner": 4});
    let summary = admin(&emu.base, "/__emulator/dataset", body).await;
    assert_eq!(summary["enrollments"], 4000);
    let (c, lms) = (LmsClient::new().unwrap(), conn(&emu.base));

    // Everything: the count and every page agree.
    let all_window = everything_window();
    assert_eq!(c.count_enrollments(&lms, &all_window).await.unwrap(), 4000);
    let (all, pages) = every_page(&c, &lms, &all_window, 1000).await.unwrap();
    assert_eq!((all.len(), pages), (4000, 4));

    // A window of ~2,500 in pages of 1,000: each id once, all inside, as counted.
    let window = Window::new(all[700].updated_at, all[3200].updated_at).unwrap();
    let expected: Vec<&Enrollment> = all.iter().filter(|e| window.contains(e.updated_at)).collect();
    assert!((2400..=2600).contains(&expected.len()), "{}", expected.len());
    assert_eq!(c.count_enrollments(&lms, &window).await.unwrap(), expected.len() as u64);
    let (got, pages) = every_page(&c, &lms, &window, 1000).await.unwrap();
    assert_eq!(pages, expected.len().div_ceil(1000));
    assert_exact(&got, &window, &expected);
    // Other limits (0 is clamped to 1, more than 1,000 to 1,000).
    let small = Window::new(all[100].updated_at, all[160].updated_at).unwrap();
    let small_expected: Vec<&Enrollment> = all.iter().filter(|e| small.contains(e.updated_at)).collect();
    for limit in [0, 7, 5000] {
        let (got, _) = every_page(&c, &lms, &small, limit).await.unwrap();
        assert_exact(&got, &small, &small_expected);
    }

    // Bounds between milliseconds: the LMS's millisecond times compare as they should.
    let half = Duration::microseconds(500);
    let odd = Window::new(all[700].updated_at - half, all[3200].updated_at + half).unwrap();
    let odd_expected: Vec<&Enrollment> = all.iter().filter(|e| odd.contains(e.updated_at)).collect();
    assert_eq!(c.count_enrollments(&lms, &odd).await.unwrap(), odd_expected.len() as u64);
    let (got, _) = every_page(&c, &lms, &odd, 1000).await.unwrap();
    assert_exact(&got, &odd, &odd_expected);
    let inner = Window::new(all[700].updated_at + half, all[3200].updated_at - half).unwrap();
    let inner_expected: Vec<&Enrollment> = all.iter().filter(|e| inner.contains(e.updated_at)).collect();
    assert_eq!(c.count_enrollments(&lms, &inner).await.unwrap(), inner_expected.len() as u64);
    let (got, _) = every_page(&c, &lms, &inner, 1000).await.unwrap();
    assert_exact(&got, &inner, &inner_expected);

    // A cursor the LMS never returned: its 400 is permanent.
    let e = c.enrollments_page(&lms, &window, Some("not-a-cursor"), 10).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("400") && e.message.contains("cursor"), "{e}");

    // The rate limit: throttled, with the emulator's Retry-After.
    admin(&emu.base, "/__emulator/rate-limit", json!({"requests": 1, "window_ms": 60_000})).await;
    assert_eq!(c.count_enrollments(&lms, &window).await.unwrap(), expected.len() as u64);
    let e = c.enrollments_page(&lms, &window, None, 1000).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Throttled);
    let wait = retry_after(&e).unwrap();
    assert!((1..=60).contains(&wait.as_secs()), "{wait:?}");
    let e = c.count_enrollments(&lms, &window).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Throttled);
    assert!(!e.message.contains(KEY));
}

fn enrollment_json(id: &str, updated_at: &str) -> Value {
    json!({"id": id, "learner_id": "L000001", "course_id": "C001", "course_title": "Safety",
        "status": "in_progress", "progress_pct": 40, "score": null, "enrolled_at": "2026-01-01T00:00:00.000Z",
        "completed_at": null, "updated_at": updated_at})
}

#[tokio::test]
async fn the_client_maps_failures_and_keeps_to_the_window() {
    let server = mock(
        Router::new().route("/api/v1/enrollments/count", get(|| async { axum::Json(json!({"count": "many"})) })).route(
            "/api/v1/enrollments",
            get(|q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                let q = q.0;
                match q.get("cursor").map(String::as_str) {
                    // An LMS ignoring updated_until: one inside, one after the window.
                    None => {
                        assert_eq!(q["updated_since"], "2026-03-01T00:00:00.000Z");
                        assert_eq!(q["updated_until"], "2026-03-02T00:00:00.001Z");
                        assert_eq!(q["limit"], "1000");
                        axum::Json(json!({"data": [
                                enrollment_json("E1", "2026-03-01T12:00:00.000Z"),
                                enrollment_json("E2", "2026-03-02T00:00:00.001Z"),
                            ], "next_cursor": "c1"}))
                        .into_response()
                    }
                    Some("same") => axum::Json(json!({"data": [], "next_cursor": "same"})).into_response(),
                    Some("shape") => axum::Json(json!({"data": [{"id": "E3"}], "next_cursor": null})).into_response(),
                    Some(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
                }
            }),
        ),
    )
    .await;
    let (c, lms) = (LmsClient::new().unwrap(), conn(&server.base));
    let window = Window::new(datetime!(2026-03-01 0:00 UTC), datetime!(2026-03-02 0:00:00.000_000_5 UTC)).unwrap();

    let e = c.count_enrollments(&lms, &window).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("JSON that is not"), "{e}");

    let page = c.enrollments_page(&lms, &window, None, 5000).await.unwrap();
    assert_eq!(page.enrollments.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["E1"]);
    assert_eq!(page.next_cursor, None, "an enrollment after the window ends it");

    let e = c.enrollments_page(&lms, &window, Some("same"), 10).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    assert!(e.message.contains("same cursor"), "{e}");
    let e = c.enrollments_page(&lms, &window, Some("shape"), 10).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    let e = c.enrollments_page(&lms, &window, Some("other"), 10).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Retryable);
    assert!(e.message.contains("503"), "{e}");
}

fn enrollment(i: usize, updated_at: OffsetDateTime) -> Enrollment {
    Enrollment {
        id: format!("E{i:07}"),
        learner_id: format!("L{:06}", i % 97),
        course_id: "C001".into(),
        course_title: None,
        status: EnrollmentStatus::InProgress,
        progress_pct: Some(50.0),
        score: None,
        enrolled_at: None,
        completed_at: None,
        updated_at,
    }
}

#[tokio::test]
async fn the_memory_fake_pages_a_window_exactly() {
    let fake = MemoryLms::new();
    let c = conn("http://lms.test");
    let t0 = datetime!(2026-01-01 0:00 UTC);
    // 4,000 enrollments, many sharing a time, loaded out of order.
    let mut loaded: Vec<Enrollment> =
        (0..4000).map(|i| enrollment(i, t0 + Duration::minutes((i % 1600) as i64))).collect();
    loaded.reverse();
    fake.add_enrollments(loaded);
    let all = fake.enrollments();
    assert_eq!(all.len(), 4000);
    let window = Window::new(t0 + Duration::minutes(300), t0 + Duration::minutes(1300)).unwrap();
    let expected: Vec<&Enrollment> = all.iter().filter(|e| window.contains(e.updated_at)).collect();
    assert_eq!(expected.len(), 2500);
    assert_eq!(fake.count_enrollments(&c, &window).await.unwrap(), 2500);
    let (got, pages) = every_page(&fake, &c, &window, 1000).await.unwrap();
    assert_eq!(pages, 3);
    assert_exact(&got, &window, &expected);
    for limit in [0, 33, 2500, 9999] {
        let (got, _) = every_page(&fake, &c, &window, limit).await.unwrap();
        assert_exact(&got, &window, &expected);
    }
    // A page ending at the window's end has no cursor.
    let page = fake.enrollments_page(&c, &window, None, 1000).await.unwrap();
    let last = fake.enrollments_page(&c, &window, page.next_cursor.as_deref(), 1000).await.unwrap();
    let end = fake.enrollments_page(&c, &window, last.next_cursor.as_deref(), 500).await.unwrap();
    assert_eq!((end.enrollments.len(), end.next_cursor), (500, None));

    // Enrollments changed between pages: none before the cursor is read again.
    let first = fake.enrollments_page(&c, &window, None, 1000).await.unwrap();
    let mut moved = (*expected[0]).clone();
    moved.updated_at = t0 + Duration::minutes(1299);
    fake.add_enrollments([moved.clone()]);
    let mut rest = Vec::new();
    let mut cursor = first.next_cursor.clone();
    while let Some(cur) = cursor {
        let p = fake.enrollments_page(&c, &window, Some(&cur), 1000).await.unwrap();
        rest.extend(p.enrollments);
        cursor = p.next_cursor;
    }
    assert_eq!(first.enrollments.len() + rest.len(), 2501, "the moved one again, at its new place");
    assert!(first.enrollments.iter().any(|e| e.id == moved.id));
    assert_eq!(rest.iter().filter(|e| e.id == moved.id).map(|e| e.updated_at).collect::<Vec<_>>(), [moved.updated_at]);

    // A cursor it never returned: permanent.
    let e = fake.enrollments_page(&c, &window, Some("nope"), 10).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn the_memory_fake_fails_enrollment_reads_as_scripted() {
    let fake = MemoryLms::new();
    let c = conn("http://lms.test");
    let t0 = datetime!(2026-01-01 0:00 UTC);
    fake.add_enrollments((0..30).map(|i| enrollment(i, t0 + Duration::seconds(i as i64))));
    let window = everything_window();
    let first = fake.enrollments_page(&c, &window, None, 10).await.unwrap();
    fake.fail_enrollment_reads(2, ErrorClass::Retryable);
    let cursor = first.next_cursor.as_deref();
    assert_eq!(fake.enrollments_page(&c, &window, cursor, 10).await.unwrap_err().class, ErrorClass::Retryable);
    assert_eq!(fake.count_enrollments(&c, &window).await.unwrap_err().class, ErrorClass::Retryable);
    // Then the same cursor goes on where it was.
    let second = fake.enrollments_page(&c, &window, cursor, 10).await.unwrap();
    assert_eq!(second.enrollments[0].id, "E0000010");
    assert_eq!(fake.count_enrollments(&c, &window).await.unwrap(), 30);
    assert_eq!(fake.enrollment_reads(), 5);
    // The outage and the key apply as to every read.
    fake.set_outage(Some(ErrorClass::Throttled));
    assert_eq!(fake.count_enrollments(&c, &window).await.unwrap_err().class, ErrorClass::Throttled);
    fake.set_outage(None);
    fake.require_api_key(Some("other"));
    assert_eq!(fake.count_enrollments(&c, &window).await.unwrap_err().class, ErrorClass::Permanent);
}
