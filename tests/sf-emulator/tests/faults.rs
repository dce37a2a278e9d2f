//! Injected faults: count-based (the next N matching requests) and
//! rate-based (a standing fault hitting each matching request with a
//! probability, from seeded draws), their scopes and their statistics.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

/// One enrollment upsert (a `collections` write): its status.
async fn write(emu: &Emu, token: &str, n: usize) -> u16 {
    let (status, body) = emu
        .upsert(
            token,
            "LMS_Enrollment__c",
            "LMS_Enrollment_Id__c",
            json!({"allOrNone": false, "records": [enrollment(&format!("E{n}"), "L0", "Enrolled")]}),
        )
        .await;
    match status {
        // Per-record UNABLE_TO_LOCK_ROW answers 200 with the error in the result.
        200 if body[0]["success"] == false => 409,
        s => s,
    }
}

async fn post_fault(emu: &Emu, body: Value) -> (u16, Value) {
    let r = emu.client.post(emu.url("/__emulator/faults")).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn a_rate_fault_hits_about_its_share_of_matching_requests_until_cleared() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    emu.seed_contacts(1).await;
    let (status, v) =
        post_fault(&emu, json!({"kind": "server_error", "rate": 0.25, "seed": 42, "scope": "collections"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"pending": null, "standing": 1}), "a standing fault has no end");
    let mut hits = 0;
    for n in 0..400 {
        match write(&emu, t, n).await {
            500 => hits += 1,
            s => assert_eq!(s, 200, "a miss is answered normally"),
        }
        // Another scope is never hit.
        assert_eq!(emu.query(t, "SELECT Id FROM Contact").await.0, 200);
    }
    assert!((60..=140).contains(&hits), "about a quarter of 400: {hits}");
    let listed = emu.admin_get("/faults").await;
    let f = &listed["faults"][0];
    assert_eq!((f["rate"].as_f64(), f["seen"].as_u64(), f["hits"].as_u64()), (Some(0.25), Some(400), Some(hits)));
    assert!(f["remaining"].is_null(), "{listed}");
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["faults_injected"], hits, "{stats}");
    assert_eq!(stats["faults_injected_by_kind"], json!({"server_error": hits}), "{stats}");
    // Still standing after all of them; cleared: no more hits.
    emu.client.delete(emu.url("/__emulator/faults")).send().await.unwrap();
    for n in 0..50 {
        assert_eq!(write(&emu, t, n).await, 200);
    }
    assert_eq!(emu.admin_get("/stats").await["faults_injected"], hits);
}

#[tokio::test]
async fn the_same_seed_hits_the_same_requests() {
    let mut patterns = Vec::new();
    for _ in 0..2 {
        let emu = start().await;
        let c = emu.connect().await;
        emu.seed_contacts(1).await;
        post_fault(&emu, json!({"kind": "server_unavailable", "rate": 0.3, "seed": 7})).await;
        let mut pattern = Vec::new();
        for n in 0..60 {
            pattern.push(write(&emu, &c.access_token, n).await);
        }
        patterns.push(pattern);
    }
    assert_eq!(patterns[0], patterns[1]);
    assert!(patterns[0].contains(&503) && patterns[0].contains(&200), "{:?}", patterns[0]);
    // Another seed, another pattern.
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(1).await;
    post_fault(&emu, json!({"kind": "server_unavailable", "rate": 0.3, "seed": 8})).await;
    let mut other = Vec::new();
    for n in 0..60 {
        other.push(write(&emu, &c.access_token, n).await);
    }
    assert_ne!(other, patterns[0]);
}

#[tokio::test]
async fn a_rate_fault_with_a_count_ends_after_that_many_hits_and_never_shadows_a_count_fault() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    emu.seed_contacts(1).await;
    // Every write hit (rate 1), three times, then gone.
    let (_, v) = post_fault(&emu, json!({"kind": "unable_to_lock_row", "rate": 1.0, "count": 3})).await;
    assert_eq!(v, json!({"pending": 3, "standing": 1}));
    // Reads are not writes: a lock fault skips them without drawing.
    assert_eq!(emu.query(t, "SELECT Id FROM Contact").await.0, 200);
    let got: Vec<u16> = writes(&emu, t, 5).await;
    assert_eq!(got, [409, 409, 409, 200, 200]);
    assert_eq!(emu.admin_get("/faults").await["faults"], json!([]));

    // A rare standing fault first, a count fault behind it: the count fault
    // still takes the next matching request.
    post_fault(&emu, json!({"kind": "server_error", "rate": 0.000_001, "seed": 1})).await;
    let (_, v) = post_fault(&emu, json!({"kind": "request_limit_exceeded", "count": 2})).await;
    assert_eq!(v, json!({"pending": null, "standing": 1}));
    assert_eq!(writes(&emu, t, 3).await, [403, 403, 200]);
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["faults_injected_by_kind"], json!({"unable_to_lock_row": 3, "request_limit_exceeded": 2}));
    assert_eq!(stats["faults_injected"], 5);
}

/// `n` writes one after the other: their statuses.
async fn writes(emu: &Emu, token: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(write(emu, token, i).await);
    }
    out
}

#[tokio::test]
async fn count_faults_keep_their_semantics_and_bad_rates_are_refused() {
    let emu = start().await;
    let c = emu.connect().await;
    let t = &c.access_token;
    emu.seed_contacts(1).await;
    // No count: one request.
    let (_, v) = post_fault(&emu, json!({"kind": "server_error", "scope": "collections"})).await;
    assert_eq!(v, json!({"pending": 1, "standing": 0}));
    let (_, v) = post_fault(&emu, json!({"kind": "server_error", "count": 2, "scope": "collections"})).await;
    assert_eq!(v["pending"], 3);
    assert_eq!(writes(&emu, t, 4).await, [500, 500, 500, 200]);
    let (_, v) = post_fault(&emu, json!({"kind": "server_error", "count": 0})).await;
    assert_eq!(v["pending"], 0, "count 0 adds nothing");
    for bad in [json!(0.0), json!(-0.1), json!(1.5)] {
        let (status, v) = post_fault(&emu, json!({"kind": "server_error", "rate": bad})).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains("rate"), "{v}");
    }
    assert_eq!(emu.admin_get("/faults").await["faults"], json!([]));
}
