use super::*;
use learnlink_adapters::dynamo::memory::{MemoryActivity, MemoryState};
use learnlink_adapters::secrets::memory::MemorySecrets;
use learnlink_adapters::sqs::memory::{MemoryDeadLetterQueue, MemoryQueue, MemoryQueueStats};
use learnlink_core::activity::{ActivityEntry, Direction, Outcome, RunSummary};
use secrecy::SecretString;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);
const SECRET: &str = "whsec-0123456789abcdef";

struct World {
    deps: Deps,
    secrets: Arc<MemorySecrets>,
    activity: Arc<MemoryActivity>,
    state: Arc<MemoryState>,
    queue: Arc<MemoryQueue>,
    dlq: Arc<MemoryDeadLetterQueue>,
    lms: Arc<learnlink_adapters::lms::MemoryLms>,
}

fn world() -> World {
    let secrets = Arc::new(MemorySecrets::new());
    let activity = Arc::new(MemoryActivity::new());
    let state = Arc::new(MemoryState::new());
    let queue = Arc::new(MemoryQueue::new());
    let dlq = Arc::new(MemoryDeadLetterQueue::new());
    let lms = Arc::new(learnlink_adapters::lms::MemoryLms::new());
    let deps = Deps {
        configs: state.clone(),
        connections: state.clone(),
        parking: state.clone(),
        review: state.clone(),
        links: state.clone(),
        dlq: dlq.clone(),
        sync_queue: queue.clone(),
        keepalive: time::Duration::days(7),
        secrets: secrets.clone(),
        activity: activity.clone(),
        queues: Arc::new(MemoryQueueStats::default()),
        dead_letter_queues: vec!["dlq".into()],
        sync_queue_url: None,
        names: SecretNames::default(),
        auth: AdminAuth::Bearer(SecretString::from("admin-token")),
        imports: state.clone(),
        salesforce: Arc::new(learnlink_adapters::salesforce::memory::MemorySalesforce::new()),
        tokens: learnlink_core::connection::TokenProvider::new("test"),
        lms_writer: lms.clone(),
        hris: Arc::new(learnlink_adapters::hris::memory::MemoryHris::new()),
        backfills: state.clone(),
        lms_enrollments: lms.clone(),
    };
    World { deps, secrets, activity, state, queue, dlq, lms }
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

// ---- the review queue and the dead-letter queue ------------------------------------

mod queues {
    use super::*;
    use learnlink_core::job::{SyncJob, encode};
    use learnlink_core::model::{Enrollment, EnrollmentStatus};
    use learnlink_core::ports::{DeadLetter, LinkState, LinkStore, ReviewItem, ReviewStore};
    use learnlink_core::webhook::{EventKind, EventPayload, LmsEvent};

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn job(tenant: &str, event: &str, enrollment: &str, learner: &str) -> SyncJob {
        SyncJob::LmsEvent {
            tenant: TenantId::parse(tenant).unwrap(),
            source: "lms".into(),
            event: LmsEvent {
                id: event.into(),
                kind: EventKind::EnrollmentCompleted,
                occurred_at: NOW,
                payload: EventPayload::Enrollment(Enrollment {
                    id: enrollment.into(),
                    learner_id: learner.into(),
                    course_id: "C1".into(),
                    course_title: None,
                    status: EnrollmentStatus::Completed,
                    progress_pct: Some(100.0),
                    score: None,
                    enrolled_at: None,
                    completed_at: Some(NOW),
                    updated_at: NOW,
                }),
            },
        }
    }

    fn item(learner: &str) -> ReviewItem {
        ReviewItem {
            learner_id: learner.into(),
            email: format!("{}@example.com", learner.to_lowercase()),
            matching_field: "Email".into(),
            match_value: format!("{}@example.com", learner.to_lowercase()),
            candidates: vec!["003000000000001AAA".into(), "003000000000002AAA".into()],
            first_seen: NOW,
            last_seen: NOW,
            held: 0,
        }
    }

    /// Learners L1 (3 held records), L2 and L3 (one each) in acme's review queue.
    async fn queued(w: &World) {
        create(w).await;
        let held: Vec<(String, String)> = (1..=3)
            .map(|i| (format!("enrollment#E{i}"), encode(&job("acme", &format!("evt-{i}"), &format!("E{i}"), "L1"))))
            .collect();
        w.state.hold(&acme(), &item("L1"), &held).await.unwrap();
        for l in ["L2", "L3"] {
            let j = encode(&job("acme", &format!("evt-{l}"), &format!("E-{l}"), l));
            w.state.hold(&acme(), &item(l), &[(format!("enrollment#E-{l}"), j)]).await.unwrap();
        }
    }

    fn resolve(learner: &str, contact: &str) -> ApiGatewayV2httpRequest {
        req("POST", &format!("/admin/tenants/acme/review/{learner}/resolve"), Some(json!({"contact_id": contact})), &[])
    }

    fn letter(id: &str, body: String, minute: i64) -> DeadLetter {
        DeadLetter { message_id: id.into(), body, receive_count: 5, sent_at: NOW + time::Duration::minutes(minute) }
    }

    /// acme: m1, m3; beta: m2; m4 is not a job.
    async fn dead_letters(w: &World) {
        create(w).await;
        w.dlq.push(letter("m1", encode(&job("acme", "evt-1", "E1", "L1")), 1));
        w.dlq.push(letter("m2", encode(&job("beta", "evt-2", "E2", "L2")), 2));
        w.dlq.push(letter("m3", encode(&job("acme", "evt-3", "E3", "L3")), 3));
        w.dlq.push(letter("m4", "{\"v\":1,\"kind\":\"no_such_job\"}".into(), 4));
    }

    #[tokio::test]
    async fn the_review_queue_pages_in_learner_order() {
        let w = world();
        queued(&w).await;
        let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/review?limit=2", None, &[]), NOW).await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        let b = body(&r);
        assert_eq!(b["tenant"], "acme");
        let items = b["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["learner_id"], "L1");
        assert_eq!(items[0]["held"], 3);
        assert_eq!(items[0]["candidates"], json!(["003000000000001AAA", "003000000000002AAA"]));
        assert_eq!(items[0]["first_seen"], "2026-11-23T10:00:00Z");
        let cursor = b["next_cursor"].as_str().unwrap().to_string();
        let r =
            handle(&w.deps, &req("GET", &format!("/admin/tenants/acme/review?cursor={cursor}"), None, &[]), NOW).await;
        let b = body(&r);
        assert_eq!(b["items"][0]["learner_id"], "L3");
        assert_eq!(b["items"].as_array().unwrap().len(), 1);
        assert_eq!(b["next_cursor"], Value::Null);
    }

    #[tokio::test]
    async fn resolving_stores_the_choice_and_sends_every_held_record_back() {
        let w = world();
        queued(&w).await;
        let r = handle(&w.deps, &resolve("L1", "003000000000002AAA"), NOW).await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        assert_eq!(
            body(&r),
            json!({"tenant": "acme", "learner_id": "L1", "contact_id": "003000000000002AAA", "released": 3})
        );
        let sent: Vec<String> = w.queue.sent().iter().map(|j| j.describe()).collect();
        assert_eq!(sent, ["acme/evt-1", "acme/evt-2", "acme/evt-3"]);
        let links = w.state.links(&acme(), &["L1".to_string()]).await.unwrap();
        assert_eq!((links["L1"].state, links["L1"].contact_id.as_str()), (LinkState::Chosen, "003000000000002AAA"));
        assert_eq!(links["L1"].at, NOW);
        assert!(w.state.review_item(&acme(), "L1").await.unwrap().is_none(), "the item is gone");
        assert_eq!(w.state.held(&acme(), "L1", 10).await.unwrap().0.len(), 0);
        // Resolved already: the learner is no longer in the queue.
        let r = handle(&w.deps, &resolve("L1", "003000000000002AAA"), NOW).await;
        assert_eq!((r.status_code, body(&r)["error"]["code"].clone()), (404, json!("unknown_learner")));
        let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/review", None, &[]), NOW).await;
        assert_eq!(body(&r)["items"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_failed_send_keeps_what_was_not_sent_and_a_second_resolve_finishes() {
        let w = world();
        queued(&w).await;
        w.queue.fail_nth(1);
        let r = handle(&w.deps, &resolve("L1", "003000000000001AAA"), NOW).await;
        assert_eq!((r.status_code, body(&r)["error"]["code"].clone()), (503, json!("unavailable")), "{}", text(&r));
        assert!(body(&r)["error"]["message"].as_str().unwrap().contains("2 held record(s) were sent back"));
        assert_eq!(w.state.review_item(&acme(), "L1").await.unwrap().unwrap().held, 1, "the unsent one stays held");
        let r = handle(&w.deps, &resolve("L1", "003000000000001AAA"), NOW).await;
        assert_eq!((r.status_code, body(&r)["released"].clone()), (200, json!(1)), "{}", text(&r));
        assert_eq!(w.queue.sent().len(), 3, "each record was sent back once");
        assert!(w.state.review_item(&acme(), "L1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_unreadable_held_record_stays_held_and_is_named() {
        let w = world();
        queued(&w).await;
        w.state.hold(&acme(), &item("L2"), &[("enrollment#X".into(), "garbage".into())]).await.unwrap();
        let r = handle(&w.deps, &resolve("L2", "003000000000001AAA"), NOW).await;
        assert_eq!((r.status_code, body(&r)["error"]["code"].clone()), (409, json!("still_held")), "{}", text(&r));
        assert_eq!(w.queue.sent().len(), 1, "the readable one was sent back");
        let left = w.state.held(&acme(), "L2", 10).await.unwrap().0;
        assert_eq!(left, [("enrollment#X".to_string(), "garbage".to_string())]);
    }

    #[tokio::test]
    async fn a_tenants_dead_letters_are_listed_with_what_they_carry() {
        let w = world();
        dead_letters(&w).await;
        let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/dlq", None, &[]), NOW).await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        let b = body(&r);
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs.iter().map(|m| m["message_id"].as_str().unwrap()).collect::<Vec<_>>(), ["m1", "m3"]);
        assert_eq!(msgs[0]["event_id"], "evt-1");
        assert_eq!(msgs[0]["record"], "enrollment E1");
        assert_eq!(msgs[0]["receive_count"], 5);
        assert_eq!(msgs[0]["sent_at"], "2026-11-23T10:01:00Z");
        assert_eq!(msgs[0]["tenant"], "acme");
        assert!(msgs[0]["description"].as_str().unwrap().contains("enrollment.completed of enrollment E1"));
        // Every tenant's, and what no job can be read from, under no tenant.
        let r = handle(&w.deps, &req("GET", "/admin/dlq", None, &[]), NOW).await;
        let b = body(&r);
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[1]["tenant"], "beta");
        assert_eq!((msgs[3]["tenant"].clone(), msgs[3]["event_id"].clone()), (Value::Null, Value::Null));
        assert!(msgs[3]["description"].as_str().unwrap().contains("not a learnlink job"), "{}", msgs[3]);
        let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/dlq", None, &[]), NOW).await;
        assert_eq!(body(&r)["messages"].as_array().unwrap().len(), 2, "listing removes nothing");
    }

    #[tokio::test]
    async fn a_dead_delivery_message_names_its_events() {
        let w = world();
        create(&w).await;
        let events: Vec<LmsEvent> =
            (1..=5).map(|i| job("acme", &format!("evt-{i}"), &format!("E{i}"), "L1").events()[0].clone()).collect();
        let many = SyncJob::LmsEvents { tenant: acme(), source: "lms".into(), events: events.clone() };
        let one = SyncJob::LmsEvents { tenant: acme(), source: "lms".into(), events: events[..1].to_vec() };
        w.dlq.push(letter("m1", encode(&many), 1));
        w.dlq.push(letter("m2", encode(&one), 2));
        let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/dlq", None, &[]), NOW).await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        let msgs = body(&r)["messages"].as_array().unwrap().clone();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0]["event_id"].clone(), msgs[0]["record"].clone()), (Value::Null, Value::Null));
        let d = msgs[0]["description"].as_str().unwrap();
        assert!(
            d.starts_with("5 events of one delivery from source \"lms\": enrollment.completed of enrollment E1;"),
            "{d}"
        );
        assert!(d.ends_with("; and 2 more"), "{d}");
        assert_eq!(msgs[1]["event_id"], "evt-1");
        assert_eq!(msgs[1]["record"], "enrollment E1");
    }

    #[tokio::test]
    async fn replay_sends_back_the_ones_asked_for_or_every_one_of_the_tenant() {
        let w = world();
        dead_letters(&w).await;
        let r = handle(
            &w.deps,
            &req("POST", "/admin/tenants/acme/dlq/replay", Some(json!({"message_ids": ["m3", "m3"]})), &[]),
            NOW,
        )
        .await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        assert_eq!(body(&r), json!({"tenant": "acme", "replayed": 1, "message_ids": ["m3"]}));
        assert_eq!(w.dlq.replayed(), [encode(&job("acme", "evt-3", "E3", "L3"))]);
        let r = handle(&w.deps, &raw_body("POST", "/admin/tenants/acme/dlq/replay", ""), NOW).await;
        assert_eq!(body(&r), json!({"tenant": "acme", "replayed": 1, "message_ids": ["m1"]}));
        let r = handle(&w.deps, &req("POST", "/admin/tenants/acme/dlq/replay", Some(json!({})), &[]), NOW).await;
        assert_eq!(body(&r), json!({"tenant": "acme", "replayed": 0, "message_ids": []}));
        // Other tenants' and unreadable messages stay.
        let r = handle(&w.deps, &req("GET", "/admin/dlq", None, &[]), NOW).await;
        let left: Vec<String> =
            body(&r)["messages"].as_array().unwrap().iter().map(|m| m["message_id"].as_str().unwrap().into()).collect();
        assert_eq!(left, ["m2", "m4"]);
    }

    #[tokio::test]
    async fn bad_input_changes_nothing() {
        let w = world();
        queued(&w).await;
        w.dlq.push(letter("m1", encode(&job("acme", "evt-1", "E1", "L1")), 1));
        w.dlq.push(letter("m2", encode(&job("beta", "evt-2", "E2", "L2")), 2));
        let replay = |b: Value| req("POST", "/admin/tenants/acme/dlq/replay", Some(b), &[]);
        type Case = (&'static str, ApiGatewayV2httpRequest, u16, &'static str);
        let cases: Vec<Case> = vec![
            ("bad cursor", req("GET", "/admin/tenants/acme/review?cursor=zz", None, &[]), 400, "invalid_cursor"),
            ("bad limit", req("GET", "/admin/tenants/acme/review?limit=0", None, &[]), 400, "invalid_parameter"),
            ("unknown tenant review", req("GET", "/admin/tenants/nobody/review", None, &[]), 404, "unknown_tenant"),
            ("unknown learner", resolve("L9", "003000000000001AAA"), 404, "unknown_learner"),
            ("contact not a candidate", resolve("L1", "003000000000009AAA"), 422, "not_a_candidate"),
            (
                "resolve not json",
                raw_body("POST", "/admin/tenants/acme/review/L1/resolve", "{x"),
                400,
                "malformed_body",
            ),
            ("resolve empty", raw_body("POST", "/admin/tenants/acme/review/L1/resolve", ""), 400, "malformed_body"),
            (
                "resolve without contact",
                req("POST", "/admin/tenants/acme/review/L1/resolve", Some(json!({"contact": "003"})), &[]),
                400,
                "malformed_body",
            ),
            (
                "resolve contact not a string",
                req("POST", "/admin/tenants/acme/review/L1/resolve", Some(json!({"contact_id": 3})), &[]),
                400,
                "malformed_body",
            ),
            (
                "resolve unknown tenant",
                req("POST", "/admin/tenants/nobody/review/L1/resolve", Some(json!({"contact_id": "003"})), &[]),
                404,
                "unknown_tenant",
            ),
            ("unknown tenant dlq", req("GET", "/admin/tenants/nobody/dlq", None, &[]), 404, "unknown_tenant"),
            ("unknown message id", replay(json!({"message_ids": ["m1", "nope"]})), 404, "unknown_message"),
            ("another tenant's message", replay(json!({"message_ids": ["m2"]})), 404, "unknown_message"),
            ("replay not json", raw_body("POST", "/admin/tenants/acme/dlq/replay", "[nope"), 400, "malformed_body"),
            ("replay empty list", replay(json!({"message_ids": []})), 400, "malformed_body"),
            ("replay ids not strings", replay(json!({"message_ids": [1]})), 400, "malformed_body"),
            ("replay unknown property", replay(json!({"ids": ["m1"]})), 400, "malformed_body"),
            ("replay not an object", replay(json!(["m1"])), 400, "malformed_body"),
            ("dlq wrong method", req("DELETE", "/admin/tenants/acme/dlq", None, &[]), 404, "not_found"),
        ];
        for (name, r, status, code) in cases {
            let resp = handle(&w.deps, &r, NOW).await;
            assert_eq!(resp.status_code, i64::from(status), "{name}: {}", text(&resp));
            let b = body(&resp);
            assert_eq!(b["error"]["code"], code, "{name}");
            assert!(b["error"]["message"].as_str().is_some_and(|m| m.len() > 5), "{name}");
        }
        // The 422 names the candidates; the 404 names the unknown id.
        let resp = handle(&w.deps, &resolve("L1", "003000000000009AAA"), NOW).await;
        let m = body(&resp)["error"]["message"].as_str().unwrap().to_string();
        assert!(m.contains("003000000000001AAA, 003000000000002AAA"), "{m}");
        let resp = handle(&w.deps, &replay(json!({"message_ids": ["m1", "nope"]})), NOW).await;
        assert!(body(&resp)["error"]["message"].as_str().unwrap().contains("nope"));
        // Nothing moved.
        assert!(w.queue.sent().is_empty());
        assert!(w.dlq.replayed().is_empty());
        assert_eq!(w.state.review_item(&acme(), "L1").await.unwrap().unwrap().held, 3);
        assert!(w.state.links(&acme(), &["L1".to_string()]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_store_failure_is_503() {
        let w = world();
        dead_letters(&w).await;
        *w.dlq.fail_with.lock().unwrap() = Some(learnlink_core::PortError::retryable("sqs down"));
        let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/dlq", None, &[]), NOW).await;
        assert_eq!((r.status_code, body(&r)["error"]["code"].clone()), (503, json!("unavailable")));
        assert!(!text(&r).contains("sqs down"), "the cause is logged, not answered");
    }
}

mod backfills {
    use super::*;
    use learnlink_core::backfill::{
        Backfill, BackfillOptions, BackfillStatus, KillSwitch, Origin, Shard, ShardCounts, ShardStatus, Window,
    };
    use learnlink_core::ports::BackfillStore;

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn backfill(id: &str, status: BackfillStatus, created_at: OffsetDateTime) -> Backfill {
        Backfill {
            id: id.into(),
            tenant: acme(),
            window: Window { since: datetime!(2026-01-01 0:00 UTC), until: datetime!(2026-11-01 0:00 UTC) },
            origin: Origin::Admin,
            options: BackfillOptions { only_changed: false, bulk_threshold: 2_000, shard_size: 10_000 },
            status,
            kill_switch: KillSwitch::Engaged { previous: Some(false) },
            expected: 40_000,
            shards: 4,
            skipped: Vec::new(),
            budget: None,
            created_at,
            updated_at: created_at,
            finished_at: status.is_final().then_some(created_at + time::Duration::minutes(30)),
            paused_at: None,
            reason: None,
        }
    }

    fn shards(done: u32) -> Vec<Shard> {
        (0..4u32)
            .map(|i| {
                let since = datetime!(2026-01-01 0:00 UTC) + time::Duration::days(i64::from(i) * 76);
                let mut sh = Shard::new(i, Window { since, until: since + time::Duration::days(76) }, 10_000);
                if i < done {
                    sh.status = ShardStatus::Done;
                    sh.counts = ShardCounts {
                        pages: 10,
                        read: 10_000,
                        created: 6_000,
                        updated: 3_990,
                        failed: 10,
                        handed_over: 0,
                        stale: 0,
                        api_calls: 50,
                    };
                    sh.finished_at = Some(NOW - time::Duration::minutes(5));
                }
                sh
            })
            .collect()
    }

    /// acme with three backfills: two completed long ago and bf-3, running
    /// (2 of 4 shards done, started 10 minutes ago, the active one).
    async fn seeded(w: &World) {
        create(w).await;
        let t0 = datetime!(2026-11-01 9:00 UTC);
        for (id, status, at) in [
            ("bf-20261101T090000-a1", BackfillStatus::Completed, t0),
            ("bf-20261110T090000-b2", BackfillStatus::Completed, t0 + time::Duration::days(9)),
            ("bf-20261123T095000-c3", BackfillStatus::Running, NOW - time::Duration::minutes(10)),
        ] {
            let mut b = backfill(id, status, at);
            if status.is_final() {
                b.kill_switch = KillSwitch::Restored { previous: Some(false) };
            }
            assert!(w.state.put_backfill(&b, None).await.unwrap());
            let done = if status.is_final() { 4 } else { 2 };
            w.state.put_new_shards(&acme(), id, &shards(done)).await.unwrap();
        }
        assert!(w.state.set_active_backfill(&acme(), Some("bf-20261123T095000-c3"), None).await.unwrap());
    }

    fn get(path: &str) -> ApiGatewayV2httpRequest {
        req("GET", path, None, &[])
    }

    fn code(r: &ApiGatewayV2httpResponse) -> (i64, Value) {
        (r.status_code, body(r)["error"]["code"].clone())
    }

    #[tokio::test]
    async fn the_list_is_newest_first_with_progress() {
        let w = world();
        seeded(&w).await;
        let r = handle(&w.deps, &get("/admin/tenants/acme/backfills"), NOW).await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        let b = body(&r);
        let list = b["backfills"].as_array().unwrap();
        let ids: Vec<&str> = list.iter().map(|v| v["backfill"]["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["bf-20261123T095000-c3", "bf-20261110T090000-b2", "bf-20261101T090000-a1"]);
        let p = &list[0]["progress"];
        assert_eq!((p["shards_done"].clone(), p["shards_total"].clone()), (json!(2), json!(4)));
        assert_eq!(
            (p["written"].clone(), p["failed"].clone(), p["api_calls"].clone()),
            (json!(19_980), json!(20), json!(100))
        );
        assert_eq!(p["percent"], json!(50.0));
        assert_eq!(p["elapsed_seconds"], json!(600));
        assert_eq!(p["eta_seconds"], json!(600));
        assert_eq!(list[0]["backfill"]["status"], "running");
        assert_eq!(list[0]["backfill"]["kill_switch"], json!({"state": "engaged", "previous": false}));
        assert_eq!(list[1]["progress"]["percent"], json!(100.0));
        assert!(list[0].get("shards").is_none());

        let r = handle(&w.deps, &get("/admin/tenants/acme/backfills?limit=1"), NOW).await;
        assert_eq!(body(&r)["backfills"].as_array().unwrap().len(), 1);
        for bad in ["0", "101", "x"] {
            let r = handle(&w.deps, &get(&format!("/admin/tenants/acme/backfills?limit={bad}")), NOW).await;
            assert_eq!(code(&r), (400, json!("invalid_parameter")), "{bad}");
        }
        let r = handle(&w.deps, &get("/admin/tenants/nobody/backfills"), NOW).await;
        assert_eq!(code(&r), (404, json!("unknown_tenant")));

        // A tenant without backfills has an empty list.
        let w = world();
        create(&w).await;
        let r = handle(&w.deps, &get("/admin/tenants/acme/backfills"), NOW).await;
        assert_eq!((r.status_code, body(&r)), (200, json!({"backfills": []})));
    }

    #[tokio::test]
    async fn one_backfill_with_its_shards_on_request() {
        let w = world();
        seeded(&w).await;
        let r = handle(&w.deps, &get("/admin/tenants/acme/backfills/bf-20261123T095000-c3"), NOW).await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        let b = body(&r);
        assert_eq!(b["backfill"]["id"], "bf-20261123T095000-c3");
        assert_eq!(b["backfill"]["window"], json!({"since": "2026-01-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}));
        assert_eq!(b["backfill"]["origin"], json!({"kind": "admin"}));
        assert_eq!(b["progress"]["shards_done"], 2);
        assert!(b.get("shards").is_none(), "{b}");
        let r = handle(&w.deps, &get("/admin/tenants/acme/backfills/bf-20261123T095000-c3?shards=true"), NOW).await;
        let b = body(&r);
        let shards = b["shards"].as_array().unwrap();
        assert_eq!(shards.len(), 4);
        assert_eq!((shards[0]["status"].clone(), shards[3]["status"].clone()), (json!("done"), json!("pending")));
        assert_eq!(shards[0]["counts"]["created"], 6_000);
        let r = handle(&w.deps, &get("/admin/tenants/acme/backfills/bf-20261123T095000-c3?shards=false"), NOW).await;
        assert!(body(&r).get("shards").is_none());

        let r = handle(&w.deps, &get("/admin/tenants/acme/backfills/bf-20261123T095000-c3?shards=maybe"), NOW).await;
        assert_eq!(code(&r), (400, json!("invalid_parameter")));
        let r = handle(&w.deps, &get("/admin/tenants/acme/backfills/bf-nope"), NOW).await;
        assert_eq!(code(&r), (404, json!("backfill_not_found")));
        assert!(body(&r)["error"]["message"].as_str().unwrap().contains("bf-nope"));
        let r = handle(&w.deps, &get("/admin/tenants/acme/backfills/bf.1%20x"), NOW).await;
        assert_eq!(code(&r), (400, json!("invalid_backfill_id")));
        assert!(body(&r)["error"]["message"].as_str().unwrap().starts_with("\"bf.1%20x\" is not a backfill id"));
        let long = "b".repeat(300);
        let r = handle(&w.deps, &get(&format!("/admin/tenants/acme/backfills/{long}")), NOW).await;
        assert_eq!(code(&r), (400, json!("invalid_backfill_id")));
        assert!(body(&r)["error"]["message"].as_str().unwrap().len() < 250, "a long id is shortened");
        let r = handle(&w.deps, &get("/admin/tenants/nobody/backfills/bf-20261123T095000-c3"), NOW).await;
        assert_eq!(code(&r), (404, json!("unknown_tenant")));
    }

    #[tokio::test]
    async fn cancel_ends_a_running_backfill_once() {
        let w = world();
        seeded(&w).await;
        let cancel = |id: &str| req("POST", &format!("/admin/tenants/acme/backfills/{id}/cancel"), None, &[]);
        let r = handle(&w.deps, &cancel("bf-20261123T095000-c3"), NOW).await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        let b = body(&r);
        assert_eq!(b["backfill"]["status"], "cancelled");
        assert_eq!(b["backfill"]["reason"], "cancelled by an admin");
        assert_eq!(b["backfill"]["finished_at"], "2026-11-23T10:00:00Z");
        assert_eq!(b["backfill"]["kill_switch"]["state"], "engaged", "the scheduler restores it");
        assert_eq!(b["progress"]["shards_done"], 2);
        assert_eq!(b["progress"]["eta_seconds"], Value::Null);
        assert!(b.get("shards").is_none());
        let (stored, _) = w.state.backfill(&acme(), "bf-20261123T095000-c3").await.unwrap().unwrap();
        assert_eq!(stored.status, BackfillStatus::Cancelled);
        assert_eq!(w.state.active_backfill(&acme()).await.unwrap(), None, "the tenant is free for another");
        // admin-api holds no backfill queue at all; nothing reaches the sync queue either.
        assert!(w.queue.sent().is_empty(), "nothing is enqueued");

        // Twice: 409 with the sentence; a completed one likewise.
        let r = handle(&w.deps, &cancel("bf-20261123T095000-c3"), NOW).await;
        assert_eq!(code(&r), (409, json!("backfill_finished")));
        assert_eq!(
            body(&r)["error"]["message"],
            "backfill bf-20261123T095000-c3 is already cancelled; nothing was changed"
        );
        let r = handle(&w.deps, &cancel("bf-20261101T090000-a1"), NOW).await;
        assert_eq!(code(&r), (409, json!("backfill_finished")));
        assert!(body(&r)["error"]["message"].as_str().unwrap().contains("already completed"));
        let r = handle(&w.deps, &cancel("bf-nope"), NOW).await;
        assert_eq!(code(&r), (404, json!("backfill_not_found")));
        let r = handle(&w.deps, &cancel("bad!id"), NOW).await;
        assert_eq!(code(&r), (400, json!("invalid_backfill_id")));
        let r = handle(&w.deps, &req("POST", "/admin/tenants/nobody/backfills/bf-1/cancel", None, &[]), NOW).await;
        assert_eq!(code(&r), (404, json!("unknown_tenant")));
        let r = handle(&w.deps, &req("GET", "/admin/tenants/acme/backfills/bf-1/cancel", None, &[]), NOW).await;
        assert_eq!(code(&r), (404, json!("not_found")), "cancel is a POST");
    }

    #[tokio::test]
    async fn a_store_failure_is_503() {
        let w = world();
        seeded(&w).await;
        // Every read fails, the tenant's first: the cause is logged, never answered.
        *w.state.fail_with.lock().unwrap() = Some(learnlink_core::PortError::retryable("dynamo down"));
        for r in [
            get("/admin/tenants/acme/backfills"),
            get("/admin/tenants/acme/backfills/bf-20261123T095000-c3"),
            req("POST", "/admin/tenants/acme/backfills/bf-20261123T095000-c3/cancel", None, &[]),
        ] {
            let resp = handle(&w.deps, &r, NOW).await;
            assert_eq!(code(&resp), (503, json!("unavailable")));
            assert!(!text(&resp).contains("dynamo down"));
        }
    }
}

mod exports {
    use super::*;
    use crate::exports::{COLUMNS, MAX_ROWS};
    use learnlink_core::model::{Enrollment, EnrollmentStatus};

    const LMS_KEY: &str = "lms-key-0123456789";

    async fn create_with_lms(w: &World) {
        let mut c = config();
        c["lms"] = json!({"base_url": "https://lms.example.com", "api_key": LMS_KEY});
        let r =
            handle(&w.deps, &req("POST", "/admin/tenants", Some(json!({"id": "acme", "config": c})), &[]), NOW).await;
        assert_eq!(r.status_code, 201, "{}", text(&r));
    }

    fn enrollment(i: usize, updated_at: OffsetDateTime) -> Enrollment {
        Enrollment {
            id: format!("E{i:05}"),
            learner_id: format!("L{}", i % 97),
            course_id: format!("C{}", i % 7),
            course_title: (i % 2 == 0).then(|| format!("Safety, level {}", i % 3)),
            status: if i % 3 == 0 { EnrollmentStatus::Completed } else { EnrollmentStatus::InProgress },
            progress_pct: Some(if i % 3 == 0 { 100.0 } else { 42.5 }),
            score: (i % 3 == 0).then_some(88.0),
            enrolled_at: Some(datetime!(2025-12-01 8:00 UTC)),
            completed_at: (i % 3 == 0).then_some(datetime!(2026-06-01 8:00:00.250 UTC)),
            updated_at,
        }
    }

    /// 7,200 enrollments in 2026 (one a minute from January 1st), and 10
    /// before and 10 after.
    fn seed(w: &World) {
        let start = datetime!(2026-01-01 0:00 UTC);
        let inside = (0..7_200).map(|i| enrollment(i, start + time::Duration::minutes(i as i64)));
        let before = (7_200..7_210).map(|i| enrollment(i, datetime!(2025-12-31 23:00 UTC)));
        let after = (7_210..7_220).map(|i| enrollment(i, NOW + time::Duration::hours(1)));
        w.lms.add_enrollments(inside.chain(before).chain(after));
    }

    fn export(query: &str) -> ApiGatewayV2httpRequest {
        req("GET", &format!("/admin/tenants/acme/exports/enrollments?{query}"), None, &[])
    }

    fn cursor(r: &ApiGatewayV2httpResponse) -> Option<String> {
        r.headers.get("learnlink-next-cursor").map(|v| v.to_str().unwrap().to_string())
    }

    fn code(r: &ApiGatewayV2httpResponse) -> (i64, Value) {
        (r.status_code, body(r)["error"]["code"].clone())
    }

    #[tokio::test]
    async fn the_window_comes_in_answers_of_5000_rows_with_one_header() {
        let w = world();
        create_with_lms(&w).await;
        seed(&w);
        let r = handle(&w.deps, &export("since=2026-01-01T00:00:00Z"), NOW).await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
        let first = learnlink_core::csv::parse_all(text(&r).as_bytes()).unwrap();
        assert_eq!(first[0], COLUMNS.map(String::from).to_vec());
        assert_eq!(first.len(), 1 + MAX_ROWS);
        assert_eq!(w.lms.enrollment_reads(), 5, "pages of 1,000");
        // Row 0: E00000 (i = 0: completed, a title with a comma, every date).
        assert_eq!(
            first[1],
            [
                "E00000",
                "L0",
                "C0",
                "Safety, level 0",
                "completed",
                "100",
                "88",
                "2025-12-01T08:00:00.000Z",
                "2026-06-01T08:00:00.250Z",
                "2026-01-01T00:00:00.000Z"
            ]
        );
        assert!(text(&r).contains("\"Safety, level 0\""), "quoted as RFC 4180 says");
        // Row 1: E00001 (no title, no score, not completed).
        assert_eq!(
            first[2],
            [
                "E00001",
                "L1",
                "C1",
                "",
                "in_progress",
                "42.5",
                "",
                "2025-12-01T08:00:00.000Z",
                "",
                "2026-01-01T00:01:00.000Z"
            ]
        );

        let next = cursor(&r).expect("more rows remain");
        let r = handle(
            &w.deps,
            &export(&format!("since=2026-01-01T00:00:00Z&until=2026-11-23T10:00:00Z&cursor={next}")),
            NOW,
        )
        .await;
        assert_eq!(r.status_code, 200, "{}", text(&r));
        assert_eq!(cursor(&r), None, "the last answer");
        let second = learnlink_core::csv::parse_all(text(&r).as_bytes()).unwrap();
        assert_eq!(second.len(), 2_200, "no header after the first answer");
        assert_eq!(second[0][0], "E05000");
        let mut ids: Vec<&str> = first[1..].iter().chain(&second).map(|r| r[0].as_str()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!((n, ids.len()), (7_200, 7_200), "every enrollment of the window once, none outside it");

        // A narrow window fits one answer: the header, its rows, no cursor.
        let r = handle(&w.deps, &export("since=2026-01-01T01:00:00Z&until=2026-01-01T01:10:00Z"), NOW).await;
        assert_eq!(cursor(&r), None);
        assert_eq!(learnlink_core::csv::parse_all(text(&r).as_bytes()).unwrap().len(), 11);
        // Nothing in the window: the header alone.
        let r = handle(&w.deps, &export("since=2020-01-01T00:00:00Z&until=2020-02-01T00:00:00Z"), NOW).await;
        assert_eq!((r.status_code, text(&r)), (200, format!("{}\n", COLUMNS.join(","))));
    }

    #[tokio::test]
    async fn bad_parameters_are_400s_naming_them() {
        let w = world();
        create_with_lms(&w).await;
        seed(&w);
        for (query, code_, needle) in [
            ("", "invalid_parameter", "since is required"),
            ("since=yesterday", "invalid_parameter", "since must be an RFC 3339 date-time"),
            ("since=2026-01-01", "invalid_parameter", "since must be"),
            ("since=2026-01-01T00:00:00Z&until=soon", "invalid_parameter", "until must be an RFC 3339 date-time"),
            ("since=2026-01-01T00:00:00Z&until=2026-01-01T00:00:00Z", "invalid_window", "the window is empty"),
            ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "invalid_window", "must be before until"),
            ("since=2027-01-01T00:00:00Z", "invalid_window", "the window is empty"),
            ("since=2026-01-01T00:00:00Z&cursor=", "invalid_cursor", "the cursor must be"),
            ("since=2026-01-01T00:00:00Z&cursor=not-a-cursor", "invalid_cursor", "not one this export gave"),
        ] {
            let r = handle(&w.deps, &export(query), NOW).await;
            assert_eq!(code(&r), (400, json!(code_)), "{query}: {}", text(&r));
            let m = body(&r)["error"]["message"].as_str().unwrap().to_string();
            assert!(m.contains(needle), "{query}: {m}");
            assert!(!m.contains(LMS_KEY));
        }
        let r = handle(
            &w.deps,
            &req("GET", "/admin/tenants/nobody/exports/enrollments?since=2026-01-01T00:00:00Z", None, &[]),
            NOW,
        )
        .await;
        assert_eq!(code(&r), (404, json!("unknown_tenant")));
    }

    #[tokio::test]
    async fn lms_failures_keep_their_class() {
        let w = world();
        create_with_lms(&w).await;
        seed(&w);
        for (class, expected) in [
            (learnlink_core::ErrorClass::Throttled, (429, json!("lms_throttled"))),
            (learnlink_core::ErrorClass::Retryable, (503, json!("lms_unavailable"))),
            (learnlink_core::ErrorClass::Permanent, (422, json!("export_failed"))),
        ] {
            w.lms.fail_enrollment_reads(1, class);
            let r = handle(&w.deps, &export("since=2026-01-01T00:00:00Z"), NOW).await;
            assert_eq!(code(&r), expected, "{class}");
        }
        // Each failure was one read: the next answer reads on.
        let r = handle(&w.deps, &export("since=2026-01-01T00:00:00Z"), NOW).await;
        assert_eq!(r.status_code, 200);
    }

    #[tokio::test]
    async fn a_tenant_without_an_lms_is_a_conflict() {
        let w = world();
        create(&w).await;
        let r = handle(&w.deps, &export("since=2026-01-01T00:00:00Z"), NOW).await;
        assert_eq!(code(&r), (409, json!("not_configured")));
        assert!(body(&r)["error"]["message"].as_str().unwrap().contains("lms.base_url"));
    }
}

mod imports {
    use super::*;

    async fn create_with_import(w: &World) {
        let mut c = config();
        c["lms"] = json!({"base_url": "https://lms.example.com", "api_key": "lms-key-0123456789"});
        c["import"] = json!({"source": "salesforce_user"});
        let r =
            handle(&w.deps, &req("POST", "/admin/tenants", Some(json!({"id": "acme", "config": c})), &[]), NOW).await;
        assert_eq!(r.status_code, 201, "{}", text(&r));
    }

    #[tokio::test]
    async fn only_an_object_or_nothing_starts_a_run() {
        let w = world();
        create_with_import(&w).await;
        for (bad, code) in [
            ("[true]", "malformed_body"),
            ("42", "malformed_body"),
            ("\"dry_run\"", "malformed_body"),
            ("null", "malformed_body"),
            ("{\"dry_run\"", "malformed_body"),
            (r#"{"dry_run": "yes"}"#, "invalid_field"),
            (r#"{"dry_run": true, "all": 1}"#, "invalid_field"),
        ] {
            let r = handle(&w.deps, &raw_body("POST", "/admin/tenants/acme/imports", bad), NOW).await;
            assert_eq!((r.status_code, body(&r)["error"]["code"].clone()), (400, json!(code)), "{bad}");
        }
        assert!(w.queue.sent().is_empty(), "a refused request starts nothing");
        for ok in ["", "{}", r#"{"dry_run": true}"#] {
            let r = handle(&w.deps, &raw_body("POST", "/admin/tenants/acme/imports", ok), NOW).await;
            assert_eq!(r.status_code, 202, "{ok}: {}", text(&r));
        }
        assert_eq!(w.queue.sent().len(), 3);
    }
}
