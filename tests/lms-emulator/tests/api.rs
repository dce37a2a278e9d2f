//! The canonical LMS API: determinism, paging, auth, parameters.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn same_seed_same_bytes() {
    let lms = start().await;
    let summary = lms.dataset(7, 300, 8, 12, 5).await;
    assert_eq!(summary["enrollments"], 1500);
    let paths = [
        "/api/v1/learners?limit=1000",
        "/api/v1/enrollments?limit=1000",
        "/api/v1/departments?limit=1000",
        "/api/v1/courses?limit=1000",
    ];
    let mut first = Vec::new();
    for p in paths {
        first.push(lms.get_raw(p).await.1);
    }
    lms.dataset(8, 300, 8, 12, 5).await;
    let (_, other) = lms.get_raw(paths[1]).await;
    assert_ne!(other, first[1], "another seed gives other data");
    lms.dataset(7, 300, 8, 12, 5).await;
    for (p, before) in paths.iter().zip(&first) {
        assert_eq!(&lms.get_raw(p).await.1, before, "{p}");
    }
}

#[tokio::test]
async fn entity_shapes() {
    let lms = start().await;
    lms.dataset(3, 20, 4, 5, 2).await;
    let (_, page) = lms.get("/api/v1/learners?limit=1").await;
    let l = &page["data"][0];
    let keys: Vec<&String> = l.as_object().unwrap().keys().collect();
    let mut expected =
        vec!["id", "email", "first_name", "last_name", "department_id", "fields", "active", "updated_at"];
    expected.sort_unstable();
    let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, expected);
    let id = l["id"].as_str().unwrap();
    assert!(id.starts_with('L') && id.len() == 7, "{id}");
    assert!(l["email"].as_str().unwrap().contains('@'));
    assert!(l["fields"].is_object());
    let ts = l["updated_at"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-05-12T10:00:00.000Z".len());
    assert!(ts.ends_with('Z'));

    let (_, page) = lms.get("/api/v1/enrollments?limit=40").await;
    for e in page["data"].as_array().unwrap() {
        let status = e["status"].as_str().unwrap();
        assert!(["enrolled", "in_progress", "completed", "expired"].contains(&status));
        assert!(e["id"].as_str().unwrap().starts_with('E'));
        assert!(e["course_title"].is_string());
        let p = e["progress_pct"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&p));
        assert!(e["score"].is_null() || e["score"].is_number());
        assert!(e["completed_at"].is_null() || e["completed_at"].is_string());
        assert!(e.get("enrolled_at").is_some());
    }
    let (_, d) = lms.get("/api/v1/departments").await;
    assert_eq!(d["data"][0]["id"], "D00");
    assert!(d["data"][0].get("parent_id").is_some());
    let (_, c) = lms.get("/api/v1/courses").await;
    assert_eq!(c["data"][0]["id"], "C000");
}

fn key(v: &Value) -> (String, String) {
    (v["updated_at"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn paging_covers_everything_exactly_once() {
    let lms = start().await;
    lms.dataset(11, 257, 6, 9, 3).await;
    for (endpoint, total) in [("/api/v1/enrollments", 771), ("/api/v1/learners", 257)] {
        let items = lms.all(endpoint, "", 50).await;
        assert_eq!(items.len(), total);
        let ids: HashSet<String> = items.iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len(), total, "no duplicates");
        let keys: Vec<(String, String)> = items.iter().map(key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "stable (updated_at, id) order");
    }
    // Departments and courses page by id.
    assert_eq!(lms.all("/api/v1/departments", "", 4).await.len(), 6);
    assert_eq!(lms.all("/api/v1/courses", "", 4).await.len(), 9);

    // updated_since restricts, count agrees.
    let all = lms.all("/api/v1/enrollments", "", 1000).await;
    let pivot = all[400]["updated_at"].as_str().unwrap().to_owned();
    let since = lms.all("/api/v1/enrollments", &format!("&updated_since={pivot}"), 37).await;
    let expected = all.iter().filter(|e| e["updated_at"].as_str().unwrap() >= pivot.as_str()).count();
    assert_eq!(since.len(), expected);
    let (_, count) = lms.get(&format!("/api/v1/enrollments/count?updated_since={pivot}")).await;
    assert_eq!(count["count"], expected);
    let (_, count) = lms.get(&format!("/api/v1/enrollments/count?updated_until={pivot}")).await;
    assert_eq!(count["count"], 771 - expected);
    let (_, count) = lms.get("/api/v1/enrollments/count").await;
    assert_eq!(count["count"], 771);
}

#[tokio::test]
async fn auth_and_parameter_errors() {
    let lms = start().await;
    for auth in [None, Some("Bearer wrong")] {
        let mut rb = lms.client.get(lms.url("/api/v1/learners"));
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(body["error"]["message"].is_string());
    }
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("updated_since=yesterday", "updated_since"),
        ("cursor=nope", "cursor"),
    ] {
        let (status, body) = lms.get(&format!("/api/v1/enrollments?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(body["error"]["parameter"], param, "{query}");
    }
    let (status, body) = lms.get("/api/v1/enrollments/count?updated_until=x").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["parameter"], "updated_until");

    let stats: Value = lms.client.get(lms.url("/__emulator/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["unauthorized"], 2);
    assert_eq!(stats["requests"]["GET /api/v1/enrollments"], 5);
}

#[tokio::test]
async fn a_million_enrollments_generate_quickly_enough() {
    let lms = start().await;
    let summary = lms.dataset(99, 100_000, 50, 200, 10).await;
    assert_eq!(summary["enrollments"], 1_000_000);
    let (_, count) = lms.get("/api/v1/enrollments/count").await;
    assert_eq!(count["count"], 1_000_000);
    let (status, page) = lms.get("/api/v1/enrollments?limit=1000").await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 1000);
}

#[tokio::test]
async fn a_window_pages_exactly_its_count() {
    let lms = start().await;
    lms.dataset(5, 400, 6, 9, 3).await;
    let all = lms.all("/api/v1/enrollments", "", 1000).await;
    assert_eq!(all.len(), 1200);
    let since = all[250]["updated_at"].as_str().unwrap().to_owned();
    let until = all[900]["updated_at"].as_str().unwrap().to_owned();
    let inside = |e: &Value| {
        let t = e["updated_at"].as_str().unwrap();
        since.as_str() <= t && t < until.as_str()
    };
    let expected: Vec<&Value> = all.iter().filter(|e| inside(e)).collect();
    assert!(expected.len() > 500, "{}", expected.len());
    let (_, count) = lms.get(&format!("/api/v1/enrollments/count?updated_since={since}&updated_until={until}")).await;
    assert_eq!(count["count"], expected.len());

    for limit in [1000, 37, 1] {
        let window = format!("&updated_since={since}&updated_until={until}");
        let pages = lms.all("/api/v1/enrollments", &window, limit).await;
        assert_eq!(pages.len(), expected.len(), "limit {limit}");
        assert!(pages.iter().all(inside), "limit {limit}: none outside the window");
        let ids: HashSet<&str> = pages.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), pages.len(), "limit {limit}: each once");
        assert_eq!(pages.iter().collect::<Vec<_>>(), expected, "limit {limit}: the same, in order");
    }

    // A page that reaches the window's end has no next cursor, even with
    // enrollments after it.
    let n = expected.len();
    let (_, page) =
        lms.get(&format!("/api/v1/enrollments?limit={n}&updated_since={since}&updated_until={until}")).await;
    assert_eq!(page["data"].as_array().unwrap().len(), n);
    assert!(page["next_cursor"].is_null(), "{}", page["next_cursor"]);
    // Only an until; an until before the since (empty, like the count).
    let before = lms.all("/api/v1/enrollments", &format!("&updated_until={since}"), 100).await;
    let (_, count) = lms.get(&format!("/api/v1/enrollments/count?updated_until={since}")).await;
    assert_eq!(count["count"], before.len());
    assert!(before.iter().all(|e| e["updated_at"].as_str().unwrap() < since.as_str()));
    let (status, page) = lms.get(&format!("/api/v1/enrollments?updated_since={until}&updated_until={since}")).await;
    assert_eq!(status, 200);
    assert!(page["data"].as_array().unwrap().is_empty() && page["next_cursor"].is_null());

    // An invalid updated_until: 400 naming it.
    let (status, body) = lms.get("/api/v1/enrollments?updated_until=tomorrow").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_parameter");
    assert_eq!(body["error"]["parameter"], "updated_until");
    assert!(body["error"]["message"].as_str().unwrap().contains("updated_until"));
}
