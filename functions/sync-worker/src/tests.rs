use super::*;
use aws_lambda_events::sqs::SqsMessage;
use learnlink_adapters::dynamo::memory::{MemoryActivity, MemoryState};
use learnlink_adapters::salesforce::memory::{MemorySalesforce, Script};
use learnlink_adapters::secrets::memory::MemorySecrets;
use learnlink_core::connection::TokenProvider;
use learnlink_core::model::{Enrollment, EnrollmentStatus};
use learnlink_core::salesforce::TokenSet;
use learnlink_core::webhook::{EventKind, EventPayload};
use secrecy::{ExposeSecret, SecretString};
use time::macros::datetime;

struct World {
    sf: Arc<MemorySalesforce>,
    secrets: Arc<MemorySecrets>,
    activity: Arc<MemoryActivity>,
    state: Arc<MemoryState>,
    deps: Deps,
}

async fn world() -> World {
    let state = Arc::new(MemoryState::new());
    let secrets = Arc::new(MemorySecrets::new());
    let sf = Arc::new(MemorySalesforce::new());
    state.seed_config(
        &TenantId::parse("acme").unwrap(),
        serde_json::json!({"name": "Acme", "salesforce": {"environment": "production", "client_id": "cid"}}),
        datetime!(2026-11-01 0:00 UTC),
    );
    sf.issue_tokens("access-0", "refresh-0");
    sf.add_contact("L1");
    let tokens = TokenSet {
        access_token: SecretString::from("access-0"),
        refresh_token: SecretString::from("refresh-0"),
        instance_url: "https://fake".into(),
        issued_at: None,
        user_id: None,
        org_id: None,
        env: None,
    };
    secrets.put_secret("learnlink/acme/salesforce", &tokens.to_secret_json()).await.unwrap();
    let activity = Arc::new(MemoryActivity::new());
    let deps = Deps {
        tenants: state.clone(),
        secrets: secrets.clone(),
        salesforce: sf.clone(),
        activity: activity.clone(),
        connections: state.clone(),
        parking: state.clone(),
        names: SecretNames::default(),
        tokens: TokenProvider::new("test-instance"),
    };
    World { sf, secrets, activity, state, deps }
}

fn job(tenant: &str, enrollment: &str, learner: &str, minute: i64, status: EnrollmentStatus) -> String {
    let t = datetime!(2026-11-23 10:00 UTC) + time::Duration::minutes(minute);
    job::encode(&SyncJob::LmsEvent {
        tenant: TenantId::parse(tenant).unwrap(),
        source: "lms".into(),
        event: LmsEvent {
            id: format!("evt-{enrollment}-{minute}"),
            kind: EventKind::EnrollmentUpdated,
            occurred_at: t,
            payload: EventPayload::Enrollment(Enrollment {
                id: enrollment.into(),
                learner_id: learner.into(),
                course_id: "C1".into(),
                course_title: None,
                status,
                progress_pct: Some(10.0),
                score: None,
                enrolled_at: None,
                completed_at: None,
                updated_at: t,
            }),
        },
    })
}

fn sqs(bodies: &[String]) -> SqsEvent {
    let mut ev: SqsEvent = serde_json::from_str(include_str!("../fixtures/sqs-event.json")).unwrap();
    let template = ev.records.remove(0);
    ev.records = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut m: SqsMessage = template.clone();
            m.message_id = Some(format!("m{i}"));
            m.body = Some(b.clone());
            m
        })
        .collect();
    ev
}

fn failed_ids(r: &SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

#[tokio::test]
async fn poison_fails_alone_and_the_rest_of_the_batch_is_written() {
    let w = world().await;
    let batch = sqs(&[
        job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled),
        "this is not a job".to_string(),
        job("acme", "E2", "L1", 0, EnrollmentStatus::Completed),
    ]);
    let r = handle(&w.deps, batch).await;
    assert_eq!(failed_ids(&r), vec!["m1"]);
    assert_eq!(w.sf.record_count(), 2);
    assert_eq!(w.sf.calls(), 1, "both records travel in one Composite call");
}

#[tokio::test]
async fn reordered_duplicates_keep_the_newest_state() {
    let w = world().await;
    let batch = sqs(&[
        job("acme", "E1", "L1", 5, EnrollmentStatus::Completed),
        job("acme", "E1", "L1", 1, EnrollmentStatus::InProgress),
    ]);
    let r = handle(&w.deps, batch).await;
    assert!(r.batch_item_failures.is_empty());
    let rec = w.sf.record("LMS_Enrollment__c", "E1").unwrap();
    assert_eq!(rec["Status__c"], "Completed");
}

#[tokio::test]
async fn permanent_record_errors_are_acknowledged_not_retried() {
    let w = world().await;
    let batch = sqs(&[
        job("acme", "E1", "L-unknown", 0, EnrollmentStatus::Enrolled),
        job("acme", "E2", "L1", 0, EnrollmentStatus::Enrolled),
    ]);
    let outcomes = process(&w.deps, &batch).await;
    assert!(matches!(&outcomes[0], MessageOutcome::Rejected { code, .. } if code == "INVALID_FIELD"));
    assert_eq!(outcomes[1], MessageOutcome::Done);
    // One activity entry per record outcome, with Salesforce's code.
    let log = w.activity.all(&TenantId::parse("acme").unwrap());
    assert_eq!(log.len(), 2);
    let failed = log.iter().find(|e| e.lms_id == "E1").unwrap();
    assert_eq!(failed.outcome, learnlink_core::activity::Outcome::Failed);
    assert_eq!(failed.reason.as_deref(), Some("INVALID_FIELD"));
    assert_eq!(failed.learner_id.as_deref(), Some("L-unknown"));
    assert!(log.iter().any(|e| e.lms_id == "E2" && e.outcome == learnlink_core::activity::Outcome::Created));
    assert!(handle(&w.deps, batch).await.batch_item_failures.is_empty());
}

#[tokio::test]
async fn retryable_and_throttled_failures_return_the_messages() {
    for script in [
        Script::RecordError("UNABLE_TO_LOCK_ROW".into()),
        Script::Fail { status: 503, code: "SERVER_UNAVAILABLE".into() },
        Script::Fail { status: 403, code: "REQUEST_LIMIT_EXCEEDED".into() },
    ] {
        let w = world().await;
        w.sf.push_script(script.clone());
        let r = handle(&w.deps, sqs(&[job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled)])).await;
        assert_eq!(failed_ids(&r), vec!["m0"], "{script:?}");
        assert_eq!(w.sf.record_count(), 0);
    }
}

#[tokio::test]
async fn an_expired_session_is_refreshed_and_the_rotated_token_stored_first() {
    let w = world().await;
    w.sf.expire_sessions();
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.sf.refreshes(), 1);
    assert_eq!(w.secrets.version_count("learnlink/acme/salesforce"), 2);
    let stored = w.secrets.get_secret("learnlink/acme/salesforce").await.unwrap().unwrap();
    let stored = TokenSet::from_secret_json(&stored).unwrap();
    assert_eq!(stored.refresh_token.expose_secret(), "refresh-1");
}

#[tokio::test]
async fn an_unknown_tenant_keeps_its_messages_in_the_queue() {
    let w = world().await;
    let r = handle(&w.deps, sqs(&[job("nobody", "E1", "L1", 0, EnrollmentStatus::Enrolled)])).await;
    assert_eq!(failed_ids(&r), vec!["m0"]);
}

async fn parked(w: &World) -> u64 {
    use learnlink_core::ports::ParkStore;
    w.state.parked_count(&TenantId::parse("acme").unwrap()).await.unwrap()
}

#[tokio::test]
async fn work_for_a_tenant_without_a_connection_is_parked() {
    let w = world().await;
    let w = World { deps: Deps { secrets: Arc::new(MemorySecrets::new()), ..w.deps }, ..w };
    let batch = sqs(&[
        job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled),
        job("acme", "E2", "L1", 0, EnrollmentStatus::Enrolled),
    ]);
    let r = handle(&w.deps, batch.clone()).await;
    assert!(r.batch_item_failures.is_empty(), "parked messages are acknowledged");
    assert_eq!(parked(&w).await, 2);
    // Redelivery parks the same jobs again: still two.
    handle(&w.deps, batch).await;
    assert_eq!(parked(&w).await, 2);
    assert_eq!(w.sf.record_count(), 0);
}

#[tokio::test]
async fn a_revocation_during_the_batch_parks_it_and_disconnects() {
    let w = world().await;
    w.sf.revoke_all();
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(parked(&w).await, 1);
    use learnlink_core::ports::ConnectionStore;
    let c = w.state.connection(&TenantId::parse("acme").unwrap()).await.unwrap().unwrap();
    assert_eq!(c.status, learnlink_core::connection::LinkStatus::Disconnected);
    // The next batch is parked without asking Salesforce.
    let calls = w.sf.calls();
    handle(&w.deps, sqs(&[job("acme", "E2", "L1", 0, EnrollmentStatus::Enrolled)])).await;
    assert_eq!((parked(&w).await, w.sf.calls()), (2, calls));
}

#[tokio::test]
async fn a_paused_tenant_parks_its_work() {
    let w = world().await;
    w.state.seed_config(
        &TenantId::parse("acme").unwrap(),
        serde_json::json!({"name": "Acme", "paused": true, "salesforce": {"environment": "production", "client_id": "cid"}}),
        datetime!(2026-11-02 0:00 UTC),
    );
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!((parked(&w).await, w.sf.calls()), (1, 0));
}

#[tokio::test]
async fn a_big_batch_uses_one_call_per_thousand_records() {
    let w = world().await;
    let bodies: Vec<String> =
        (0..2_500).map(|i| job("acme", &format!("E{i}"), "L1", 0, EnrollmentStatus::Enrolled)).collect();
    let r = handle(&w.deps, sqs(&bodies)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.sf.record_count(), 2_500);
    assert_eq!(w.sf.calls(), 3);
}
