//! The backfill engine over the memory fakes: plan → shards → work, with
//! redelivery, a Bulk group resumed from its stored job ids, the budget and
//! cancel. (The same flows run on the full stack in tests/e2e/tests/job3.rs.)

use learnlink_adapters::dynamo::applied::MemoryApplied;
use learnlink_adapters::dynamo::memory::{MemoryActivity, MemoryState};
use learnlink_adapters::lms::memory::MemoryLms;
use learnlink_adapters::salesforce::memory::MemorySalesforce;
use learnlink_adapters::sqs::memory::MemoryQueue;
use learnlink_core::backfill::engine::{self, ControlPorts, ShardInput, ShardOutcome, ShardPorts, StartRequest};
use learnlink_core::backfill::{BackfillStatus, KillSwitch, Origin, ShardStatus, Window};
use learnlink_core::budget::BudgetPolicy;
use learnlink_core::job::SyncJob;
use learnlink_core::model::{Enrollment, EnrollmentStatus, TenantId};
use learnlink_core::ports::{BackfillStore, LmsConnection};
use learnlink_core::salesforce::Session;
use learnlink_core::tenant::Tenant;
use serde_json::json;
use time::macros::datetime;

struct World {
    state: MemoryState,
    lms: MemoryLms,
    sf: MemorySalesforce,
    activity: MemoryActivity,
    shards: MemoryQueue,
    sync: MemoryQueue,
    applied: MemoryApplied,
    tenant: Tenant,
    /// The workers' wall clock (`ShardPorts::clock`).
    clock: fn() -> time::OffsetDateTime,
}

async fn world(n: usize, settings: serde_json::Value) -> World {
    let state = MemoryState::new();
    let id = TenantId::parse("acme").unwrap();
    state.seed_config(
        &id,
        json!({"name": "acme", "salesforce": {"environment": "production", "client_id": "cid"}, "backfill": settings}),
        datetime!(2026-01-01 0:00 UTC),
    );
    let lms = MemoryLms::new();
    let sf = MemorySalesforce::new();
    let t0 = datetime!(2026-01-01 0:00 UTC);
    lms.add_enrollments((0..n).map(|i| {
        let learner = format!("L{}", i % 50);
        Enrollment {
            id: format!("E{i:05}"),
            learner_id: learner,
            course_id: "C1".into(),
            course_title: None,
            status: EnrollmentStatus::Enrolled,
            progress_pct: Some(0.0),
            score: None,
            enrolled_at: Some(t0),
            completed_at: None,
            updated_at: t0 + time::Duration::minutes(i as i64),
        }
    }));
    sf.issue_tokens("t", "r");
    for l in 0..50 {
        sf.add_contact(&format!("L{l}"));
    }
    let tenant = learnlink_core::ports::TenantStore::get_tenant(&state, &id).await.unwrap().unwrap();
    World {
        state,
        lms,
        sf,
        activity: MemoryActivity::new(),
        shards: MemoryQueue::new(),
        sync: MemoryQueue::new(),
        applied: MemoryApplied::new(),
        tenant,
        clock: time::OffsetDateTime::now_utc,
    }
}

fn session() -> Session {
    Session { instance_url: "https://acme.my.salesforce.com".into(), access_token: "t".to_string().into() }
}

fn conn() -> LmsConnection {
    LmsConnection { base_url: "http://lms".into(), api_key: "k".to_string().into() }
}

impl World {
    fn control(&self) -> ControlPorts<'_> {
        ControlPorts {
            store: &self.state,
            lms: &self.lms,
            salesforce: &self.sf,
            activity: &self.activity,
            shards_queue: &self.shards,
        }
    }
    fn ports(&self) -> ShardPorts<'_> {
        ShardPorts {
            store: &self.state,
            lms: &self.lms,
            salesforce: &self.sf,
            activity: &self.activity,
            sync_queue: &self.sync,
            applied: &self.applied,
            lease: &self.state,
            sleeper: &learnlink_adapters::TokioSleeper,
            clock: &self.clock,
        }
    }
    async fn start(&self, only_changed: bool) -> String {
        let w = Window { since: datetime!(2025-12-01 0:00 UTC), until: datetime!(2026-06-01 0:00 UTC) };
        let req = StartRequest { window: w, only_changed, origin: Origin::Admin };
        let id = format!("bf-{}", self.shards.sent().len() + usize::from(only_changed) * 1000 + 1);
        engine::start(
            &self.control(),
            &self.tenant,
            &conn(),
            &session(),
            Some("00Dorg"),
            req,
            id.clone(),
            datetime!(2026-06-01 0:00 UTC),
        )
        .await
        .unwrap()
        .backfill
        .id
    }
    async fn work(&self, id: &str, shards: &[u32], last: bool) -> Vec<(u32, ShardOutcome)> {
        let (s, c, l) = (session(), conn(), self.tenant.id.clone());
        let input = ShardInput {
            tenant: &l,
            backfill_id: id,
            shards,
            lms: &c,
            session: &s,
            org_id: Some("00Dorg"),
            budget_policy: BudgetPolicy::default(),
            now: datetime!(2026-06-01 0:01 UTC),
            last_attempt: last,
        };
        engine::run_shards(&self.ports(), &input).await
    }
    fn sent_shards(&self, id: &str) -> Vec<u32> {
        self.shards
            .sent()
            .into_iter()
            .filter_map(|j| match j {
                SyncJob::BackfillShard { backfill_id, shard, .. } if backfill_id == id => Some(shard),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn shards_written_once_redelivery_harmless_and_the_backfill_completes_with_the_switch_restored() {
    let w = world(1_200, json!({"shard_size": 300, "bulk_threshold": 250, "kill_switch": true})).await;
    let id = w.start(false).await;
    let shards = w.sent_shards(&id);
    assert_eq!(shards.len(), 4, "1,200 records in shards of ~300");
    let (b, _) = w.state.backfill(&w.tenant.id, &id).await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Running);
    assert_eq!(b.kill_switch, KillSwitch::Engaged { previous: None });
    // Two shards in one batch (one Bulk group), then the other two; then a redelivery.
    let out = w.work(&id, &shards[..2], false).await;
    assert!(out.iter().all(|(_, o)| *o == ShardOutcome::Done), "{out:?}");
    assert_eq!(w.sf.bulk_jobs().len(), 1, "one Bulk job for the group");
    w.work(&id, &shards[2..], false).await;
    let again = w.work(&id, &shards, false).await;
    assert!(again.iter().all(|(_, o)| matches!(o, ShardOutcome::Ignored(_))), "{again:?}");
    assert_eq!(w.sf.sobject_records("LMS_Enrollment__c").len(), 1_200);
    let (b, _) = w.state.backfill(&w.tenant.id, &id).await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Completed);
    assert_eq!(b.kill_switch, KillSwitch::Restored { previous: None });
    let settings = w.sf.sobject_records("LMS_Sync_Settings__c");
    assert_eq!(settings[0]["Bypass_Automation__c"], json!(false), "{settings:?}");
    // Only changed: the window is covered, nothing to write.
    let id2 = w.start(true).await;
    let (b2, _) = w.state.backfill(&w.tenant.id, &id2).await.unwrap().unwrap();
    assert_eq!((b2.status, b2.shards, b2.expected), (BackfillStatus::Completed, 0, 0));
}

#[tokio::test]
async fn shards_and_the_backfill_end_at_the_time_their_work_ended_not_when_the_batch_began() {
    let mut w = world(600, json!({"shard_size": 300, "bulk_threshold": 250, "kill_switch": true})).await;
    // The batch begins at 0:01 (`ShardInput::now`); its Bulk jobs end at 0:09.
    w.clock = || datetime!(2026-06-01 0:09 UTC);
    let id = w.start(false).await;
    let shards = w.sent_shards(&id);
    let out = w.work(&id, &shards, false).await;
    assert!(out.iter().all(|(_, o)| *o == ShardOutcome::Done), "{out:?}");
    let (b, _) = w.state.backfill(&w.tenant.id, &id).await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Completed);
    assert_eq!(b.finished_at, Some(datetime!(2026-06-01 0:09 UTC)));
    for i in shards {
        let (s, _) = w.state.shard(&w.tenant.id, &id, i).await.unwrap().unwrap();
        assert_eq!(s.finished_at, Some(datetime!(2026-06-01 0:09 UTC)), "shard {i}");
    }
}

#[tokio::test]
async fn a_bulk_group_redelivered_after_its_upload_collects_the_stored_jobs_instead_of_sending_again() {
    let w = world(600, json!({"shard_size": 600, "bulk_threshold": 100, "kill_switch": false})).await;
    let id = w.start(false).await;
    let shards = w.sent_shards(&id);
    assert_eq!(shards.len(), 1);
    // The first delivery submits and stores the job ids, then "crashes":
    // simulate by storing the ids as a crashed worker would have.
    let sub = learnlink_core::ports::SalesforceApi::bulk_submit(
        &w.sf,
        &session(),
        &w.lms.enrollments().iter().map(learnlink_core::sync::enrollment_record).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let (mut s, v) = w.state.shard(&w.tenant.id, &id, shards[0]).await.unwrap().unwrap();
    s.bulk_jobs = sub.jobs.clone();
    assert!(w.state.put_shard(&w.tenant.id, &id, &s, Some(v)).await.unwrap());
    let out = w.work(&id, &shards, false).await;
    assert_eq!(out[0].1, ShardOutcome::Done, "{out:?}");
    assert_eq!(w.sf.bulk_jobs().len(), 1, "no second job: the stored one was collected");
    let (s, _) = w.state.shard(&w.tenant.id, &id, shards[0]).await.unwrap().unwrap();
    assert_eq!(s.status, ShardStatus::Done);
    assert_eq!(s.counts.created, 600);
}

#[tokio::test]
async fn a_cancelled_backfill_stops_its_shards() {
    let w = world(900, json!({"shard_size": 300, "bulk_threshold": 100000, "kill_switch": true})).await;
    let id = w.start(false).await;
    let shards = w.sent_shards(&id);
    let b = engine::cancel(&w.state, &w.tenant.id, &id, datetime!(2026-06-01 0:00:30 UTC)).await.unwrap();
    assert_eq!(b.status, BackfillStatus::Cancelled);
    assert!(b.kill_switch.owes_restore());
    assert!(engine::cancel(&w.state, &w.tenant.id, &id, datetime!(2026-06-01 0:00:40 UTC)).await.is_err());
    // The worker meeting a cancelled backfill writes nothing and restores the switch.
    let out = w.work(&id, &shards, false).await;
    assert!(out.iter().all(|(_, o)| matches!(o, ShardOutcome::Ignored(_))), "{out:?}");
    assert!(w.sf.sobject_records("LMS_Enrollment__c").is_empty());
    let (b, _) = w.state.backfill(&w.tenant.id, &id).await.unwrap().unwrap();
    assert_eq!(b.kill_switch, KillSwitch::Restored { previous: None });
    // The tenant is free for another backfill.
    assert!(w.state.active_backfill(&w.tenant.id).await.unwrap().is_none_or(|(a, _)| a.is_empty() || a != id));
}

/// A store over the world's with two faults to inject: the first write of
/// backfill `race.0` lets a whole other start (`race.1`) run just before it
/// (two sweeps, or a sweep and an admin, starting a backfill of one tenant
/// at the same moment); `fail_updates` refuses every update of a stored
/// backfill (a store outage, or the function timing out mid-planning).
struct Racing<'a> {
    w: &'a World,
    race: Option<(&'static str, &'static str)>,
    raced: std::sync::atomic::AtomicBool,
    fail_updates: std::sync::atomic::AtomicBool,
}

impl<'a> Racing<'a> {
    fn new(w: &'a World, race: Option<(&'static str, &'static str)>, fail_updates: bool) -> Self {
        Racing { w, race, raced: false.into(), fail_updates: fail_updates.into() }
    }
}

#[async_trait::async_trait]
impl BackfillStore for Racing<'_> {
    async fn backfill(
        &self,
        t: &TenantId,
        id: &str,
    ) -> Result<Option<(learnlink_core::backfill::Backfill, u64)>, learnlink_core::PortError> {
        self.w.state.backfill(t, id).await
    }
    async fn put_backfill(
        &self,
        b: &learnlink_core::backfill::Backfill,
        expected: Option<u64>,
    ) -> Result<bool, learnlink_core::PortError> {
        if let Some((first, second)) = self.race
            && b.id == first
            && !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let other = self.w.start_as(&self.w.control(), second).await;
            assert!(other.is_ok(), "the other start: {other:?}");
        }
        if expected.is_some() && self.fail_updates.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(learnlink_core::PortError::retryable("the store is unavailable (injected)"));
        }
        self.w.state.put_backfill(b, expected).await
    }
    async fn list_backfills(
        &self,
        t: &TenantId,
        limit: usize,
    ) -> Result<Vec<learnlink_core::backfill::Backfill>, learnlink_core::PortError> {
        self.w.state.list_backfills(t, limit).await
    }
    async fn unfinished_backfills(&self) -> Result<Vec<learnlink_core::backfill::Backfill>, learnlink_core::PortError> {
        self.w.state.unfinished_backfills().await
    }
    async fn shard(
        &self,
        t: &TenantId,
        id: &str,
        index: u32,
    ) -> Result<Option<(learnlink_core::backfill::Shard, u64)>, learnlink_core::PortError> {
        self.w.state.shard(t, id, index).await
    }
    async fn put_shard(
        &self,
        t: &TenantId,
        id: &str,
        shard: &learnlink_core::backfill::Shard,
        expected: Option<u64>,
    ) -> Result<bool, learnlink_core::PortError> {
        self.w.state.put_shard(t, id, shard, expected).await
    }
    async fn put_new_shards(
        &self,
        t: &TenantId,
        id: &str,
        shards: &[learnlink_core::backfill::Shard],
    ) -> Result<(), learnlink_core::PortError> {
        self.w.state.put_new_shards(t, id, shards).await
    }
    async fn shards(
        &self,
        t: &TenantId,
        id: &str,
    ) -> Result<Vec<learnlink_core::backfill::Shard>, learnlink_core::PortError> {
        self.w.state.shards(t, id).await
    }
    async fn active_backfill(&self, t: &TenantId) -> Result<Option<(String, u64)>, learnlink_core::PortError> {
        self.w.state.active_backfill(t).await
    }
    async fn set_active_backfill(
        &self,
        t: &TenantId,
        id: Option<&str>,
        expected: Option<u64>,
    ) -> Result<bool, learnlink_core::PortError> {
        self.w.state.set_active_backfill(t, id, expected).await
    }
    async fn coverage(
        &self,
        t: &TenantId,
    ) -> Result<(learnlink_core::backfill::coverage::Coverage, Option<u64>), learnlink_core::PortError> {
        self.w.state.coverage(t).await
    }
    async fn put_coverage(
        &self,
        t: &TenantId,
        coverage: &learnlink_core::backfill::coverage::Coverage,
        expected: Option<u64>,
    ) -> Result<bool, learnlink_core::PortError> {
        self.w.state.put_coverage(t, coverage, expected).await
    }
}

impl World {
    async fn start_as(&self, control: &ControlPorts<'_>, id: &str) -> Result<engine::View, engine::StartError> {
        let w = Window { since: datetime!(2025-12-01 0:00 UTC), until: datetime!(2026-06-01 0:00 UTC) };
        let req = StartRequest { window: w, only_changed: false, origin: Origin::Admin };
        engine::start(
            control,
            &self.tenant,
            &conn(),
            &session(),
            Some("00Dorg"),
            req,
            id.into(),
            datetime!(2026-06-01 0:00 UTC),
        )
        .await
    }
}

#[tokio::test]
async fn two_starts_at_the_same_moment_run_one_backfill() {
    // Found by the chaos run: the minute sweep and another start, a second
    // apart, both started a backfill of the relink gap.
    let w = world(600, json!({"shard_size": 300, "bulk_threshold": 100000, "kill_switch": true})).await;
    let racing = Racing::new(&w, Some(("bf-first", "bf-second")), false);
    let control = ControlPorts { store: &racing, ..w.control() };
    let first = w.start_as(&control, "bf-first").await;
    assert!(matches!(&first, Err(engine::StartError::Running(other)) if other == "bf-second"), "{first:?}");
    let (b, _) = w.state.backfill(&w.tenant.id, "bf-first").await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Cancelled, "{b:?}");
    assert_eq!(b.kill_switch, KillSwitch::Off, "it never engaged the kill switch");
    assert!(b.reason.unwrap().contains("bf-second"));
    let (b, _) = w.state.backfill(&w.tenant.id, "bf-second").await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Running);
    assert_eq!(b.kill_switch, KillSwitch::Engaged { previous: None }, "the org's own value remembered");
    assert_eq!(w.state.active_backfill(&w.tenant.id).await.unwrap().map(|(a, _)| a), Some("bf-second".into()));
    assert!(w.sent_shards("bf-first").is_empty(), "only one backfill sends shards");
    assert_eq!(w.sent_shards("bf-second").len(), 2);
    let open: Vec<String> = w.state.unfinished_backfills().await.unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(open, ["bf-second"]);
}

#[tokio::test]
async fn a_start_cut_short_never_leaves_a_backfill_planning_with_the_slot_taken() {
    // Found by the chaos run (100,000 events): the relink gap's backfill
    // stayed `planning` for good after one store error, and every later
    // start of the tenant was refused as "running".
    let w = world(600, json!({"shard_size": 300, "bulk_threshold": 100000, "kill_switch": true})).await;
    // Every update refused (a store outage): the start fails, frees the
    // slot, but cannot record the failure: its backfill stays planning ...
    let flaky = Racing::new(&w, None, true);
    let control = ControlPorts { store: &flaky, ..w.control() };
    let r = w.start_as(&control, "bf-a").await;
    assert!(r.is_err(), "{r:?}");
    let (b, _) = w.state.backfill(&w.tenant.id, "bf-a").await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Planning, "the store refused the failure too");
    assert!(w.state.active_backfill(&w.tenant.id).await.unwrap().is_none_or(|(a, _)| a != "bf-a"), "slot freed");
    // ... and in the open index, until the sweep finds it stalled and fails it.
    let early = datetime!(2026-06-01 0:05 UTC);
    let a = engine::sweep(&w.control(), &b, &session(), Some("00Dorg"), BudgetPolicy::default(), early).await.unwrap();
    assert_eq!(a, engine::SweepAction::Nothing, "a planning backfill is left alone for a while");
    let later = datetime!(2026-06-01 0:11 UTC);
    let a = engine::sweep(&w.control(), &b, &session(), Some("00Dorg"), BudgetPolicy::default(), later).await.unwrap();
    assert_eq!(a, engine::SweepAction::Abandoned);
    let (b, _) = w.state.backfill(&w.tenant.id, "bf-a").await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Failed);
    assert!(b.reason.as_deref().unwrap().contains("planning was cut short"));
    let open: Vec<String> = w.state.unfinished_backfills().await.unwrap().into_iter().map(|b| b.id).collect();
    assert!(open.is_empty(), "{open:?}");
    let next = w.start_as(&w.control(), "bf-c").await.unwrap();
    assert_eq!(next.backfill.status, BackfillStatus::Running);

    // A slot held by a planning backfill (its start died before anything
    // else, e.g. the function timed out): refused until the sweep ends it.
    let w = world(600, json!({"shard_size": 300, "bulk_threshold": 100000, "kill_switch": false})).await;
    let stuck = learnlink_core::backfill::Backfill { id: "bf-z".into(), ..b.clone() };
    let stuck = learnlink_core::backfill::Backfill {
        status: BackfillStatus::Planning,
        finished_at: None,
        reason: None,
        created_at: datetime!(2026-06-01 0:00 UTC),
        ..stuck
    };
    assert!(w.state.put_backfill(&stuck, None).await.unwrap());
    assert!(w.state.set_active_backfill(&w.tenant.id, Some("bf-z"), None).await.unwrap());
    assert!(matches!(w.start_as(&w.control(), "bf-y").await, Err(engine::StartError::Running(id)) if id == "bf-z"));
    let a =
        engine::sweep(&w.control(), &stuck, &session(), Some("00Dorg"), BudgetPolicy::default(), later).await.unwrap();
    assert_eq!(a, engine::SweepAction::Abandoned);
    assert_eq!(w.start_as(&w.control(), "bf-x").await.unwrap().backfill.status, BackfillStatus::Running);

    // A store that fails once: the start fails its own backfill at once.
    let w = world(600, json!({"shard_size": 300, "bulk_threshold": 100000, "kill_switch": false})).await;
    let once = OnceFailing(Racing::new(&w, None, true));
    let control = ControlPorts { store: &once, ..w.control() };
    assert!(w.start_as(&control, "bf-d").await.is_err());
    let (b, _) = w.state.backfill(&w.tenant.id, "bf-d").await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Failed, "{b:?}");
    assert!(w.state.active_backfill(&w.tenant.id).await.unwrap().is_none_or(|(a, _)| a != "bf-d"), "slot freed");
    assert_eq!(w.start_as(&w.control(), "bf-e").await.unwrap().backfill.status, BackfillStatus::Running);
}

/// [`Racing`] refusing one update only.
struct OnceFailing<'a>(Racing<'a>);

#[async_trait::async_trait]
impl BackfillStore for OnceFailing<'_> {
    async fn backfill(
        &self,
        t: &TenantId,
        id: &str,
    ) -> Result<Option<(learnlink_core::backfill::Backfill, u64)>, learnlink_core::PortError> {
        self.0.backfill(t, id).await
    }
    async fn put_backfill(
        &self,
        b: &learnlink_core::backfill::Backfill,
        expected: Option<u64>,
    ) -> Result<bool, learnlink_core::PortError> {
        let r = self.0.put_backfill(b, expected).await;
        if r.is_err() {
            self.0.fail_updates.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        r
    }
    async fn list_backfills(
        &self,
        t: &TenantId,
        limit: usize,
    ) -> Result<Vec<learnlink_core::backfill::Backfill>, learnlink_core::PortError> {
        self.0.list_backfills(t, limit).await
    }
    async fn unfinished_backfills(&self) -> Result<Vec<learnlink_core::backfill::Backfill>, learnlink_core::PortError> {
        self.0.unfinished_backfills().await
    }
    async fn shard(
        &self,
        t: &TenantId,
        id: &str,
        index: u32,
    ) -> Result<Option<(learnlink_core::backfill::Shard, u64)>, learnlink_core::PortError> {
        self.0.shard(t, id, index).await
    }
    async fn put_shard(
        &self,
        t: &TenantId,
        id: &str,
        shard: &learnlink_core::backfill::Shard,
        expected: Option<u64>,
    ) -> Result<bool, learnlink_core::PortError> {
        self.0.put_shard(t, id, shard, expected).await
    }
    async fn put_new_shards(
        &self,
        t: &TenantId,
        id: &str,
        shards: &[learnlink_core::backfill::Shard],
    ) -> Result<(), learnlink_core::PortError> {
        self.0.put_new_shards(t, id, shards).await
    }
    async fn shards(
        &self,
        t: &TenantId,
        id: &str,
    ) -> Result<Vec<learnlink_core::backfill::Shard>, learnlink_core::PortError> {
        self.0.shards(t, id).await
    }
    async fn active_backfill(&self, t: &TenantId) -> Result<Option<(String, u64)>, learnlink_core::PortError> {
        self.0.active_backfill(t).await
    }
    async fn set_active_backfill(
        &self,
        t: &TenantId,
        id: Option<&str>,
        expected: Option<u64>,
    ) -> Result<bool, learnlink_core::PortError> {
        self.0.set_active_backfill(t, id, expected).await
    }
    async fn coverage(
        &self,
        t: &TenantId,
    ) -> Result<(learnlink_core::backfill::coverage::Coverage, Option<u64>), learnlink_core::PortError> {
        self.0.coverage(t).await
    }
    async fn put_coverage(
        &self,
        t: &TenantId,
        coverage: &learnlink_core::backfill::coverage::Coverage,
        expected: Option<u64>,
    ) -> Result<bool, learnlink_core::PortError> {
        self.0.put_coverage(t, coverage, expected).await
    }
}

#[tokio::test]
async fn a_backfill_whose_last_shard_could_not_finish_it_is_finished_by_the_sweep() {
    // Found by the chaos run (100,000 events): the gap backfill's only shard
    // was done, its worker's final write failed (ignored, the shard message
    // acknowledged), and the backfill stayed `running` with the automation
    // kill switch engaged, which no sweep ever ended.
    let w = world(600, json!({"shard_size": 300, "bulk_threshold": 100000, "kill_switch": true})).await;
    let id = w.start(false).await;
    let shards = w.sent_shards(&id);
    let flaky = Racing::new(&w, None, true);
    let ports = ShardPorts { store: &flaky, ..w.ports() };
    let (s, c, l) = (session(), conn(), w.tenant.id.clone());
    let input = ShardInput {
        tenant: &l,
        backfill_id: &id,
        shards: &shards,
        lms: &c,
        session: &s,
        org_id: Some("00Dorg"),
        budget_policy: BudgetPolicy::default(),
        now: datetime!(2026-06-01 0:01 UTC),
        last_attempt: false,
    };
    let out = engine::run_shards(&ports, &input).await;
    assert!(out.iter().all(|(_, o)| *o == ShardOutcome::Done), "{out:?}");
    let (b, _) = w.state.backfill(&w.tenant.id, &id).await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Running, "the final write was refused");
    assert!(matches!(b.kill_switch, KillSwitch::Engaged { .. }), "{:?}", b.kill_switch);
    // The next sweep (a minute later, not 15) finishes it.
    let now = datetime!(2026-06-01 0:02 UTC);
    let a = engine::sweep(&w.control(), &b, &session(), Some("00Dorg"), BudgetPolicy::default(), now).await.unwrap();
    assert_eq!(a, engine::SweepAction::Finished);
    let (b, _) = w.state.backfill(&w.tenant.id, &id).await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Completed);
    assert_eq!(b.kill_switch, KillSwitch::Restored { previous: None });
    let settings = w.sf.sobject_records("LMS_Sync_Settings__c");
    assert_eq!(settings[0]["Bypass_Automation__c"], json!(false), "automations back: {settings:?}");
    assert!(w.state.unfinished_backfills().await.unwrap().is_empty());
    assert!(w.state.active_backfill(&w.tenant.id).await.unwrap().is_none_or(|(a, _)| a != id), "slot freed");
    let again = engine::sweep(&w.control(), &b, &session(), Some("00Dorg"), BudgetPolicy::default(), now).await;
    assert_eq!(again.unwrap(), engine::SweepAction::Nothing);
    // A running backfill with shards still pending is left to its workers.
    let id2 = w.start(false).await;
    let (b2, _) = w.state.backfill(&w.tenant.id, &id2).await.unwrap().unwrap();
    let a = engine::sweep(&w.control(), &b2, &session(), Some("00Dorg"), BudgetPolicy::default(), now).await;
    assert_eq!(a.unwrap(), engine::SweepAction::Nothing);
}

/// Applied markers as enrollment sync leaves them: `E00007` written by an
/// event in a version newer than the LMS's (the backfill reads the older
/// one), `E00008` in an older version.
async fn mark_events(w: &World) -> (time::OffsetDateTime, time::OffsetDateTime) {
    use learnlink_core::ports::{Applied, AppliedStore};
    let t0 = datetime!(2026-01-01 0:00 UTC);
    let newer = t0 + time::Duration::minutes(7) + time::Duration::seconds(30);
    let older = t0 + time::Duration::minutes(8) - time::Duration::seconds(30);
    w.applied
        .mark_applied(
            &w.tenant.id,
            &[
                ("enrollment#E00007".into(), Applied { updated_at: newer, event_id: "evt-7".into() }),
                ("enrollment#E00008".into(), Applied { updated_at: older, event_id: "evt-8".into() }),
            ],
        )
        .await
        .unwrap();
    (newer, older)
}

#[tokio::test]
async fn a_composite_backfill_marks_what_it_wrote_and_leaves_records_synced_newer_alone() {
    let w = world(600, json!({"shard_size": 300, "bulk_threshold": 100000, "kill_switch": false})).await;
    let (newer, _) = mark_events(&w).await;
    let id = w.start(false).await;
    let shards = w.sent_shards(&id);
    let out = w.work(&id, &shards, false).await;
    assert!(out.iter().all(|(_, o)| *o == ShardOutcome::Done), "{out:?}");
    let records = w.sf.sobject_records("LMS_Enrollment__c");
    assert_eq!(records.len(), 599, "E00007 is newer in Salesforce already: not written");
    assert!(!records.iter().any(|r| r["LMS_Enrollment_Id__c"] == "E00007"));
    // Every written record is marked with the backfill's version; the
    // newer marker stays.
    let t = &w.tenant.id;
    let m7 = w.applied.get(t, "enrollment#E00007").unwrap();
    assert_eq!((m7.updated_at, m7.event_id.as_str()), (newer, "evt-7"));
    let m8 = w.applied.get(t, "enrollment#E00008").unwrap();
    assert_eq!(m8.event_id, format!("backfill:{id}"), "the older marker moved forward");
    assert_eq!(m8.updated_at, datetime!(2026-01-01 0:08 UTC));
    assert_eq!(w.applied.len(), 600);
    let view = engine::view(&w.state, t, &id, false, datetime!(2026-06-01 0:02 UTC)).await.unwrap();
    assert_eq!((view.progress.counts.stale, view.progress.written), (1, 599));
    // Each page held the tenant's write lease and gave it back.
    let grants = w.state.lease_grants();
    assert_eq!(grants.iter().filter(|g| g.1 == "write").count(), 2, "one per page: {grants:?}");
    assert_eq!(w.state.lease_holder(t, "write", time::OffsetDateTime::now_utc()), None);
}

#[tokio::test]
async fn a_bulk_backfill_marks_what_it_wrote_and_leaves_records_synced_newer_alone() {
    let w = world(600, json!({"shard_size": 600, "bulk_threshold": 100, "kill_switch": false})).await;
    let (newer, _) = mark_events(&w).await;
    let id = w.start(false).await;
    let shards = w.sent_shards(&id);
    let out = w.work(&id, &shards, false).await;
    assert!(out.iter().all(|(_, o)| *o == ShardOutcome::Done), "{out:?}");
    assert_eq!(w.sf.sobject_records("LMS_Enrollment__c").len(), 599);
    let t = &w.tenant.id;
    assert_eq!(w.applied.get(t, "enrollment#E00007").unwrap().updated_at, newer);
    assert_eq!(w.applied.get(t, "enrollment#E00008").unwrap().event_id, format!("backfill:{id}"));
    assert_eq!(w.applied.len(), 600);
    let view = engine::view(&w.state, t, &id, false, datetime!(2026-06-01 0:02 UTC)).await.unwrap();
    assert_eq!((view.progress.counts.stale, view.progress.counts.read, view.progress.written), (1, 600, 599));
    assert_eq!(w.state.lease_holder(t, "write", time::OffsetDateTime::now_utc()), None);
}
