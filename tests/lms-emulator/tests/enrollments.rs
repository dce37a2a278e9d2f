//! Enrollments that change over time: `POST /__emulator/enrollments/advance`,
//! the API's view of the moved enrollments, and webhooks carrying every
//! version (`"history": true`) with duplicates and a share reordered.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use common::*;
use serde_json::{Value, json};

async fn post_json(lms: &Lms, path: &str, body: Value) -> (u16, Value) {
    let r = lms.client.post(lms.url(path)).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn ms(t: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(t.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A receiver that keeps every canonical event, in arrival order.
async fn receiver() -> (String, Arc<Mutex<Vec<Vec<Value>>>>, tokio::task::JoinHandle<()>) {
    let got: Arc<Mutex<Vec<Vec<Value>>>> = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: Bytes| {
            let g = g.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap();
                g.lock().unwrap().push(v["events"].as_array().unwrap().clone());
                StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got, task)
}

#[tokio::test]
async fn advancing_moves_enrollments_forward_and_the_api_sees_the_current_version() {
    let lms = start().await;
    lms.dataset(3, 30, 3, 6, 2).await; // 60 enrollments
    let before = lms.all("/api/v1/enrollments", "", 1000).await;
    assert_eq!(before.len(), 60);
    let ids = ["E0000004", "E0000017", "E0000033"];
    let mut seen: HashMap<String, Vec<Value>> = HashMap::new();
    for e in &before {
        if ids.contains(&e["id"].as_str().unwrap()) {
            seen.entry(e["id"].as_str().unwrap().to_owned()).or_default().push(e.clone());
        }
    }
    for round in 0..3 {
        let (status, v) = post_json(&lms, "/__emulator/enrollments/advance", json!({"enrollment_ids": ids})).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!((v["advanced"].as_u64(), v["versions"].as_u64()), (Some(3), Some(3)));
        for e in v["enrollments"].as_array().unwrap() {
            assert_eq!(e["updated_at"], v["updated_at"], "round {round}: one stamp per request");
            seen.get_mut(e["id"].as_str().unwrap()).unwrap().push(e.clone());
        }
    }
    for (id, versions) in &seen {
        assert_eq!(versions.len(), 4, "{id}");
        for w in versions.windows(2) {
            assert!(ms(&w[1]["updated_at"]) > ms(&w[0]["updated_at"]), "{id}: strictly later, ms precision");
            let rank = |s: &Value| ["enrolled", "in_progress", "completed"].iter().position(|x| s == x);
            match (rank(&w[0]["status"]), rank(&w[1]["status"])) {
                (Some(a), Some(b)) => {
                    assert!(b >= a, "{id}: {} → {}", w[0]["status"], w[1]["status"]);
                    if w[1]["status"] == "in_progress" {
                        assert!(w[1]["progress_pct"].as_u64() > w[0]["progress_pct"].as_u64(), "{id}: progress up");
                    }
                    if w[1]["status"] == "completed" && w[0]["status"] != "completed" {
                        assert_eq!(w[1]["completed_at"], w[1]["updated_at"], "{id}");
                        assert_eq!(w[1]["progress_pct"], 100);
                    }
                }
                _ => assert_eq!((&w[0]["status"], &w[1]["status"]), (&json!("expired"), &json!("enrolled")), "{id}"),
            }
        }
    }
    // The API: each enrollment once, the moved ones last with their current version.
    let after = lms.all("/api/v1/enrollments", "", 7).await;
    assert_eq!(after.len(), 60);
    let tail: Vec<&str> = after[57..].iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(tail, ids);
    for e in &after[57..] {
        assert_eq!(e, seen[e["id"].as_str().unwrap()].last().unwrap());
    }
    let last = seen["E0000004"].last().unwrap()["updated_at"].as_str().unwrap().to_owned();
    let since = format!("/api/v1/enrollments/count?updated_since={last}");
    assert_eq!(lms.get(&since).await.1["count"], 3);
    let recent = lms.all("/api/v1/enrollments", &format!("&updated_since={last}"), 1).await;
    assert_eq!(recent.len(), 3);
    let (_, all) = lms.get("/api/v1/enrollments/count").await;
    assert_eq!(all["count"], 60);
    // A window that held an old version no longer has it.
    let old = seen["E0000017"][0]["updated_at"].as_str().unwrap().to_owned();
    let window = lms.all("/api/v1/enrollments", &format!("&updated_since={old}&updated_until={last}"), 1000).await;
    assert!(window.iter().all(|e| e["id"] != "E0000017"));

    // `count` takes the least recently changed; `steps` several versions at once.
    let (_, v) = post_json(&lms, "/__emulator/enrollments/advance", json!({"count": 2, "steps": 3})).await;
    let first2: Vec<&Value> = after[..2].iter().map(|e| &e["id"]).collect();
    let moved: Vec<&Value> = v["enrollments"].as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(moved, first2);
    assert_eq!(v["versions"], 6);
    let stats = lms.client.get(lms.url("/__emulator/stats")).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(stats["enrollment_versions"], 15);
    // Bad requests name the problem.
    for (body, needle) in [
        (json!({}), "count or enrollment_ids"),
        (json!({"enrollment_ids": ["E9"]}), "unknown enrollment id"),
        (json!({"count": 1, "steps": 0}), "steps"),
        (json!({"count": 1, "bogus": 1}), "bogus"),
    ] {
        let (status, v) = post_json(&lms, "/__emulator/enrollments/advance", body).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{v}");
    }
}

#[tokio::test]
async fn history_emits_every_version_with_duplicates_and_a_share_reordered() {
    let lms = start().await;
    lms.dataset(4, 50, 3, 6, 2).await; // 100 enrollments
    let ids: Vec<String> = (0..100).map(|i| format!("E{i:07}")).collect();
    for _ in 0..3 {
        let (status, v) = post_json(&lms, "/__emulator/enrollments/advance", json!({"enrollment_ids": ids})).await;
        assert_eq!(status, 200, "{v}");
    }
    let (url, got, task) = receiver().await;
    let (status, report) = post_json(
        &lms,
        "/__emulator/webhooks/emit",
        json!({"target_url": url, "enrollment_ids": ids, "history": true, "events_per_delivery": 5,
               "duplicate_pct": 10, "reorder_pct": 10, "seed": 3, "concurrency": 1}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["deliveries"], 88, "{report}"); // 80 + 8 re-sent
    assert_eq!(report["duplicates"], 8);
    assert_eq!(report["reordered"], 9); // 10% of 88 sends
    assert_eq!(report["events"], 440);
    assert_eq!(report["duplicate_events"], 40);
    let deliveries = got.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 88);
    let events: Vec<&Value> = deliveries.iter().flatten().collect();
    let unique: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(unique.len(), 400, "each version its own event id");
    // Every version of every enrollment, each carrying its own updated_at.
    let mut by_enrollment: BTreeMap<&str, HashSet<i64>> = BTreeMap::new();
    for e in &events {
        let t = ms(&e["data"]["updated_at"]);
        assert_eq!(e["id"], format!("evt_{}_{t}", e["data"]["id"].as_str().unwrap()));
        by_enrollment.entry(e["data"]["id"].as_str().unwrap()).or_default().insert(t);
    }
    assert_eq!(by_enrollment.len(), 100);
    assert!(by_enrollment.values().all(|v| v.len() == 4));
    // The latest version sent is the API's current one.
    let current = lms.all("/api/v1/enrollments", "", 1000).await;
    for e in &current {
        let newest = by_enrollment[e["id"].as_str().unwrap()].iter().max().copied();
        assert_eq!(newest, Some(ms(&e["updated_at"])));
    }
    // Reordered: some older version of an enrollment arrives after a newer one.
    let mut newest: HashMap<&str, i64> = HashMap::new();
    let mut late = 0;
    for e in &events {
        let (id, t) = (e["data"]["id"].as_str().unwrap(), ms(&e["data"]["updated_at"]));
        match newest.get(id) {
            Some(n) if *n > t => late += 1,
            _ => {
                newest.insert(id, t);
            }
        }
    }
    assert!(late > 0, "some versions arrive after newer ones");
    // Without reordering, rounds go oldest first: no version comes late
    // (a re-sent delivery comes after the originals, hence no duplicates here).
    got.lock().unwrap().clear();
    let (_, report) = post_json(
        &lms,
        "/__emulator/webhooks/emit",
        json!({"target_url": url, "enrollment_ids": ids, "history": true, "events_per_delivery": 5, "concurrency": 1}),
    )
    .await;
    assert_eq!((report["reordered"].as_u64(), report["duplicates"].as_u64()), (Some(0), Some(0)));
    let events: Vec<Value> = got.lock().unwrap().iter().flatten().cloned().collect();
    let mut newest: HashMap<String, i64> = HashMap::new();
    for e in &events {
        let (id, t) = (e["data"]["id"].as_str().unwrap().to_owned(), ms(&e["data"]["updated_at"]));
        assert!(newest.get(&id).is_none_or(|n| *n < t), "{id}: in order");
        newest.insert(id, t);
    }
    // Validation.
    let (status, v) =
        post_json(&lms, "/__emulator/webhooks/emit", json!({"target_url": url, "count": 1, "reorder_pct": 101})).await;
    assert_eq!(status, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("reorder_pct"), "{v}");
    task.abort();
}

#[tokio::test]
async fn every_dialect_can_send_a_history() {
    let lms = start().await;
    lms.dataset(5, 10, 3, 6, 1).await;
    post_json(&lms, "/__emulator/enrollments/advance", json!({"enrollment_ids": ["E0000001", "E0000002"], "steps": 2}))
        .await;
    let (url, _got, task) = receiver_any().await;
    for dialect in ["thinkific", "northpass", "docebo", "skilljar"] {
        let (status, report) = post_json(
            &lms,
            "/__emulator/webhooks/emit",
            json!({"target_url": url, "dialect": dialect, "enrollment_ids": ["E0000001", "E0000002"], "history": true}),
        )
        .await;
        assert_eq!(status, 200, "{dialect}: {report}");
        assert_eq!(report["events"], 6, "{dialect}: three versions each");
    }
    task.abort();
}

/// A receiver answering 202 to anything (vendor dialects).
async fn receiver_any() -> (String, Arc<Mutex<usize>>, tokio::task::JoinHandle<()>) {
    let n: Arc<Mutex<usize>> = Arc::default();
    let c = n.clone();
    let app = axum::Router::new().fallback(move || {
        let c = c.clone();
        async move {
            *c.lock().unwrap() += 1;
            StatusCode::ACCEPTED
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, n, task)
}
