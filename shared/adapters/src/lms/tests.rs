//! The LMS client against axum mock servers (edge cases) and against the LMS
//! emulator started in-process.

use super::*;
use crate::http::testkit::{Emulator, everything, mock, refused_url};
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use learnlink_core::model::Department;
use learnlink_core::{Classify, ErrorClass};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const KEY: &str = "sekrit-lms-key-123";

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
async fn emulator() -> Emulator {
    let config = lms_emulator::Config { api_key: KEY.to_string(), ..lms_emulator::Config::default() };
    Emulator::start(|listener| lms_emulator::serve(listener, config)).await
}

#[tokio::test]
async fn against_the_lms_emulator() {
    let emu = emulator().await;
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
    let listed = emu.get("/api/v1/learners?ids=L000005", KEY).await;
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

// ---------------------------------------------------------------- LmsWriter

fn upsert(external_id: &str, email: &str) -> LearnerUpsert {
    LearnerUpsert {
        external_id: external_id.to_string(),
        email: email.to_string(),
        first_name: "Ada".to_string(),
        last_name: "Lovelace".to_string(),
        department_id: None,
        fields: Default::default(),
        active: true,
        groups: None,
    }
}

fn batch(learners: Vec<LearnerUpsert>) -> LearnerBatch {
    LearnerBatch { learners, send_welcome_email: false, remove_missing_groups: false }
}

fn many(n: usize, prefix: &str) -> Vec<LearnerUpsert> {
    (0..n).map(|i| upsert(&format!("{prefix}{i}"), &format!("{prefix}{i}@example.com").to_lowercase())).collect()
}

fn kinds(outcomes: &[UpsertOutcome]) -> Vec<&'static str> {
    outcomes
        .iter()
        .map(|o| match o {
            UpsertOutcome::Created { .. } => "created",
            UpsertOutcome::Updated { .. } => "updated",
            UpsertOutcome::Unchanged { .. } => "unchanged",
            UpsertOutcome::Failed { .. } => "failed",
        })
        .collect()
}

/// A mock of the three batch endpoints that answers one result per item and
/// logs every body.
async fn batch_mock() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let log: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let l = log.clone();
    let router = Router::new().route(
        "/api/v1/learners/{op}",
        axum::routing::post(move |Path(op): Path<String>, headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
            let l = l.clone();
            async move {
                assert!(authorized(&headers));
                l.lock().unwrap().push((op.clone(), body.clone()));
                let answer = match op.as_str() {
                    "upsert" => {
                        let results: Vec<Value> = body["learners"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|u| json!({"outcome": "created", "id": format!("L-{}", u["external_id"].as_str().unwrap())}))
                            .collect();
                        json!({ "results": results })
                    }
                    "deactivate" => {
                        let results: Vec<Value> =
                            body["external_ids"].as_array().unwrap().iter().map(|_| json!({"outcome": "not_found"})).collect();
                        json!({ "results": results })
                    }
                    _ => {
                        // Every id found, plus one learner in every answer.
                        let mut found: Vec<Value> = body["external_ids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|x| learner_json(&format!("L-{}", x.as_str().unwrap())))
                            .collect();
                        found.push(learner_json("L-ALWAYS"));
                        json!({ "learners": found })
                    }
                };
                axum::Json(answer)
            }
        }),
    );
    (mock(router).await, log)
}

#[tokio::test]
async fn writes_go_in_chunks_of_a_thousand() {
    let (url, log) = batch_mock().await;
    let c = client();
    let mut b = batch(many(2500, "X"));
    b.send_welcome_email = true;
    b.learners[0].groups = Some(vec!["Sales".into()]);
    b.learners[0].department_id = Some("D01".into());
    let got = c.upsert_learners(&conn(&url), &b).await.unwrap();
    assert_eq!(got.len(), 2500);
    assert_eq!(got[0], UpsertOutcome::Created { id: "L-X0".into() });
    assert_eq!(got[2499], UpsertOutcome::Created { id: "L-X2499".into() }, "in order");
    {
        let log = log.lock().unwrap();
        let sizes: Vec<usize> = log.iter().map(|(_, b)| b["learners"].as_array().unwrap().len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert!(
            log.iter().all(|(op, b)| op == "upsert"
                && b["send_welcome_email"] == true
                && b["remove_missing_groups"] == false)
        );
        let first = &log[0].1["learners"][0];
        assert_eq!(first["groups"], json!(["Sales"]));
        assert_eq!(first["department_id"], "D01");
        assert!(log[0].1["learners"][1].get("groups").is_none(), "None groups are not sent");
        let sent: LearnerUpsert = serde_json::from_value(first.clone()).unwrap();
        assert_eq!(sent, b.learners[0]);
    }

    log.lock().unwrap().clear();
    let ids: Vec<String> = (0..1001).map(|i| format!("X{i}")).collect();
    let got = c.deactivate_learners(&conn(&url), &ids).await.unwrap();
    assert_eq!(got.len(), 1001);
    assert!(got.iter().all(|o| *o == DeactivateOutcome::NotFound));
    let sizes: Vec<usize> =
        log.lock().unwrap().iter().map(|(_, b)| b["external_ids"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [1000, 1]);

    // Lookup: ids and emails chunked side by side; repeats and blanks not sent;
    // a learner answered twice is returned once.
    log.lock().unwrap().clear();
    let mut ids: Vec<String> = (0..1500).map(|i| format!("X{i}")).collect();
    ids.extend(["X3".to_string(), " ".to_string()]);
    let emails: Vec<String> = vec!["a@example.com".into(), "a@example.com".into(), "b@example.com".into()];
    let found = c.find_learners(&conn(&url), &ids, &emails).await.unwrap();
    assert_eq!(found.len(), 1501);
    assert_eq!(found[0].id, "L-X0");
    {
        let log = log.lock().unwrap();
        let shapes: Vec<(usize, usize)> = log
            .iter()
            .map(|(op, b)| {
                assert_eq!(op, "lookup");
                (b["external_ids"].as_array().unwrap().len(), b["emails"].as_array().unwrap().len())
            })
            .collect();
        assert_eq!(shapes, [(1000, 2), (500, 0)]);
    }

    // Nothing to do: no request.
    log.lock().unwrap().clear();
    assert!(c.upsert_learners(&conn(&url), &batch(vec![])).await.unwrap().is_empty());
    assert!(c.deactivate_learners(&conn(&url), &[]).await.unwrap().is_empty());
    assert!(c.find_learners(&conn(&url), &[], &[String::new()]).await.unwrap().is_empty());
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn writer_failures_map_onto_the_taxonomy() {
    let c = client();
    let one = batch(vec![upsert("A", "a@example.com")]);
    let ids = vec!["A".to_string()];
    type Case = (u16, Vec<(&'static str, &'static str)>, &'static str, ErrorClass);
    let cases: [Case; 6] = [
        (
            429,
            vec![("retry-after", "9")],
            r#"{"error":{"code":"rate_limited","message":"slow down"}}"#,
            ErrorClass::Throttled,
        ),
        (500, vec![], "oops", ErrorClass::Retryable),
        (503, vec![], "", ErrorClass::Retryable),
        (
            400,
            vec![],
            r#"{"error":{"code":"too_many","message":"learners takes at most 1000 items (key sekrit-lms-key-123)"}}"#,
            ErrorClass::Permanent,
        ),
        (401, vec![], r#"{"error":{"code":"unauthorized","message":"bad key"}}"#, ErrorClass::Permanent),
        (404, vec![], "", ErrorClass::Permanent),
    ];
    for (status, headers, body, class) in cases {
        let url = answering(status, headers, body).await;
        for e in [
            c.upsert_learners(&conn(&url), &one).await.unwrap_err(),
            c.deactivate_learners(&conn(&url), &ids).await.unwrap_err(),
            c.find_learners(&conn(&url), &ids, &[]).await.unwrap_err(),
        ] {
            assert_eq!(e.class(), class, "{status}: {e}");
            assert!(e.message.contains(&status.to_string()) && e.message.contains(&url), "{e}");
            assert!(!everything(&e).contains(KEY), "the key never shows: {e:?}");
            if status == 429 {
                assert_eq!(retry_after(&e), Some(Duration::from_secs(9)));
            }
            if status == 400 {
                assert!(e.message.contains("at most 1000") && e.message.contains("[redacted]"), "{e}");
            }
        }
    }

    // Not JSON: retryable; JSON of another shape or an unknown outcome: permanent.
    let url = answering(200, vec![], "<html>maintenance</html>").await;
    assert_eq!(c.upsert_learners(&conn(&url), &one).await.unwrap_err().class(), ErrorClass::Retryable);
    for body in [r#"{"data": []}"#, r#"{"results": [{"outcome": "exploded", "id": "L1"}]}"#] {
        let url = answering(200, vec![], body).await;
        let e = c.upsert_learners(&conn(&url), &one).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent, "{body}");
    }
    // One result too few or too many: permanent, never misattributed.
    for body in [r#"{"results": []}"#, r#"{"results": [{"outcome": "not_found"}, {"outcome": "not_found"}]}"#] {
        let url = answering(200, vec![], body).await;
        let e = c.deactivate_learners(&conn(&url), &ids).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent, "{body}");
        assert!(e.message.contains("results for 1 items"), "{e}");
    }
    let url = answering(200, vec![], r#"{"results": []}"#).await;
    let e = c.upsert_learners(&conn(&url), &one).await.unwrap_err();
    assert!(e.message.contains("0 results for 1 items"), "{e}");

    // Transport: retryable, no emails or key in the error.
    let url = refused_url().await;
    let e = c.upsert_learners(&conn(&url), &one).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert!(!everything(&e).contains("a@example.com") && !everything(&e).contains(KEY), "{e:?}");
    // A bad base URL: permanent before any request.
    let e = c.find_learners(&conn("ftp://lms.example.com"), &ids, &[]).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);

    // A failure part-way: the error alone (the first chunk was applied).
    let n = Arc::new(Mutex::new(0u32));
    let counter = n.clone();
    let url = mock(Router::new().route(
        "/api/v1/learners/upsert",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let counter = counter.clone();
            async move {
                *counter.lock().unwrap() += 1;
                if *counter.lock().unwrap() > 1 {
                    return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({}))).into_response();
                }
                let len = body["learners"].as_array().unwrap().len();
                let results: Vec<Value> =
                    (0..len).map(|i| json!({"outcome": "created", "id": format!("L{i}")})).collect();
                axum::Json(json!({ "results": results })).into_response()
            }
        }),
    ))
    .await;
    let e = c.upsert_learners(&conn(&url), &batch(many(1500, "P"))).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert_eq!(*n.lock().unwrap(), 2);
}

#[tokio::test]
async fn writer_against_the_lms_emulator() {
    let emu = emulator().await;
    let body = json!({"seed": 3, "learners": 40, "departments": 4, "courses": 1, "enrollments_per_learner": 0});
    emu.admin(reqwest::Method::POST, "/__emulator/dataset", body).await;
    let c = client();
    let lms = conn(&emu.base);

    // 2500 learners in 3 calls; one adopts a generated learner by email; one is refused.
    let generated = c.learner(&lms, "L000005").await.unwrap().unwrap();
    let mut learners = many(2500, "SF");
    learners[1].email = generated.email.to_uppercase();
    learners[2].email = "not an email".into();
    learners[3].groups = Some(vec!["Sales".into(), "EMEA".into()]);
    learners[3].department_id = Some("D01".into());
    learners[3].fields.insert("title".into(), "Engineer".into());
    let mut b = batch(learners);
    b.send_welcome_email = true;
    let got = c.upsert_learners(&lms, &b).await.unwrap();
    assert_eq!(got.len(), 2500);
    assert_eq!(&kinds(&got)[..4], ["created", "updated", "failed", "created"]);
    assert_eq!(got[1], UpsertOutcome::Updated { id: "L000005".into() });
    assert!(
        matches!(&got[2], UpsertOutcome::Failed { code, message } if code == "invalid_field" && message.contains("email"))
    );
    let stats = emu.admin(reqwest::Method::GET, "/__emulator/stats", Value::Null).await;
    assert_eq!(stats["requests"]["POST /api/v1/learners/upsert"], 3);
    assert_eq!((stats["learners_created"].as_u64(), stats["welcome_emails_sent"].as_u64()), (Some(2498), Some(2498)));
    assert_eq!(stats["groups_created"], 2);
    let welcome = emu.admin(reqwest::Method::GET, "/__emulator/welcome-emails", Value::Null).await;
    assert_eq!(welcome["learner_ids"].as_array().unwrap().len(), 2498);

    // The created learners read back through LmsApi.
    let UpsertOutcome::Created { id } = &got[3] else { panic!("{:?}", got[3]) };
    let read = c.learner(&lms, id).await.unwrap().unwrap();
    assert_eq!((read.email.as_str(), read.department_id.as_deref()), ("sf3@example.com", Some("D01")));
    assert_eq!((read.fields["external_id"].as_str(), read.fields["title"].as_str()), ("SF3", "Engineer"));

    // Again: unchanged (the refused one still refused), no welcome email twice.
    let again = c.upsert_learners(&lms, &b).await.unwrap();
    assert!(kinds(&again).iter().enumerate().all(|(i, k)| *k == if i == 2 { "failed" } else { "unchanged" }));
    let stats = emu.admin(reqwest::Method::GET, "/__emulator/stats", Value::Null).await;
    assert_eq!((stats["learners_unchanged"].as_u64(), stats["welcome_emails_sent"].as_u64()), (Some(2499), Some(2498)));

    // Lookup: by external id and by email, chunked (1200 ids: 2 calls).
    let mut ids: Vec<String> = (0..1200).map(|i| format!("SF{i}")).collect();
    ids.push("nobody".into());
    let found = c.find_learners(&lms, &ids, &["SF2000@EXAMPLE.COM".to_string()]).await.unwrap();
    assert_eq!(found.len(), 1200, "1199 by id (SF2 was refused) + SF2000 by email");
    assert!(found.iter().any(|l| l.fields.get("external_id").map(String::as_str) == Some("SF2000")));
    let stats = emu.admin(reqwest::Method::GET, "/__emulator/stats", Value::Null).await;
    assert_eq!(stats["requests"]["POST /api/v1/learners/lookup"], 2);

    // Deactivation: kept, inactive; twice is already_inactive.
    let out = c.deactivate_learners(&lms, &["SF1".to_string(), "SF2".to_string(), "SF1".to_string()]).await.unwrap();
    assert_eq!(
        out,
        [
            DeactivateOutcome::Deactivated { id: "L000005".into() },
            DeactivateOutcome::NotFound,
            DeactivateOutcome::AlreadyInactive { id: "L000005".into() }
        ]
    );
    assert!(!c.learner(&lms, "L000005").await.unwrap().unwrap().active);

    // Wrong key: permanent and not shown; the rate limit: throttled.
    let wrong = LmsConnection { base_url: emu.base.clone(), api_key: SecretString::from("not-the-key") };
    let e = c.upsert_learners(&wrong, &b).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(!everything(&e).contains("not-the-key") && !everything(&e).contains(KEY));
    emu.admin(reqwest::Method::POST, "/__emulator/rate-limit", json!({"requests": 1, "window_ms": 60_000})).await;
    let e = c.upsert_learners(&lms, &b).await.unwrap_err(); // 3 calls: the second is refused
    assert_eq!(e.class(), ErrorClass::Throttled);
    assert!((1..=60).contains(&retry_after(&e).unwrap().as_secs()));
}

/// The fake and the emulator answer the same script alike.
#[tokio::test]
async fn the_memory_fake_agrees_with_the_emulator() {
    let emu = emulator().await;
    let body = json!({"seed": 3, "learners": 0, "departments": 0, "courses": 0, "enrollments_per_learner": 0});
    emu.admin(reqwest::Method::POST, "/__emulator/dataset", body).await;
    let (c, lms) = (client(), conn(&emu.base));
    let fake = MemoryLms::new();
    let mut grouped = upsert("G", "g@example.com");
    grouped.groups = Some(vec!["Sales".into(), "sales".into(), "EMEA".into()]);
    let mut regrouped = grouped.clone();
    regrouped.groups = Some(vec!["APAC".into()]);
    let mut renamed = upsert("A", "A@example.com");
    renamed.last_name = "Byron".into();
    let scripts: Vec<(Vec<LearnerUpsert>, bool)> = vec![
        (vec![upsert("A", "a@example.com"), upsert("B", "b@example.com"), upsert("", "c@example.com")], false),
        (vec![upsert("A", "a@example.com"), upsert("C", "B@EXAMPLE.COM"), upsert("D", "bad")], false),
        (vec![renamed, grouped.clone(), upsert("E", "e@example.com"), upsert("E", "e@example.com")], false),
        (vec![grouped, regrouped.clone()], false),
        (vec![regrouped.clone(), regrouped], true),
    ];
    for (learners, remove) in scripts {
        let b = LearnerBatch { learners, send_welcome_email: true, remove_missing_groups: remove };
        let real = c.upsert_learners(&lms, &b).await.unwrap();
        let faked = fake.upsert_learners(&lms, &b).await.unwrap();
        assert_eq!(kinds(&real), kinds(&faked), "{:?}", b.learners);
    }
    let ids = ["A", "Z", "A", "B"].map(String::from);
    let real: Vec<String> = c.deactivate_learners(&lms, &ids).await.unwrap().iter().map(|o| format!("{o:?}")).collect();
    let faked: Vec<String> =
        fake.deactivate_learners(&lms, &ids).await.unwrap().iter().map(|o| format!("{o:?}")).collect();
    assert_eq!(real.len(), faked.len());
    for (r, f) in real.iter().zip(&faked) {
        assert_eq!(r.split('{').next(), f.split('{').next(), "{real:?} / {faked:?}");
    }
    let emails = ["G@EXAMPLE.COM".to_string()];
    let real = c.find_learners(&lms, &ids, &emails).await.unwrap();
    let faked = fake.find_learners(&lms, &ids, &emails).await.unwrap();
    let ext = |ls: &[Learner]| ls.iter().map(|l| l.fields["external_id"].clone()).collect::<Vec<_>>();
    assert_eq!(ext(&real), ext(&faked));
    assert_eq!(ext(&real), ["A", "B", "G"]);
    assert_eq!(
        fake.welcome_emails().len(),
        emu.admin(reqwest::Method::GET, "/__emulator/welcome-emails", Value::Null).await["learner_ids"]
            .as_array()
            .unwrap()
            .len()
    );
    let g = fake.learner_by_external_id("G").unwrap();
    assert_eq!(fake.groups_of(&g.id), ["APAC"]);
}

#[tokio::test]
async fn the_memory_fake_as_a_writer() {
    let lms = MemoryLms::new();
    let c = conn("http://lms.test");
    lms.set_departments([Department { id: "D1".into(), name: "Sales".into(), parent_id: None }]);
    lms.put_learner(Learner {
        id: "L000100".into(),
        email: "Old@Example.com".into(),
        first_name: "Old".into(),
        last_name: "Timer".into(),
        department_id: None,
        fields: [("title".to_string(), "Engineer".to_string())].into(),
        active: true,
        updated_at: time::macros::datetime!(2026-01-01 0:00 UTC),
    });
    lms.fail_learner("SCRIPTED", "quota", "no seats left");
    let mut with_dept = upsert("D", "d@example.com");
    with_dept.department_id = Some("D9".into());
    let mut b = batch(vec![
        upsert("OLD", "old@example.com"),
        upsert("NEW", "new@example.com"),
        upsert("SCRIPTED", "s@example.com"),
        with_dept,
    ]);
    b.send_welcome_email = true;
    let got = lms.upsert_learners(&c, &b).await.unwrap();
    assert_eq!(kinds(&got), ["updated", "created", "failed", "failed"]);
    assert_eq!(got[0], UpsertOutcome::Updated { id: "L000100".into() });
    assert_eq!(got[2], UpsertOutcome::Failed { code: "quota".into(), message: "no seats left".into() });
    assert!(
        matches!(&got[3], UpsertOutcome::Failed { code, message } if code == "invalid_field" && message.contains("department_id"))
    );
    let old = lms.learner("L000100").unwrap();
    assert_eq!((old.fields["title"].as_str(), old.fields["external_id"].as_str()), ("Engineer", "OLD"));
    assert!(old.updated_at > time::macros::datetime!(2026-01-01 0:00 UTC));
    let UpsertOutcome::Created { id } = &got[1] else { panic!() };
    assert_eq!(lms.welcome_emails(), std::slice::from_ref(id));
    assert_eq!(lms.learner_by_external_id("NEW").unwrap().id, *id);
    // Upserted learners are read back through LmsApi.
    assert_eq!(LmsApi::learners(&lms, &c, std::slice::from_ref(id)).await.unwrap().len(), 1);

    // Big batches count as the client's requests would.
    lms.upsert_learners(&c, &batch(many(2001, "M"))).await.unwrap();
    assert_eq!((lms.upsert_calls(), lms.upsert_requests()), (2, 4));

    // A write outage: writes fail in the class asked, reads go on.
    lms.set_write_outage(Some(ErrorClass::Retryable));
    assert_eq!(lms.upsert_learners(&c, &b).await.unwrap_err().class, ErrorClass::Retryable);
    assert_eq!(lms.deactivate_learners(&c, &[]).await.unwrap_err().class, ErrorClass::Retryable);
    assert_eq!(lms.find_learners(&c, &[], &[]).await.unwrap_err().class, ErrorClass::Retryable);
    assert!(LmsApi::learners(&lms, &c, std::slice::from_ref(id)).await.is_ok());
    lms.set_write_outage(None);
    lms.set_outage(Some(ErrorClass::Throttled));
    assert_eq!(lms.upsert_learners(&c, &b).await.unwrap_err().class, ErrorClass::Throttled);
    lms.set_outage(None);
    lms.require_api_key(Some("right"));
    assert_eq!(lms.find_learners(&c, &[], &[]).await.unwrap_err().class, ErrorClass::Permanent);
    lms.require_api_key(None);
    let out = lms.deactivate_learners(&c, &["NEW".to_string(), "NEW".to_string(), "?".to_string()]).await.unwrap();
    assert_eq!(
        out,
        [
            DeactivateOutcome::Deactivated { id: id.clone() },
            DeactivateOutcome::AlreadyInactive { id: id.clone() },
            DeactivateOutcome::NotFound
        ]
    );
    assert_eq!((lms.upsert_calls(), lms.deactivate_calls(), lms.find_calls()), (4, 2, 2));
    assert_eq!(lms.find_learners(&c, &[], &["OLD@example.COM".to_string()]).await.unwrap()[0].id, "L000100");
    assert!(lms.group_names().is_empty());
}
