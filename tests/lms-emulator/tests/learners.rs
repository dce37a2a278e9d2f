//! Learner reads by id, learner mutations, the department tree and the rate
//! limit, through HTTP.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use serde_json::{Value, json};

async fn send(lms: &Lms, method: &str, path: &str, body: Option<Value>) -> (u16, Value, reqwest::header::HeaderMap) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = lms.client.request(method, lms.url(path)).bearer_auth(KEY);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let v = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, v, headers)
}

async fn stats(lms: &Lms) -> Value {
    lms.client.get(lms.url("/__emulator/stats")).send().await.unwrap().json().await.unwrap()
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn learners_by_ids_keep_the_list_shape() {
    let lms = start().await;
    lms.dataset(4, 250, 6, 5, 1).await;
    let (_, list) = lms.get("/api/v1/learners?limit=3").await;
    let (status, by_ids) = lms.get("/api/v1/learners?ids=L000007,L999999,L000002,nope,L000007,L7").await;
    assert_eq!(status, 200, "{by_ids}");
    let keys: HashSet<&String> = by_ids.as_object().unwrap().keys().collect();
    let list_keys: HashSet<&String> = list.as_object().unwrap().keys().collect();
    assert_eq!(keys, list_keys, "same envelope as the list");
    assert_eq!(by_ids["next_cursor"], Value::Null);
    let data = by_ids["data"].as_array().unwrap();
    assert_eq!(ids(data), ["L000007", "L000002"], "request order, unknown absent, duplicates once");
    let all = lms.all("/api/v1/learners", "", 1000).await;
    let by_id: HashMap<String, Value> = all.iter().map(|l| (l["id"].as_str().unwrap().to_owned(), l.clone())).collect();
    assert_eq!(data[0], by_id["L000007"], "same learner JSON as the list");

    // Exactly 100 is fine, 101 is not.
    let hundred: Vec<String> = (0..100).map(|i| format!("L{i:06}")).collect();
    let (status, body) = lms.get(&format!("/api/v1/learners?ids={}", hundred.join(","))).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 100);
    let (status, body) = lms.get(&format!("/api/v1/learners?ids={},L000100", hundred.join(","))).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["parameter"], "ids");
    assert!(body["error"]["message"].as_str().unwrap().contains("100"), "{body}");

    for (query, param) in [
        ("ids=", "ids"),
        ("ids=,,", "ids"),
        ("ids=L000001&cursor=abcd", "cursor"),
        ("ids=L000001&limit=5", "limit"),
        ("ids=L000001&updated_since=2026-01-01T00:00:00Z", "updated_since"),
    ] {
        let (status, body) = lms.get(&format!("/api/v1/learners?{query}")).await;
        assert_eq!((status, body["error"]["parameter"].as_str()), (400, Some(param)), "{query}: {body}");
    }
    let r = lms.client.get(lms.url("/api/v1/learners?ids=L000001")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn one_learner_by_id() {
    let lms = start().await;
    lms.dataset(4, 20, 3, 2, 1).await;
    let (_, list) = lms.get("/api/v1/learners?ids=L000005").await;
    let (status, one, _) = send(&lms, "GET", "/api/v1/learners/L000005", None).await;
    assert_eq!(status, 200);
    assert_eq!(one, list["data"][0]);
    for unknown in ["L000020", "L5", "X", "L000005x"] {
        let (status, body, _) = send(&lms, "GET", &format!("/api/v1/learners/{unknown}"), None).await;
        assert_eq!(status, 404, "{unknown}");
        assert_eq!(body["error"]["code"], "not_found");
        assert!(body["error"]["message"].as_str().unwrap().contains(unknown));
    }
    let r = lms.client.get(lms.url("/api/v1/learners/L000005")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn create_update_deactivate_are_visible_with_updated_since() {
    let lms = start().await;
    lms.dataset(4, 40, 5, 2, 1).await;
    let before = lms.all("/api/v1/learners", "", 1000).await;
    let latest = before.last().unwrap()["updated_at"].as_str().unwrap().to_owned();

    let (status, created, headers) = send(
        &lms,
        "POST",
        "/api/v1/learners",
        Some(json!({"email": " grace@navy.example.com ", "first_name": "Grace", "last_name": "Hopper",
            "department_id": "D02", "fields": {"title": "Rear Admiral"}, "send_welcome_email": true})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["id"], "L000040");
    assert_eq!(headers["location"], "/api/v1/learners/L000040");
    assert_eq!(created["email"], "grace@navy.example.com", "trimmed");
    assert_eq!(created["active"], true, "active by default");
    assert_eq!(created["department_id"], "D02");
    assert_eq!(created["fields"], json!({"title": "Rear Admiral"}));
    let created_at = created["updated_at"].as_str().unwrap().to_owned();
    assert!(created_at > latest, "{created_at} after {latest}");
    assert_eq!(created.as_object().unwrap().len(), 8, "the canonical learner, nothing else: {created}");
    let (_, fetched, _) = send(&lms, "GET", "/api/v1/learners/L000040", None).await;
    assert_eq!(fetched, created);

    let (_, quiet, _) = send(
        &lms,
        "POST",
        "/api/v1/learners",
        Some(json!({"email": "alan@example.com", "first_name": "Alan", "last_name": "Turing", "active": false,
            "send_welcome_email": false})),
    )
    .await;
    assert_eq!((quiet["id"].as_str(), quiet["active"].as_bool()), (Some("L000041"), Some(false)));
    assert_eq!(quiet["department_id"], Value::Null);

    let (status, patched, _) = send(
        &lms,
        "PATCH",
        "/api/v1/learners/L000003",
        Some(json!({"email": "new.address@example.org", "department_id": null, "fields": {"title": null, "team": "Blue"}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let old = &before.iter().find(|l| l["id"] == "L000003").unwrap();
    assert_eq!(patched["email"], "new.address@example.org");
    assert_eq!(patched["first_name"], old["first_name"], "untouched members stay");
    assert_eq!(patched["department_id"], Value::Null);
    assert_eq!(patched["fields"]["team"], "Blue");
    assert!(patched["fields"].get("title").is_none());
    assert_eq!(patched["fields"]["location"], old["fields"]["location"], "fields merge");
    assert!(patched["updated_at"].as_str().unwrap() > created_at.as_str());

    let (status, deactivated, _) = send(&lms, "POST", "/api/v1/learners/L000010/deactivate", None).await;
    assert_eq!(status, 200);
    assert_eq!(deactivated["active"], false);
    let (status, _, _) = send(&lms, "PATCH", "/api/v1/learners/L000010", Some(json!({"active": true}))).await;
    assert_eq!(status, 200, "reactivated by PATCH");
    let (status, body, _) = send(&lms, "POST", "/api/v1/learners/L000999/deactivate", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _, _) = send(&lms, "PATCH", "/api/v1/learners/L000999", Some(json!({"active": true}))).await;
    assert_eq!(status, 404);

    // The changed learners come last, in the order they changed, and paging
    // still returns every learner once.
    for limit in [1, 7, 1000] {
        let after = lms.all("/api/v1/learners", "", limit).await;
        assert_eq!(after.len(), 42, "limit {limit}");
        assert_eq!(ids(&after[38..]), ["L000040", "L000041", "L000003", "L000010"], "limit {limit}");
        let keys: Vec<(String, String)> = after
            .iter()
            .map(|l| (l["updated_at"].as_str().unwrap().to_owned(), l["id"].as_str().unwrap().to_owned()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
    let since = lms.all("/api/v1/learners", &format!("&updated_since={created_at}"), 2).await;
    assert_eq!(ids(&since), ["L000040", "L000041", "L000003", "L000010"]);
    let (_, by_ids) = lms.get("/api/v1/learners?ids=L000041,L000003").await;
    assert_eq!(by_ids["data"][1]["email"], "new.address@example.org");

    let s = stats(&lms).await;
    assert_eq!(s["learners_created"], 2);
    assert_eq!(s["welcome_emails_sent"], 1);
    assert_eq!(s["learners_updated"], 2);
    assert_eq!(s["learners_deactivated"], 1);
    assert_eq!(s["requests"]["POST /api/v1/learners"], 2);

    // A new data set (or a reset) forgets the changes.
    lms.dataset(4, 40, 5, 2, 1).await;
    assert_eq!(lms.all("/api/v1/learners", "", 1000).await, before);
}

#[tokio::test]
async fn a_learner_changed_while_paging_is_not_missed() {
    let lms = start().await;
    lms.dataset(12, 60, 4, 2, 1).await;
    let (_, first) = lms.get("/api/v1/learners?limit=20").await;
    let seen = ids(first["data"].as_array().unwrap());
    let (_, rest_before) =
        lms.get(&format!("/api/v1/learners?limit=1000&cursor={}", first["next_cursor"].as_str().unwrap())).await;
    let unseen = rest_before["data"][5]["id"].as_str().unwrap().to_owned();
    for id in [&seen[3], &unseen] {
        let (status, _, _) =
            send(&lms, "PATCH", &format!("/api/v1/learners/{id}"), Some(json!({"last_name": "Moved"}))).await;
        assert_eq!(status, 200);
    }
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let mut rest = Vec::new();
    loop {
        let (_, page) = lms.get(&format!("/api/v1/learners?limit=9&cursor={cursor}")).await;
        rest.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let rest = ids(&rest);
    assert_eq!(rest.iter().filter(|id| **id == unseen).count(), 1, "the unseen changed learner comes exactly once");
    assert_eq!(rest.last(), Some(&unseen));
    assert!(rest.contains(&seen[3]), "a seen learner that changed comes again");
    let everyone: HashSet<String> = seen.into_iter().chain(rest).collect();
    assert_eq!(everyone.len(), 60);
}

#[tokio::test]
async fn refused_bodies_name_the_field() {
    let lms = start().await;
    lms.dataset(4, 10, 3, 2, 1).await;
    let ok = json!({"email": "a@example.com", "first_name": "A", "last_name": "B"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let creates = [
        (without("email"), "email"),
        (without("first_name"), "first_name"),
        (without("last_name"), "last_name"),
        (with("email", json!("not-an-address")), "email"),
        (with("email", json!("a@localhost")), "email"),
        (with("email", json!("a b@example.com")), "email"),
        (with("email", json!(7)), "email"),
        (with("first_name", json!("  ")), "first_name"),
        (with("last_name", json!(null)), "last_name"),
        (with("department_id", json!("D99")), "department_id"),
        (with("department_id", json!(3)), "department_id"),
        (with("fields", json!(["x"])), "fields"),
        (with("fields", json!({"title": 3})), "fields.title"),
        (with("fields", json!({"title": null})), "fields.title"),
        (with("active", json!("yes")), "active"),
        (with("send_welcome_email", json!("yes")), "send_welcome_email"),
        (with("id", json!("L1")), "id"),
        (with("updated_at", json!("2026-01-01T00:00:00Z")), "updated_at"),
        (with("nickname", json!("x")), "nickname"),
    ];
    for (body, field) in creates {
        let (status, answer, _) = send(&lms, "POST", "/api/v1/learners", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["code"], "invalid_field", "{body}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let patches = [
        (json!({"email": ""}), "email"),
        (json!({"first_name": 1}), "first_name"),
        (json!({"department_id": "D3"}), "department_id"),
        (json!({"fields": {"x": 1}}), "fields.x"),
        (json!({"active": null}), "active"),
        (json!({"send_welcome_email": true}), "send_welcome_email"),
        (json!({"id": "L000002"}), "id"),
        (json!({"colour": "red"}), "colour"),
    ];
    for (body, field) in patches {
        let (status, answer, _) = send(&lms, "PATCH", "/api/v1/learners/L000001", Some(body.clone())).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(field)), "{body}: {answer}");
    }
    for raw in ["not json", "[1]", ""] {
        let r = lms
            .client
            .post(lms.url("/api/v1/learners"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{raw:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_body");
    }
    // Nothing changed.
    let s = stats(&lms).await;
    assert_eq!((s["learners_created"].as_u64(), s["learners_updated"].as_u64()), (Some(0), Some(0)));
    assert_eq!(lms.all("/api/v1/learners", "", 100).await.len(), 10);
    let r = lms.client.post(lms.url("/api/v1/learners")).json(&ok).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "mutations need the key too");
}

#[tokio::test]
async fn generated_departments_form_a_tree_deeper_than_two() {
    let lms = start().await;
    for departments in [3, 5, 12, 60] {
        lms.dataset(21, 10, departments, 2, 1).await;
        let all = lms.all("/api/v1/departments", "", 7).await;
        let parent: HashMap<String, Option<String>> = all
            .iter()
            .map(|d| (d["id"].as_str().unwrap().to_owned(), d["parent_id"].as_str().map(str::to_owned)))
            .collect();
        assert!(all.iter().all(|d| d.as_object().unwrap().contains_key("parent_id")));
        let depth = |id: &str| {
            let mut n = 1;
            let mut at = id.to_owned();
            while let Some(Some(p)) = parent.get(&at) {
                assert!(parent.contains_key(p), "{p} exists");
                at = p.clone();
                n += 1;
                assert!(n <= all.len(), "no cycle");
            }
            n
        };
        let max = parent.keys().map(|id| depth(id)).max().unwrap();
        assert!(max >= 3, "{departments} departments: depth {max}");
    }
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let lms = start().await;
    let set = |body: Value| {
        let client = lms.client.clone();
        let url = lms.url("/__emulator/rate-limit");
        async move { client.post(url).json(&body).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(set(json!({"requests": 3, "window_ms": 60_000})).await, 200);
    assert_eq!(set(json!({"requests": 3, "window_ms": 0})).await, 400);
    assert_eq!(set(json!({"requests": 3})).await, 400);
    for path in ["/api/v1/learners", "/api/v1/learners/L000001", "/api/v1/learners?ids=L000001"] {
        assert_eq!(lms.get(path).await.0, 200, "{path}");
    }
    let (status, body, headers) = send(&lms, "POST", "/api/v1/learners/L000001/deactivate", None).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let r = lms.client.get(lms.url("/api/v1/learners")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "the key is checked first");
    assert_eq!(stats(&lms).await["rate_limited"], 1);
    assert_eq!(stats(&lms).await["learners_deactivated"], 0, "a refused request changes nothing");

    // A short window refills.
    assert_eq!(set(json!({"requests": 1, "window_ms": 300})).await, 200);
    assert_eq!(lms.get("/api/v1/courses").await.0, 200);
    assert_eq!(lms.get("/api/v1/courses").await.0, 429);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(lms.get("/api/v1/courses").await.0, 200);

    assert_eq!(set(Value::Null).await, 200);
    for _ in 0..5 {
        assert_eq!(lms.get("/api/v1/courses").await.0, 200);
    }
    let r: Value = lms.client.get(lms.url("/__emulator/rate-limit")).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["rate_limit"], Value::Null);
}
