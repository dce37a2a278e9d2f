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
async fn signed_delivery_is_enqueued_one_job_per_event() {
    let w = world().await;
    let body = format!(r#"{{"events":[{},{}]}}"#, event("e1", "E1"), event("e2", "E2"));
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(r.status_code, 202, "{:?}", r.body);
    assert_eq!(json_body(&r), json!({"accepted": 2, "duplicates": 0}));
    assert_eq!(w.queue.sent().len(), 2);
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
async fn a_failed_send_answers_503_and_releases_the_claim_for_the_retry() {
    let w = world().await;
    w.queue.fail_nth(1);
    let body = format!(r#"{{"events":[{},{}]}}"#, event("e1", "E1"), event("e2", "E2"));
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(r.status_code, 503);
    assert_eq!(w.queue.sent().len(), 1);
    // The LMS retries the whole delivery: e1 is a duplicate, e2 goes through.
    let r = handle(&w.deps, &signed(&body), NOW).await;
    assert_eq!(json_body(&r), json!({"accepted": 1, "duplicates": 1}));
    assert_eq!(w.queue.sent().len(), 2);
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
