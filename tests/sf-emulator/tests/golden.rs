//! Golden replay: every exchange of every recorded file in
//! `../shared/fixtures/salesforce/recorded/` (real Salesforce exchanges, read at run
//! time, never copied) is replayed against the emulator after seeding the records it
//! refers to. The emulator must answer with the same status, the same body shape (keys
//! in order, JSON value types, every array element), the same `errorCode` /
//! `statusCode` values, the same `Location` and `Sforce-Limit-Info` header forms and
//! `nextRecordsUrl` form — and, where the seeded data makes it deterministic, the very
//! same body.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{Map, Value, json};

/// Exchanges that cannot be replayed, with the reason. Counted in the output.
const NOT_REPLAYED: &[(&str, usize, &str)] = &[];

/// Files whose replies must equal the recording exactly (seeded ids and values).
const EXACT: &[&str] = &[
    "cases.json",
    "delete-sobject-collection.json",
    "get-record-by-external-id.json",
    "get-record.json",
    "opportunities.json",
    "query-all-records.json",
    "query-records.json",
    "retrieve-query-more.json",
    "update-record-by-external-id.json",
    "update-sobject-collection.json",
    "upsert-sobject-collection.json",
    "users.json",
];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/salesforce/recorded")
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

/// Same keys (in order) and value types, recursively; every array element when the
/// lengths agree; `errorCode` / `statusCode` / `type` values equal.
fn same_shape(path: &str, real: &Value, ours: &Value, problems: &mut Vec<String>) {
    if kind(real) != kind(ours) {
        problems.push(format!("type of {path}: real {real} vs ours {ours}"));
        return;
    }
    match (real, ours) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: Vec<&String> = a.keys().collect();
            let kb: Vec<&String> = b.keys().collect();
            if ka != kb {
                problems.push(format!("keys of {path}: real {ka:?} vs ours {kb:?}"));
                return;
            }
            for (k, v) in a {
                let p = format!("{path}.{k}");
                let checked =
                    ["errorCode", "statusCode"].contains(&k.as_str()) || (k == "type" && path.ends_with(".attributes"));
                if checked && v != &b[k] {
                    problems.push(format!("{p}: real {v} vs ours {}", b[k]));
                }
                if k == "nextRecordsUrl" {
                    for (who, u) in [("real", v), ("ours", &b[k])] {
                        if !next_records_url_ok(u.as_str().unwrap_or("")) {
                            problems.push(format!(
                                "{p} ({who}) has not the form /services/data/vXX.X/query/<locator>-<n>: {u}"
                            ));
                        }
                    }
                }
                same_shape(&p, v, &b[k], problems);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() == b.len() {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    same_shape(&format!("{path}[{i}]"), x, y, problems);
                }
            } else if let (Some(x), Some(y)) = (a.first(), b.first()) {
                same_shape(&format!("{path}[0]"), x, y, problems);
            }
        }
        _ => {}
    }
}

fn next_records_url_ok(u: &str) -> bool {
    let Some(rest) = u.strip_prefix("/services/data/v") else { return false };
    let Some((ver, rest)) = rest.split_once('/') else { return false };
    let Some(rest) = rest.strip_prefix("query/") else { return false };
    let Some((loc, n)) = rest.rsplit_once('-') else { return false };
    ver.split_once('.').is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
        && loc.len() == 18
        && loc.chars().all(|c| c.is_ascii_alphanumeric())
        && n.parse::<usize>().is_ok()
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

/// `/services/data/v59.0/sobjects/Account/001...` → `/services/data/v59.0/sobjects/Account/<ID>`.
fn location_form(l: &str) -> String {
    match l.rsplit_once('/') {
        Some((head, id)) if id.len() == 18 => format!("{head}/<ID>"),
        _ => l.to_owned(),
    }
}

/// Splits query records into seedable rows per object: nested parent objects become
/// records of their own (id from their `attributes.url`), compound and computed
/// fields are dropped.
fn seed_rows(records: &[Value], out: &mut Vec<(String, Map<String, Value>)>) {
    for r in records {
        let Some(m) = r.as_object() else { continue };
        let ty = m["attributes"]["type"].as_str().unwrap().to_owned();
        let mut row = Map::new();
        for (k, v) in m {
            if k == "attributes" {
                continue;
            }
            match v {
                Value::Object(o) if o.contains_key("attributes") => {
                    let mut parent = o.clone();
                    let url = parent["attributes"]["url"].as_str().unwrap().to_owned();
                    parent.insert("Id".into(), json!(url.rsplit('/').next().unwrap()));
                    seed_rows(&[Value::Object(parent)], out);
                }
                Value::Object(_) => {}                                      // compound (address)
                Value::Null if m.contains_key(&format!("{k}Id")) => {}      // an empty parent reference
                _ if k == "Name" && (ty == "User" || ty == "Contact") => {} // computed
                _ => {
                    row.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(existing) =
            out.iter_mut().find(|(t, r)| *t == ty && row.contains_key("Id") && r.get("Id") == row.get("Id"))
        {
            existing.1.extend(row);
        } else {
            out.push((ty, row));
        }
    }
}

async fn seed(emu: &Emu, records: &[Value]) {
    let mut rows = Vec::new();
    seed_rows(records, &mut rows);
    // Parents first (they were appended after their children).
    let mut order: Vec<String> = Vec::new();
    for (t, _) in rows.iter().rev() {
        if !order.contains(t) {
            order.push(t.clone());
        }
    }
    for t in order {
        let batch: Vec<Value> = rows.iter().filter(|(x, _)| *x == t).map(|(_, r)| Value::Object(r.clone())).collect();
        let r = emu
            .client
            .post(emu.url(&format!("/__emulator/records/{t}?lenient=true")))
            .json(&batch)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "seeding {t}: {body}");
    }
}

/// Seeds what an exchange refers to; returns the path to request instead of the
/// recorded one, if it must differ.
async fn prepare(emu: &Emu, token: &str, file: &str, ex: &Value) -> Option<String> {
    let body = &ex["response"]["body"];
    match file {
        "cases.json" | "opportunities.json" | "query-records.json" | "query-all-records.json" => {
            seed(emu, body["records"].as_array().unwrap()).await;
        }
        "users.json" => {
            // Only the recorded users: the seeded org's own users go to the recycle bin.
            let users = emu.admin_get("/records/User").await;
            for u in users.as_array().unwrap() {
                let id = u["Id"].as_str().unwrap();
                let r = emu.client.delete(emu.url(&format!("/__emulator/records/User/{id}"))).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 204);
            }
            seed(emu, body["records"].as_array().unwrap()).await;
        }
        "get-record.json" | "get-record-by-external-id.json" => {
            seed(emu, std::slice::from_ref(body)).await;
        }
        "delete-record.json" | "update-record.json" | "update-record-by-external-id.json" => {
            let path = ex["request"]["path"].as_str().unwrap();
            let id = path.rsplit('/').next().unwrap();
            seed(emu, &[json!({"attributes": {"type": "Account"}, "Id": id, "Name": "Seeded for replay"})]).await;
        }
        "delete-sobject-collection.json" => {
            if let Some(ids) = ex["request"]["query"]["ids"].as_str() {
                let recs: Vec<Value> = ids
                    .split(',')
                    .map(|id| json!({"attributes": {"type": "Account"}, "Id": id, "Name": "Seeded for replay"}))
                    .collect();
                seed(emu, &recs).await;
            }
        }
        "retrieve-query-more.json" => {
            // 2000 accounts before the 86 of the recorded last page.
            let filler: Vec<Value> =
                (0..2000).map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("Filler {i}")})).collect();
            seed(emu, &filler).await;
            seed(emu, body["records"].as_array().unwrap()).await;
            let version = ex["request"]["path"].as_str().unwrap().split('/').nth(3).unwrap().to_owned();
            let r = emu
                .client
                .get(emu.url(&format!("/services/data/{version}/query")))
                .query(&[("q", "SELECT Id, Name FROM Account")])
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let first: Value = r.json().await.unwrap();
            assert_eq!(first["totalSize"], 2086);
            let next = first["nextRecordsUrl"].as_str().unwrap().to_owned();
            assert!(next.ends_with("-2000"), "{next}");
            return Some(next);
        }
        _ => {}
    }
    None
}

#[tokio::test]
async fn replay_every_recorded_exchange() {
    let dir = fixtures_dir();
    assert!(dir.is_dir(), "recorded Salesforce fixtures not found at {}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "expected the recorded files, found {}", files.len());
    let (mut replayed, mut skipped, mut exact) = (0, 0, 0);
    let mut failures: Vec<String> = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let rec: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (i, ex) in rec["exchanges"].as_array().unwrap().iter().enumerate() {
            if let Some((_, _, why)) = NOT_REPLAYED.iter().find(|(f, n, _)| *f == file && *n == i) {
                eprintln!("NOT REPLAYED {file}#{i}: {why}");
                skipped += 1;
                continue;
            }
            // A fresh org per exchange: nothing leaks between recordings.
            let emu = start().await;
            let conn = emu.connect().await;
            let over = prepare(&emu, &conn.access_token, &file, ex).await;
            let req = &ex["request"];
            let method = reqwest::Method::from_bytes(req["method"].as_str().unwrap().as_bytes()).unwrap();
            let path = over.unwrap_or_else(|| req["path"].as_str().unwrap().to_owned());
            let mut rb = emu.client.request(method, emu.url(&path)).bearer_auth(&conn.access_token);
            if let Some(q) = req["query"].as_object() {
                let pairs: Vec<(String, String)> =
                    q.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
                rb = rb.query(&pairs);
            }
            if !req["body"].is_null() {
                rb = rb.json(&req["body"]);
            }
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let text = r.text().await.unwrap();
            let res = &ex["response"];
            let mut problems = Vec::new();
            if u64::from(status) != res["status"].as_u64().unwrap() {
                problems.push(format!("status {status} vs recorded {}: {text}", res["status"]));
            }
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
            if let Some(ct) = res["headers"]["content-type"].as_str() {
                if h("content-type").as_deref() != Some(ct) {
                    problems.push(format!("content-type {:?} vs recorded {ct}", h("content-type")));
                }
            }
            if let Some(li) = res["headers"]["sforce-limit-info"].as_str() {
                assert!(limit_header_ok(li), "recorded header form {li}");
                if !h("sforce-limit-info").is_some_and(|x| limit_header_ok(&x)) {
                    problems.push(format!("sforce-limit-info {:?}", h("sforce-limit-info")));
                }
            }
            if let Some(loc) = res["headers"]["location"].as_str() {
                let ours = h("location").unwrap_or_default();
                if location_form(&ours) != location_form(loc) {
                    problems.push(format!("location {ours} vs recorded {loc}"));
                }
            }
            let real_body = &res["body"];
            let ours: Value =
                if text.is_empty() { json!("") } else { serde_json::from_str(&text).unwrap_or(json!(text)) };
            same_shape("$", real_body, &ours, &mut problems);
            if EXACT.contains(&file.as_str()) && problems.is_empty() {
                if ours != *real_body {
                    problems.push(format!("body differs from the recording:\n real {real_body}\n ours {ours}"));
                } else {
                    exact += 1;
                }
            }
            if !problems.is_empty() {
                failures.push(format!("{file}#{i} {} {}:\n  {}", req["method"], req["path"], problems.join("\n  ")));
            }
            replayed += 1;
        }
    }
    println!("golden: {replayed} exchanges replayed ({exact} identical to the recording), {skipped} not replayed");
    assert!(failures.is_empty(), "{} exchanges differ:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(skipped, NOT_REPLAYED.len());
}
