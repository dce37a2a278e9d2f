//! Backfill control and shard work over the ports (SPEC §6).

use super::{Backfill, BackfillOptions, BackfillStatus, Progress, Shard, progress};
use crate::PortError;
use crate::model::TenantId;
use crate::ports::BackfillStore;
use time::OffsetDateTime;

/// Why a control request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no backfill {0} for this tenant")]
    NotFound(String),
    #[error("backfill {id} is already {status}; nothing was changed")]
    AlreadyFinal { id: String, status: &'static str },
    #[error("backfill {0} changed too often while it was being updated; retry")]
    Contended(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// A backfill with its shards and progress, as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct View {
    pub backfill: Backfill,
    pub progress: Progress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<Shard>>,
}

/// The backfill and its progress; `with_shards` adds every shard.
pub async fn view(
    store: &dyn BackfillStore,
    tenant: &TenantId,
    id: &str,
    with_shards: bool,
    now: OffsetDateTime,
) -> Result<View, ControlError> {
    let (b, _) = store.backfill(tenant, id).await?.ok_or_else(|| ControlError::NotFound(id.to_string()))?;
    let shards = store.shards(tenant, id).await?;
    let progress = progress(&b, &shards, now);
    Ok(View { backfill: b, progress, shards: with_shards.then_some(shards) })
}

/// Cancel a backfill that is not final: its status becomes `Cancelled`
/// (workers stop at their next page; shards not done stay unwritten) and,
/// when it is the tenant's active backfill, the tenant is free for another.
/// The kill switch is still owed a restore: the caller restores it
/// (`restore_kill_switch`) or the scheduler's next sweep does.
pub async fn cancel(
    store: &dyn BackfillStore,
    tenant: &TenantId,
    id: &str,
    now: OffsetDateTime,
) -> Result<Backfill, ControlError> {
    for _ in 0..10 {
        let (mut b, v) = store.backfill(tenant, id).await?.ok_or_else(|| ControlError::NotFound(id.to_string()))?;
        if b.status.is_final() {
            return Err(ControlError::AlreadyFinal { id: id.to_string(), status: b.status.as_str() });
        }
        b.status = BackfillStatus::Cancelled;
        b.reason = Some("cancelled by an admin".into());
        b.finished_at = Some(now);
        b.updated_at = now;
        if store.put_backfill(&b, Some(v)).await? {
            release_active(store, tenant, id).await?;
            return Ok(b);
        }
    }
    Err(ControlError::Contended(id.to_string()))
}

/// Clear the tenant's active backfill if it is `id`.
pub async fn release_active(store: &dyn BackfillStore, tenant: &TenantId, id: &str) -> Result<(), PortError> {
    for _ in 0..5 {
        match store.active_backfill(tenant).await? {
            Some((active, v)) if active == id => {
                if store.set_active_backfill(tenant, None, Some(v)).await? {
                    return Ok(());
                }
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- shard work

use super::{KillSwitch, ShardCounts, ShardStatus, Window};
use crate::activity::{ActivityEntry, Direction, Outcome, RunSummary};
use crate::budget::{ApiBudget, BudgetPolicy};
use crate::connection::Sleeper;
use crate::error::{Classify, ErrorClass};
use crate::model::Enrollment;
use crate::ports::{
    ActivityLog, Applied, AppliedStore, JobQueue, LmsConnection, LmsEnrollments, SalesforceApi, TenantLease,
};
use crate::salesforce::{RecordFailure, RecordOutcome, SalesforceError, Session, SfRecord};
use crate::sync::{PlannedRecord, enrollment_record, is_missing_contact, plan_records, settle};
use crate::webhook::{EventKind, EventPayload, LmsEvent};
use crate::write_lock::{self, LockError, WriteLock};

/// LMS page size for shard reads (the API's maximum).
pub const PAGE_SIZE: u32 = 1_000;
/// Calls a Bulk group is budgeted at: create, upload, close, two polls,
/// successful results, failed results.
pub const BULK_GROUP_CALLS: u64 = 7;
/// The hierarchy custom setting holding the kill switch (SPEC §6.4).
pub const SETTINGS_OBJECT: &str = "LMS_Sync_Settings__c";
pub const BYPASS_FIELD: &str = "Bypass_Automation__c";

/// What shard work reads and writes.
pub struct ShardPorts<'a> {
    pub store: &'a dyn BackfillStore,
    pub lms: &'a dyn LmsEnrollments,
    pub salesforce: &'a dyn SalesforceApi,
    pub activity: &'a dyn ActivityLog,
    /// Records whose learner has no Contact go to enrollment sync here.
    pub sync_queue: &'a dyn JobQueue,
    /// The version of each record last written (SPEC §4.2): a backfill
    /// writes no record that enrollment sync already wrote newer, and marks
    /// the versions it writes, so a late older event is skipped as stale.
    pub applied: &'a dyn AppliedStore,
    /// The tenant's write lease (`write_lock`): held by each Composite page
    /// and by a Bulk group's marking, as by enrollment sync's batches.
    pub lease: &'a dyn TenantLease,
    pub sleeper: &'a dyn Sleeper,
    /// The wall clock (lease expiries).
    pub clock: &'a (dyn Fn() -> OffsetDateTime + Send + Sync),
}

/// The shards of one backfill a worker invocation received.
pub struct ShardInput<'a> {
    pub tenant: &'a TenantId,
    pub backfill_id: &'a str,
    pub shards: &'a [u32],
    pub lms: &'a LmsConnection,
    pub session: &'a Session,
    /// The org id (kill switch owner); `None` when the token set lacks it.
    pub org_id: Option<&'a str>,
    pub budget_policy: BudgetPolicy,
    pub now: OffsetDateTime,
    /// This delivery is the message's last: a retryable failure fails the
    /// shard (and the backfill) instead of returning the message.
    pub last_attempt: bool,
}

/// What became of one shard message.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardOutcome {
    /// Written (or found done by an earlier delivery).
    Done,
    /// Nothing to do: the backfill is final or paused, or another delivery
    /// owns the shard; acknowledged.
    Ignored(String),
    /// The API budget is spent: the backfill is paused, the shard stays
    /// pending and the scheduler sends it again in the next window.
    Paused,
    /// Returned to the queue (retryable, throttled).
    Retry { class: ErrorClass, reason: String },
    /// Failed for good: the shard and the backfill are failed.
    Failed { reason: String },
}

fn job_name(id: &str) -> String {
    format!("backfill:{id}")
}

/// Work a set of shards of one backfill: shards below the Bulk threshold
/// page by page through Composite (checkpoint per page), the others
/// together as Bulk API 2.0 jobs (the job ids are the checkpoint). Ends the
/// backfill when its last shard is done.
pub async fn run_shards(p: &ShardPorts<'_>, input: &ShardInput<'_>) -> Vec<(u32, ShardOutcome)> {
    let all = |o: ShardOutcome| input.shards.iter().map(|&i| (i, o.clone())).collect::<Vec<_>>();
    let b = match p.store.backfill(input.tenant, input.backfill_id).await {
        Ok(Some((b, _))) => b,
        Ok(None) => return all(ShardOutcome::Failed { reason: format!("no backfill {}", input.backfill_id) }),
        Err(e) => return all(ShardOutcome::Retry { class: e.class, reason: e.chain() }),
    };
    match b.status {
        s if s.is_final() => {
            if b.kill_switch.owes_restore() {
                let _ =
                    restore_kill_switch(p.store, p.salesforce, input.session, input.org_id, input.tenant, &b.id).await;
            }
            return all(ShardOutcome::Ignored(format!("the backfill is {}", s.as_str())));
        }
        BackfillStatus::Paused => return all(ShardOutcome::Ignored("the backfill is paused".into())),
        BackfillStatus::Planning => {
            return all(ShardOutcome::Retry {
                class: ErrorClass::Retryable,
                reason: "the backfill is still planned".into(),
            });
        }
        _ => {}
    }
    let mut out = Vec::new();
    let mut small = Vec::new();
    let mut big = Vec::new();
    for &i in input.shards {
        match p.store.shard(input.tenant, &b.id, i).await {
            Ok(Some((s, _))) if s.status != ShardStatus::Pending => {
                out.push((i, ShardOutcome::Ignored(format!("shard {i} is already {:?}", s.status).to_lowercase())))
            }
            Ok(Some((s, v))) if s.expected >= b.options.bulk_threshold || !s.bulk_jobs.is_empty() => big.push((s, v)),
            Ok(Some((s, v))) => small.push((s, v)),
            Ok(None) => out.push((i, ShardOutcome::Failed { reason: format!("backfill {} has no shard {i}", b.id) })),
            Err(e) => out.push((i, ShardOutcome::Retry { class: e.class, reason: e.chain() })),
        }
    }
    let estimate = if big.is_empty() { 0 } else { BULK_GROUP_CALLS }
        + small.iter().map(|(s, _)| s.expected.div_ceil(u64::from(PAGE_SIZE)).max(1)).sum::<u64>();
    if estimate > 0 {
        match within_budget(p, input, &b, estimate).await {
            Ok(true) => {}
            Ok(false) => {
                for (s, _) in small.iter().chain(big.iter()) {
                    out.push((s.index, ShardOutcome::Paused));
                }
                return out;
            }
            Err(e) => {
                for (s, _) in small.iter().chain(big.iter()) {
                    out.push((s.index, ShardOutcome::Retry { class: e.class(), reason: e.to_string() }));
                }
                return out;
            }
        }
    }
    for (s, v) in small {
        let i = s.index;
        let o = composite_shard(p, input, &b, s, v).await;
        out.push((i, o));
    }
    if !big.is_empty() {
        out.extend(bulk_shards(p, input, &b, big).await);
    }
    // Failures end the backfill; a done shard may be the last one.
    let failed = out.iter().find_map(|(i, o)| match o {
        ShardOutcome::Failed { reason } => Some(format!("shard {i} failed: {reason}")),
        _ => None,
    });
    if let Some(reason) = failed {
        for (i, o) in &out {
            if let ShardOutcome::Failed { reason } = o {
                mark_shard_failed(p.store, input.tenant, &b.id, *i, reason, (p.clock)()).await;
            }
        }
        if let Err(e) = finish(p, input, BackfillStatus::Failed, Some(reason)).await {
            tracing::warn!(tenant = %input.tenant, backfill = %b.id, error = %e.chain(), "the failed backfill could not be finished; the sweep finishes it");
        }
    } else if out.iter().any(|(_, o)| *o == ShardOutcome::Done)
        && let Err(e) = finish_if_done(p, input).await
    {
        tracing::warn!(tenant = %input.tenant, backfill = %b.id, error = %e.chain(), "the backfill could not be finished; the sweep finishes it");
    }
    out
}

/// Whether `estimate` more calls fit the backfill's API budget; pauses the
/// backfill when they do not.
async fn within_budget(
    p: &ShardPorts<'_>,
    input: &ShardInput<'_>,
    b: &Backfill,
    estimate: u64,
) -> Result<bool, SalesforceError> {
    let usage = match p.salesforce.last_usage(&input.session.instance_url) {
        Some(u) => u,
        None => p.salesforce.limits(input.session).await?.api_usage(),
    };
    let mut budget = b.budget.unwrap_or_else(|| ApiBudget::new(input.budget_policy, usage));
    budget.observe(usage);
    if !budget.allows(estimate) && p.salesforce.last_usage(&input.session.instance_url).is_some() {
        // The figure this instance remembers may predate the window (a new
        // day, a resumed backfill): ask once before pausing.
        let fresh = p.salesforce.limits(input.session).await?.api_usage();
        budget = b.budget.unwrap_or_else(|| ApiBudget::new(input.budget_policy, fresh));
        budget.observe(fresh);
    }
    if budget.allows(estimate) {
        if b.budget.is_none() {
            // The window's start; a lost race keeps the other writer's.
            let _ = update_backfill(p.store, input.tenant, &b.id, |x| {
                if x.budget.is_none() {
                    x.budget = Some(budget);
                }
                true
            })
            .await;
        }
        return Ok(true);
    }
    let reason = format!(
        "API budget reached: {} calls left for jobs of the {} the org has left (policy {} % of what remained at the start of the window); resumes in the next window",
        budget.remaining_for_jobs(),
        usage.remaining(),
        budget.policy.max_share_percent
    );
    tracing::warn!(tenant = %input.tenant, backfill = %b.id, %reason, "backfill paused");
    let now = input.now;
    let _ = update_backfill(p.store, input.tenant, &b.id, |x| {
        if x.status != BackfillStatus::Running {
            return false;
        }
        x.status = BackfillStatus::Paused;
        x.paused_at = Some(now);
        x.reason = Some(reason.clone());
        x.budget = Some(budget);
        x.updated_at = now;
        true
    })
    .await;
    Ok(false)
}

/// Read-modify-write of a backfill; `f` returns false to write nothing.
/// Returns the stored backfill when `f` changed it.
pub async fn update_backfill(
    store: &dyn BackfillStore,
    tenant: &TenantId,
    id: &str,
    mut f: impl FnMut(&mut Backfill) -> bool,
) -> Result<Option<Backfill>, PortError> {
    for _ in 0..10 {
        let Some((mut b, v)) = store.backfill(tenant, id).await? else { return Ok(None) };
        if !f(&mut b) {
            return Ok(None);
        }
        if store.put_backfill(&b, Some(v)).await? {
            return Ok(Some(b));
        }
    }
    Err(PortError::retryable(format!("backfill {id} changed too often while it was being updated")))
}

async fn still_running(p: &ShardPorts<'_>, input: &ShardInput<'_>) -> Result<Option<String>, PortError> {
    Ok(match p.store.backfill(input.tenant, input.backfill_id).await? {
        Some((b, _)) if b.status == BackfillStatus::Running => None,
        Some((b, _)) => Some(format!("the backfill is {}", b.status.as_str())),
        None => Some("the backfill is gone".into()),
    })
}

fn port_outcome(e: PortError, input: &ShardInput<'_>) -> ShardOutcome {
    if e.class == ErrorClass::Permanent || input.last_attempt {
        ShardOutcome::Failed { reason: e.chain() }
    } else {
        ShardOutcome::Retry { class: e.class, reason: e.chain() }
    }
}

fn lock_outcome(e: LockError, input: &ShardInput<'_>) -> ShardOutcome {
    match e {
        LockError::Store(e) => port_outcome(e, input),
        e => port_outcome(PortError::retryable(e.to_string()), input),
    }
}

/// The applied-version key of an enrollment (as enrollment sync's).
fn applied_key(e: &Enrollment) -> String {
    crate::sync::applied_key("enrollment", &e.id)
}

/// Whether enrollment sync already wrote `e` in a newer version.
fn is_stale(e: &Enrollment, applied: &std::collections::HashMap<String, Applied>) -> bool {
    applied.get(&applied_key(e)).is_some_and(|a| a.updated_at > e.updated_at)
}

/// Take the tenant's write lease for one write of shard work.
async fn write_lease<'a>(p: &ShardPorts<'a>, input: &ShardInput<'_>) -> Result<WriteLock<'a>, LockError> {
    let holder = format!("backfill:{}:{:?}:{}", input.backfill_id, input.shards, (p.clock)().unix_timestamp_nanos());
    write_lock::acquire(p.lease, p.sleeper, input.tenant, &holder, p.clock, write_lock::WAIT).await
}

/// Split `enrollments` by the applied markers: those enrollment sync already
/// wrote in a newer version (not written again: `stale`) and the others.
fn drop_stale(
    enrollments: Vec<Enrollment>,
    applied: &std::collections::HashMap<String, Applied>,
) -> (Vec<Enrollment>, u64) {
    let before = enrollments.len();
    let fresh: Vec<Enrollment> = enrollments.into_iter().filter(|e| !is_stale(e, applied)).collect();
    let stale = (before - fresh.len()) as u64;
    (fresh, stale)
}

/// The markers of what a backfill wrote.
fn marks_of(backfill_id: &str, enrollments: &[Enrollment], outcomes: &[RecordOutcome]) -> Vec<(String, Applied)> {
    enrollments
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o, RecordOutcome::Created { .. } | RecordOutcome::Updated { .. }))
        .map(|(e, _)| {
            (applied_key(e), Applied { updated_at: e.updated_at, event_id: format!("backfill:{backfill_id}") })
        })
        .collect()
}

fn sf_outcome(e: &SalesforceError, input: &ShardInput<'_>) -> ShardOutcome {
    let reason = crate::error::error_chain(e);
    if e.class() == ErrorClass::Permanent || input.last_attempt {
        ShardOutcome::Failed { reason }
    } else {
        ShardOutcome::Retry { class: e.class(), reason }
    }
}

/// What a set of written records came to.
#[derive(Default)]
struct Tally {
    counts: ShardCounts,
    entries: Vec<ActivityEntry>,
    handover: Vec<Enrollment>,
    /// Retryable failures (the records are written again).
    retry: Vec<(usize, RecordFailure)>,
}

fn tally(
    job: &str,
    enrollments: &[Enrollment],
    outcomes: &[RecordOutcome],
    now: OffsetDateTime,
    retry_allowed: bool,
) -> Tally {
    let mut t = Tally::default();
    for (i, (e, o)) in enrollments.iter().zip(outcomes).enumerate() {
        match o {
            RecordOutcome::Created { .. } => t.counts.created += 1,
            RecordOutcome::Updated { .. } => t.counts.updated += 1,
            RecordOutcome::Failed(f) if is_missing_contact(f) => {
                t.counts.handed_over += 1;
                t.handover.push(e.clone());
            }
            RecordOutcome::Failed(f) if f.class != ErrorClass::Permanent && retry_allowed => {
                t.retry.push((i, f.clone()))
            }
            RecordOutcome::Failed(f) => {
                t.counts.failed += 1;
                t.entries.push(ActivityEntry {
                    at: now,
                    job: job.to_string(),
                    direction: Direction::LmsToSalesforce,
                    object: crate::sync::ENROLLMENT_OBJECT.into(),
                    lms_id: e.id.clone(),
                    learner_id: Some(e.learner_id.clone()),
                    salesforce_id: None,
                    outcome: Outcome::Failed,
                    reason: Some(f.code.clone()),
                    message: Some(f.message.clone()),
                });
            }
        }
    }
    t
}

/// Hand records whose learner has no Contact to enrollment sync (job 1
/// matches or creates the Contact, then writes them).
async fn hand_over(p: &ShardPorts<'_>, input: &ShardInput<'_>, records: Vec<Enrollment>) -> Result<(), PortError> {
    if records.is_empty() {
        return Ok(());
    }
    let events: Vec<LmsEvent> = records
        .into_iter()
        .map(|e| LmsEvent {
            id: format!("backfill:{}:{}:{}", input.backfill_id, e.id, e.updated_at.unix_timestamp_nanos() / 1_000_000),
            kind: EventKind::EnrollmentUpdated,
            occurred_at: e.updated_at,
            payload: EventPayload::Enrollment(e),
        })
        .collect();
    let bodies: Vec<String> = crate::job::pack(input.tenant, "backfill", &events, crate::job::MAX_MESSAGE_BYTES)
        .into_iter()
        .map(|m| m.body)
        .collect();
    for r in p.sync_queue.send_encoded(&bodies).await {
        r?;
    }
    Ok(())
}

/// Composite writes of `records`; one outcome per record and the calls made.
async fn composite_write(p: &ShardPorts<'_>, session: &Session, records: Vec<SfRecord>) -> (Vec<RecordOutcome>, u64) {
    let n = records.len();
    let calls =
        plan_records(records.into_iter().enumerate().map(|(i, record)| PlannedRecord { record, items: vec![i] }));
    let mut results = Vec::with_capacity(calls.len());
    for call in &calls {
        results.push(p.salesforce.composite_upsert(session, call).await);
    }
    let mut outcomes = vec![None; n];
    for s in settle(&calls, results) {
        outcomes[s.item] = Some(s.outcome);
    }
    let missing = RecordFailure {
        class: ErrorClass::Retryable,
        code: "NOT_SETTLED".into(),
        message: "no outcome came back for the record".into(),
    };
    (
        outcomes.into_iter().map(|o| o.unwrap_or_else(|| RecordOutcome::Failed(missing.clone()))).collect(),
        calls.len() as u64,
    )
}

/// One Composite page under the write lease: markers read, records that
/// enrollment sync wrote newer left out, the rest written and marked. The
/// enrollments written, their outcomes, the calls and how many were stale.
async fn composite_page(
    p: &ShardPorts<'_>,
    input: &ShardInput<'_>,
    backfill_id: &str,
    enrollments: Vec<Enrollment>,
) -> Result<(Vec<Enrollment>, Vec<RecordOutcome>, u64, u64), ShardOutcome> {
    let keys: Vec<String> = enrollments.iter().map(applied_key).collect();
    let applied = p.applied.applied(input.tenant, &keys).await.map_err(|e| port_outcome(e, input))?;
    let (enrollments, stale) = drop_stale(enrollments, &applied);
    let records: Vec<SfRecord> = enrollments.iter().map(enrollment_record).collect();
    let (outcomes, calls) = composite_write(p, input.session, records).await;
    let marks = marks_of(backfill_id, &enrollments, &outcomes);
    if !marks.is_empty() {
        // Unmarked, a late older event could overwrite the page: it is
        // written again (idempotent) on the next delivery instead.
        p.applied.mark_applied(input.tenant, &marks).await.map_err(|e| port_outcome(e, input))?;
    }
    Ok((enrollments, outcomes, calls, stale))
}

/// A shard below the Bulk threshold: page by page, a checkpoint per page.
async fn composite_shard(
    p: &ShardPorts<'_>,
    input: &ShardInput<'_>,
    b: &Backfill,
    mut s: Shard,
    mut v: u64,
) -> ShardOutcome {
    let job = job_name(&b.id);
    s.attempts += 1;
    loop {
        match still_running(p, input).await {
            Ok(None) => {}
            Ok(Some(why)) => return ShardOutcome::Ignored(why),
            Err(e) => return port_outcome(e, input),
        }
        let mut page = match p.lms.enrollments_page(input.lms, &s.window, s.cursor.as_deref(), PAGE_SIZE).await {
            Ok(page) => page,
            Err(e) => return port_outcome(e, input),
        };
        let read = page.enrollments.len() as u64;
        // Under the tenant's write lease, from reading the markers until
        // the page's versions are marked (SPEC §4.2).
        let lock = match write_lease(p, input).await {
            Ok(l) => l,
            Err(e) => return lock_outcome(e, input),
        };
        let written = composite_page(p, input, &b.id, std::mem::take(&mut page.enrollments)).await;
        lock.release().await;
        let (enrollments, outcomes, calls, stale) = match written {
            Ok(w) => w,
            Err(o) => return o,
        };
        let t = tally(&job, &enrollments, &outcomes, (p.clock)(), true);
        if let Some((_, f)) = t.retry.first() {
            // Nothing of the page is checkpointed: it is written again on
            // the next delivery; after the last one the shard fails.
            let reason =
                format!("{} of {} records failed with {}: {}", t.retry.len(), outcomes.len(), f.code, f.message);
            if input.last_attempt {
                return ShardOutcome::Failed { reason };
            }
            return ShardOutcome::Retry { class: f.class, reason };
        }
        if let Err(e) = hand_over(p, input, t.handover).await {
            return port_outcome(e, input);
        }
        if !t.entries.is_empty()
            && let Err(e) = p.activity.record(input.tenant, &t.entries).await
        {
            tracing::warn!(tenant = %input.tenant, error = %e.chain(), "backfill failures not logged");
        }
        let mut counts = t.counts;
        counts.pages = 1;
        counts.read = read;
        counts.stale = stale;
        counts.api_calls = calls;
        s.counts.add(&counts);
        s.cursor = page.next_cursor.clone();
        let last = page.next_cursor.is_none();
        if last {
            s.status = ShardStatus::Done;
            s.finished_at = Some((p.clock)());
        }
        match p.store.put_shard(input.tenant, &b.id, &s, Some(v)).await {
            Ok(true) => v += 1,
            Ok(false) => return ShardOutcome::Ignored(format!("shard {} was moved on by another delivery", s.index)),
            Err(e) => return port_outcome(e, input),
        }
        if last {
            return ShardOutcome::Done;
        }
    }
}

/// Shards at or above the Bulk threshold, together: every record read,
/// Bulk upsert jobs submitted and their ids stored on each shard, then the
/// results matched back by external id. A redelivered group whose jobs are
/// stored reads the records again and only collects the results.
async fn bulk_shards(
    p: &ShardPorts<'_>,
    input: &ShardInput<'_>,
    b: &Backfill,
    mut shards: Vec<(Shard, u64)>,
) -> Vec<(u32, ShardOutcome)> {
    let indexes: Vec<u32> = shards.iter().map(|(s, _)| s.index).collect();
    let all = |o: ShardOutcome| indexes.iter().map(|&i| (i, o.clone())).collect::<Vec<_>>();
    match still_running(p, input).await {
        Ok(None) => {}
        Ok(Some(why)) => return all(ShardOutcome::Ignored(why)),
        Err(e) => return all(port_outcome(e, input)),
    }
    // Read every record of the group, shard by shard.
    let mut enrollments: Vec<Enrollment> = Vec::new();
    let mut ranges = Vec::with_capacity(shards.len());
    let mut pages = Vec::with_capacity(shards.len());
    for (s, _) in &shards {
        let start = enrollments.len();
        let mut cursor: Option<String> = None;
        let mut n = 0u64;
        loop {
            match p.lms.enrollments_page(input.lms, &s.window, cursor.as_deref(), PAGE_SIZE).await {
                Ok(page) => {
                    n += 1;
                    enrollments.extend(page.enrollments);
                    cursor = page.next_cursor;
                }
                Err(e) => return all(port_outcome(e, input)),
            }
            if cursor.is_none() {
                break;
            }
        }
        ranges.push(start..enrollments.len());
        pages.push(n);
    }
    // Records enrollment sync already wrote newer are left out (§4.2); the
    // markers read now are compared again after the jobs (below).
    let keys: Vec<String> = enrollments.iter().map(applied_key).collect();
    let before = match p.applied.applied(input.tenant, &keys).await {
        Ok(a) => a,
        Err(e) => return all(port_outcome(e, input)),
    };
    drop(keys);
    let mut stale = vec![0u64; ranges.len()];
    if !before.is_empty() {
        let mut kept = Vec::with_capacity(enrollments.len());
        let mut read = std::mem::take(&mut enrollments).into_iter();
        for (range, n) in ranges.iter_mut().zip(stale.iter_mut()) {
            let start = kept.len();
            for e in read.by_ref().take(range.len()) {
                if is_stale(&e, &before) {
                    *n += 1;
                } else {
                    kept.push(e);
                }
            }
            *range = start..kept.len();
        }
        enrollments = kept;
    }
    let records: Vec<SfRecord> = enrollments.iter().map(enrollment_record).collect();
    // Jobs stored by an earlier delivery are collected, not sent again.
    let mut jobs: Vec<String> = Vec::new();
    for (s, _) in &shards {
        for j in &s.bulk_jobs {
            if !jobs.contains(j) {
                jobs.push(j.clone());
            }
        }
    }
    let mut calls = 0u64;
    let mut not_sent: Vec<(usize, RecordFailure)> = Vec::new();
    if jobs.is_empty() && !records.is_empty() {
        match p.salesforce.bulk_submit(input.session, &records).await {
            Ok(sub) => {
                calls += sub.calls;
                jobs = sub.jobs;
                not_sent = sub.not_sent;
            }
            Err(e) => return all(sf_outcome(&e, input)),
        }
        // The checkpoint: the jobs hold the records now.
        for (s, v) in shards.iter_mut() {
            s.attempts += 1;
            s.bulk_jobs = jobs.clone();
            match p.store.put_shard(input.tenant, &b.id, s, Some(*v)).await {
                Ok(true) => *v += 1,
                Ok(false) => {
                    tracing::warn!(shard = s.index, "a shard moved on while its Bulk jobs were stored");
                }
                Err(e) => {
                    tracing::warn!(shard = s.index, error = %e.chain(), "the shard's Bulk jobs were not stored; a redelivery sends them again (upserts are idempotent)");
                }
            }
        }
    }
    let mut outcomes: Vec<RecordOutcome> = if jobs.is_empty() {
        vec![]
    } else {
        match p.salesforce.bulk_outcomes(input.session, &jobs, &records).await {
            Ok(report) => {
                calls += report.calls;
                report.outcomes
            }
            Err(e) => return all(sf_outcome(&e, input)),
        }
    };
    outcomes.resize(
        records.len(),
        RecordOutcome::Failed(RecordFailure {
            class: ErrorClass::Retryable,
            code: "BULK_UNPROCESSED".into(),
            message: "the record was not part of any Bulk job".into(),
        }),
    );
    for (i, f) in not_sent {
        if let Some(o) = outcomes.get_mut(i) {
            *o = RecordOutcome::Failed(f);
        }
    }
    // Retryable failures (locks, unprocessed rows) are written once more
    // through Composite; what still fails is logged as failed.
    let retry: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, RecordOutcome::Failed(f) if f.class != ErrorClass::Permanent && !is_missing_contact(f)))
        .map(|(i, _)| i)
        .collect();
    if !retry.is_empty() {
        let again: Vec<SfRecord> = retry.iter().map(|&i| records[i].clone()).collect();
        let (second, c) = composite_write(p, input.session, again).await;
        calls += c;
        for (&i, o) in retry.iter().zip(second) {
            outcomes[i] = o;
        }
    }
    // Mark what was written, under the write lease. A record enrollment
    // sync wrote meanwhile in an older version than the job's may have
    // landed after the job: it is written again now, under the lease.
    let lock = match write_lease(p, input).await {
        Ok(l) => l,
        Err(e) => return all(lock_outcome(e, input)),
    };
    let marked = bulk_marks(p, input, &b.id, &enrollments, &records, &before, &mut outcomes).await;
    lock.release().await;
    match marked {
        Ok(c) => calls += c,
        Err(o) => return all(o),
    }
    drop(records);
    let job = job_name(&b.id);
    let mut out = Vec::with_capacity(shards.len());
    let mut handover = Vec::new();
    let mut entries = Vec::new();
    let mut counts_all = Vec::with_capacity(shards.len());
    let total = enrollments.len().max(1) as u64;
    let mut unspread = calls;
    for (k, (range, &pages)) in ranges.iter().zip(&pages).enumerate() {
        let t = tally(&job, &enrollments[range.clone()], &outcomes[range.clone()], (p.clock)(), false);
        let mut c = t.counts;
        c.pages = pages;
        c.read = range.len() as u64 + stale[k];
        c.stale = stale[k];
        // The group's calls, spread over its shards by records (the
        // rounding remainder goes to the first shard below).
        c.api_calls = calls * range.len() as u64 / total;
        unspread -= c.api_calls;
        handover.extend(t.handover);
        entries.extend(t.entries);
        counts_all.push(c);
    }
    if let Some(c) = counts_all.first_mut() {
        c.api_calls += unspread;
    }
    if let Err(e) = hand_over(p, input, handover).await {
        return all(port_outcome(e, input));
    }
    if !entries.is_empty()
        && let Err(e) = p.activity.record(input.tenant, &entries).await
    {
        tracing::warn!(tenant = %input.tenant, error = %e.chain(), "backfill failures not logged");
    }
    for ((s, v), c) in shards.iter_mut().zip(counts_all) {
        s.counts.add(&c);
        s.status = ShardStatus::Done;
        s.finished_at = Some((p.clock)());
        let o = match p.store.put_shard(input.tenant, &b.id, s, Some(*v)).await {
            Ok(true) => ShardOutcome::Done,
            Ok(false) => ShardOutcome::Ignored(format!("shard {} was moved on by another delivery", s.index)),
            Err(e) => port_outcome(e, input),
        };
        out.push((s.index, o));
    }
    out
}

/// After a Bulk group's jobs: re-read the markers of the records written,
/// write again (Composite) those enrollment sync wrote meanwhile in an older
/// version, and mark the group's versions. The calls made.
async fn bulk_marks(
    p: &ShardPorts<'_>,
    input: &ShardInput<'_>,
    backfill_id: &str,
    enrollments: &[Enrollment],
    records: &[SfRecord],
    before: &std::collections::HashMap<String, Applied>,
    outcomes: &mut [RecordOutcome],
) -> Result<u64, ShardOutcome> {
    let written = |o: &RecordOutcome| matches!(o, RecordOutcome::Created { .. } | RecordOutcome::Updated { .. });
    let written_at: Vec<usize> = (0..enrollments.len()).filter(|&i| written(&outcomes[i])).collect();
    if written_at.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = written_at.iter().map(|&i| applied_key(&enrollments[i])).collect();
    let now = p.applied.applied(input.tenant, &keys).await.map_err(|e| port_outcome(e, input))?;
    let again: Vec<usize> = written_at
        .iter()
        .zip(&keys)
        .filter(|&(&i, key)| {
            now.get(key).is_some_and(|m| m.updated_at < enrollments[i].updated_at && before.get(key) != Some(m))
        })
        .map(|(&i, _)| i)
        .collect();
    drop(keys);
    let mut calls = 0;
    if !again.is_empty() {
        tracing::info!(tenant = %input.tenant, records = again.len(), "records synced meanwhile in an older version are written again");
        let (second, c) = composite_write(p, input.session, again.iter().map(|&i| records[i].clone()).collect()).await;
        calls += c;
        for (&i, o) in again.iter().zip(second) {
            outcomes[i] = o;
        }
    }
    // Never move a marker back: a newer version written meanwhile stays.
    let marks: Vec<(String, Applied)> = marks_of(backfill_id, enrollments, outcomes)
        .into_iter()
        .filter(|(k, a)| now.get(k).is_none_or(|m| m.updated_at < a.updated_at))
        .collect();
    if !marks.is_empty() {
        p.applied.mark_applied(input.tenant, &marks).await.map_err(|e| port_outcome(e, input))?;
    }
    Ok(calls)
}

async fn mark_shard_failed(
    store: &dyn BackfillStore,
    tenant: &TenantId,
    id: &str,
    index: u32,
    reason: &str,
    now: OffsetDateTime,
) {
    for _ in 0..5 {
        match store.shard(tenant, id, index).await {
            Ok(Some((mut s, v))) if s.status == ShardStatus::Pending => {
                s.status = ShardStatus::Failed;
                s.error = Some(reason.to_string());
                s.finished_at = Some(now);
                if let Ok(true) = store.put_shard(tenant, id, &s, Some(v)).await {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// Fail the shard of a message on its last delivery (the DLQ takes the
/// message; the backfill fails and its kill switch is restored).
pub async fn fail_shard(p: &ShardPorts<'_>, input: &ShardInput<'_>, index: u32, reason: &str) {
    mark_shard_failed(p.store, input.tenant, input.backfill_id, index, reason, (p.clock)()).await;
    let _ = finish(p, input, BackfillStatus::Failed, Some(format!("shard {index} failed: {reason}"))).await;
}

/// Complete the backfill when every shard is done.
async fn finish_if_done(p: &ShardPorts<'_>, input: &ShardInput<'_>) -> Result<(), PortError> {
    let shards = p.store.shards(input.tenant, input.backfill_id).await?;
    if shards.iter().all(|s| s.status == ShardStatus::Done) {
        finish(p, input, BackfillStatus::Completed, None).await?;
    }
    Ok(())
}

/// Move the backfill to a final status, as the worker of its last shard.
async fn finish(
    p: &ShardPorts<'_>,
    input: &ShardInput<'_>,
    status: BackfillStatus,
    reason: Option<String>,
) -> Result<(), PortError> {
    let Some((b, _)) = p.store.backfill(input.tenant, input.backfill_id).await? else { return Ok(()) };
    let ports = Finishing {
        store: p.store,
        salesforce: p.salesforce,
        activity: p.activity,
        session: input.session,
        org_id: input.org_id,
    };
    if let Some(done) = make_final(&ports, &b, status, reason, (p.clock)()).await? {
        tracing::info!(tenant = %input.tenant, backfill = %done.id, status = done.status.as_str(), "backfill finished");
    }
    Ok(())
}

/// What making a backfill final touches.
struct Finishing<'a> {
    store: &'a dyn BackfillStore,
    salesforce: &'a dyn SalesforceApi,
    activity: &'a dyn ActivityLog,
    session: &'a Session,
    org_id: Option<&'a str>,
}

/// Move `b` to a final status (once: the conditional write decides who
/// finishes), then record coverage, the run summary, release the tenant
/// and restore the kill switch. The kill switch is restored first too, so
/// a backfill seen final has its automations back (if Salesforce refuses
/// now, the final backfill owes the restore and the sweep retries it).
/// `None`: it was final already.
async fn make_final(
    p: &Finishing<'_>,
    b: &Backfill,
    status: BackfillStatus,
    reason: Option<String>,
    now: OffsetDateTime,
) -> Result<Option<Backfill>, PortError> {
    if b.status.is_final() {
        return Ok(None);
    }
    if b.kill_switch.owes_restore() {
        let _ = restore_kill_switch(p.store, p.salesforce, p.session, p.org_id, &b.tenant, &b.id).await;
    }
    let Some(done) = update_backfill(p.store, &b.tenant, &b.id, |x| {
        if x.status.is_final() {
            return false;
        }
        x.status = status;
        x.finished_at = Some(now);
        x.updated_at = now;
        if reason.is_some() {
            x.reason = reason.clone();
        }
        true
    })
    .await?
    else {
        return Ok(None);
    };
    finished(p.store, p.activity, &done, now).await?;
    restore_kill_switch(p.store, p.salesforce, p.session, p.org_id, &b.tenant, &b.id).await.ok();
    Ok(Some(done))
}

/// After a backfill became final: coverage (completed without failures),
/// the run summary, the tenant freed for another backfill.
pub async fn finished(
    store: &dyn BackfillStore,
    activity: &dyn ActivityLog,
    b: &Backfill,
    now: OffsetDateTime,
) -> Result<(), PortError> {
    let shards = store.shards(&b.tenant, &b.id).await?;
    let mut c = ShardCounts::default();
    for s in &shards {
        c.add(&s.counts);
    }
    if b.status == BackfillStatus::Completed && c.failed == 0 {
        for _ in 0..5 {
            let (mut cov, v) = store.coverage(&b.tenant).await?;
            cov.add(b.window);
            if store.put_coverage(&b.tenant, &cov, v).await? {
                break;
            }
        }
    }
    let summary = RunSummary {
        run_id: b.id.clone(),
        job: "backfill".into(),
        started_at: b.created_at,
        finished_at: b.finished_at.unwrap_or(now),
        created: c.created,
        updated: c.updated,
        skipped: c.handed_over + c.stale,
        failed: c.failed,
    };
    if let Err(e) = activity.record_run(&b.tenant, &summary).await {
        tracing::warn!(tenant = %b.tenant, error = %e.chain(), "backfill run summary not recorded");
    }
    release_active(store, &b.tenant, &b.id).await
}

// ---------------------------------------------------------------- kill switch

/// The org default of the settings: its Id and `Bypass_Automation__c`.
async fn org_setting(
    sf: &dyn SalesforceApi,
    session: &Session,
    org_id: &str,
) -> Result<Option<(String, bool)>, SalesforceError> {
    let soql =
        format!("SELECT Id, {BYPASS_FIELD} FROM {SETTINGS_OBJECT} WHERE SetupOwnerId = {}", crate::soql::quote(org_id));
    let rows = sf.query(session, &soql).await?;
    Ok(rows.first().map(|r| {
        let id = r.get("Id").and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let on = r.get(BYPASS_FIELD).and_then(serde_json::Value::as_bool).unwrap_or(false);
        (id, on)
    }))
}

async fn set_bypass(sf: &dyn SalesforceApi, session: &Session, org_id: &str, on: bool) -> Result<(), SalesforceError> {
    match org_setting(sf, session, org_id).await? {
        Some((_, current)) if current == on => Ok(()),
        Some((id, _)) => {
            sf.update_record(session, SETTINGS_OBJECT, &id, &serde_json::json!({ BYPASS_FIELD: on })).await
        }
        None => sf
            .create_record(session, SETTINGS_OBJECT, &serde_json::json!({ "SetupOwnerId": org_id, BYPASS_FIELD: on }))
            .await
            .map(|_| ()),
    }
}

/// Why the kill switch could not be engaged or restored.
#[derive(Debug, thiserror::Error)]
pub enum KillSwitchError {
    #[error(
        "the stored token set has no org id, so the org default of {SETTINGS_OBJECT} cannot be found; relink the tenant"
    )]
    NoOrgId,
    #[error("Salesforce refused the kill switch change")]
    Salesforce(#[from] SalesforceError),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Engage the kill switch before the first write: remember the org
/// default's value in the backfill (stored first), then set it on.
pub async fn engage_kill_switch(
    store: &dyn BackfillStore,
    sf: &dyn SalesforceApi,
    session: &Session,
    org_id: Option<&str>,
    tenant: &TenantId,
    id: &str,
) -> Result<(), KillSwitchError> {
    let org = org_id.ok_or(KillSwitchError::NoOrgId)?;
    let previous = org_setting(sf, session, org).await?.map(|(_, on)| on);
    update_backfill(store, tenant, id, |b| {
        if b.kill_switch != KillSwitch::Pending {
            return false;
        }
        b.kill_switch = KillSwitch::Engaged { previous };
        true
    })
    .await?;
    set_bypass(sf, session, org, true).await?;
    Ok(())
}

/// Restore the kill switch of a backfill that owes it (idempotent: a
/// restored one is left alone). Called by whoever ends the backfill, and by
/// the scheduler's sweep until it succeeds.
pub async fn restore_kill_switch(
    store: &dyn BackfillStore,
    sf: &dyn SalesforceApi,
    session: &Session,
    org_id: Option<&str>,
    tenant: &TenantId,
    id: &str,
) -> Result<bool, KillSwitchError> {
    let Some((b, _)) = store.backfill(tenant, id).await? else { return Ok(false) };
    let KillSwitch::Engaged { previous } = b.kill_switch else { return Ok(false) };
    let org = org_id.ok_or(KillSwitchError::NoOrgId)?;
    if let Err(e) = set_bypass(sf, session, org, previous.unwrap_or(false)).await {
        tracing::warn!(tenant = %tenant, backfill = %id, error = %crate::error::error_chain(&e), "kill switch not restored yet; the scheduler retries");
        return Err(e.into());
    }
    update_backfill(store, tenant, id, |b| {
        if let KillSwitch::Engaged { previous } = b.kill_switch {
            b.kill_switch = KillSwitch::Restored { previous };
            true
        } else {
            false
        }
    })
    .await?;
    tracing::info!(tenant = %tenant, backfill = %id, "kill switch restored");
    Ok(true)
}

/// The window of a backfill request after `only_changed`: the uncovered
/// parts, and the covered ones (skipped).
pub fn effective_windows(
    window: Window,
    only_changed: bool,
    coverage: &super::coverage::Coverage,
) -> (Vec<Window>, Vec<Window>) {
    if only_changed { (coverage.uncovered(window), coverage.covered(window)) } else { (vec![window], vec![]) }
}

// ---------------------------------------------------------------- control

/// What planning and the scheduler use.
pub struct ControlPorts<'a> {
    pub store: &'a dyn BackfillStore,
    pub lms: &'a dyn LmsEnrollments,
    pub salesforce: &'a dyn SalesforceApi,
    pub activity: &'a dyn ActivityLog,
    /// The backfill queue.
    pub shards_queue: &'a dyn JobQueue,
}

/// A backfill to start.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub window: Window,
    pub only_changed: bool,
    pub origin: super::Origin,
}

/// Why a backfill did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("backfill {0} of this tenant is still running; cancel it or wait for it to end")]
    Running(String),
    #[error("the LMS could not count the window: {0}")]
    Lms(#[source] PortError),
    #[error("the automation kill switch could not be engaged, so nothing was written: {0}")]
    KillSwitch(#[source] KillSwitchError),
    #[error(transparent)]
    Port(#[from] PortError),
}

struct LmsCounter<'a> {
    lms: &'a dyn LmsEnrollments,
    conn: &'a LmsConnection,
}

#[async_trait::async_trait]
impl super::plan::Counter for LmsCounter<'_> {
    async fn count(&self, window: &Window) -> Result<u64, PortError> {
        self.lms.count_enrollments(self.conn, window).await
    }
}

/// Plan and start a backfill (SPEC §6.2): store the backfill, take the
/// tenant's active slot, count and split the window into shards, store them,
/// engage the kill switch, then send every shard to the backfill queue.
///
/// The backfill is stored before the slot names it, so a slot always names
/// a backfill that exists: another start reading the slot meanwhile sees it
/// running (were the slot taken first, it would find no backfill, take the
/// slot over, and two backfills of one tenant would run at once). A start
/// that loses the slot to a concurrent one ends its own backfill
/// `cancelled` and answers [`StartError::Running`].
#[allow(clippy::too_many_arguments)]
pub async fn start(
    p: &ControlPorts<'_>,
    tenant: &crate::tenant::Tenant,
    lms: &LmsConnection,
    session: &Session,
    org_id: Option<&str>,
    req: StartRequest,
    id: String,
    now: OffsetDateTime,
) -> Result<View, StartError> {
    // One backfill at a time per tenant.
    let active = p.store.active_backfill(&tenant.id).await?;
    let expected_active = match &active {
        Some((other, v)) => {
            match p.store.backfill(&tenant.id, other).await? {
                Some((b, _)) if !b.status.is_final() => return Err(StartError::Running(other.clone())),
                _ => {}
            }
            Some(*v)
        }
        None => None,
    };
    let settings = &tenant.backfill;
    let (coverage, _) = if req.only_changed { p.store.coverage(&tenant.id).await? } else { Default::default() };
    let (windows, skipped) = effective_windows(req.window, req.only_changed, &coverage);
    let mut b = Backfill {
        id: id.clone(),
        tenant: tenant.id.clone(),
        window: req.window,
        origin: req.origin,
        options: BackfillOptions {
            only_changed: req.only_changed,
            bulk_threshold: settings.bulk_threshold(),
            shard_size: settings.shard_size(),
        },
        status: BackfillStatus::Planning,
        kill_switch: if settings.kill_switch() { KillSwitch::Pending } else { KillSwitch::Off },
        expected: 0,
        shards: 0,
        skipped,
        budget: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
        paused_at: None,
        reason: None,
    };
    if !p.store.put_backfill(&b, None).await? {
        return Err(StartError::Running(id));
    }
    if !p.store.set_active_backfill(&tenant.id, Some(&id), expected_active).await? {
        // A concurrent start took the slot between our read and our write.
        let other = p.store.active_backfill(&tenant.id).await?.map(|(o, _)| o).unwrap_or_default();
        let reason = format!("another backfill of this tenant ({other}) started at the same time");
        update_backfill(p.store, &tenant.id, &id, |x| {
            x.status = BackfillStatus::Cancelled;
            x.kill_switch = KillSwitch::Off;
            x.reason = Some(reason.clone());
            x.finished_at = Some(now);
            x.updated_at = now;
            true
        })
        .await?;
        return Err(StartError::Running(other));
    }
    let fail = |reason: String| {
        let tenant_id = tenant.id.clone();
        let id = id.clone();
        async move {
            let _ = update_backfill(p.store, &tenant_id, &id, |b| {
                b.status = BackfillStatus::Failed;
                b.reason = Some(reason.clone());
                b.finished_at = Some(now);
                b.updated_at = now;
                true
            })
            .await;
            let _ = release_active(p.store, &tenant_id, &id).await;
        }
    };
    let counter = LmsCounter { lms: p.lms, conn: lms };
    let (pieces, counts) = match super::plan::plan(&counter, &windows, b.options.shard_size).await {
        Ok(x) => x,
        Err(e) => {
            fail(format!("planning failed: the LMS could not count the window ({})", e.chain())).await;
            return Err(StartError::Lms(e));
        }
    };
    let shards: Vec<Shard> =
        pieces.iter().enumerate().map(|(i, piece)| Shard::new(i as u32, piece.window, piece.count)).collect();
    if let Err(e) = p.store.put_new_shards(&tenant.id, &id, &shards).await {
        fail(format!("the plan could not be stored: {}", e.chain())).await;
        return Err(e.into());
    }
    b.expected = pieces.iter().map(|x| x.count).sum();
    b.shards = shards.len() as u32;
    tracing::info!(tenant = %tenant.id, backfill = %id, shards = b.shards, expected = b.expected, counts, "backfill planned");
    let (expected, n) = (b.expected, b.shards);
    // From here on an error must not leave the backfill `planning` with the
    // tenant's slot taken (no sweep would ever end it): it fails instead.
    if let Err(e) = update_backfill(p.store, &tenant.id, &id, |x| {
        x.expected = expected;
        x.shards = n;
        true
    })
    .await
    {
        fail(format!("the plan could not be stored: {}", e.chain())).await;
        return Err(e.into());
    }
    if shards.is_empty() {
        let done = update_backfill(p.store, &tenant.id, &id, |x| {
            x.status = BackfillStatus::Completed;
            x.kill_switch = if x.kill_switch == KillSwitch::Pending { KillSwitch::Off } else { x.kill_switch.clone() };
            x.reason = Some("nothing to write: the window holds no enrollments".into());
            x.finished_at = Some(now);
            x.updated_at = now;
            true
        })
        .await;
        match done {
            Ok(Some(done)) => finished(p.store, p.activity, &done, now).await?,
            Ok(None) => {}
            Err(e) => {
                fail(format!("the backfill could not be completed: {}", e.chain())).await;
                return Err(e.into());
            }
        }
        return view(p.store, &tenant.id, &id, false, now).await.map_err(control_port);
    }
    if b.kill_switch == KillSwitch::Pending
        && let Err(e) = engage_kill_switch(p.store, p.salesforce, session, org_id, &tenant.id, &id).await
    {
        fail(format!("the automation kill switch could not be engaged, so nothing was written: {e}")).await;
        // It may be half engaged (stored, the write failed): restore.
        let _ = restore_kill_switch(p.store, p.salesforce, session, org_id, &tenant.id, &id).await;
        return Err(StartError::KillSwitch(e));
    }
    if let Err(e) = update_backfill(p.store, &tenant.id, &id, |x| {
        if x.status != BackfillStatus::Planning {
            return false;
        }
        x.status = BackfillStatus::Running;
        x.updated_at = now;
        true
    })
    .await
    {
        // Failed with its kill switch engaged: the sweep restores it.
        fail(format!("the backfill could not be started: {}", e.chain())).await;
        return Err(e.into());
    }
    send_shards(p.shards_queue, &tenant.id, &id, shards.iter().map(|s| s.index)).await?;
    view(p.store, &tenant.id, &id, false, now).await.map_err(control_port)
}

fn control_port(e: ControlError) -> StartError {
    match e {
        ControlError::Port(p) => StartError::Port(p),
        other => StartError::Port(PortError::retryable(other.to_string())),
    }
}

/// Send shard messages; the shards stay pending in the store whatever
/// happens, so a failed send is sent again by the scheduler's sweep.
pub async fn send_shards(
    queue: &dyn JobQueue,
    tenant: &TenantId,
    id: &str,
    shards: impl Iterator<Item = u32>,
) -> Result<usize, PortError> {
    let jobs: Vec<crate::job::SyncJob> = shards
        .map(|shard| crate::job::SyncJob::BackfillShard { tenant: tenant.clone(), backfill_id: id.to_string(), shard })
        .collect();
    let mut sent = 0;
    let mut first_err = None;
    for r in queue.send(&jobs).await {
        match r {
            Ok(()) => sent += 1,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) if sent == 0 => Err(e),
        Some(e) => {
            tracing::warn!(%tenant, backfill = %id, sent, error = %e.chain(), "some shards were not enqueued; the sweep sends them again");
            Ok(sent)
        }
        None => Ok(sent),
    }
}

/// What the scheduler's sweep did to one backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepAction {
    Nothing,
    /// The budget has room again: running, its pending shards sent.
    Resumed {
        shards: usize,
    },
    /// Still no room in the budget.
    StillPaused,
    KillSwitchRestored,
    /// A running backfill with no progress for `STALE_AFTER`: its pending
    /// shards were sent again (a lost message, a failed send).
    Resent {
        shards: usize,
    },
    /// A running backfill whose every shard had ended but which was never
    /// finished (the last shard's worker could not store the final status):
    /// finished now — final status, coverage, run summary, slot freed,
    /// kill switch restored.
    Finished,
    /// A backfill still `planning` `PLANNING_STALLED_AFTER` after it was
    /// created (its start was cut short: a timeout, a store error it could
    /// not record): failed, the tenant's slot freed, so the next start (a
    /// relink gap's at the next sweep) can run.
    Abandoned,
}

/// A running backfill idle this long gets its pending shards sent again.
pub const STALE_AFTER: time::Duration = time::Duration::minutes(15);
/// Planning takes one backfill-fanout invocation (2 minutes at most): a
/// backfill still planning this long after its creation was cut short.
pub const PLANNING_STALLED_AFTER: time::Duration = time::Duration::minutes(10);

/// The scheduler's sweep of one backfill (SPEC §6.4, §6.6): restore an owed
/// kill switch, resume a paused backfill when the API budget has room
/// (usage that went down opens a new window), finish a running one whose
/// shards all ended, resend the pending shards of a stalled one, fail one
/// stuck in planning.
pub async fn sweep(
    p: &ControlPorts<'_>,
    b: &Backfill,
    session: &Session,
    org_id: Option<&str>,
    policy: BudgetPolicy,
    now: OffsetDateTime,
) -> Result<SweepAction, PortError> {
    if b.status.is_final() {
        if b.kill_switch.owes_restore() {
            return match restore_kill_switch(p.store, p.salesforce, session, org_id, &b.tenant, &b.id).await {
                Ok(true) => Ok(SweepAction::KillSwitchRestored),
                Ok(false) => Ok(SweepAction::Nothing),
                Err(e) => Err(PortError::retryable(format!("kill switch not restored: {e}"))),
            };
        }
        return Ok(SweepAction::Nothing);
    }
    match b.status {
        BackfillStatus::Paused => {
            let usage =
                p.salesforce.limits(session).await.map_err(|e| PortError::new(e.class(), e.to_string()))?.api_usage();
            let mut budget = b.budget.unwrap_or_else(|| ApiBudget::new(policy, usage));
            budget.observe(usage);
            if !budget.allows(BULK_GROUP_CALLS) {
                return Ok(SweepAction::StillPaused);
            }
            let resumed = update_backfill(p.store, &b.tenant, &b.id, |x| {
                if x.status != BackfillStatus::Paused {
                    return false;
                }
                x.status = BackfillStatus::Running;
                x.budget = Some(budget);
                x.reason = None;
                x.paused_at = None;
                x.updated_at = now;
                true
            })
            .await?;
            if resumed.is_none() {
                return Ok(SweepAction::Nothing);
            }
            let pending = pending_shards(p.store, b).await?;
            let n = send_shards(p.shards_queue, &b.tenant, &b.id, pending.into_iter()).await?;
            tracing::info!(tenant = %b.tenant, backfill = %b.id, shards = n, "backfill resumed in a new API window");
            Ok(SweepAction::Resumed { shards: n })
        }
        BackfillStatus::Planning if now - b.created_at > PLANNING_STALLED_AFTER => {
            let failed = update_backfill(p.store, &b.tenant, &b.id, |x| {
                if x.status != BackfillStatus::Planning {
                    return false;
                }
                x.status = BackfillStatus::Failed;
                if x.kill_switch == KillSwitch::Pending {
                    x.kill_switch = KillSwitch::Off;
                }
                x.reason = Some("its planning was cut short (a timeout or a store error); start it again".into());
                x.finished_at = Some(now);
                x.updated_at = now;
                true
            })
            .await?;
            if failed.is_none() {
                return Ok(SweepAction::Nothing);
            }
            release_active(p.store, &b.tenant, &b.id).await?;
            tracing::warn!(tenant = %b.tenant, backfill = %b.id, "a backfill stuck in planning was failed; its tenant can start another");
            Ok(SweepAction::Abandoned)
        }
        BackfillStatus::Running => {
            let shards = p.store.shards(&b.tenant, &b.id).await?;
            if !shards.is_empty() && shards.iter().all(|s| s.status != ShardStatus::Pending) {
                return finish_ended(p, b, &shards, session, org_id, now).await;
            }
            if now - b.updated_at <= STALE_AFTER {
                return Ok(SweepAction::Nothing);
            }
            let last = shards.iter().filter_map(|s| s.finished_at).max().unwrap_or(b.updated_at).max(b.updated_at);
            if now - last <= STALE_AFTER {
                return Ok(SweepAction::Nothing);
            }
            let pending: Vec<u32> =
                shards.iter().filter(|s| s.status == ShardStatus::Pending).map(|s| s.index).collect();
            if pending.is_empty() {
                return Ok(SweepAction::Nothing);
            }
            update_backfill(p.store, &b.tenant, &b.id, |x| {
                x.updated_at = now;
                true
            })
            .await?;
            let n = send_shards(p.shards_queue, &b.tenant, &b.id, pending.into_iter()).await?;
            Ok(SweepAction::Resent { shards: n })
        }
        _ => Ok(SweepAction::Nothing),
    }
}

/// The sweep's finish of a running backfill whose shards all ended: what
/// [`finish`] does for the worker of the last shard, when that worker's
/// writes failed (its message was acknowledged: nothing else would ever end
/// the backfill, and its kill switch would stay engaged).
async fn finish_ended(
    p: &ControlPorts<'_>,
    b: &Backfill,
    shards: &[Shard],
    session: &Session,
    org_id: Option<&str>,
    now: OffsetDateTime,
) -> Result<SweepAction, PortError> {
    let failed = shards.iter().find(|s| s.status != ShardStatus::Done);
    let (status, reason) = match failed {
        Some(s) => (
            BackfillStatus::Failed,
            Some(format!("shard {} {}", s.index, s.error.as_deref().unwrap_or("did not complete"))),
        ),
        None => (BackfillStatus::Completed, None),
    };
    let ports = Finishing { store: p.store, salesforce: p.salesforce, activity: p.activity, session, org_id };
    let Some(done) = make_final(&ports, b, status, reason, now).await? else {
        return Ok(SweepAction::Nothing);
    };
    tracing::warn!(tenant = %b.tenant, backfill = %b.id, status = done.status.as_str(), "a backfill whose shards had all ended is finished by the sweep");
    Ok(SweepAction::Finished)
}

async fn pending_shards(store: &dyn BackfillStore, b: &Backfill) -> Result<Vec<u32>, PortError> {
    Ok(store
        .shards(&b.tenant, &b.id)
        .await?
        .into_iter()
        .filter(|s| s.status == ShardStatus::Pending)
        .map(|s| s.index)
        .collect())
}
