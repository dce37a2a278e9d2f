//! Golden-shape checks against real recorded Salesforce exchanges in
//! `../shared/fixtures/salesforce/recorded/` (read at run time, never copied).

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{Value, json};

fn fixtures_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/salesforce/recorded");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: recorded Salesforce fixtures not found at {}", dir.display());
        None
    }
}

fn load(dir: &std::path::Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same keys and value types, recursively (arrays: element-wise on the first
/// element).
fn same_shape(path: &str, real: &Value, ours: &Value) {
    assert_eq!(kind(real), kind(ours), "type of {path}: real {real} vs ours {ours}");
    match (real, ours) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<&String> = a.keys().collect();
            let kb: Vec<&String> = b.keys().collect();
            assert_eq!(ka, kb, "keys of {path}");
            for (k, v) in a {
                same_shape(&format!("{path}.{k}"), v, &b[k]);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(x), Some(y)) = (a.first(), b.first()) {
                same_shape(&format!("{path}[0]"), x, y);
            }
        }
        _ => {}
    }
}

fn limit_header_ok(h: &str) -> bool {
    let Some(rest) = h.strip_prefix("api-usage=") else {
        return false;
    };
    let Some((a, b)) = rest.split_once('/') else {
        return false;
    };
    a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok()
}

#[tokio::test]
async fn upsert_collection_failure_matches_recording() {
    let Some(dir) = fixtures_dir() else { return };
    let rec = load(&dir, "upsert-sobject-collection.json");
    let ex = &rec["exchanges"][0];
    let emu = start().await;
    let c = emu.connect().await;
    // Replay the recorded request: records without `attributes`.
    let path = ex["request"]["path"].as_str().unwrap();
    let r =
        emu.client.patch(emu.url(path)).bearer_auth(&c.access_token).json(&ex["request"]["body"]).send().await.unwrap();
    assert_eq!(r.status().as_u16() as u64, ex["response"]["status"].as_u64().unwrap());
    let headers = r.headers().clone();
    assert_eq!(headers["content-type"].to_str().unwrap(), ex["response"]["headers"]["content-type"].as_str().unwrap());
    assert!(limit_header_ok(headers["sforce-limit-info"].to_str().unwrap()));
    assert!(limit_header_ok(ex["response"]["headers"]["sforce-limit-info"].as_str().unwrap()));
    let ours: Value = r.json().await.unwrap();
    same_shape("$", &ex["response"]["body"], &ours);
    assert_eq!(ours, ex["response"]["body"], "identical error for the identical request");

    // A success result has the recorded keys plus `id` (as single-record upserts do).
    emu.seed_contacts(1).await;
    let (_, ok) = emu
        .upsert(
            &c.access_token,
            "LMS_Enrollment__c",
            "LMS_Enrollment_Id__c",
            json!({"records": [enrollment("E1", "L0", "Enrolled")]}),
        )
        .await;
    let upsert_rec = load(&dir, "update-record-by-external-id.json");
    same_shape("$", &upsert_rec["exchanges"][0]["response"]["body"], &ok[0]);
}

#[tokio::test]
async fn query_matches_recording() {
    let Some(dir) = fixtures_dir() else { return };
    let rec = load(&dir, "query-records.json");
    let ex = &rec["exchanges"][0];
    let emu = start().await;
    let c = emu.connect().await;
    let names: Vec<Value> =
        ex["response"]["body"]["records"].as_array().unwrap().iter().map(|r| json!({"Name": r["Name"]})).collect();
    let r = emu.client.post(emu.url("/__emulator/records/Account")).json(&names).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let q = ex["request"]["query"]["q"].as_str().unwrap();
    let r = emu
        .client
        .get(emu.url(ex["request"]["path"].as_str().unwrap()))
        .query(&[("q", q)])
        .bearer_auth(&c.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        ex["response"]["headers"]["content-type"].as_str().unwrap()
    );
    let ours: Value = r.json().await.unwrap();
    same_shape("$", &ex["response"]["body"], &ours);
    assert_eq!(ours["totalSize"], ex["response"]["body"]["totalSize"]);
    let real_first = &ex["response"]["body"]["records"][0];
    let our_first = &ours["records"][0];
    assert_eq!(our_first["Name"], real_first["Name"]);
    // Same url layout: /services/data/v63.0/sobjects/Account/<18-char id>.
    let url = our_first["attributes"]["url"].as_str().unwrap();
    let real_url = real_first["attributes"]["url"].as_str().unwrap();
    assert_eq!(url.rsplit_once('/').unwrap().0, real_url.rsplit_once('/').unwrap().0);
    assert_eq!(our_first["Id"].as_str().unwrap().len(), real_first["Id"].as_str().unwrap().len());

    // And the version list.
    let versions = load(&dir, "delete-sobject-collection.json");
    let real = &versions["exchanges"][0]["response"]["body"];
    let ours: Value = emu.client.get(emu.url("/services/data")).send().await.unwrap().json().await.unwrap();
    assert_eq!(&ours, real);
}
