use super::*;
use learnlink_adapters::dynamo::memory::{MemoryActivity, MemoryState};
use learnlink_adapters::secrets::memory::MemorySecrets;
use learnlink_adapters::sqs::memory::MemoryQueueStats;
use learnlink_core::activity::{ActivityEntry, Direction, Outcome, RunSummary};
use secrecy::SecretString;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);
const SECRET: &str = "whsec-0123456789abcdef";

struct World {
    deps: Deps,
    secrets: Arc<MemorySecrets>,
    activity: Arc<MemoryActivity>,
}

fn world() -> World {
    let secrets = Arc::new(MemorySecrets::new());
    let activity = Arc::new(MemoryActivity::new());
    let state = Arc::new(MemoryState::new());
    let deps = Deps {
        configs: state.clone(),
        connections: state.clone(),
        parking: state,
        sync_queue: Arc::new(learnlink_adapters::sqs::memory::MemoryQueue::new()),
        keepalive: time::Duration::days(7),
        secrets: secrets.clone(),
        activity: activity.clone(),
        queues: Arc::new(MemoryQueueStats::default()),
        dead_letter_queues: vec!["dlq".into()],
        sync_queue_url: None,
        names: SecretNames::default(),
        auth: AdminAuth::Bearer(SecretString::from("admin-token")),
    };
    World { deps, secrets, activity }
}

fn req(method: &str, path_and_query: &str, body: Option<Value>, headers: &[(&str, &str)]) -> ApiGatewayV2httpRequest {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let qs: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut ev = json!({"version": "2.0", "routeKey": "ANY /admin/{proxy+}", "rawPath": path, "rawQueryString": query,
        "headers": {"authorization": "Bearer admin-token"},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                           "routeKey": "ANY /admin/{proxy+}", "stage": "$default", "timeEpoch": 0},
        "isBase64Encoded": false});
    if !qs.is_empty() {
        ev["queryStringParameters"] = Value::Object(qs);
    }
    for (k, v) in headers {
        ev["headers"][*k] = json!(v);
    }
    if let Some(b) = body {
        ev["body"] = json!(b.to_string());
    }
    serde_json::from_value(ev).unwrap()
}

fn raw_body(method: &str, path: &str, body: &str) -> ApiGatewayV2httpRequest {
    let mut r = req(method, path, None, &[]);
    r.body = Some(body.to_string());
    r
}

fn text(r: &ApiGatewayV2httpResponse) -> String {
    match &r.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => t.clone(),
        _ => String::new(),
    }
}

fn body(r: &ApiGatewayV2httpResponse) -> Value {
    serde_json::from_str(&text(r)).unwrap_or(Value::Null)
}

fn config() -> Value {
    json!({"name": "Acme", "salesforce": {"environment": "production", "client_id": "3MVG9"},
           "webhooks": {"sources": [{"name": "lms", "dialect": "canonical", "secrets": [SECRET]}]}})
}

async fn create(w: &World) {
    let r = handle(&w.deps, &req("POST", "/admin/tenants", Some(json!({"id": "acme", "config": config()})), &[]), NOW)
        .await;
    assert_eq!(r.status_code, 201, "{}", text(&r));
}

#[tokio::test]
async fn auth_is_required_everywhere() {
    let w = world();
    for path in ["/admin/tenants", "/admin/tenants/acme/config", "/admin/nope"] {
        for token in [None, Some("Bearer wrong"), Some("admin-token")] {
            let mut r = req("GET", path, None, &[]);
            r.headers.remove("authorization");
            if let Some(t) = token {
                r.headers.insert("authorization", t.parse().unwrap());
            }
            let resp = handle(&w.deps, &r, NOW).await;
            assert_eq!(resp.status_code, 401, "{path} {token:?}");
            assert_eq!(body(&resp)["error"]["code"], "unauthorized");
        }
    }
}

#[tokio::test]
async fn create_then_read_without_secrets() {
    let w = world();
    create(&w).await;
    let r = handle(&w.deps, &req("GET", "/admin/tenants", None, &[]), NOW).await;
    assert_eq!(body(&r)["tenants"][0]["id"], "acme");
    assert_eq!(body(&r)["tenants"][0]["version"], 1);
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/config", None, &[]), NOW).await;
    let b = body(&r);
    assert_eq!(b["version"], 1);
    assert_eq!(b["webhook_secrets"], json!({"lms": 1}));
    assert!(!text(&r).contains(SECRET), "secrets are never returned");
    assert!(b["config"]["webhooks"]["sources"][0].get("secrets").is_none());
    assert_eq!(w.secrets.version_count("learnlink/acme/webhooks"), 1);
    let r = handle(&w.deps, &req("POST", "/admin/tenants", Some(json!({"id": "acme", "config": config()})), &[]), NOW)
        .await;
    assert_eq!((r.status_code, body(&r)["error"]["code"].clone()), (409, json!("tenant_exists")));
}

#[tokio::test]
async fn every_change_is_a_new_version_with_a_diff() {
    let w = world();
    create(&w).await;
    let mut c = config();
    c["webhooks"]["sources"][0].as_object_mut().unwrap().remove("secrets");
    c["sync"] = json!({"create_contacts": true});
    let r =
        handle(&w.deps, &req("PUT", "/admin/tenants/acme/config", Some(c.clone()), &[("if-match", "1")]), NOW).await;
    assert_eq!(r.status_code, 200, "{}", text(&r));
    assert_eq!(body(&r)["version"], 2);
    assert_eq!(body(&r)["webhook_secrets"], json!({"lms": 1}), "the existing secret is kept");
    // A stale If-Match is refused and stores nothing.
    c["paused"] = json!(true);
    let r =
        handle(&w.deps, &req("PUT", "/admin/tenants/acme/config", Some(c.clone()), &[("if-match", "1")]), NOW).await;
    assert_eq!((r.status_code, body(&r)["error"]["code"].clone()), (409, json!("version_conflict")));
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/config/versions", None, &[]), NOW).await;
    let versions: Vec<u64> =
        body(&r)["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [2, 1]);
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/config/diff", None, &[]), NOW).await;
    assert_eq!(body(&r)["changes"], json!([{"path": "/sync", "op": "added", "to": {"create_contacts": true}}]));
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/config/diff?from=2&to=1", None, &[]), NOW).await;
    assert_eq!(body(&r)["changes"][0]["op"], "removed");
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/config?version=1", None, &[]), NOW).await;
    assert!(body(&r)["config"].get("sync").is_none());
}

#[tokio::test]
async fn bad_input_table_stores_nothing() {
    let w = world();
    create(&w).await;
    let mut invalid = config();
    invalid["name"] = json!("");
    invalid["backfill"] = json!({"shard_size": 1});
    invalid["bogus"] = json!(1);
    let mut unsigned = config();
    unsigned["webhooks"]["sources"] =
        json!([{"name": "lms", "dialect": "canonical"}, {"name": "other", "dialect": "canonical"}]);
    type Case = (&'static str, ApiGatewayV2httpRequest, u16, &'static str);
    let cases: Vec<Case> = vec![
        ("unknown tenant", req("GET", "/admin/tenants/nobody", None, &[]), 404, "unknown_tenant"),
        ("invalid tenant id", req("GET", "/admin/tenants/NOT_VALID/config", None, &[]), 404, "unknown_tenant"),
        ("unknown route", req("GET", "/admin/whatever", None, &[]), 404, "not_found"),
        ("unknown version", req("GET", "/admin/tenants/acme/config?version=9", None, &[]), 404, "unknown_version"),
        (
            "bad version param",
            req("GET", "/admin/tenants/acme/config?version=abc", None, &[]),
            400,
            "invalid_parameter",
        ),
        ("malformed json", raw_body("PUT", "/admin/tenants/acme/config", "{nope"), 400, "malformed_body"),
        ("empty body", raw_body("PUT", "/admin/tenants/acme/config", ""), 400, "malformed_body"),
        ("invalid config", req("PUT", "/admin/tenants/acme/config", Some(invalid.clone()), &[]), 422, "invalid_config"),
        ("source without secret", req("PUT", "/admin/tenants/acme/config", Some(unsigned), &[]), 422, "invalid_config"),
        (
            "bad if-match",
            req("PUT", "/admin/tenants/acme/config", Some(config()), &[("if-match", "x")]),
            400,
            "invalid_parameter",
        ),
        (
            "invalid on create",
            req("POST", "/admin/tenants", Some(json!({"id": "B@D", "config": invalid, "x": 1})), &[]),
            422,
            "invalid_tenant",
        ),
        ("create without body", raw_body("POST", "/admin/tenants", ""), 400, "malformed_body"),
        ("create not object", req("POST", "/admin/tenants", Some(json!([1])), &[]), 422, "invalid_tenant"),
        ("bad outcome", req("GET", "/admin/tenants/acme/activity?outcome=great", None, &[]), 400, "invalid_parameter"),
        ("bad since", req("GET", "/admin/tenants/acme/activity?since=yesterday", None, &[]), 400, "invalid_parameter"),
        ("bad limit", req("GET", "/admin/tenants/acme/activity?limit=0", None, &[]), 400, "invalid_parameter"),
        ("bad format", req("GET", "/admin/tenants/acme/activity?format=xml", None, &[]), 400, "invalid_parameter"),
        ("bad cursor", req("GET", "/admin/tenants/acme/activity?cursor=zz", None, &[]), 400, "invalid_cursor"),
        ("bad diff", req("GET", "/admin/tenants/acme/config/diff?from=-1", None, &[]), 400, "invalid_parameter"),
    ];
    for (name, r, status, code) in cases {
        let resp = handle(&w.deps, &r, NOW).await;
        assert_eq!(resp.status_code, i64::from(status), "{name}: {}", text(&resp));
        let b = body(&resp);
        assert_eq!(b["error"]["code"], code, "{name}");
        assert!(b["error"]["message"].as_str().is_some_and(|m| m.len() > 5), "{name}");
    }
    // The 422s list every violation with its path.
    let mut invalid = config();
    invalid["name"] = json!("");
    invalid["backfill"] = json!({"shard_size": 1});
    invalid["bogus"] = json!(1);
    let resp = handle(&w.deps, &req("PUT", "/admin/tenants/acme/config", Some(invalid), &[]), NOW).await;
    let paths: Vec<String> = body(&resp)["error"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap().to_string())
        .collect();
    for p in ["", "/backfill/shard_size", "/name"] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from {paths:?}");
    }
    let resp = handle(
        &w.deps,
        &req("POST", "/admin/tenants", Some(json!({"id": "B@D", "config": {"name": 3}, "x": 1})), &[]),
        NOW,
    )
    .await;
    let paths: Vec<String> = body(&resp)["error"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap().to_string())
        .collect();
    for p in ["/x", "/id", "/config/name", "/config"] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from {paths:?}");
    }
    // Nothing was stored by any of them.
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/config/versions", None, &[]), NOW).await;
    assert_eq!(body(&r)["versions"].as_array().unwrap().len(), 1);
    assert_eq!(w.secrets.version_count("learnlink/acme/webhooks"), 1);
    let r = handle(&w.deps, &req("GET", "/admin/tenants", None, &[]), NOW).await;
    assert_eq!(body(&r)["tenants"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn validate_checks_without_storing() {
    let w = world();
    create(&w).await;
    let r = handle(&w.deps, &req("POST", "/admin/tenants/acme/config/validate", Some(config()), &[]), NOW).await;
    assert_eq!((r.status_code, body(&r)), (200, json!({"valid": true})));
    let r = handle(&w.deps, &req("POST", "/admin/tenants/acme/config/validate", Some(json!({"name": "x"})), &[]), NOW)
        .await;
    assert_eq!(r.status_code, 422);
    assert_eq!(body(&r)["error"]["violations"][0]["path"], "");
}

#[tokio::test]
async fn status_says_what_is_wrong() {
    let w = world();
    create(&w).await;
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/status", None, &[]), NOW).await;
    assert_eq!(body(&r)["status"], "DISCONNECTED");
    assert!(body(&r)["remedy"].as_str().unwrap().contains("learnlink connect acme"));
    w.secrets.put_secret("learnlink/acme/salesforce", &SecretString::from("{}")).await.unwrap();
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/status", None, &[]), NOW).await;
    assert_eq!(body(&r)["status"], "CONNECTED");
    let mut c = config();
    c["paused"] = json!(true);
    handle(&w.deps, &req("PUT", "/admin/tenants/acme/config", Some(c), &[]), NOW).await;
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/status", None, &[]), NOW).await;
    assert_eq!(body(&r)["status"], "PAUSED");
}

#[tokio::test]
async fn activity_filters_pages_and_csv() {
    let w = world();
    create(&w).await;
    let tenant = TenantId::parse("acme").unwrap();
    let entries: Vec<ActivityEntry> = (0..25)
        .map(|i| ActivityEntry {
            at: NOW + time::Duration::minutes(i),
            job: "webhook:r1".into(),
            direction: Direction::LmsToSalesforce,
            object: "LMS_Enrollment__c".into(),
            lms_id: format!("E{i}"),
            learner_id: Some(format!("L{}", i % 3)),
            salesforce_id: None,
            outcome: if i % 5 == 0 { Outcome::Failed } else { Outcome::Created },
            reason: None,
            message: None,
        })
        .collect();
    w.activity.record(&tenant, &entries).await.unwrap();
    w.activity
        .record_run(
            &tenant,
            &RunSummary {
                run_id: "r1".into(),
                job: "webhook".into(),
                started_at: NOW,
                finished_at: NOW,
                created: 20,
                updated: 0,
                skipped: 0,
                failed: 5,
            },
        )
        .await
        .unwrap();
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/activity?outcome=failed", None, &[]), NOW).await;
    assert_eq!(body(&r)["entries"].as_array().unwrap().len(), 5);
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/activity?learner=L1&limit=3", None, &[]), NOW).await;
    let b = body(&r);
    assert_eq!(b["entries"].as_array().unwrap().len(), 3);
    assert_eq!(b["entries"][0]["lms_id"], "E22", "newest first");
    let cursor = b["next_cursor"].as_str().unwrap().to_string();
    let r = handle(
        &w.deps,
        &req("GET", &format!("/admin/tenants/acme/activity?learner=L1&limit=3&cursor={cursor}"), None, &[]),
        NOW,
    )
    .await;
    assert_eq!(body(&r)["entries"][0]["lms_id"], "E13");
    let r = handle(
        &w.deps,
        &req("GET", "/admin/tenants/acme/activity?since=2026-11-23T10:20:00Z&format=csv", None, &[]),
        NOW,
    )
    .await;
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(text(&r).lines().count(), 1 + 5);
    let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/runs", None, &[]), NOW).await;
    assert_eq!(body(&r)["runs"][0]["failed"], 5);
}
