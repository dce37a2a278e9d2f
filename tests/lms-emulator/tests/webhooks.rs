//! Webhook emission to an in-process receiver.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec_test";

#[derive(Default)]
struct Received {
    deliveries: Vec<(Option<String>, Vec<u8>)>,
}

async fn receiver() -> (String, Arc<Mutex<Received>>, tokio::task::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Received::default()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let g = g.clone();
            async move {
                let sig = headers.get("learnlink-signature").map(|v| v.to_str().unwrap().to_owned());
                assert_eq!(headers["content-type"], "application/json");
                g.lock().unwrap().deliveries.push((sig, body.to_vec()));
                StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, got, task)
}

fn verify(sig: &str, body: &[u8]) -> bool {
    let (t, v1) = sig.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let v1 = v1.strip_prefix("v1=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    (now - t.parse::<i64>().unwrap()).abs() < 300 && hex::encode(mac.finalize().into_bytes()) == v1
}

async fn emit(lms: &Lms, body: Value) -> (u16, Value) {
    let r = lms.client.post(lms.url("/__emulator/webhooks/emit")).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn signed_canonical_deliveries() {
    let lms = start().await;
    lms.dataset(5, 40, 3, 6, 3).await;
    let (url, got, task) = receiver().await;
    let (status, report) = emit(
        &lms,
        json!({"target_url": url, "dialect": "canonical", "secret": SECRET, "count": 10, "events_per_delivery": 3}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["deliveries"], 4);
    assert_eq!(report["events"], 10);
    assert_eq!(report["statuses"], json!({"202": 4}));
    assert_eq!(report["errors"], 0);

    let first10: Vec<Value> = lms.get("/api/v1/enrollments?limit=10").await.1["data"].as_array().unwrap().clone();
    let rec = got.lock().unwrap();
    assert_eq!(rec.deliveries.len(), 4);
    let mut events: Vec<Value> = Vec::new();
    for (sig, body) in &rec.deliveries {
        assert!(verify(sig.as_deref().unwrap(), body), "signature verifies");
        let v: Value = serde_json::from_slice(body).unwrap();
        events.extend(v["events"].as_array().unwrap().iter().cloned());
    }
    events.sort_by_key(|e| {
        (e["data"]["updated_at"].as_str().unwrap().to_owned(), e["data"]["id"].as_str().unwrap().to_owned())
    });
    assert_eq!(events.len(), 10);
    for (e, d) in events.iter().zip(&first10) {
        assert_eq!(&e["data"], d, "event data is the API's Enrollment object");
        let ms = time::OffsetDateTime::parse(
            d["updated_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp_nanos()
            / 1_000_000;
        assert_eq!(e["id"], format!("evt_{}_{}", d["id"].as_str().unwrap(), ms));
        assert_eq!(e["occurred_at"], d["updated_at"]);
        let expected_type = if d["status"] == "completed" {
            "enrollment.completed"
        } else if d["updated_at"] == d["enrolled_at"] {
            "enrollment.created"
        } else {
            "enrollment.updated"
        };
        assert_eq!(e["type"], expected_type);
    }
    drop(rec);
    task.abort();
}

#[tokio::test]
async fn duplicates_reorder_and_selection() {
    let lms = start().await;
    lms.dataset(9, 60, 3, 6, 2).await;
    let (url, got, task) = receiver().await;
    let (status, report) = emit(&lms, json!({"target_url": url, "secret": SECRET, "count": 40, "duplicate_pct": 25, "reorder": true, "concurrency": 1})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["deliveries"], 50);
    assert_eq!(report["duplicates"], 10);
    assert_eq!(report["events"], 50);
    let bodies: Vec<Vec<u8>> = got.lock().unwrap().deliveries.iter().map(|d| d.1.clone()).collect();
    let ids: Vec<String> = bodies
        .iter()
        .map(|b| serde_json::from_slice::<Value>(b).unwrap()["events"][0]["id"].as_str().unwrap().to_owned())
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 40);
    let in_order: Vec<Value> = lms.get("/api/v1/enrollments?limit=40").await.1["data"].as_array().unwrap().clone();
    let updated: Vec<String> = bodies
        .iter()
        .map(|b| {
            serde_json::from_slice::<Value>(b).unwrap()["events"][0]["data"]["updated_at"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut sorted = updated.clone();
    sorted.sort();
    assert_ne!(updated, sorted, "reordered");
    assert_eq!(in_order.len(), 40);

    // Same request again: the same send order (deterministic shuffle).
    got.lock().unwrap().deliveries.clear();
    emit(&lms, json!({"target_url": url, "secret": SECRET, "count": 40, "duplicate_pct": 25, "reorder": true, "concurrency": 1})).await;
    let again: Vec<Vec<u8>> = got.lock().unwrap().deliveries.iter().map(|d| d.1.clone()).collect();
    assert_eq!(again, bodies);

    // Explicit ids, type override; errors.
    got.lock().unwrap().deliveries.clear();
    let (status, report) = emit(
        &lms,
        json!({"target_url": url, "enrollment_ids": ["E0000003", "E0000001"], "event_type": "enrollment.progress"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(report["deliveries"], 2);
    {
        let rec = got.lock().unwrap();
        assert!(rec.deliveries.iter().all(|d| d.0.is_none()), "unsigned without a secret");
        let v: Value = serde_json::from_slice(&rec.deliveries[0].1).unwrap();
        assert_eq!(v["events"][0]["type"], "enrollment.progress");
    }
    for bad in [
        json!({"target_url": url, "enrollment_ids": ["E9999999"]}),
        json!({"target_url": url, "count": 1, "dialect": "nope"}),
        json!({"target_url": url, "count": 1, "events_per_delivery": 101}),
        json!({"target_url": "ftp://x", "count": 1}),
        json!({"target_url": url}),
    ] {
        let (status, body) = emit(&lms, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"]["message"].is_string());
    }
    let stats: Value = lms.client.get(lms.url("/__emulator/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["webhooks_sent"], 102);
    task.abort();
}
