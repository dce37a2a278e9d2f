//! The LMS client against axum mock servers (edge cases) and against the LMS
//! emulator started in-process.

use super::*;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use learnlink_core::Classify;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const KEY: &str = "sekrit-lms-key-123";

async fn mock(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn conn(base: &str) -> LmsConnection {
    LmsConnection { base_url: base.to_string(), api_key: SecretString::from(KEY) }
}

fn client() -> LmsClient {
    LmsClient::new().unwrap()
}

fn learner_json(id: &str) -> Value {
    json!({"id": id, "email": format!("{}@example.com", id.to_lowercase()), "first_name": "Ada",
        "last_name": "Lovelace", "department_id": "D01", "fields": {"title": "Engineer"}, "active": true,
        "updated_at": "2026-05-12T10:00:00.000Z"})
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
}

/// Every message and cause of `e`, for checking what it reveals.
fn everything(e: &PortError) -> String {
    format!("{} | {e:?}", e.chain())
}

#[tokio::test]
async fn departments_follow_every_cursor() {
    let seen: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
    let log = seen.clone();
    let url = mock(Router::new().route(
        "/api/v1/departments",
        get(move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
            let log = log.clone();
            async move {
                assert!(authorized(&headers));
                log.lock().unwrap().push(q.clone());
                let (data, next) = match q.get("cursor").map(String::as_str) {
                    None => (json!([{"id": "D00", "name": "Sales", "parent_id": null}]), json!("c1")),
                    Some("c1") => (json!([{"id": "D01", "name": "EMEA", "parent_id": "D00"}]), json!("c2")),
                    Some("c2") => (json!([{"id": "D02", "name": "DACH", "parent_id": "D01"}]), Value::Null),
                    Some(other) => panic!("unexpected cursor {other}"),
                };
                axum::Json(json!({"data": data, "next_cursor": next}))
            }
        }),
    ))
    .await;
    let deps = client().departments(&conn(&url)).await.unwrap();
    assert_eq!(deps.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["D00", "D01", "D02"]);
    assert_eq!(deps[2].parent_id.as_deref(), Some("D01"));
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|q| q.get("limit").map(String::as_str) == Some("1000")));
    }

    // A base URL with a path prefix keeps it.
    let prefixed =
        mock(Router::new().route(
            "/tenant-a/api/v1/departments",
            get(|| async { axum::Json(json!({"data": [], "next_cursor": null})) }),
        ))
        .await;
    assert!(client().departments(&conn(&format!("{prefixed}/tenant-a/"))).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_cursor_that_does_not_advance_is_refused() {
    let url = mock(Router::new().route(
        "/api/v1/departments",
        get(|| async { axum::Json(json!({"data": [{"id": "D00", "name": "Sales"}], "next_cursor": "same"})) }),
    ))
    .await;
    let e = client().departments(&conn(&url)).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.message.contains("same cursor"), "{e}");

    let c = LmsClient::with_config(LmsClientConfig { max_pages: 3, ..LmsClientConfig::default() }).unwrap();
    let n = Arc::new(Mutex::new(0u32));
    let counter = n.clone();
    let url = mock(Router::new().route(
        "/api/v1/departments",
        get(move || {
            let counter = counter.clone();
            async move {
                let mut g = counter.lock().unwrap();
                *g += 1;
                axum::Json(json!({"data": [], "next_cursor": format!("c{}", *g)}))
            }
        }),
    ))
    .await;
    let e = c.departments(&conn(&url)).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_eq!(*n.lock().unwrap(), 3);
}

#[tokio::test]
async fn learners_go_in_chunks_of_a_hundred_ids() {
    let requests: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let log = requests.clone();
    let url = mock(
        Router::new()
            .route(
                "/api/v1/learners",
                get(move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
                    let log = log.clone();
                    async move {
                        assert!(authorized(&headers));
                        assert!(!q.contains_key("limit") && !q.contains_key("cursor"));
                        let ids: Vec<String> = q["ids"].split(',').map(str::to_string).collect();
                        log.lock().unwrap().push(ids.clone());
                        // Unknown ids (U…) absent; one learner the client did not ask for.
                        let mut data: Vec<Value> =
                            ids.iter().filter(|id| id.starts_with('L')).map(|id| learner_json(id)).collect();
                        data.push(learner_json("L_EXTRA"));
                        axum::Json(json!({"data": data, "next_cursor": null}))
                    }
                }),
            )
            .route(
                "/api/v1/learners/{id}",
                get(|Path(id): Path<String>| async move {
                    match id.as_str() {
                        "a,b" => axum::Json(learner_json("a,b")).into_response(),
                        _ => {
                            (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"code": "not_found"}}))).into_response()
                        }
                    }
                }),
            ),
    )
    .await;
    let mut ids: Vec<String> = (0..230).map(|i| format!("L{i:06}")).collect();
    ids.extend(["U1".to_string(), "L000005".to_string(), String::new(), "a,b".to_string(), "x,y".to_string()]);
    let got = client().learners(&conn(&url), &ids).await.unwrap();
    let sizes: Vec<usize> = requests.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, [100, 100, 31], "230 + U1 distinct listable ids; the duplicate and the empty id are not sent");
    assert_eq!(got.len(), 231, "230 known + the id with a comma, read alone; nothing unasked");
    assert!(got.iter().any(|l| l.id == "a,b"));
    assert!(got.iter().all(|l| l.id != "L_EXTRA" && l.id != "x,y"));
    assert_eq!(got[0].updated_at, time::macros::datetime!(2026-05-12 10:00 UTC));
    assert_eq!(got[0].fields["title"], "Engineer");

    requests.lock().unwrap().clear();
    assert!(client().learners(&conn(&url), &[]).await.unwrap().is_empty());
    assert!(requests.lock().unwrap().is_empty(), "no ids, no request");
}

/// A server answering every request with this status, headers and body.
async fn answering(status: u16, headers: Vec<(&'static str, &'static str)>, body: &'static str) -> String {
    mock(Router::new().fallback(move || {
        let headers = headers.clone();
        async move {
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.insert(k, v.parse().unwrap());
            }
            (StatusCode::from_u16(status).unwrap(), h, body)
        }
    }))
    .await
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let url =
        answering(429, vec![("retry-after", "7")], r#"{"error":{"code":"rate_limited","message":"slow down"}}"#).await;
    let ids = vec!["L000001".to_string()];
    let e = client().learners(&conn(&url), &ids).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Throttled);
    assert_eq!(retry_after(&e), Some(Duration::from_secs(7)));
    assert!(e.message.contains("429") && e.message.contains("retry after 7 s"), "{e}");
    assert!(e.message.contains(&url), "names the LMS: {e}");

    let url = answering(429, vec![], "").await;
    let e = client().departments(&conn(&url)).await.unwrap_err();
    assert_eq!((e.class(), retry_after(&e)), (ErrorClass::Throttled, None));
    assert_eq!(retry_after(&PortError::throttled("elsewhere")), None);
}

#[tokio::test]
async fn statuses_map_onto_the_taxonomy() {
    let cases: [(u16, &'static str, ErrorClass); 8] = [
        (500, "oops", ErrorClass::Retryable),
        (502, "<html>bad gateway</html>", ErrorClass::Retryable),
        (503, "", ErrorClass::Retryable),
        (408, "", ErrorClass::Retryable),
        (
            401,
            r#"{"error":{"code":"unauthorized","message":"key sekrit-lms-key-123 is not valid"}}"#,
            ErrorClass::Permanent,
        ),
        (403, "forbidden", ErrorClass::Permanent),
        (
            400,
            r#"{"error":{"code":"invalid_parameter","message":"ids takes at most 100","parameter":"ids"}}"#,
            ErrorClass::Permanent,
        ),
        (404, "", ErrorClass::Permanent),
    ];
    for (status, body, class) in cases {
        let url = answering(status, vec![], body).await;
        for e in [
            client().departments(&conn(&url)).await.unwrap_err(),
            client().learners(&conn(&url), &["L1".to_string()]).await.unwrap_err(),
        ] {
            assert_eq!(e.class(), class, "{status}: {e}");
            assert!(e.message.contains(&status.to_string()) && e.message.contains("LMS"), "{e}");
            assert!(!everything(&e).contains(KEY), "the key never shows: {e}");
            if status == 401 {
                assert!(e.message.contains("API key") && e.message.contains("[redacted]"), "{e}");
            }
            if status == 400 {
                assert!(e.message.contains("ids takes at most 100"), "the LMS's sentence is kept: {e}");
            }
        }
    }
    let url = answering(302, vec![("location", "http://elsewhere.test/")], "").await;
    let e = client().departments(&conn(&url)).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent, "redirects are not followed");
}

#[tokio::test]
async fn malformed_answers() {
    // Not JSON (a proxy page, a cut body): retryable.
    for body in ["<html>maintenance</html>", r#"{"data": [{"id": "D0""#] {
        let url = answering(200, vec![], body).await;
        let e = client().departments(&conn(&url)).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Retryable, "{body}");
        assert!(e.source.is_some(), "the parse error is kept as the cause");
    }
    // JSON of another shape: retrying cannot help.
    for body in [r#"{"items": []}"#, r#"{"data": [{"id": "L1", "email": "x@y.z", "active": "yes"}]}"#] {
        let url = answering(200, vec![], body).await;
        let e = client().learners(&conn(&url), &["L1".to_string()]).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent, "{body}");
        assert!(e.message.contains("not the canonical"), "{e}");
    }
}

#[tokio::test]
async fn transport_failures_are_retryable_and_bad_urls_permanent() {
    let url = refused_url().await;
    let e = client().departments(&conn(&url)).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert!(e.message.contains("could not connect"), "{e}");
    assert!(!everything(&e).contains(KEY));

    let slow = mock(Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }))
    .await;
    let c = LmsClient::with_config(LmsClientConfig {
        request_timeout: Duration::from_millis(200),
        ..LmsClientConfig::default()
    })
    .unwrap();
    let e = c.learners(&conn(&slow), &["L1".to_string()]).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert!(e.message.contains("timed out"), "{e}");
    assert!(!everything(&e).contains("L1"), "no URL (learner ids) in the error: {e:?}");

    for bad in ["", "lms.example.com", "ftp://lms.example.com", "https://user:pw@lms.example.com", "https://lms?x=1"] {
        let e = client().departments(&conn(bad)).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent, "{bad}");
        assert!(!e.message.contains(KEY));
    }
}

/// The real thing: the LMS emulator, in-process.
struct Emulator {
    base: String,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Emulator {
    async fn start() -> Emulator {
        crate::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = lms_emulator::Config { api_key: KEY.to_string(), ..lms_emulator::Config::default() };
        let task = tokio::spawn(lms_emulator::serve(listener, config));
        Emulator { base, http: reqwest::Client::new(), task }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self.http.request(method, format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn api(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(KEY).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
}

#[tokio::test]
async fn against_the_lms_emulator() {
    let emu = Emulator::start().await;
    let body = json!({"seed": 3, "learners": 260, "departments": 40, "courses": 4, "enrollments_per_learner": 1});
    emu.admin(reqwest::Method::POST, "/__emulator/dataset", body).await;
    let c = LmsClient::with_config(LmsClientConfig { page_limit: 7, ..LmsClientConfig::default() }).unwrap();
    let lms = conn(&emu.base);

    // Departments: every page (40 in pages of 7), parent links intact.
    let deps = c.departments(&lms).await.unwrap();
    assert_eq!(deps.len(), 40);
    let ids: HashSet<&str> = deps.iter().map(|d| d.id.as_str()).collect();
    assert!(deps.iter().filter_map(|d| d.parent_id.as_deref()).all(|p| ids.contains(p)));
    let stats = emu.admin(reqwest::Method::GET, "/__emulator/stats", Value::Null).await;
    assert_eq!(stats["requests"]["GET /api/v1/departments"], 6);

    // Learners: 250 known + 2 unknown ids in 3 requests, same values as the list.
    let mut wanted: Vec<String> = (5..255).map(|i| format!("L{i:06}")).collect();
    wanted.extend(["L999999".to_string(), "nobody".to_string()]);
    let got = c.learners(&lms, &wanted).await.unwrap();
    assert_eq!(got.len(), 250);
    let stats = emu.admin(reqwest::Method::GET, "/__emulator/stats", Value::Null).await;
    assert_eq!(stats["requests"]["GET /api/v1/learners"], 3);
    let listed = emu.api("/api/v1/learners?ids=L000005").await;
    let first: Learner = serde_json::from_value(listed["data"][0].clone()).unwrap();
    assert_eq!(got[0], first);

    // A learner changed through the API is read back as changed.
    let r = emu
        .http
        .patch(format!("{}/api/v1/learners/L000007", emu.base))
        .bearer_auth(KEY)
        .json(&json!({"email": "moved@example.org"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let again = c.learners(&lms, &["L000007".to_string()]).await.unwrap();
    assert_eq!(again[0].email, "moved@example.org");
    assert!(again[0].updated_at > first.updated_at);
    assert_eq!(c.learner(&lms, "L000007").await.unwrap().unwrap().email, "moved@example.org");
    assert_eq!(c.learner(&lms, "L999999").await.unwrap(), None);
    assert_eq!(c.learner(&lms, "..").await.unwrap(), None);

    // A wrong key: permanent, named, not shown.
    let wrong = LmsConnection { base_url: emu.base.clone(), api_key: SecretString::from("not-the-key") };
    let e = c.departments(&wrong).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.message.contains("401") && e.message.contains(&emu.base), "{e}");
    assert!(!everything(&e).contains("not-the-key") && !everything(&e).contains(KEY));

    // The rate limit: throttled with the emulator's Retry-After.
    emu.admin(reqwest::Method::POST, "/__emulator/rate-limit", json!({"requests": 1, "window_ms": 60_000})).await;
    c.departments(&lms).await.unwrap_err(); // 6 pages: the second one is refused
    let e = c.learners(&lms, &wanted).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Throttled);
    let wait = retry_after(&e).unwrap();
    assert!((1..=60).contains(&wait.as_secs()), "{wait:?}");
}
