use super::*;
use learnlink_adapters::dynamo::memory::MemoryState;
use learnlink_adapters::secrets::memory::MemorySecrets;
use learnlink_adapters::sqs::memory::MemoryQueue;
use learnlink_core::ErrorClass;
use learnlink_core::webhook::canonical::sign;
use secrecy::SecretString;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-23 10:00:00 UTC);

struct World {
    state: Arc<MemoryState>,
    queue: Arc<MemoryQueue>,
    deps: Deps,
}

async fn world() -> World {
    let state = Arc::new(MemoryState::new());
    let secrets = Arc::new(MemorySecrets::new());
    let queue = Arc::new(MemoryQueue::new());
    state.seed_config(
        &TenantId::parse("acme").unwrap(),
        json!({"name": "Acme", "salesforce": {"environment": "production", "client_id": "cid"},
               "webhooks": {"sources": [{"name": "lms", "dialect": "canonical"}]}}),
        NOW,
    );
    secrets
        .put_secret("learnlink/acme/webhooks", &SecretString::from(r#"{"sources":{"lms":["whsec"]}}"#))
        .await
        .unwrap();
    let deps = Deps::new(state.clone(), secrets, state.clone(), queue.clone(), SecretNames::default());
    World { state, queue, deps }
}

fn fixture() -> ApiGatewayV2httpRequest {
    serde_json::from_str(include_str!("../fixtures/http-api-v2-webhook.json")).unwrap()
}

fn event(id: &str, enrollment: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"enrollment.updated","occurred_at":"2026-11-23T09:59:00Z","data":{{"id":"{enrollment}","learner_id":"L1","course_id":"C1","status":"in_progress","progress_pct":40,"updated_at":"2026-11-23T09:59:00Z"}}}}"#
    )
}

fn request(tenant: &str, source: &str, body: &str, signature: Option<String>) -> ApiGatewayV2httpRequest {
    let mut r = fixture();
    r.path_parameters.insert("tenant".into(), tenant.into());
    r.path_parameters.insert("source".into(), source.into());
    r.body = Some(body.to_string());
    if let Some(s) = signature {
        r.headers.insert("learnlink-signature", s.parse().unwrap());
    }
    r
}

fn signed(body: &str) -> ApiGatewayV2httpRequest {
    request("acme", "lms", body, Some(sign("whsec", NOW.unix_timestamp(), body.as_bytes())))
}

fn json_body(r: &ApiGatewayV2httpResponse) -> serde_json::Value {
    match &r.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a text body, got {other:?}"),
    }
}

#[tokio::test]
async fn the_fixture_event_deserializes_with_its_route() {
    let r = fixture();
    assert_eq!(r.route_key.as_deref(), Some("POST /webhooks/{tenant}/{source}"));
    assert_eq!(path_param(&r, "tenant"), Some("acme"));
}

#[tokio::test]
async fn signed_delivery_is_enqueued_as_one_message() {
    let w = world().await;
    let body = format!(r#"{{"events":[{},{}]}}"#, event("e1", "E1"), event("e2", "E2"));
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(r.status_code, 202, "{:?}", r.body);
    assert_eq!(json_body(&r), json!({"accepted": 2, "duplicates": 0}));
    assert_eq!(w.queue.sent().len(), 1);
    let ids: Vec<String> = w.queue.events().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["e1", "e2"]);
}

#[tokio::test]
async fn redelivery_is_deduplicated_by_event_id() {
    let w = world().await;
    let body = format!(r#"{{"events":[{}]}}"#, event("e1", "E1"));
    assert_eq!(handle(&w.deps, &signed(&body), NOW).await.status_code, 202);
    let again = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(json_body(&again), json!({"accepted": 0, "duplicates": 1}));
    assert_eq!(w.queue.sent().len(), 1);
}

#[tokio::test]
async fn bad_input_table_enqueues_nothing() {
    let w = world().await;
    let good = format!(r#"{{"events":[{}]}}"#, event("e1", "E1"));
    let t = NOW.unix_timestamp();
    let cases: Vec<(&str, ApiGatewayV2httpRequest, u16, &str)> = vec![
        ("missing signature", request("acme", "lms", &good, None), 401, "missing_signature"),
        (
            "wrong secret",
            request("acme", "lms", &good, Some(sign("nope", t, good.as_bytes()))),
            401,
            "invalid_signature",
        ),
        (
            "tampered body",
            request("acme", "lms", &good.replace("in_progress", "completed"), Some(sign("whsec", t, good.as_bytes()))),
            401,
            "invalid_signature",
        ),
        (
            "stale timestamp",
            request("acme", "lms", &good, Some(sign("whsec", t - 600, good.as_bytes()))),
            401,
            "stale_timestamp",
        ),
        ("malformed json", signed("{nope"), 400, "malformed_body"),
        (
            "unknown event type",
            signed(r#"{"events":[{"id":"x","type":"course.deleted","occurred_at":"2026-11-23T09:59:00Z","data":{}}]}"#),
            400,
            "unknown_event_type",
        ),
        (
            "unknown tenant",
            request("nobody", "lms", &good, Some(sign("whsec", t, good.as_bytes()))),
            404,
            "unknown_tenant",
        ),
        ("invalid tenant id", request("NOT VALID", "lms", &good, None), 404, "unknown_tenant"),
        (
            "unknown source",
            request("acme", "other", &good, Some(sign("whsec", t, good.as_bytes()))),
            404,
            "unknown_source",
        ),
        ("too large", signed(&" ".repeat(MAX_BODY_BYTES + 1)), 413, "body_too_large"),
    ];
    for (name, req, status, code) in cases {
        let r = handle(&w.deps, &req, NOW).await;
        assert_eq!(r.status_code, i64::from(status), "{name}: {:?}", r.body);
        let b = json_body(&r);
        assert_eq!(b["error"]["code"], code, "{name}");
        assert!(b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
    }
    assert!(w.queue.sent().is_empty());
}

#[tokio::test]
async fn malformed_body_error_names_the_field() {
    let w = world().await;
    let body = format!(r#"{{"events":[{}]}}"#, event("e1", "E1").replace("in_progress", "halfway"));
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(r.status_code, 400);
    let msg = json_body(&r)["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with("events[0].data.status:"), "{msg}");
}

#[tokio::test]
async fn a_failed_send_answers_503_and_remembers_nothing_so_the_retry_goes_through() {
    let w = world().await;
    w.queue.fail_nth(0);
    let body = format!(r#"{{"events":[{},{}]}}"#, event("e1", "E1"), event("e2", "E2"));
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(r.status_code, 503);
    assert!(w.queue.sent().is_empty());
    // The LMS retries the whole delivery: both events go through.
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(json_body(&r), json!({"accepted": 2, "duplicates": 0}));
    assert_eq!(w.queue.events().len(), 2);
}

#[tokio::test]
async fn a_delivery_past_the_message_limit_is_split_and_a_failed_part_is_redelivered() {
    let w = world().await;
    // ~3 KB per event: 100 events (the most a delivery holds) do not fit one 200 KiB message.
    let title = "t".repeat(3000);
    let events: Vec<String> = (0..100)
        .map(|i| {
            event(&format!("e{i}"), &format!("E{i}"))
                .replace(r#""course_id":"C1""#, &format!(r#""course_id":"C1","course_title":"{title}""#))
        })
        .collect();
    let body = format!(r#"{{"events":[{}]}}"#, events.join(","));
    assert!(body.len() < MAX_BODY_BYTES);
    w.queue.fail_nth(1);
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(r.status_code, 503, "{:?}", r.body);
    let first: Vec<String> = w.queue.events().into_iter().map(|e| e.id).collect();
    assert!(!first.is_empty() && first.len() < 100, "{}", first.len());
    assert_eq!(first, (0..first.len()).map(|i| format!("e{i}")).collect::<Vec<_>>());
    // The redelivery sends what failed, and only that.
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(r.status_code, 202, "{:?}", r.body);
    assert_eq!(json_body(&r), json!({"accepted": 100 - first.len(), "duplicates": first.len()}));
    let all: Vec<String> = w.queue.events().into_iter().map(|e| e.id).collect();
    assert_eq!(all, (0..100).map(|i| format!("e{i}")).collect::<Vec<_>>());
    assert!(w.queue.sent().len() >= 2);
}

#[tokio::test]
async fn a_store_outage_answers_503_not_404() {
    let w = world().await;
    *w.state.fail_with.lock().unwrap() = Some(learnlink_core::PortError::new(ErrorClass::Retryable, "down"));
    let body = format!(r#"{{"events":[{}]}}"#, event("e1", "E1"));
    // Nothing is cached yet in this world, so the outage is met.
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(r.status_code, 503);
    assert!(w.queue.sent().is_empty());
}

// ---------------------------------------------------------------- vendor dialects

use learnlink_core::webhook::{docebo, northpass, thinkific};

const OLD: &str = "old-secret-0123456789";
const NEW: &str = "new-secret-0123456789";

/// A tenant with one source per vendor dialect, each with two active secrets.
async fn vendor_world() -> World {
    let state = Arc::new(MemoryState::new());
    let secrets = Arc::new(MemorySecrets::new());
    let queue = Arc::new(MemoryQueue::new());
    state.seed_config(
        &TenantId::parse("acme").unwrap(),
        json!({"name": "Acme", "salesforce": {"environment": "production", "client_id": "cid"},
               "webhooks": {"sources": [
                   {"name": "think", "dialect": "thinkific"}, {"name": "north", "dialect": "northpass"},
                   {"name": "doc", "dialect": "docebo"}, {"name": "skill", "dialect": "skilljar"}]}}),
        NOW,
    );
    let doc = json!({"sources": {"think": [OLD, NEW], "north": [OLD, NEW], "doc": [OLD, NEW], "skill": [OLD, NEW]}});
    secrets.put_secret("learnlink/acme/webhooks", &SecretString::from(doc.to_string())).await.unwrap();
    let deps = Deps::new(state.clone(), secrets, state.clone(), queue.clone(), SecretNames::default());
    World { state, queue, deps }
}

fn vendor_request(
    source: &str,
    body: &str,
    headers: &[(&str, String)],
    token: Option<&str>,
) -> ApiGatewayV2httpRequest {
    let mut r = fixture();
    r.path_parameters.insert("tenant".into(), "acme".into());
    r.path_parameters.insert("source".into(), source.into());
    if let Some(t) = token {
        r.route_key = Some("POST /webhooks/{tenant}/{source}/{token}".into());
        r.path_parameters.insert("token".into(), t.into());
    }
    r.body = Some(body.to_string());
    for (k, v) in headers {
        r.headers.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    r
}

fn thinkific_body(id: &str) -> String {
    json!({"id": id, "resource": "enrollment", "action": "progress", "tenant_id": "59",
           "created_at": "2026-11-23T09:59:00Z",
           "payload": {"id": 4, "user": {"id": 95, "email": "j@doe.com", "first_name": "J", "last_name": "Doe"},
                       "course": {"id": 25, "name": "C"}, "percentage_completed": "24.0",
                       "updated_at": "2026-11-23T09:58:00Z"}})
    .to_string()
}

fn northpass_body(id: &str) -> String {
    json!({"data": {"id": id, "type": "course_progress_updated_events",
                    "attributes": {"created_at": "2026-11-23T09:59:00Z", "progress": 40},
                    "relationships": {"enrollment": {"data": {"id": "E1", "type": "enrollments"}},
                                      "learner": {"data": {"id": "L1", "type": "people"}},
                                      "course": {"data": {"id": "C1", "type": "courses"}}}},
           "included": []})
    .to_string()
}

fn docebo_body(n: usize) -> String {
    let payloads: Vec<serde_json::Value> = (0..n)
        .map(|u| json!({"fired_at": "2026-11-23 09:58:00", "user_id": u, "course_id": 91, "status": "in_progress"}))
        .collect();
    json!({"message_id": "wh-1", "webhook_id": 5, "original_domain": "acme.docebosaas.com",
           "event": "course.enrollment.updated", "fired_by_batch_action": true, "payloads": payloads})
    .to_string()
}

fn skilljar_body() -> String {
    json!({"event_type": "COURSE_ENROLLMENT", "timestamp": "2026-11-23T09:58:00.000001+00:00",
           "user": {"id": "u1", "email": "j@doe.com"}, "course": {"id": "c1", "title": "C"}})
    .to_string()
}

#[tokio::test]
async fn each_vendor_dialect_is_accepted_with_either_secret_and_deduplicated() {
    let w = vendor_world().await;
    let tb = thinkific_body("20261123095900000000001");
    let nb = northpass_body("np-1");
    let db = docebo_body(25);
    let sb = skilljar_body();
    let cases: Vec<(&str, ApiGatewayV2httpRequest, u64)> = vec![
        (
            "thinkific",
            vendor_request("think", &tb, &[(thinkific::SIGNATURE_HEADER, thinkific::sign(NEW, tb.as_bytes()))], None),
            1,
        ),
        (
            "northpass",
            vendor_request("north", &nb, &[(northpass::SIGNATURE_HEADER, northpass::sign(OLD, nb.as_bytes()))], None),
            1,
        ),
        (
            "docebo",
            vendor_request("doc", &db, &[(docebo::SIGNATURE_HEADER, docebo::sign(NEW, db.as_bytes()))], None),
            25,
        ),
        ("skilljar", vendor_request("skill", &sb, &[], Some(OLD)), 1),
    ];
    let mut total = 0;
    for (name, req, n) in &cases {
        let r = handle(&w.deps, req, NOW).await;
        assert_eq!(r.status_code, 202, "{name}: {:?}", r.body);
        assert_eq!(json_body(&r), json!({"accepted": n, "duplicates": 0}), "{name}");
        total += *n as usize;
        // The LMS redelivers: every event is a duplicate.
        let again = handle(&w.deps, req, NOW).await;
        assert_eq!(json_body(&again), json!({"accepted": 0, "duplicates": n}), "{name}");
    }
    assert_eq!(w.queue.events().len(), total);
}

#[tokio::test]
async fn vendor_bad_input_table_enqueues_nothing() {
    let w = vendor_world().await;
    let tb = thinkific_body("t-1");
    let nb = northpass_body("np-1");
    let db = docebo_body(1);
    let sb = skilljar_body();
    let big = docebo_body(26);
    let mixed =
        db.replace(r#""status":"in_progress""#, r#""status":"in_progress","event":"course.enrollment.completed""#);
    assert_ne!(mixed, db);
    let np_bad = nb.replace(r#""progress":40"#, r#""progress":"forty""#);
    assert_ne!(np_bad, nb);
    let th = |b: &str, s: &str| vec![(thinkific::SIGNATURE_HEADER, thinkific::sign(s, b.as_bytes()))];
    let nh = |b: &str, s: &str| vec![(northpass::SIGNATURE_HEADER, northpass::sign(s, b.as_bytes()))];
    let dh = |b: &str, s: &str| vec![(docebo::SIGNATURE_HEADER, docebo::sign(s, b.as_bytes()))];
    let cases: Vec<(&str, ApiGatewayV2httpRequest, u16, &str, &str)> = vec![
        ("thinkific unsigned", vendor_request("think", &tb, &[], None), 401, "missing_signature", ""),
        (
            "thinkific wrong secret",
            vendor_request("think", &tb, &th(&tb, "nope-0123456789abcdef"), None),
            401,
            "invalid_signature",
            "",
        ),
        (
            "thinkific signed as northpass",
            vendor_request("think", &tb, &[(thinkific::SIGNATURE_HEADER, northpass::sign(NEW, tb.as_bytes()))], None),
            401,
            "invalid_signature",
            "",
        ),
        (
            "thinkific unknown action",
            vendor_request("think", &tb.replace("progress", "trial"), &th(&tb.replace("progress", "trial"), NEW), None),
            400,
            "unknown_event_type",
            "resource.action",
        ),
        ("northpass unsigned", vendor_request("north", &nb, &[], None), 401, "missing_signature", ""),
        (
            "northpass wrong secret",
            vendor_request("north", &nb, &nh(&nb, "nope-0123456789abcdef"), None),
            401,
            "invalid_signature",
            "",
        ),
        (
            "northpass bad progress",
            vendor_request("north", &np_bad, &nh(&np_bad, NEW), None),
            400,
            "malformed_body",
            "data.attributes.progress: expected a number",
        ),
        ("docebo unsigned", vendor_request("doc", &db, &[], None), 401, "missing_signature", ""),
        (
            "docebo tampered",
            vendor_request("doc", &db.replace("in_progress", "completed"), &dh(&db, NEW), None),
            401,
            "invalid_signature",
            "",
        ),
        ("docebo 26 events", vendor_request("doc", &big, &dh(&big, NEW), None), 400, "malformed_body", "at most 25"),
        (
            "docebo mixed types",
            vendor_request("doc", &mixed, &dh(&mixed, NEW), None),
            400,
            "malformed_body",
            "one type",
        ),
        ("docebo not json", vendor_request("doc", "{x", &dh("{x", NEW), None), 400, "malformed_body", "not valid JSON"),
        ("skilljar without token", vendor_request("skill", &sb, &[], None), 401, "missing_token", ""),
        (
            "skilljar wrong token",
            vendor_request("skill", &sb, &[], Some("nope-0123456789abcdef")),
            401,
            "invalid_token",
            "",
        ),
        (
            "skilljar unknown type",
            vendor_request("skill", &sb.replace("COURSE_ENROLLMENT", "PURCHASE"), &[], Some(NEW)),
            400,
            "unknown_event_type",
            "event_type",
        ),
        (
            "token for a signed dialect",
            vendor_request("think", &tb, &th(&tb, NEW), Some(NEW)),
            404,
            "unknown_route",
            "/webhooks/acme/think",
        ),
        ("too large", vendor_request("north", &" ".repeat(MAX_BODY_BYTES + 1), &[], None), 413, "body_too_large", ""),
    ];
    for (name, req, status, code, needle) in cases {
        let r = handle(&w.deps, &req, NOW).await;
        assert_eq!(r.status_code, i64::from(status), "{name}: {:?}", r.body);
        let b = json_body(&r);
        assert_eq!(b["error"]["code"], code, "{name}: {b}");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{name}: {msg:?} lacks {needle:?}");
        assert!(!msg.contains(OLD) && !msg.contains(NEW) && !msg.contains("nope-"), "{name}: a secret in {msg:?}");
    }
    assert!(w.queue.sent().is_empty());
}
