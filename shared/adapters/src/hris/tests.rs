//! The HRIS client against the HRIS emulator started in-process, and against
//! axum mock servers for edge cases.

use super::*;
use crate::http::testkit::{Emulator, everything, mock, refused_url};
use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use learnlink_core::{Classify, ErrorClass};
use secrecy::SecretString;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

const KEY: &str = "sekrit-hris-key-123";
const TOKEN: &str = "acct-token-456";

fn conn(base: &str) -> HrisConnection {
    HrisConnection {
        base_url: base.to_string(),
        api_key: SecretString::from(KEY),
        account_token: SecretString::from(TOKEN),
    }
}

fn client() -> HrisClient {
    HrisClient::new().unwrap()
}

fn assert_no_secrets(e: &PortError) {
    let all = everything(e);
    assert!(!all.contains(KEY) && !all.contains(TOKEN), "{all}");
}

/// The emulator in-process, with our key and token.
async fn emulator(employees: u32, groups: u32) -> Emulator {
    let config = hris_emulator::Config {
        api_key: KEY.into(),
        account_token: TOKEN.into(),
        dataset: hris_emulator::DatasetParams { seed: 5, employees, groups },
    };
    Emulator::start(|listener| hris_emulator::serve(listener, config)).await
}

fn id_of(e: &Map<String, Value>) -> String {
    e["id"].as_str().unwrap().to_string()
}

fn key_of(e: &Map<String, Value>) -> (String, String) {
    (e["modified_at"].as_str().unwrap().to_string(), id_of(e))
}

#[tokio::test]
async fn hris_client_pages_the_emulator_without_skips_or_repeats_while_it_changes() {
    let emu = emulator(250, 4).await;
    let c = client();
    let hris = conn(&emu.base);
    let first = c.employees_page(&hris, None, None, 40).await.unwrap();
    assert_eq!(first.results.len(), 40);
    let served = id_of(&first.results[3]);
    let mut got = first.results.clone();
    // Changes between pages: a served one and a new one come (again) at the end.
    emu.admin(reqwest::Method::PATCH, &format!("/__emulator/employees/{served}"), json!({"job_title": "CEO"})).await;
    let created = emu.admin(reqwest::Method::POST, "/__emulator/employees", json!([{"first_name": "New"}])).await;
    let new_id = created["employees"][0]["id"].as_str().unwrap().to_string();
    let mut cursor = first.next.clone();
    let mut pages = 1;
    while let Some(cur) = cursor {
        // modified_after beside a cursor is not sent (the emulator would refuse a different one).
        let p = c.employees_page(&hris, Some("2020-01-01T00:00:00Z"), Some(&cur), 40).await.unwrap();
        got.extend(p.results);
        cursor = p.next;
        pages += 1;
    }
    assert_eq!(pages, 7);
    assert_eq!(got.len(), 252);
    for w in got.windows(2) {
        assert!(key_of(&w[0]) < key_of(&w[1]));
    }
    let ids: Vec<String> = got.iter().map(id_of).collect();
    assert_eq!(ids.iter().filter(|i| **i == served).count(), 2);
    assert_eq!(ids[ids.len() - 2..], [served.clone(), new_id]);
    assert_eq!(got[got.len() - 2]["job_title"], "CEO");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 251);

    // modified_after (exclusive) on the first page.
    let t = got[100]["modified_at"].as_str().unwrap().to_string();
    let after = c.employees_page(&hris, Some(&t), None, 100).await.unwrap();
    assert!(after.results.iter().all(|e| e["modified_at"].as_str().unwrap() > t.as_str()));
    assert_eq!(after.results[0], *got.iter().find(|e| e["modified_at"].as_str().unwrap() > t.as_str()).unwrap());
    // page_size is clamped to the API's 1..=100.
    assert_eq!(c.employees_page(&hris, None, None, 1000).await.unwrap().results.len(), 100);
    assert_eq!(c.employees_page(&hris, None, None, 0).await.unwrap().results.len(), 1);

    let groups = c.groups(&hris).await.unwrap();
    assert_eq!(groups.len(), 4);
    let names: HashSet<&str> = groups.values().map(String::as_str).collect();
    assert!(names.contains("Engineering"), "{names:?}");
    assert!(got.iter().flat_map(|e| e["groups"].as_array().unwrap()).all(|g| groups.contains_key(g.as_str().unwrap())));
}

#[tokio::test]
async fn hris_client_maps_the_emulators_failures_onto_the_taxonomy() {
    let emu = emulator(10, 150).await;
    let c = client();
    let hris = conn(&emu.base);
    // Groups follow every cursor (150 groups: two pages).
    assert_eq!(c.groups(&hris).await.unwrap().len(), 150);

    emu.admin(reqwest::Method::POST, "/__emulator/faults", json!({"status": 429, "count": 1})).await;
    let e = c.employees_page(&hris, None, None, 10).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Throttled);
    assert_eq!(retry_after(&e), Some(Duration::from_secs(1)));
    assert!(e.message.contains("429") && e.message.contains("retry after 1 s"), "{e}");
    for status in [500, 503, 408] {
        emu.admin(reqwest::Method::POST, "/__emulator/faults", json!({"status": status, "count": 1})).await;
        let e = c.groups(&hris).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Retryable, "{status}");
    }
    emu.admin(reqwest::Method::POST, "/__emulator/faults", json!({"status": 404, "count": 1})).await;
    assert_eq!(c.groups(&hris).await.unwrap_err().class(), ErrorClass::Permanent);

    for (after, cursor, param) in [(Some("yesterday"), None, "modified_after"), (None, Some("not-a-cursor"), "cursor")]
    {
        let e = c.employees_page(&hris, after, cursor, 10).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.message.contains("400") && e.message.contains(param), "{e}");
    }

    for bad in [
        HrisConnection { api_key: SecretString::from("wrong-key"), ..conn(&emu.base) },
        HrisConnection { account_token: SecretString::from("wrong-token"), ..conn(&emu.base) },
    ] {
        let e = c.employees_page(&bad, None, None, 10).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.message.contains("401") && e.message.contains("account token"), "{e}");
        let all = everything(&e);
        assert!(!all.contains("wrong-key") && !all.contains("wrong-token"), "{all}");
        assert_no_secrets(&e);
    }
}

#[tokio::test]
async fn hris_client_sends_the_credentials_and_passes_the_cursor_back_verbatim() {
    let seen: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
    let log = seen.clone();
    let weird = "a+b/c=d&e%20f g~é";
    let url = mock(Router::new().route(
        "/prefix/api/hris/v1/employees",
        get(move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| {
            let log = log.clone();
            async move {
                assert_eq!(headers["authorization"], format!("Bearer {KEY}"));
                assert_eq!(headers["x-account-token"], TOKEN);
                log.lock().unwrap().push(q.clone());
                let (results, next) = match q.get("cursor").map(String::as_str) {
                    None => (
                        json!([{"id": "e1", "modified_at": "2026-05-12T10:00:00.000Z", "custom": {"x": 1}}]),
                        json!(weird),
                    ),
                    Some(c) if c == weird => (json!([]), Value::Null),
                    Some(other) => panic!("unexpected cursor {other:?}"),
                };
                axum::Json(json!({"next": next, "previous": null, "results": results}))
            }
        }),
    ))
    .await;
    let c = client();
    let hris = conn(&format!("{url}/prefix/"));
    let p1 = c.employees_page(&hris, Some("2026-05-01T00:00:00+02:00"), None, 50).await.unwrap();
    assert_eq!(p1.next.as_deref(), Some(weird));
    assert_eq!(p1.results[0]["custom"], json!({"x": 1}));
    let p2 = c.employees_page(&hris, Some("2026-05-01T00:00:00+02:00"), p1.next.as_deref(), 50).await.unwrap();
    assert!(p2.results.is_empty() && p2.next.is_none());
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].get("modified_after").map(String::as_str), Some("2026-05-01T00:00:00+02:00"));
    assert_eq!(seen[0].get("page_size").map(String::as_str), Some("50"));
    assert!(!seen[1].contains_key("modified_after"));
    assert_eq!(seen[1].get("cursor").map(String::as_str), Some(weird));
}

#[tokio::test]
async fn hris_client_edge_cases() {
    let c = client();
    // Secrets echoed by the HRIS are redacted; Merge's `detail` is read.
    let url = mock(
        Router::new()
            .route(
                "/api/hris/v1/employees",
                get(|| async {
                    (
                        StatusCode::FORBIDDEN,
                        axum::Json(json!({"detail": format!("token {TOKEN} with key {KEY} is not allowed")})),
                    )
                }),
            )
            .route(
                "/api/hris/v1/groups",
                get(|| async { (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response() }),
            ),
    )
    .await;
    let e = c.employees_page(&conn(&url), None, None, 10).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.message.contains("[redacted]") && e.message.contains("403"), "{e}");
    assert_no_secrets(&e);
    let e = c.groups(&conn(&url)).await.unwrap_err();
    assert_eq!((e.class(), retry_after(&e)), (ErrorClass::Throttled, None));

    // Bodies: not JSON → retryable; the wrong shape → permanent.
    let url = mock(
        Router::new()
            .route("/api/hris/v1/employees", get(|| async { "<html>oops</html>" }))
            .route("/api/hris/v1/groups", get(|| async { axum::Json(json!({"results": [1, 2]})) })),
    )
    .await;
    assert_eq!(c.employees_page(&conn(&url), None, None, 10).await.unwrap_err().class(), ErrorClass::Retryable);
    assert_eq!(c.groups(&conn(&url)).await.unwrap_err().class(), ErrorClass::Permanent);
    let url = mock(Router::new().route(
        "/api/hris/v1/employees",
        get(|| async { axum::Json(json!({"next": null, "results": [{"id": "x"}, "not an object"]})) }),
    ))
    .await;
    assert_eq!(c.employees_page(&conn(&url), None, None, 10).await.unwrap_err().class(), ErrorClass::Permanent);

    // Redirects are not followed; cursors that do not advance are refused.
    let url = mock(
        Router::new()
            .route(
                "/api/hris/v1/employees",
                get(|| async {
                    (StatusCode::FOUND, [("location", "http://elsewhere.test/steal")], "").into_response()
                }),
            )
            .route(
                "/api/hris/v1/groups",
                get(|| async { axum::Json(json!({"next": "same", "results": [{"id": "g", "name": null}]})) }),
            ),
    )
    .await;
    let e = c.employees_page(&conn(&url), None, None, 10).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.message.contains("redirect"), "{e}");
    let e = c.groups(&conn(&url)).await.unwrap_err();
    assert!(e.class() == ErrorClass::Permanent && e.message.contains("same cursor"), "{e}");
    let same = mock(
        Router::new()
            .route("/api/hris/v1/employees", get(|| async { axum::Json(json!({"next": "c1", "results": []})) })),
    )
    .await;
    let e = c.employees_page(&conn(&same), None, Some("c1"), 10).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Permanent);
    let c3 = HrisClient::with_config(HrisClientConfig { max_pages: 3, ..HrisClientConfig::default() }).unwrap();
    let n = Arc::new(Mutex::new(0u32));
    let counter = n.clone();
    let endless = mock(Router::new().route(
        "/api/hris/v1/groups",
        get(move || {
            let counter = counter.clone();
            async move {
                let mut g = counter.lock().unwrap();
                *g += 1;
                axum::Json(json!({"next": format!("c{}", *g), "results": []}))
            }
        }),
    ))
    .await;
    assert_eq!(c3.groups(&conn(&endless)).await.unwrap_err().class(), ErrorClass::Permanent);
    assert_eq!(*n.lock().unwrap(), 3);

    // Transport: refused → retryable; a timeout → retryable; bad base URLs → permanent.
    let e = c.groups(&conn(&refused_url().await)).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Retryable);
    assert_no_secrets(&e);
    let slow = mock(Router::new().route(
        "/api/hris/v1/groups",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            axum::Json(json!({"results": []}))
        }),
    ))
    .await;
    let quick = HrisClient::with_config(HrisClientConfig {
        request_timeout: Duration::from_millis(200),
        ..HrisClientConfig::default()
    })
    .unwrap();
    let e = quick.groups(&conn(&slow)).await.unwrap_err();
    assert!(e.class() == ErrorClass::Retryable && e.message.contains("timed out"), "{e}");
    for base in ["ftp://hris.test", "not a url", "http://user:pw@hris.test", "http://hris.test/?q=1"] {
        let e = c.groups(&conn(base)).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent, "{base}");
    }
}

#[tokio::test]
async fn hris_fake_and_emulator_page_alike() {
    let emu = emulator(0, 0).await;
    let fake = MemoryHris::new();
    let employees: Vec<Value> = (0..23)
        .map(|i| {
            json!({"id": format!("e{:02}", (i * 7) % 23), "first_name": format!("N{i}"),
                "modified_at": format!("2026-03-0{}T10:00:00.000Z", 1 + i % 3)})
        })
        .collect();
    emu.admin(reqwest::Method::POST, "/__emulator/employees", Value::Array(employees.clone())).await;
    fake.put_employees(employees).unwrap();
    let c = client();
    let hris = conn(&emu.base);
    for after in [None, Some("2026-03-01T10:00:00.000Z"), Some("2026-03-03T10:00:00Z")] {
        let (mut real, mut faked) = (Vec::new(), Vec::new());
        let (mut rc, mut fc): (Option<String>, Option<String>) = (None, None);
        loop {
            let r = c.employees_page(&hris, after, rc.as_deref(), 4).await.unwrap();
            let f = fake.employees_page(&hris, after, fc.as_deref(), 4).await.unwrap();
            real.extend(r.results.iter().map(id_of));
            faked.extend(f.results.iter().map(id_of));
            assert_eq!(r.next.is_some(), f.next.is_some());
            (rc, fc) = (r.next, f.next);
            if rc.is_none() {
                break;
            }
        }
        assert_eq!(real, faked, "{after:?}");
    }
}
