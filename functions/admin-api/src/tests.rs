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
}

fn world() -> World {
    let secrets = Arc::new(MemorySecrets::new());
    let activity = Arc::new(MemoryActivity::new());
    let state = Arc::new(MemoryState::new());
    let queue = Arc::new(MemoryQueue::new());
    let dlq = Arc::new(MemoryDeadLetterQueue::new());
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
        lms_writer: Arc::new(learnlink_adapters::lms::MemoryLms::new()),
        hris: Arc::new(learnlink_adapters::hris::memory::MemoryHris::new()),
    };
    World { deps, secrets, activity, state, queue, dlq }
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
