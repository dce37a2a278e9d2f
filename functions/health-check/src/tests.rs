use super::*;
use learnlink_adapters::dynamo::memory::MemoryState;
use learnlink_adapters::lambda::AdminAuth;
use learnlink_adapters::salesforce::memory::MemorySalesforce;
use learnlink_adapters::secrets::memory::MemorySecrets;
use learnlink_adapters::sqs::memory::{MemoryQueue, MemoryQueueStats};
use learnlink_core::connection::ConnectionState;
use learnlink_core::salesforce::TokenSet;
use secrecy::SecretString;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-11-23 00:00 UTC);
const ADMIN_TOKEN: &str = "admin-token";

struct World {
    state: Arc<MemoryState>,
    sf: Arc<MemorySalesforce>,
    queue: Arc<MemoryQueue>,
    /// Reads of the tenant, connection, parking, secret and queue stores.
    reads: Arc<Reads>,
    deps: Deps,
}

/// The stores the HTTP route could read, counting every call.
struct Reads {
    state: Arc<MemoryState>,
    secrets: Arc<MemorySecrets>,
    queues: MemoryQueueStats,
    calls: AtomicUsize,
}

impl Reads {
    fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl TenantStore for Reads {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError> {
        self.tick();
        self.state.get_tenant(id).await
    }
    async fn list_tenants(&self) -> Result<Vec<Tenant>, PortError> {
        self.tick();
        self.state.list_tenants().await
    }
}

#[async_trait::async_trait]
impl ConnectionStore for Reads {
    async fn connection(&self, tenant: &TenantId) -> Result<Option<ConnectionState>, PortError> {
        self.tick();
        self.state.connection(tenant).await
    }
    async fn put_connection(
        &self,
        tenant: &TenantId,
        state: &ConnectionState,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        self.tick();
        self.state.put_connection(tenant, state, expected).await
    }
}

#[async_trait::async_trait]
impl learnlink_core::ports::TenantLease for Reads {
    async fn acquire(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<Option<u64>, PortError> {
        self.tick();
        self.state.acquire(tenant, name, holder, now, ttl).await
    }
    async fn release(&self, tenant: &TenantId, name: &str, holder: &str) -> Result<(), PortError> {
        self.tick();
        learnlink_core::ports::TenantLease::release(self.state.as_ref(), tenant, name, holder).await
    }
}

#[async_trait::async_trait]
impl ParkStore for Reads {
    async fn park(&self, tenant: &TenantId, jobs: &[(String, String)]) -> Result<(), PortError> {
        self.tick();
        self.state.park(tenant, jobs).await
    }
    async fn parked(&self, tenant: &TenantId, limit: usize) -> Result<(Vec<(String, String)>, bool), PortError> {
        self.tick();
        self.state.parked(tenant, limit).await
    }
    async fn unpark(&self, tenant: &TenantId, keys: &[String]) -> Result<(), PortError> {
        self.tick();
        self.state.unpark(tenant, keys).await
    }
    async fn parked_count(&self, tenant: &TenantId) -> Result<u64, PortError> {
        self.tick();
        self.state.parked_count(tenant).await
    }
}

#[async_trait::async_trait]
impl SecretStore for Reads {
    async fn get_secret(&self, name: &str) -> Result<Option<SecretString>, PortError> {
        self.tick();
        self.secrets.get_secret(name).await
    }
    async fn put_secret(&self, name: &str, value: &SecretString) -> Result<(), PortError> {
        self.tick();
        self.secrets.put_secret(name, value).await
    }
}

#[async_trait::async_trait]
impl QueueStats for Reads {
    async fn depth(&self, queue_url: &str) -> Result<u64, PortError> {
        self.tick();
        self.queues.depth(queue_url).await
    }
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
    let reads = Arc::new(Reads {
        state: state.clone(),
        secrets,
        queues: MemoryQueueStats::default(),
        calls: AtomicUsize::new(0),
    });
    let deps = Deps {
        tenants: reads.clone(),
        secrets: reads.clone(),
        queues: reads.clone(),
        connections: reads.clone(),
        parking: reads.clone(),
        salesforce: sf.clone(),
        sync_queue: queue.clone(),
        names: SecretNames::default(),
        dead_letter_queues: vec!["dlq".into()],
        sync_queue_url: None,
        keepalive: time::Duration::days(7),
        tokens: TokenProvider::new("health"),
        auth: AdminAuth::Bearer(SecretString::from(ADMIN_TOKEN)),
    };
    World { state, sf, queue, reads, deps }
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

/// `GET /health/{tenant}` as API Gateway delivers it, with this
/// `Authorization` header if any.
fn health_request(tenant: &str, authorization: Option<&str>) -> Value {
    let mut ev = json!({"version": "2.0", "routeKey": "GET /health/{tenant}", "rawPath": format!("/health/{tenant}"),
        "headers": {}, "pathParameters": {"tenant": tenant},
        "requestContext": {"http": {"method": "GET", "path": format!("/health/{tenant}"), "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "t"},
                           "routeKey": "GET /health/{tenant}", "stage": "$default", "timeEpoch": 0},
        "isBase64Encoded": false});
    if let Some(a) = authorization {
        ev["headers"]["authorization"] = json!(a);
    }
    ev
}

fn answer_body(r: &Value) -> Value {
    serde_json::from_str(r["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

#[tokio::test]
async fn http_answers_status_and_404() {
    let w = world(T0).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let r = handle(&w.deps, health_request("acme", Some(&bearer))).await.unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(answer_body(&r)["tenant"], "acme", "{r}");
    assert_eq!(answer_body(&r)["status"], "CONNECTED", "{r}");
    let r = handle(&w.deps, health_request("nobody", Some(&bearer))).await.unwrap();
    assert_eq!(r["statusCode"], 404, "{r}");
    assert_eq!(answer_body(&r)["error"]["code"], "unknown_tenant", "{r}");
    assert!(handle(&w.deps, json!({"foo": 1})).await.is_err());
}

#[tokio::test]
async fn http_refuses_without_the_admin_credential_before_reading_anything() {
    let w = world(T0).await;
    let wrong_length = format!("Bearer {ADMIN_TOKEN}x");
    for (what, authorization) in [
        ("no token", None),
        ("an empty header", Some("")),
        ("a wrong token", Some("Bearer wrong-token")),
        ("the token with one more character", Some(wrong_length.as_str())),
        ("the token without its scheme", Some(ADMIN_TOKEN)),
        ("the token as Basic credentials", Some("Basic admin-token")),
    ] {
        for tenant in ["acme", "nobody"] {
            let r = handle(&w.deps, health_request(tenant, authorization)).await.unwrap();
            assert_eq!(r["statusCode"], 401, "{what}, {tenant}: {r}");
            assert_eq!(
                answer_body(&r),
                json!({"error": {"code": "unauthorized", "message": "a valid admin credential is required"}}),
                "{what}, {tenant}"
            );
            let text = r["body"].as_str().unwrap();
            for leak in ["CONNECTED", "integration", "failures", "gap"] {
                assert!(!text.contains(leak), "{what}, {tenant}: {text}");
            }
        }
    }
    assert_eq!(w.reads.count(), 0, "nothing is read for an unauthorized request");
    // IAM (AWS): only a request the IAM authorizer let through.
    let mut iam = world(T0).await;
    iam.deps.auth = AdminAuth::Iam;
    let r = handle(&iam.deps, health_request("acme", Some(&format!("Bearer {ADMIN_TOKEN}")))).await.unwrap();
    assert_eq!(r["statusCode"], 401, "{r}");
    let mut signed = health_request("acme", None);
    let caller = "arn:aws:iam::123456789012:user/ops";
    signed["requestContext"]["authorizer"] =
        json!({"iam": {"accessKey": "AKIA", "accountId": "123456789012", "userArn": caller}});
    assert_eq!(iam.reads.count(), 0);
    let r = handle(&iam.deps, signed).await.unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    // With the token: the status as before.
    let r = handle(&w.deps, health_request("acme", Some(&format!("Bearer {ADMIN_TOKEN}")))).await.unwrap();
    assert_eq!(r["statusCode"], 200, "{r}");
    assert!(w.reads.count() > 0, "the authorized request reads the tenant");
}

#[tokio::test]
async fn the_scheduled_sweep_needs_no_credential() {
    let w = world(T0).await;
    let h = status_after_sweep(&w, T0 + time::Duration::minutes(5)).await;
    assert_eq!(h["status"], "CONNECTED", "{h}");
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

fn parked_event(i: usize) -> (String, String) {
    use learnlink_core::model::{Enrollment, EnrollmentStatus};
    use learnlink_core::webhook::{EventKind, EventPayload, LmsEvent};
    let t = datetime!(2026-11-20 10:00 UTC) + time::Duration::seconds(i as i64);
    let job = learnlink_core::job::SyncJob::LmsEvent {
        tenant: acme(),
        source: "lms".into(),
        event: LmsEvent {
            id: format!("evt-{i}"),
            kind: EventKind::EnrollmentUpdated,
            occurred_at: t,
            payload: EventPayload::Enrollment(Enrollment {
                id: format!("E{i}"),
                learner_id: "L1".into(),
                course_id: "C1".into(),
                course_title: None,
                status: EnrollmentStatus::InProgress,
                progress_pct: Some(50.0),
                score: None,
                enrolled_at: None,
                completed_at: None,
                updated_at: t,
            }),
        },
    };
    (format!("acme/evt-{i}"), learnlink_core::job::encode(&job))
}

#[tokio::test]
async fn parked_events_are_replayed_packed_into_few_messages_and_a_refused_one_stays_parked() {
    use learnlink_core::ports::ParkStore;
    let state = MemoryState::new();
    let queue = MemoryQueue::new();
    let jobs: Vec<(String, String)> = (0..1_200).map(parked_event).collect();
    state.park(&acme(), &jobs).await.unwrap();
    // The second message sent is refused.
    queue.fail_nth(1);
    let r = drain_parked(&state, &queue, &acme(), 5_000).await;
    assert!(r.is_err(), "a refused message is reported");
    let left = state.parked_count(&acme()).await.unwrap();
    assert!(left > 0 && left < 1_200, "only the refused message's jobs stay parked: {left}");
    // The next drain sends the rest.
    let n = drain_parked(&state, &queue, &acme(), 5_000).await.unwrap();
    assert_eq!(n as u64, left);
    assert_eq!(state.parked_count(&acme()).await.unwrap(), 0);
    let sent = queue.sent();
    assert!(sent.len() <= 6, "1,200 parked events in a few messages, not 1,200: {}", sent.len());
    let mut ids: Vec<String> = queue.events().into_iter().map(|e| e.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1_200, "every parked event replayed");
}
