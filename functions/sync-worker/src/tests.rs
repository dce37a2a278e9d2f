use super::*;
use aws_lambda_events::sqs::SqsMessage;
use learnlink_adapters::dynamo::applied::MemoryApplied;
use learnlink_adapters::dynamo::memory::{MemoryActivity, MemoryState};
use learnlink_adapters::salesforce::memory::{MemorySalesforce, Script};
use learnlink_adapters::secrets::memory::MemorySecrets;
use learnlink_core::connection::TokenProvider;
use learnlink_core::model::{Enrollment, EnrollmentStatus};
use learnlink_core::salesforce::TokenSet;
use learnlink_core::webhook::{EventKind, EventPayload};
use secrecy::{ExposeSecret, SecretString};
use time::macros::datetime;

/// An LMS answering from memory.
#[derive(Default)]
struct FakeLms {
    learners: std::sync::Mutex<Vec<learnlink_core::model::Learner>>,
    departments: Vec<learnlink_core::model::Department>,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl LmsApi for FakeLms {
    async fn learners(
        &self,
        _lms: &learnlink_core::ports::LmsConnection,
        ids: &[String],
    ) -> Result<Vec<learnlink_core::model::Learner>, learnlink_core::PortError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.learners.lock().unwrap().iter().filter(|l| ids.contains(&l.id)).cloned().collect())
    }
    async fn departments(
        &self,
        _lms: &learnlink_core::ports::LmsConnection,
    ) -> Result<Vec<learnlink_core::model::Department>, learnlink_core::PortError> {
        Ok(self.departments.clone())
    }
}

struct World {
    lms: Arc<FakeLms>,
    applied: Arc<MemoryApplied>,
    sf: Arc<MemorySalesforce>,
    secrets: Arc<MemorySecrets>,
    activity: Arc<MemoryActivity>,
    state: Arc<MemoryState>,
    writer: Arc<learnlink_adapters::lms::MemoryLms>,
    queue: Arc<learnlink_adapters::sqs::memory::MemoryQueue>,
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
    let lms = Arc::new(FakeLms::default());
    let applied = Arc::new(MemoryApplied::new());
    let writer = Arc::new(learnlink_adapters::lms::MemoryLms::new());
    let queue = Arc::new(learnlink_adapters::sqs::memory::MemoryQueue::new());
    let deps = Deps {
        lms: lms.clone(),
        links: state.clone(),
        applied: applied.clone(),
        review: state.clone(),
        caches: Default::default(),
        max_receive_count: 5,
        tenants: state.clone(),
        secrets: secrets.clone(),
        salesforce: sf.clone(),
        activity: activity.clone(),
        connections: state.clone(),
        parking: state.clone(),
        names: SecretNames::default(),
        tokens: TokenProvider::new("test-instance"),
        lms_writer: writer.clone(),
        hris: Arc::new(learnlink_adapters::hris::memory::MemoryHris::new()),
        imports: state.clone(),
        queue: queue.clone(),
        backfills: state.clone(),
        lms_enrollments: Arc::new(learnlink_adapters::lms::memory::MemoryLms::new()),
    };
    World { lms, applied, sf, secrets, activity, state, writer, queue, deps }
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
    // Redeliveries, so that none is handed back to fill a call.
    let mut batch = sqs(&bodies);
    for m in &mut batch.records {
        m.attributes.insert("ApproximateReceiveCount".into(), "2".into());
    }
    let r = handle(&w.deps, batch).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.sf.record_count(), 2_500);
    assert_eq!(w.sf.calls(), 3);
}

// ---- job 1 with an LMS: learners → Contacts (SPEC §4.3), order (§4.2) ----

fn learner(id: &str, email: &str, dept: Option<&str>) -> learnlink_core::model::Learner {
    learnlink_core::model::Learner {
        id: id.into(),
        email: email.into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        department_id: dept.map(str::to_string),
        fields: Default::default(),
        active: true,
        updated_at: datetime!(2026-11-20 10:00 UTC),
    }
}

fn contact_row(id: &str, learner: Option<&str>, email: &str) -> serde_json::Map<String, serde_json::Value> {
    let v = serde_json::json!({"attributes": {"type": "Contact"}, "Id": id, "AccountId": null,
        "LMS_Learner_Id__c": learner, "Email": email});
    v.as_object().unwrap().clone()
}

/// A world whose tenant reads learners from an LMS, with these sync settings.
async fn lms_world(sync: serde_json::Value, learners: Vec<learnlink_core::model::Learner>) -> World {
    let mut w = world().await;
    w.state.seed_config(
        &TenantId::parse("acme").unwrap(),
        serde_json::json!({"name": "Acme", "salesforce": {"environment": "production", "client_id": "cid"},
            "lms": {"base_url": "http://127.0.0.1:9"}, "sync": sync}),
        datetime!(2026-11-02 0:00 UTC),
    );
    w.secrets.put_secret("learnlink/acme/lms", &SecretString::from(r#"{"api_key":"lms-key-123"}"#)).await.unwrap();
    let lms = Arc::new(FakeLms {
        learners: std::sync::Mutex::new(learners),
        departments: vec![
            learnlink_core::model::Department { id: "D1".into(), name: "Sales".into(), parent_id: None },
            learnlink_core::model::Department {
                id: "D2".into(),
                name: "Sales EMEA".into(),
                parent_id: Some("D1".into()),
            },
            learnlink_core::model::Department { id: "D9".into(), name: "Other".into(), parent_id: None },
        ],
        reads: Default::default(),
    });
    w.deps.lms = lms.clone();
    w.lms = lms;
    w
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn outcomes_of(w: &World) -> Vec<(String, learnlink_core::activity::Outcome, Option<String>)> {
    w.activity.all(&acme()).into_iter().map(|e| (e.lms_id, e.outcome, e.reason)).collect()
}

#[tokio::test]
async fn a_unique_match_is_linked_in_the_same_call_as_its_records_and_remembered() {
    use learnlink_core::activity::Outcome;
    let w = lms_world(serde_json::json!({}), vec![learner("L7", "Seven@Acme.com ", None)]).await;
    w.sf.set_query_rows("Contact", vec![contact_row("003000000000007AAA", None, "seven@acme.com")]);
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L7", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(r.batch_item_failures.is_empty(), "{:?}", r.batch_item_failures);
    assert_eq!((w.sf.queries(), w.sf.calls()), (1, 2), "one Contact query, one Composite call");
    assert!(w.sf.has_contact("L7"));
    assert_eq!(w.sf.record_count(), 1);
    let log = outcomes_of(&w);
    assert!(log.contains(&("L7".into(), Outcome::Linked, None)), "{log:?}");
    assert!(log.contains(&("E1".into(), Outcome::Created, None)), "{log:?}");
    // The next record of this learner needs no lookup at all.
    let r = handle(&w.deps, sqs(&[job("acme", "E2", "L7", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!((w.sf.queries(), w.sf.calls()), (1, 3), "memory settles the learner: no query");
}

#[tokio::test]
async fn an_ambiguous_learner_is_held_for_review_and_nothing_is_written() {
    use learnlink_core::ports::ReviewStore;
    let w = lms_world(serde_json::json!({}), vec![learner("L8", "dup@acme.com", None)]).await;
    w.sf.set_query_rows(
        "Contact",
        vec![
            contact_row("003000000000001AAA", None, "dup@acme.com"),
            contact_row("003000000000002AAA", None, "DUP@acme.com"),
        ],
    );
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L8", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(r.batch_item_failures.is_empty(), "held messages are acknowledged");
    assert_eq!(w.sf.record_count(), 0);
    let item = w.state.review_item(&acme(), "L8").await.unwrap().unwrap();
    assert_eq!(item.candidates, vec!["003000000000001AAA".to_string(), "003000000000002AAA".to_string()]);
    let (held, _) = w.state.held(&acme(), "L8", 10).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        outcomes_of(&w),
        vec![("E1".into(), learnlink_core::activity::Outcome::Ambiguous, Some("ambiguous".into()))]
    );
}

#[tokio::test]
async fn out_of_scope_filtered_and_contactless_learners_are_skipped_with_their_reasons() {
    let sync = serde_json::json!({
        "department_scope": {"department_id": "D1", "include_sub_departments": true},
        "domain_filter": {"mode": "deny", "domains": ["gmail.com"]},
    });
    let w = lms_world(
        sync,
        vec![
            learner("L1", "a@acme.com", Some("D9")),
            learner("L2", "b@gmail.com", Some("D2")),
            learner("L3", "c@acme.com", Some("D2")),
        ],
    )
    .await;
    w.sf.set_query_rows("Contact", vec![]);
    let batch = sqs(&[
        job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled),
        job("acme", "E2", "L2", 0, EnrollmentStatus::Enrolled),
        job("acme", "E3", "L3", 0, EnrollmentStatus::Enrolled),
    ]);
    let r = handle(&w.deps, batch).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.sf.record_count(), 0);
    let mut reasons: Vec<(String, Option<String>)> = outcomes_of(&w).into_iter().map(|(id, _, r)| (id, r)).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            ("E1".into(), Some("out_of_scope".into())),
            ("E2".into(), Some("domain_filtered".into())),
            ("E3".into(), Some("no_contact".into())),
        ]
    );
    assert_eq!(w.sf.queries(), 1, "only the in-scope learner is looked up");
}

#[tokio::test]
async fn create_contacts_creates_one_and_a_redelivery_does_not_duplicate_it() {
    let w = lms_world(serde_json::json!({"create_contacts": true}), vec![learner("L4", "new@acme.com", None)]).await;
    w.sf.set_query_rows("Contact", vec![]);
    let batch = sqs(&[job("acme", "E1", "L4", 0, EnrollmentStatus::Enrolled)]);
    assert!(handle(&w.deps, batch.clone()).await.batch_item_failures.is_empty());
    assert!(w.sf.has_contact("L4"));
    assert_eq!(w.sf.record_count(), 1);
    // Redelivered (e.g. the delete was lost): the applied marker makes it silent.
    let before = w.activity.all(&acme()).len();
    assert!(handle(&w.deps, batch).await.batch_item_failures.is_empty());
    assert_eq!(w.activity.all(&acme()).len(), before, "a redelivery adds no activity entry");
}

#[tokio::test]
async fn an_older_event_after_a_newer_one_is_skipped_as_stale() {
    let w = lms_world(serde_json::json!({}), vec![learner("L1", "one@acme.com", None)]).await;
    w.sf.set_query_rows("Contact", vec![contact_row("003000000000001AAA", Some("L1"), "one@acme.com")]);
    assert!(
        handle(&w.deps, sqs(&[job("acme", "E1", "L1", 9, EnrollmentStatus::Completed)]))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(
        handle(&w.deps, sqs(&[job("acme", "E1", "L1", 2, EnrollmentStatus::InProgress)]))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert_eq!(w.sf.record("LMS_Enrollment__c", "E1").unwrap()["Status__c"], "Completed", "never regresses");
    assert!(outcomes_of(&w).iter().any(|(id, o, r)| id == "E1"
        && *o == learnlink_core::activity::Outcome::Skipped
        && r.as_deref() == Some("stale")));
    assert_eq!(w.applied.len(), 1);
}

#[tokio::test]
async fn a_deactivated_learner_is_unlinked_and_a_reactivated_one_linked_again() {
    use learnlink_core::activity::Outcome;
    let w = lms_world(serde_json::json!({}), vec![learner("L5", "five@acme.com", None)]).await;
    w.sf.set_query_rows("Contact", vec![contact_row("003000000000005AAA", None, "five@acme.com")]);
    assert!(
        handle(&w.deps, sqs(&[job("acme", "E1", "L5", 0, EnrollmentStatus::Enrolled)]))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(w.sf.has_contact("L5"));
    // Deactivated in the LMS: the next record unlinks the Contact (which stays).
    w.lms.learners.lock().unwrap()[0].active = false;
    assert!(
        handle(&w.deps, sqs(&[job("acme", "E2", "L5", 1, EnrollmentStatus::Enrolled)]))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(!w.sf.has_contact("L5"));
    assert!(outcomes_of(&w).contains(&("L5".into(), Outcome::Unlinked, Some("learner_inactive".into()))));
    assert!(outcomes_of(&w).contains(&("E2".into(), Outcome::Skipped, Some("learner_inactive".into()))));
    // Reactivated: matched and linked again.
    w.lms.learners.lock().unwrap()[0].active = true;
    assert!(
        handle(&w.deps, sqs(&[job("acme", "E3", "L5", 2, EnrollmentStatus::Enrolled)]))
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(w.sf.has_contact("L5"));
    assert!(w.sf.record("LMS_Enrollment__c", "E3").is_some());
}

#[tokio::test]
async fn a_learner_the_lms_does_not_know_yet_is_retried() {
    let w = lms_world(serde_json::json!({}), vec![]).await;
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L-new", 0, EnrollmentStatus::Enrolled)])).await;
    assert_eq!(failed_ids(&r), vec!["m0"]);
    assert_eq!(w.sf.calls(), 0);
}

#[tokio::test]
async fn a_missing_lms_key_keeps_the_messages() {
    let w = lms_world(serde_json::json!({}), vec![learner("L1", "one@acme.com", None)]).await;
    let secrets = Arc::new(MemorySecrets::new());
    let tokens = w.secrets.get_secret("learnlink/acme/salesforce").await.unwrap().unwrap();
    secrets.put_secret("learnlink/acme/salesforce", &tokens).await.unwrap();
    let w = World { deps: Deps { secrets, ..w.deps }, ..w };
    let outcomes = process(&w.deps, &sqs(&[job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(
        matches!(&outcomes[0], MessageOutcome::Failed { reason, .. } if reason.contains("lms.api_key")),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_contact_deleted_in_salesforce_is_forgotten_and_resolved_again() {
    use learnlink_core::ports::LinkStore;
    let w = lms_world(serde_json::json!({}), vec![learner("L6", "six@acme.com", None)]).await;
    // learnlink remembers a link Salesforce no longer has.
    w.state
        .put_links(
            &acme(),
            &[LearnerLink {
                learner_id: "L6".into(),
                contact_id: "003000000000006AAA".into(),
                account_id: None,
                state: LinkState::Linked,
                at: datetime!(2026-11-01 0:00 UTC),
            }],
        )
        .await
        .unwrap();
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L6", 0, EnrollmentStatus::Enrolled)])).await;
    assert_eq!(failed_ids(&r), vec!["m0"], "retried, not dropped");
    assert!(w.state.links(&acme(), &["L6".into()]).await.unwrap().is_empty(), "the link is forgotten");
    // Redelivered: looked up again, linked, written.
    w.sf.set_query_rows("Contact", vec![contact_row("003000000000066AAA", None, "six@acme.com")]);
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L6", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(w.sf.record("LMS_Enrollment__c", "E1").is_some());
}

#[tokio::test]
async fn a_deactivation_unlinks_even_when_the_record_itself_is_unchanged() {
    let w = lms_world(serde_json::json!({}), vec![learner("L5", "five@acme.com", None)]).await;
    w.sf.set_query_rows("Contact", vec![contact_row("003000000000005AAA", None, "five@acme.com")]);
    let batch = sqs(&[job("acme", "E1", "L5", 0, EnrollmentStatus::Enrolled)]);
    assert!(handle(&w.deps, batch.clone()).await.batch_item_failures.is_empty());
    assert!(w.sf.has_contact("L5"));
    w.lms.learners.lock().unwrap()[0].active = false;
    assert!(handle(&w.deps, batch).await.batch_item_failures.is_empty());
    assert!(!w.sf.has_contact("L5"), "unlinked although the enrollment was already applied");
}

#[tokio::test]
async fn a_last_failed_delivery_is_logged_as_a_dead_letter() {
    let w = world().await;
    w.sf.push_script(Script::RecordError("UNABLE_TO_LOCK_ROW".into()));
    let mut batch = sqs(&[job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled)]);
    batch.records[0].attributes.insert("ApproximateReceiveCount".into(), "5".into());
    let r = handle(&w.deps, batch).await;
    assert_eq!(failed_ids(&r), vec!["m0"]);
    let log = w.activity.all(&acme());
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].reason.as_deref(), Some("dead_letter"));
    assert!(log[0].message.as_deref().unwrap_or_default().contains("UNABLE_TO_LOCK_ROW"));
}

/// The events of these single-event jobs as one delivery's message.
fn delivery(jobs: &[String]) -> String {
    let mut events = Vec::new();
    for j in jobs {
        events.extend(job::decode(j).unwrap().events().to_vec());
    }
    job::encode(&SyncJob::LmsEvents { tenant: acme(), source: "lms".into(), events })
}

#[tokio::test]
async fn a_delivery_message_is_settled_event_by_event() {
    use learnlink_core::activity::Outcome;
    use learnlink_core::ports::ReviewStore;
    let w = lms_world(
        serde_json::json!({}),
        vec![learner("L7", "seven@acme.com", None), learner("L8", "dup@acme.com", None)],
    )
    .await;
    w.sf.set_query_rows(
        "Contact",
        vec![
            contact_row("003000000000007AAA", None, "seven@acme.com"),
            contact_row("003000000000001AAA", None, "dup@acme.com"),
            contact_row("003000000000002AAA", None, "dup@acme.com"),
        ],
    );
    let msg = delivery(&[
        job("acme", "E1", "L7", 0, EnrollmentStatus::Enrolled),
        job("acme", "E2", "L8", 0, EnrollmentStatus::Enrolled),
        job("acme", "E3", "L7", 1, EnrollmentStatus::Completed),
    ]);
    let r = handle(&w.deps, sqs(&[msg])).await;
    assert!(r.batch_item_failures.is_empty(), "{:?}", r.batch_item_failures);
    // L7's two records are written, L8's one is held alone, as a job of its own.
    assert_eq!(w.sf.record_count(), 2);
    let (held, _) = w.state.held(&acme(), "L8", 10).await.unwrap();
    assert_eq!(held.len(), 1);
    let held = job::decode(&held[0].1).unwrap();
    assert_eq!(held.events().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["evt-E2-0"]);
    let log = outcomes_of(&w);
    assert!(log.contains(&("E1".into(), Outcome::Created, None)), "{log:?}");
    assert!(log.contains(&("E3".into(), Outcome::Created, None)), "{log:?}");
    assert!(log.contains(&("E2".into(), Outcome::Ambiguous, Some("ambiguous".into()))), "{log:?}");
}

#[tokio::test]
async fn one_retryable_event_returns_its_message_and_the_redelivery_writes_only_the_rest() {
    use learnlink_core::activity::Outcome;
    let w = lms_world(serde_json::json!({}), vec![learner("L7", "seven@acme.com", None)]).await;
    w.sf.set_query_rows("Contact", vec![contact_row("003000000000007AAA", None, "seven@acme.com")]);
    let msg = delivery(&[
        job("acme", "E1", "L7", 0, EnrollmentStatus::Enrolled),
        job("acme", "E2", "L-new", 0, EnrollmentStatus::Enrolled),
    ]);
    let batch = sqs(&[msg, job("acme", "E3", "L7", 0, EnrollmentStatus::Enrolled)]);
    let r = handle(&w.deps, batch.clone()).await;
    assert_eq!(failed_ids(&r), vec!["m0"], "the message with the unknown learner returns");
    assert_eq!(w.sf.record_count(), 2, "E1 and E3 are written meanwhile");
    let calls = w.sf.calls();
    // The LMS knows the learner now; SQS redelivers the message alone.
    w.lms.learners.lock().unwrap().push(learner("L-new", "new@acme.com", None));
    w.sf.set_query_rows(
        "Contact",
        vec![
            contact_row("003000000000007AAA", Some("L7"), "seven@acme.com"),
            contact_row("003000000000009AAA", None, "new@acme.com"),
        ],
    );
    let r = handle(&w.deps, sqs(&[batch.records[0].body.clone().unwrap()])).await;
    assert!(r.batch_item_failures.is_empty(), "{:?}", r.batch_item_failures);
    assert_eq!(w.sf.record_count(), 3);
    assert_eq!(w.sf.calls(), calls + 2, "one query, one Composite call carrying E2 alone");
    let created: Vec<String> =
        outcomes_of(&w).into_iter().filter(|(_, o, _)| *o == Outcome::Created).map(|(id, _, _)| id).collect();
    assert_eq!(created, ["E1", "E3", "E2"], "E1 is not written twice");
}

#[tokio::test]
async fn a_parked_delivery_is_kept_as_one_job_per_event() {
    let w = world().await;
    let w = World { deps: Deps { secrets: Arc::new(MemorySecrets::new()), ..w.deps }, ..w };
    let msg = delivery(&[
        job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled),
        job("acme", "E2", "L1", 0, EnrollmentStatus::Enrolled),
        job("acme", "E3", "L1", 0, EnrollmentStatus::Enrolled),
    ]);
    let r = handle(&w.deps, sqs(std::slice::from_ref(&msg))).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(parked(&w).await, 3);
    handle(&w.deps, sqs(&[msg])).await;
    assert_eq!(parked(&w).await, 3, "a redelivery parks the same three jobs");
}

// ---- import pages (SPEC §5) -------------------------------------------------

async fn import_world() -> World {
    let w = world().await;
    w.state.seed_config(
        &TenantId::parse("acme").unwrap(),
        serde_json::json!({"name": "Acme", "salesforce": {"environment": "production", "client_id": "cid"},
            "lms": {"base_url": "http://127.0.0.1:9"},
            "import": {"source": "salesforce_user", "welcome_email": true, "deactivate_missing": true}}),
        datetime!(2026-11-02 0:00 UTC),
    );
    w.secrets.put_secret("learnlink/acme/lms", &SecretString::from(r#"{"api_key":"k"}"#)).await.unwrap();
    let user = |id: &str, email: &str, active: bool| {
        serde_json::json!({"Id": id, "SystemModstamp": "2026-11-20T10:00:00.000+0000", "LastModifiedById": "005ADMIN",
            "IsActive": active, "Email": email, "FirstName": "Ada", "LastName": "L"})
        .as_object()
        .cloned()
        .unwrap()
    };
    w.sf.set_query_rows(
        "User",
        vec![user("005A", "a@example.com", true), user("005B", "b@example.com", false), user("005C", "", true)],
    );
    w
}

fn import_job(run: &str, page: u32) -> String {
    job::encode(&SyncJob::ImportPage {
        tenant: TenantId::parse("acme").unwrap(),
        run_id: run.into(),
        page,
        dry_run: false,
        step: learnlink_core::job::ImportStep::Start,
    })
}

#[tokio::test]
async fn an_import_page_writes_learners_logs_each_person_and_survives_redelivery() {
    let w = import_world().await;
    let batch = sqs(&[import_job("r1", 1)]);
    let r = handle(&w.deps, batch.clone()).await;
    assert!(r.batch_item_failures.is_empty());
    let a = w.writer.learner_by_external_id("005A").expect("created");
    assert_eq!(a.email, "a@example.com");
    assert_eq!(w.writer.welcome_emails().len(), 1);
    assert_eq!(w.writer.deactivate_calls(), 1, "the inactive user is deactivated (not found: never imported)");
    let entries = w.activity.all(&TenantId::parse("acme").unwrap());
    assert_eq!(entries.len(), 3, "one entry per person: {entries:?}");
    assert!(entries.iter().any(|e| e.reason.as_deref() == Some("no_email")));
    // The last page: no next page enqueued; the run is done and summarized.
    assert!(w.queue.sent().is_empty());
    let runs = w.activity.runs(&TenantId::parse("acme").unwrap(), 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].created, 1);
    // Redelivery of the same page: nothing written again.
    let calls = w.writer.upsert_calls();
    let r = handle(&w.deps, batch).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.writer.upsert_calls(), calls);
}

#[tokio::test]
async fn an_lms_outage_returns_the_import_page_to_the_queue_and_moves_nothing() {
    let w = import_world().await;
    w.writer.set_write_outage(Some(ErrorClass::Retryable));
    let r = handle(&w.deps, sqs(&[import_job("r1", 1)])).await;
    assert_eq!(r.batch_item_failures.len(), 1);
    use learnlink_core::ports::ImportStore;
    let st =
        w.state.import_state(&TenantId::parse("acme").unwrap(), learnlink_core::ports::ImportLane::Live).await.unwrap();
    assert!(st.is_none(), "no checkpoint stored: {st:?}");
    w.writer.set_write_outage(None);
    let r = handle(&w.deps, sqs(&[import_job("r1", 1)])).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(w.writer.learner_by_external_id("005A").is_some());
}

#[tokio::test]
async fn an_import_for_a_tenant_without_a_source_is_rejected_not_retried() {
    let w = world().await;
    let r = handle(&w.deps, sqs(&[import_job("r1", 1)])).await;
    assert!(r.batch_item_failures.is_empty(), "a permanent refusal is acknowledged (and logged)");
}

#[tokio::test]
async fn an_import_page_failing_its_last_delivery_is_logged_as_a_dead_letter() {
    let w = import_world().await;
    w.writer.set_write_outage(Some(ErrorClass::Retryable));
    let mut batch = sqs(&[import_job("r1", 1)]);
    batch.records[0].attributes.insert("ApproximateReceiveCount".into(), "5".into());
    let r = handle(&w.deps, batch).await;
    assert_eq!(r.batch_item_failures.len(), 1, "still returned: SQS moves it to the DLQ");
    let entries = w.activity.all(&TenantId::parse("acme").unwrap());
    assert!(entries.iter().any(|e| e.reason.as_deref() == Some("dead_letter") && e.job == "import:r1"), "{entries:?}");
}

/// `n` deliveries of 25 events each (learner L1), as SQS messages with
/// receipt handles `h<i>`.
fn busy_batch(n: usize, first_event: usize) -> SqsEvent {
    let bodies: Vec<String> = (0..n)
        .map(|d| {
            let jobs: Vec<String> = (0..25)
                .map(|e| job("acme", &format!("E{}", first_event + d * 25 + e), "L1", 0, EnrollmentStatus::Enrolled))
                .collect();
            delivery(&jobs)
        })
        .collect();
    let mut ev = sqs(&bodies);
    for (i, m) in ev.records.iter_mut().enumerate() {
        m.receipt_handle = Some(format!("h{i}"));
    }
    ev
}

#[tokio::test]
async fn a_busy_batch_writes_full_calls_and_hands_the_rest_back_visible() {
    let w = world().await;
    // 58 deliveries × 25 = 1,450 records: one full call, 18 messages back.
    let r = handle(&w.deps, busy_batch(58, 0)).await;
    assert_eq!(w.sf.calls(), 1, "one full Composite call");
    assert_eq!(w.sf.record_count(), 1_000);
    let back: Vec<String> = (40..58).map(|i| format!("m{i}")).collect();
    assert_eq!(failed_ids(&r), back, "the last 18 messages return");
    assert_eq!(w.queue.released(), (40..58).map(|i| format!("h{i}")).collect::<Vec<_>>(), "visible at once");
    // Their redelivery (second receive) is written, never handed back again.
    let mut again = busy_batch(58, 0);
    again.records.drain(..40);
    for m in &mut again.records {
        m.attributes.insert("ApproximateReceiveCount".into(), "2".into());
    }
    let r = handle(&w.deps, again).await;
    assert!(r.batch_item_failures.is_empty(), "{:?}", r.batch_item_failures);
    assert_eq!(w.sf.record_count(), 1_450, "nothing lost");
    assert_eq!(w.queue.released().len(), 18, "nothing waits twice");
    // Nothing is logged for a handed-back message until it is written.
    let log = w.activity.all(&acme());
    assert_eq!(log.iter().filter(|e| e.outcome == learnlink_core::activity::Outcome::Created).count(), 1_450);
}

#[tokio::test]
async fn a_light_batch_is_written_at_once_and_a_refused_release_writes_now() {
    let w = world().await;
    let r = handle(&w.deps, busy_batch(9, 0)).await; // 225 records
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.sf.record_count(), 225);
    assert!(w.queue.released().is_empty());
    // SQS refuses to release: the messages are written now instead.
    w.queue.refuse_releases();
    let r = handle(&w.deps, busy_batch(30, 1_000)).await; // 750 records, under one call
    assert!(r.batch_item_failures.is_empty(), "{:?}", r.batch_item_failures);
    assert_eq!(w.sf.record_count(), 975);
}

#[tokio::test]
async fn a_batch_waits_for_the_tenants_write_lease_and_gives_it_back() {
    let w = world().await;
    let acme = TenantId::parse("acme").unwrap();
    // Another writer holds the lease for 400 ms (it is not renewed).
    let now = time::OffsetDateTime::now_utc();
    let other = learnlink_core::ports::TenantLease::acquire(
        w.state.as_ref(),
        &acme,
        learnlink_core::write_lock::NAME,
        "other-writer",
        now,
        time::Duration::milliseconds(400),
    )
    .await
    .unwrap();
    assert!(other.is_some());
    let started = std::time::Instant::now();
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(r.batch_item_failures.is_empty());
    assert!(started.elapsed() >= std::time::Duration::from_millis(300), "it waited: {:?}", started.elapsed());
    assert_eq!(w.sf.record_count(), 1);
    let grants = w.state.lease_grants();
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_ne!(grants[1].2, "other-writer");
    assert!(grants[1].3 > grants[0].3, "the fence grows");
    assert_eq!(w.state.lease_holder(&acme, "write", time::OffsetDateTime::now_utc()), None, "released");
}

#[tokio::test]
async fn two_concurrent_batches_of_one_tenant_write_one_after_the_other_and_the_newer_wins() {
    let w = world().await;
    let newer = sqs(&[job("acme", "E1", "L1", 5, EnrollmentStatus::Completed)]);
    let older = sqs(&[job("acme", "E1", "L1", 1, EnrollmentStatus::InProgress)]);
    // Salesforce answers slowly: without the lease both batches read the
    // markers before either writes, and whichever writes last wins.
    w.sf.set_latency(std::time::Duration::from_millis(150));
    let (a, b) = tokio::join!(handle(&w.deps, newer), async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        handle(&w.deps, older).await
    });
    assert!(a.batch_item_failures.is_empty() && b.batch_item_failures.is_empty());
    let rec = w.sf.record("LMS_Enrollment__c", "E1").unwrap();
    assert_eq!(rec["Status__c"], "Completed", "{rec:?}");
    assert_eq!(w.sf.calls(), 1, "the older version was skipped as stale, not written");
    let log = w.activity.all(&TenantId::parse("acme").unwrap());
    assert!(log.iter().any(|e| e.reason.as_deref() == Some("stale")), "{log:?}");
}

#[tokio::test]
async fn records_whose_versions_could_not_be_marked_come_back() {
    let w = world().await;
    w.applied.refuse_marks(true);
    let batch = sqs(&[job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled)]);
    let r = handle(&w.deps, batch.clone()).await;
    assert_eq!(failed_ids(&r), vec!["m0"], "written but unmarked: the message returns");
    assert_eq!(w.sf.record_count(), 1);
    w.applied.refuse_marks(false);
    let r = handle(&w.deps, batch).await;
    assert!(r.batch_item_failures.is_empty());
    let acme = TenantId::parse("acme").unwrap();
    assert!(w.applied.get(&acme, "enrollment#E1").is_some());
}

/// An activity log that notes, at each write, who holds the tenant's write lease.
struct LeaseWatchingLog {
    inner: Arc<MemoryActivity>,
    state: Arc<MemoryState>,
    holders: std::sync::Mutex<Vec<Option<String>>>,
}

#[async_trait::async_trait]
impl ActivityLog for LeaseWatchingLog {
    async fn record(
        &self,
        tenant: &TenantId,
        entries: &[ActivityEntry],
    ) -> Result<(), learnlink_core::error::PortError> {
        let holder = self.state.lease_holder(tenant, "write", time::OffsetDateTime::now_utc());
        self.holders.lock().unwrap().push(holder);
        self.inner.record(tenant, entries).await
    }
    async fn query(
        &self,
        tenant: &TenantId,
        filter: &learnlink_core::activity::ActivityFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<learnlink_core::activity::ActivityPage, learnlink_core::error::PortError> {
        self.inner.query(tenant, filter, limit, cursor).await
    }
    async fn record_run(&self, tenant: &TenantId, run: &RunSummary) -> Result<(), learnlink_core::error::PortError> {
        self.inner.record_run(tenant, run).await
    }
    async fn runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<RunSummary>, learnlink_core::error::PortError> {
        self.inner.runs(tenant, limit).await
    }
}

#[tokio::test]
async fn the_write_lease_is_given_up_before_the_activity_log_is_written() {
    let mut w = world().await;
    let log =
        Arc::new(LeaseWatchingLog { inner: w.activity.clone(), state: w.state.clone(), holders: Default::default() });
    w.deps.activity = log.clone();
    let r = handle(&w.deps, sqs(&[job("acme", "E1", "L1", 0, EnrollmentStatus::Enrolled)])).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(w.sf.record_count(), 1);
    let holders = log.holders.lock().unwrap().clone();
    assert!(!holders.is_empty(), "the record outcome was logged");
    assert!(holders.iter().all(Option::is_none), "the next batch may write while this one logs: {holders:?}");
    // The version is marked before the lease was given up.
    assert_eq!(
        w.applied.get(&acme(), &learnlink_core::sync::applied_key("enrollment", "E1")).map(|a| a.event_id.is_empty()),
        Some(false)
    );
}
