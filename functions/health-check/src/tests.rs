use super::*;
use learnlink_adapters::dynamo::memory::MemoryState;
use learnlink_adapters::salesforce::memory::MemorySalesforce;
use learnlink_adapters::secrets::memory::MemorySecrets;
use learnlink_adapters::sqs::memory::{MemoryQueue, MemoryQueueStats};
use learnlink_core::connection::ConnectionState;
use learnlink_core::salesforce::TokenSet;
use secrecy::SecretString;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-23 00:00 UTC);

struct World {
    state: Arc<MemoryState>,
    sf: Arc<MemorySalesforce>,
    queue: Arc<MemoryQueue>,
    deps: Deps,
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

async fn world(connected_at: OffsetDateTime) -> World {
    let state = Arc::new(MemoryState::new());
    state.seed_config(
        &acme(),
        json!({"name": "Acme", "salesforce": {"environment": "production", "client_id": "c"}}),
        T0,
    );
    let secrets = Arc::new(MemorySecrets::new());
    let sf = Arc::new(MemorySalesforce::new());
    sf.issue_tokens("access-0", "refresh-0");
    let t = TokenSet {
        access_token: SecretString::from("access-0"),
        refresh_token: SecretString::from("refresh-0"),
        instance_url: "https://fake".into(),
        issued_at: None,
        user_id: None,
        org_id: None,
        env: None,
    };
    secrets.put_secret("learnlink/acme/salesforce", &t.to_secret_json()).await.unwrap();
    let mut c = ConnectionState::default();
    c.mark_connected(connected_at, time::Duration::minutes(60), "g".into());
    c.revision = 1;
    state.put_connection(&acme(), &c, None).await.unwrap();
    let queue = Arc::new(MemoryQueue::new());
    let deps = Deps {
        tenants: state.clone(),
        secrets,
        queues: Arc::new(MemoryQueueStats::default()),
        connections: state.clone(),
        parking: state.clone(),
        salesforce: sf.clone(),
        sync_queue: queue.clone(),
        names: SecretNames::default(),
        dead_letter_queues: vec!["dlq".into()],
        sync_queue_url: None,
        keepalive: time::Duration::days(7),
        tokens: TokenProvider::new("health"),
    };
    World { state, sf, queue, deps }
}

fn scheduled(at: OffsetDateTime) -> Value {
    json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
           "time": at.format(&time::format_description::well_known::Rfc3339).unwrap(), "region": "us-east-1",
           "resources": ["arn:aws:events:us-east-1:123456789012:rule/health"], "detail": {}})
}

async fn status_after_sweep(w: &World, at: OffsetDateTime) -> Value {
    let r = handle(&w.deps, scheduled(at)).await.unwrap();
    r["tenants"][0].clone()
}

#[tokio::test]
async fn http_answers_status_and_404() {
    let w = world(T0).await;
    let ev = json!({"version": "2.0", "routeKey": "GET /health/{tenant}", "rawPath": "/health/acme", "headers": {},
        "pathParameters": {"tenant": "acme"},
        "requestContext": {"http": {"method": "GET", "path": "/health/acme", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                           "routeKey": "GET /health/{tenant}", "stage": "$default", "timeEpoch": 0}, "isBase64Encoded": false});
    let r = handle(&w.deps, ev.clone()).await.unwrap();
    assert_eq!(r["statusCode"], 200);
    let mut missing = ev;
    missing["pathParameters"]["tenant"] = json!("nobody");
    assert_eq!(handle(&w.deps, missing).await.unwrap()["statusCode"], 404);
    assert!(handle(&w.deps, json!({"foo": 1})).await.is_err());
}

#[tokio::test]
async fn a_revoked_token_is_found_within_one_cycle() {
    let w = world(T0).await;
    assert_eq!(status_after_sweep(&w, T0 + time::Duration::minutes(5)).await["status"], "CONNECTED");
    w.sf.revoke_all();
    let h = status_after_sweep(&w, T0 + time::Duration::minutes(10)).await;
    assert_eq!(h["status"], "DISCONNECTED", "{h}");
    assert_eq!(h["cause"], "refresh_token_revoked_or_expired");
    assert!(h["remedy"].as_str().unwrap().contains("learnlink connect acme"));
}

#[tokio::test]
async fn a_whole_day_of_5xx_is_degraded_never_disconnected() {
    let w = world(T0).await;
    w.sf.set_outage(Some(503));
    // Every 5 minutes from 00:00 to 23:55.
    let mut t = T0;
    let mut last = Value::Null;
    for _ in 0..288 {
        last = status_after_sweep(&w, t).await;
        assert_eq!(last["status"], "DEGRADED", "{last}");
        t += time::Duration::minutes(5);
    }
    assert_eq!(last["failures_today"], 288, "{last}");
    assert!(last["sentence"].as_str().unwrap().contains("not a disconnection"));
    // The outage ends: the next day starts clean.
    w.sf.set_outage(None);
    assert_eq!(status_after_sweep(&w, t + time::Duration::hours(1)).await["status"], "CONNECTED");
}

#[tokio::test]
async fn the_keep_alive_refreshes_idle_connections() {
    let w = world(T0).await;
    status_after_sweep(&w, T0 + time::Duration::days(3)).await;
    assert_eq!(w.sf.refreshes(), 0, "3 days idle: nothing to do");
    let h = status_after_sweep(&w, T0 + time::Duration::days(7) + time::Duration::minutes(5)).await;
    assert_eq!(w.sf.refreshes(), 1, "7 days idle: refreshed");
    assert!(h["keepalive_due_by"].as_str().unwrap().starts_with("2026-12-07"), "{h}");
}

#[tokio::test]
async fn parked_work_is_replayed_once_connected() {
    let w = world(T0).await;
    let job = learnlink_core::job::encode(&learnlink_core::job::SyncJob::LmsEvent {
        tenant: acme(),
        source: "lms".into(),
        event: learnlink_core::webhook::LmsEvent {
            id: "e1".into(),
            kind: learnlink_core::webhook::EventKind::EnrollmentCreated,
            occurred_at: T0,
            payload: learnlink_core::webhook::EventPayload::Certification(learnlink_core::model::Certification {
                id: "C1".into(),
                learner_id: "L1".into(),
                name: "Safety".into(),
                issued_at: None,
                expires_at: None,
                updated_at: T0,
            }),
        },
    });
    w.state.park(&acme(), &[("lms#e1".into(), job), ("lms#bad".into(), "not a job".into())]).await.unwrap();
    status_after_sweep(&w, T0 + time::Duration::minutes(5)).await;
    assert_eq!(w.queue.sent().len(), 1);
    assert_eq!(w.state.parked_count(&acme()).await.unwrap(), 1, "the undecodable one stays, named in the log");
}
