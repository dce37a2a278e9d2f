//! Throughput: enrollments upserted through Composite requests carrying five
//! sObject Collections upserts of 200 records each (learnlink's write path).
//! Release builds must reach 5,000 records/s; debug builds are only checked loosely.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_upsert_throughput() {
    let emu = start().await;
    let c = emu.connect().await;
    emu.seed_contacts(1000).await;
    let total = 20_000;
    let bodies: Vec<Vec<u8>> = (0..total / 1000)
        .map(|req| {
            let subs: Vec<Value> = (0..5)
                .map(|k| {
                    let records: Vec<Value> = (0..200)
                        .map(|i| {
                            let n = req * 1000 + k * 200 + i;
                            enrollment(&format!("E{n}"), &format!("L{}", n % 1000), "In Progress")
                        })
                        .collect();
                    json!({
                        "method": "PATCH",
                        "url": format!("/services/data/{V}/composite/sobjects/LMS_Enrollment__c/LMS_Enrollment_Id__c"),
                        "referenceId": format!("b{k}"),
                        "body": {"allOrNone": false, "records": records},
                    })
                })
                .collect();
            serde_json::to_vec(&json!({"allOrNone": false, "compositeRequest": subs})).unwrap()
        })
        .collect();
    let started = Instant::now();
    for body in bodies {
        let r = emu
            .client
            .post(emu.data("/composite"))
            .bearer_auth(&c.access_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        assert!(v["compositeResponse"].as_array().unwrap().iter().all(|s| s["body"][199]["success"] == true));
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = total as f64 / secs;
    println!("composite upsert: {total} records in {secs:.2}s = {rate:.0} records/s");
    let floor = if cfg!(debug_assertions) { 1_000.0 } else { 5_000.0 };
    assert!(rate >= floor, "{rate:.0} records/s < {floor}");
    let stats = emu.admin_get("/stats").await;
    assert_eq!(stats["records_written"], total);
    assert_eq!(stats["api_calls"], total / 1000);
}
