//! sync-worker (SPEC §4.4, §4.5): consumes the sync queue. A batch of job
//! messages becomes, per tenant, a plan of Composite calls (sObject
//! Collections upserts by external id, up to 1,000 records per call); each
//! record's outcome settles the messages that carried it. Only messages whose
//! failure is retryable or throttled are returned as batch item failures, so
//! SQS redelivers them (and moves them to the DLQ after maxReceiveCount);
//! everything else is acknowledged.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use learnlink_core::activity::{ActivityEntry, Direction, Outcome, RunSummary};
use learnlink_core::connection::{Links, TokenProvider};
use learnlink_core::fill;
use learnlink_core::job::{self, SyncJob};
use learnlink_core::matching::{ContactWrite, Decision};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{
    ActivityLog, Applied, AppliedStore, ConnectionStore, LearnerLink, LinkState, LinkStore, LmsApi, ParkStore,
    ReviewItem, ReviewStore, SalesforceApi, SecretStore, TenantStore,
};
use learnlink_core::salesforce::{RecordOutcome, SalesforceError};
use learnlink_core::sync::{self, CompositeCall, PlannedRecord};
use learnlink_core::tenant::SecretNames;
use learnlink_core::webhook::{EventPayload, LmsEvent};
use learnlink_core::write_lock;
use learnlink_core::{Classify, ErrorClass};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

pub mod backfill;
pub mod contacts;
pub mod import;

pub struct Deps {
    pub tenants: Arc<dyn TenantStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub salesforce: Arc<dyn SalesforceApi>,
    pub activity: Arc<dyn ActivityLog>,
    pub connections: Arc<dyn ConnectionStore>,
    pub parking: Arc<dyn ParkStore>,
    pub names: SecretNames,
    /// This instance's token cache and lease identity.
    pub tokens: TokenProvider,
    /// The LMS API (learners, departments).
    pub lms: Arc<dyn LmsApi>,
    /// What learnlink remembers of learners' Contacts.
    pub links: Arc<dyn LinkStore>,
    /// The version of each record last written (SPEC §4.2).
    pub applied: Arc<dyn AppliedStore>,
    /// Ambiguous learners and their held records.
    pub review: Arc<dyn ReviewStore>,
    /// Per-instance caches (department trees).
    pub caches: contacts::Caches,
    /// The sync queue's maxReceiveCount: a message failing its last
    /// delivery is logged as a dead letter.
    pub max_receive_count: u32,
    /// Imports (SPEC §5): the LMS's write side, the HRIS, the import state,
    /// and the sync queue the next page goes to.
    pub lms_writer: Arc<dyn learnlink_core::ports::LmsWriter>,
    pub hris: Arc<dyn learnlink_core::ports::HrisApi>,
    pub imports: Arc<dyn learnlink_core::ports::ImportStore>,
    pub queue: Arc<dyn learnlink_core::ports::JobQueue>,
    /// Backfills (SPEC §6): plans and shards, and the LMS's windows.
    pub backfills: Arc<dyn learnlink_core::ports::BackfillStore>,
    pub lms_enrollments: Arc<dyn learnlink_core::ports::LmsEnrollments>,
}

impl Deps {
    fn connection_links(&self) -> Links<'_> {
        learnlink_adapters::links(
            self.secrets.as_ref(),
            self.salesforce.as_ref(),
            self.connections.as_ref(),
            &self.names,
        )
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageOutcome {
    Done,
    /// Acknowledged although a record failed permanently (logged).
    Rejected {
        code: String,
        message: String,
    },
    /// Returned to the queue.
    Failed {
        class: ErrorClass,
        reason: String,
    },
    /// Handed back unprocessed, visible at once, so that the next batch's
    /// calls go out full (`fill::defer_to_fill`).
    Deferred,
}

impl MessageOutcome {
    fn merge(&mut self, other: MessageOutcome) {
        use MessageOutcome::*;
        let replace = match (&*self, &other) {
            (Deferred, _) | (_, Deferred) => false,
            (Failed { class: a, .. }, Failed { class: b, .. }) => a.worst(*b) != *a,
            (Failed { .. }, _) => false,
            (_, Failed { .. }) => true,
            (Done, Rejected { .. }) => true,
            _ => false,
        };
        if replace {
            *self = other;
        }
    }
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let ids: Vec<String> = event.records.iter().map(|r| r.message_id.clone().unwrap_or_default()).collect();
    let outcomes = process(deps, &event).await;
    let mut resp = SqsBatchResponse::default();
    for (id, outcome) in ids.iter().zip(outcomes) {
        if let MessageOutcome::Failed { .. } | MessageOutcome::Deferred = outcome {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id.clone();
            resp.batch_item_failures.push(f);
        }
    }
    resp
}

/// One outcome per record of the event, in order.
pub async fn process(deps: &Deps, event: &SqsEvent) -> Vec<MessageOutcome> {
    let mut outcomes: Vec<MessageOutcome> = vec![MessageOutcome::Done; event.records.len()];
    // Decode; poison messages fail (and reach the DLQ after maxReceiveCount).
    // A message carries one event or a whole delivery: each event is an item
    // of its own, and a message's outcome is the worst of its items'.
    let mut by_tenant: BTreeMap<TenantId, Vec<Item>> = BTreeMap::new();
    // The message of each item, by item number.
    let mut message_of: Vec<usize> = Vec::new();
    // Backfill shards, grouped by backfill (one Bulk group per backfill).
    let mut shard_groups: BTreeMap<(TenantId, String), Vec<backfill::ShardMessage>> = BTreeMap::new();
    for (i, rec) in event.records.iter().enumerate() {
        let id = rec.message_id.as_deref().unwrap_or("?");
        let receive_count = rec.attributes.get("ApproximateReceiveCount").map(String::as_str).unwrap_or("?");
        match job::decode(rec.body.as_deref().unwrap_or("")) {
            Ok(job) => {
                let (tenant, source, events) = match job {
                    SyncJob::LmsEvent { tenant, source, event } => (tenant, source, vec![event]),
                    SyncJob::LmsEvents { tenant, source, events } => (tenant, source, events),
                    SyncJob::ImportPage { tenant, run_id, page, dry_run, step } => {
                        let job = import::PageJob { tenant: &tenant, run_id: &run_id, page, dry_run, step: &step };
                        outcomes[i] = import::handle_page(deps, &job).await;
                        let count: u32 = receive_count.parse().unwrap_or(0);
                        if let MessageOutcome::Failed { reason, .. } = &outcomes[i]
                            && count >= deps.max_receive_count
                        {
                            import::dead_letter(deps, &job, reason, count).await;
                        }
                        continue;
                    }
                    SyncJob::BackfillShard { tenant, backfill_id, shard } => {
                        let receive_count = receive_count.parse().unwrap_or(0);
                        shard_groups.entry((tenant, backfill_id)).or_default().push(backfill::ShardMessage {
                            message: i,
                            shard,
                            receive_count,
                        });
                        continue;
                    }
                };
                let items = by_tenant.entry(tenant).or_default();
                for event in events {
                    items.push(Item { index: message_of.len(), message: i, event, source: source.clone() });
                    message_of.push(i);
                }
            }
            Err(e) => {
                tracing::error!(message_id = id, receive_count, error = %e, "poison message: it cannot be decoded and stays for the DLQ");
                outcomes[i] = MessageOutcome::Failed { class: ErrorClass::Permanent, reason: e.to_string() };
            }
        }
    }
    for ((tenant, backfill_id), msgs) in shard_groups {
        for (m, o) in backfill::handle_shards(deps, &tenant, &backfill_id, &msgs).await {
            outcomes[m] = o;
        }
    }
    for (tenant, items) in by_tenant.iter_mut() {
        let deferred = defer_to_fill(deps, event, tenant, items, &mut outcomes).await;
        if !deferred.is_empty() {
            items.retain(|it| !deferred.contains(&it.message));
        }
    }
    for (tenant, items) in by_tenant {
        if items.is_empty() {
            continue;
        }
        for (i, o) in sync_tenant(deps, &tenant, &items).await {
            if let Some(&m) = message_of.get(i) {
                outcomes[m].merge(o);
            }
        }
        dead_letters(deps, &tenant, event, &items, &outcomes).await;
    }
    outcomes
}

/// Under a busy stream, hand back (visible at once) the first deliveries
/// that would only half fill a last Composite call: the next batch writes
/// them in full calls (`fill::defer_to_fill`). Returns the messages handed
/// back; one SQS refuses to release is written now instead.
async fn defer_to_fill(
    deps: &Deps,
    event: &SqsEvent,
    tenant: &TenantId,
    items: &[Item],
    outcomes: &mut [MessageOutcome],
) -> HashSet<usize> {
    // Records per message, in message order.
    let mut per_message: BTreeMap<usize, usize> = BTreeMap::new();
    for it in items {
        *per_message.entry(it.message).or_default() += 1;
    }
    let messages: Vec<usize> = per_message.keys().copied().collect();
    let loads: Vec<fill::Load> = per_message
        .iter()
        .map(|(&m, &records)| fill::Load {
            records,
            first_delivery: event
                .records
                .get(m)
                .and_then(|r| r.attributes.get("ApproximateReceiveCount"))
                .map(String::as_str)
                == Some("1"),
        })
        .collect();
    let chosen: Vec<usize> =
        messages.iter().zip(fill::defer_to_fill(&loads)).filter(|(_, d)| *d).map(|(m, _)| *m).collect();
    let handles: Vec<(usize, String)> = chosen
        .iter()
        .filter_map(|&m| event.records.get(m).and_then(|r| r.receipt_handle.clone()).map(|h| (m, h)))
        .collect();
    if handles.is_empty() {
        return HashSet::new();
    }
    let receipts: Vec<String> = handles.iter().map(|(_, h)| h.clone()).collect();
    let mut deferred = HashSet::new();
    let mut refused = 0usize;
    for ((m, _), res) in handles.iter().zip(deps.queue.release(&receipts).await) {
        match res {
            Ok(()) => {
                outcomes[*m] = MessageOutcome::Deferred;
                deferred.insert(*m);
            }
            Err(e) => {
                refused += 1;
                tracing::debug!(tenant = %tenant, error = %e.chain(), "a message could not be handed back; it is written now");
            }
        }
    }
    let records: usize = deferred.iter().map(|m| per_message.get(m).copied().unwrap_or(0)).sum();
    tracing::info!(tenant = %tenant, messages = deferred.len(), records, refused, "handed back to fill the next batch's calls");
    deferred
}

/// Messages failing their last delivery go to the DLQ now: say so in the
/// activity log (SPEC §7), with the reason, so `learnlink logs` shows them
/// and `learnlink dlq replay` can bring them back.
async fn dead_letters(deps: &Deps, tenant: &TenantId, event: &SqsEvent, items: &[Item], outcomes: &[MessageOutcome]) {
    let mut entries = Vec::new();
    for it in items {
        let (Some(rec), Some(MessageOutcome::Failed { reason, .. })) =
            (event.records.get(it.message), outcomes.get(it.message))
        else {
            continue;
        };
        let count: u32 = rec.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(0);
        if count < deps.max_receive_count {
            continue;
        }
        tracing::error!(tenant = %tenant, message_id = rec.message_id.as_deref().unwrap_or("?"), receive_count = count,
            reason = %reason, "last delivery failed: the message moves to the dead-letter queue");
        entries.push(ActivityEntry {
            at: time::OffsetDateTime::now_utc(),
            job: "webhook:dead-letter".into(),
            direction: Direction::LmsToSalesforce,
            object: sync::event_record_object(&it.event).to_string(),
            lms_id: it.event.record_key().1.to_string(),
            learner_id: Some(learner_of(&it.event).to_string()),
            salesforce_id: None,
            outcome: Outcome::Failed,
            reason: Some("dead_letter".into()),
            message: Some(format!("{reason} (after {count} deliveries; replay with `learnlink dlq replay {tenant}`)")),
        });
    }
    if !entries.is_empty()
        && let Err(e) = deps.activity.record(tenant, &entries).await
    {
        tracing::error!(tenant = %tenant, error = %e.chain(), "could not write the activity log");
    }
}

/// One event of a batch.
struct Item {
    /// The item's number in the batch (what outcomes are settled on).
    index: usize,
    /// The index of the message that carried it.
    message: usize,
    event: LmsEvent,
    source: String,
}

impl Item {
    /// The parking key (source and event id): parking twice keeps one job.
    fn key(&self) -> String {
        format!("{}#{}", self.source, self.event.id)
    }

    /// The event alone as a job, parked or held until it can be replayed.
    fn job(&self, tenant: &TenantId) -> String {
        job::encode(&SyncJob::LmsEvent {
            tenant: tenant.clone(),
            source: self.source.clone(),
            event: self.event.clone(),
        })
    }
}

/// Keep a tenant's messages while it cannot be written to (not connected,
/// disconnected, paused); they are acknowledged once parked and replayed on
/// relink or resume.
async fn park(deps: &Deps, tenant: &TenantId, items: &[Item], why: &str) -> Vec<(usize, MessageOutcome)> {
    let jobs: Vec<(String, String)> = items.iter().map(|it| (it.key(), it.job(tenant))).collect();
    match deps.parking.park(tenant, &jobs).await {
        Ok(()) => {
            tracing::info!(tenant = %tenant, messages = items.len(), reason = why, "messages parked");
            items.iter().map(|it| (it.index, MessageOutcome::Done)).collect()
        }
        Err(e) => {
            tracing::error!(tenant = %tenant, error = %e.chain(), "could not park messages; they return to the queue");
            items.iter().map(|it| (it.index, MessageOutcome::Failed { class: e.class, reason: e.chain() })).collect()
        }
    }
}

/// The work of one batch for one tenant, accumulated as it goes.
struct Batch<'a> {
    tenant: &'a TenantId,
    run_id: String,
    out: Vec<(usize, MessageOutcome)>,
    entries: Vec<ActivityEntry>,
}

impl Batch<'_> {
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        object: &str,
        lms_id: &str,
        learner_id: Option<&str>,
        salesforce_id: Option<String>,
        outcome: Outcome,
        reason: Option<&str>,
        message: Option<String>,
    ) {
        self.entries.push(ActivityEntry {
            at: time::OffsetDateTime::now_utc(),
            job: format!("webhook:{}", self.run_id),
            direction: Direction::LmsToSalesforce,
            object: object.to_string(),
            lms_id: lms_id.to_string(),
            learner_id: learner_id.map(str::to_string),
            salesforce_id,
            outcome,
            reason: reason.map(str::to_string),
            message,
        });
    }

    fn settle(&mut self, items: &[usize], o: MessageOutcome) {
        self.out.extend(items.iter().map(|&i| (i, o.clone())));
    }

    fn fail(&mut self, items: &[usize], class: ErrorClass, reason: &str) {
        self.settle(items, MessageOutcome::Failed { class, reason: reason.to_string() });
    }
}

fn learner_of(ev: &LmsEvent) -> &str {
    match &ev.payload {
        EventPayload::Enrollment(e) => &e.learner_id,
        EventPayload::Certification(c) => &c.learner_id,
    }
}

fn applied_key(ev: &LmsEvent) -> String {
    let (kind, id) = ev.record_key();
    sync::applied_key(kind, id)
}

/// The work item of a Contact write no message of the batch depends on.
const NO_MESSAGE: usize = usize::MAX;

/// A tenant's event batch, holding the tenant's write lease from reading
/// the applied versions until they are marked (`write_lock`): two batches
/// with two versions of one record never interleave.
async fn sync_tenant(deps: &Deps, tenant_id: &TenantId, items: &[Item]) -> Vec<(usize, MessageOutcome)> {
    let holder = uuid::Uuid::new_v4().simple().to_string();
    let now = time::OffsetDateTime::now_utc;
    let waiting = std::time::Instant::now();
    // The tenant is read while the lease is awaited: it decides nothing the
    // lease guards (records, markers, links are all read under it).
    let (lock, tenant) = tokio::join!(
        write_lock::acquire(
            // The connection store holds the tenant's leases (`TenantLease`).
            deps.connections.as_ref(),
            &learnlink_adapters::TokioSleeper,
            tenant_id,
            &holder,
            &now,
            write_lock::WAIT,
        ),
        deps.tenants.get_tenant(tenant_id)
    );
    let lock = match lock {
        Ok(l) => l,
        Err(e) => return return_all(tenant_id, items, e.class(), learnlink_core::error::error_chain(&e)),
    };
    let lease_wait_ms = waiting.elapsed().as_millis() as u64;
    let mut lock = Some(lock);
    let out = sync_tenant_locked(deps, tenant_id, tenant, items, &mut lock, lease_wait_ms).await;
    if let Some(l) = lock {
        l.release().await;
    }
    out
}

/// One tenant's batch under its write lease. The lease is given up (taken
/// out of `lock`) as soon as the applied versions and links are written;
/// the caller gives it up on every earlier return.
async fn sync_tenant_locked(
    deps: &Deps,
    tenant_id: &TenantId,
    tenant: Result<Option<learnlink_core::tenant::Tenant>, learnlink_core::error::PortError>,
    items: &[Item],
    lock: &mut Option<write_lock::WriteLock<'_>>,
    lease_wait_ms: u64,
) -> Vec<(usize, MessageOutcome)> {
    let fail_all = |class: ErrorClass, reason: String| return_all(tenant_id, items, class, reason);
    let tenant = match tenant {
        Ok(Some(t)) => t,
        Ok(None) => return fail_all(ErrorClass::Permanent, format!("unknown tenant {tenant_id}")),
        Err(e) => return fail_all(e.class, e.chain()),
    };
    if tenant.paused {
        return park(deps, tenant_id, items, "paused by an admin").await;
    }
    let links = deps.connection_links();
    let mut tokens = match deps.tokens.session(&links, &tenant).await {
        Ok(t) => t,
        Err(e) if e.parks_work() => return park(deps, tenant_id, items, &e.to_string()).await,
        Err(e) => return fail_all(e.class(), learnlink_core::error::error_chain(&e)),
    };
    let started = time::OffsetDateTime::now_utc();
    let mut b = Batch {
        tenant: tenant_id,
        run_id: uuid::Uuid::new_v4().simple().to_string(),
        out: Vec::new(),
        entries: Vec::new(),
    };

    // §4.2: the newest event per record, then skip what is older than what was applied.
    let collapsed = sync::collapse(items.iter().map(|it| (it.index, &it.event)));
    let keys: Vec<String> = collapsed.iter().map(|(ev, _)| applied_key(ev)).collect();
    // Every learner of the batch is resolved, even one whose records are all
    // stale: a deactivation must unlink its Contact whatever the record says.
    let batch_learners = contacts::unique(collapsed.iter().map(|(ev, _)| learner_of(ev)));
    // The applied versions and the learners are read side by side (§4.3:
    // with an LMS to read them from).
    let resolve = tenant.lms_base_url.is_some() && !batch_learners.is_empty();
    let session = tokens.session();
    let (applied, first_resolution) = tokio::join!(deps.applied.applied(tenant_id, &keys), async {
        if resolve { Some(contacts::resolve(deps, &tenant, &session, &batch_learners).await) } else { None }
    });
    let applied = match applied {
        Ok(a) => a,
        Err(e) => return fail_all(e.class, e.chain()),
    };
    let mut live: Vec<(&LmsEvent, Vec<usize>)> = Vec::new();
    for ((ev, its), key) in collapsed.into_iter().zip(&keys) {
        let (object, lms_id) = (sync::event_record_object(ev), ev.record_key().1);
        match applied.get(key) {
            Some(a) if ev.updated_at() < a.updated_at => {
                b.entry(
                    object,
                    lms_id,
                    Some(learner_of(ev)),
                    None,
                    Outcome::Skipped,
                    Some("stale"),
                    Some(format!(
                        "LMS updated_at {} is older than the version already written ({})",
                        learnlink_core::model::salesforce_datetime(ev.updated_at()),
                        learnlink_core::model::salesforce_datetime(a.updated_at)
                    )),
                );
                b.settle(&its, MessageOutcome::Done);
            }
            Some(a) if ev.updated_at() == a.updated_at => {
                // The same version again: a redelivery of the applied event is
                // silent; another event carrying it is logged once.
                if a.event_id != ev.id {
                    b.entry(
                        object,
                        lms_id,
                        Some(learner_of(ev)),
                        None,
                        Outcome::Skipped,
                        Some("unchanged"),
                        Some("this version was written already".into()),
                    );
                }
                b.settle(&its, MessageOutcome::Done);
            }
            _ => live.push((ev, its)),
        }
    }

    // §4.3: learners → Contacts.
    let mut resolved = None;
    if let Some(mut r) = first_resolution {
        let ids = batch_learners;
        if matches!(&r, Err(e) if e.session_expired) {
            match deps.tokens.refreshed(&links, &tenant, &tokens, time::OffsetDateTime::now_utc).await {
                Ok(t) => {
                    tokens = t;
                    r = contacts::resolve(deps, &tenant, &tokens.session(), &ids).await;
                }
                Err(e) if e.parks_work() => return park(deps, tenant_id, items, &e.to_string()).await,
                Err(e) => return fail_all(e.class(), learnlink_core::error::error_chain(&e)),
            }
        }
        match r {
            Ok(r) => {
                tracing::info!(tenant = %tenant_id, learners = ids.len(), queries = r.queries, "learners resolved");
                resolved = Some(r);
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant_id, class = %e.class, reason = %e.reason, "learner resolution failed; the records return to the queue");
                for (_, its) in &live {
                    b.fail(its, e.class, &e.reason);
                }
                live.clear();
            }
        }
    }

    // Plan: Contact writes first, then the records that refer to them.
    let mut records: Vec<PlannedRecord> = Vec::new();
    let mut learner_items: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut to_hold: HashMap<&str, Vec<usize>> = HashMap::new();
    for (ev, its) in &live {
        let learner = learner_of(ev);
        let (object, lms_id) = (sync::event_record_object(ev), ev.record_key().1);
        let Some(r) = &resolved else {
            records.push(PlannedRecord { record: sync::event_record(ev), items: its.clone() });
            continue;
        };
        if let Some((class, reason)) = r.failed.get(learner) {
            b.fail(its, *class, reason);
            continue;
        }
        learner_items.entry(learner).or_default().extend(its);
        match r.decisions.get(learner) {
            Some(Decision::Sync { .. }) => {
                records.push(PlannedRecord { record: sync::event_record(ev), items: its.clone() });
            }
            Some(Decision::Skip { reason, message }) => {
                b.entry(object, lms_id, Some(learner), None, Outcome::Skipped, Some(reason), Some(message.clone()));
                b.settle(its, MessageOutcome::Done);
            }
            Some(Decision::Unlink { .. }) => {
                b.entry(
                    object,
                    lms_id,
                    Some(learner),
                    None,
                    Outcome::Skipped,
                    Some("learner_inactive"),
                    Some("the learner is deactivated in the LMS".into()),
                );
                b.settle(its, MessageOutcome::Done);
            }
            Some(Decision::Review { .. }) => {
                to_hold.entry(learner).or_default().extend(its);
                b.entry(
                    object,
                    lms_id,
                    Some(learner),
                    None,
                    Outcome::Ambiguous,
                    Some("ambiguous"),
                    Some("several Contacts match this learner: held in the review queue".into()),
                );
            }
            None => b.fail(its, ErrorClass::Retryable, "the learner was not resolved"),
        }
    }
    // Hold ambiguous learners' records in the review queue.
    if let Some(r) = &resolved {
        for (learner, its) in &to_hold {
            let Some(Decision::Review { value, candidates }) = r.decisions.get(*learner) else { continue };
            let now = time::OffsetDateTime::now_utc();
            let item = ReviewItem {
                learner_id: learner.to_string(),
                email: r.learners.get(*learner).map(|l| l.email.clone()).unwrap_or_default(),
                matching_field: tenant.sync.matching_field().to_string(),
                match_value: value.clone(),
                candidates: candidates.clone(),
                first_seen: now,
                last_seen: now,
                held: its.len() as u64,
            };
            let jobs: Vec<(String, String)> =
                items.iter().filter(|it| its.contains(&it.index)).map(|it| (it.key(), it.job(tenant_id))).collect();
            match deps.review.hold(tenant_id, &item, &jobs).await {
                Ok(()) => {
                    tracing::info!(tenant = %tenant_id, learner = %learner, candidates = candidates.len(), records = jobs.len(), "ambiguous learner held for review");
                    b.settle(its, MessageOutcome::Done);
                }
                Err(e) => b.fail(its, e.class, &e.chain()),
            }
        }
    }
    let mut contact_writes: HashMap<String, (String, ContactWrite)> = HashMap::new();
    let mut planned: Vec<PlannedRecord> = Vec::new();
    if let Some(r) = &resolved {
        let mut learners: Vec<&String> = r.decisions.keys().collect();
        learners.sort();
        for l in learners {
            let write = match r.decisions.get(l) {
                Some(Decision::Sync { contact_write: Some(w), .. }) => w.clone(),
                Some(Decision::Unlink { contact_id: Some(c) }) => ContactWrite::Unlink { contact_id: c.clone() },
                _ => continue,
            };
            let Some(learner) = r.learners.get(l) else { continue };
            let record = sync::contact_record(&write, learner);
            contact_writes.insert(record.external_id.clone(), (l.clone(), write));
            // A Contact write settles the learner's messages; with none live
            // in this batch it still gets an outcome (under NO_MESSAGE).
            let its = learner_items.get(l.as_str()).cloned().filter(|v| !v.is_empty()).unwrap_or(vec![NO_MESSAGE]);
            planned.push(PlannedRecord { record, items: its });
        }
    }
    planned.extend(records);
    let calls: Vec<CompositeCall> = sync::plan_records(planned);
    // Nothing is written unless this batch still holds the write lease.
    if !calls.is_empty()
        && let Some(l) = lock.as_mut()
        && let Err(e) = l.keep(time::OffsetDateTime::now_utc()).await
    {
        return fail_all(e.class(), learnlink_core::error::error_chain(&e));
    }
    let prepare_ms = since(started);
    let results = match execute(deps, &tenant, &links, &mut tokens, &calls).await {
        Ok(r) => r,
        Err(Parked(why)) => return park(deps, tenant_id, items, &why).await,
    };
    let salesforce_ms = since(started) - prepare_ms;

    // Settle every record's outcome onto its messages.
    let events: HashMap<(&str, &str), &LmsEvent> =
        live.iter().map(|(ev, _)| ((sync::event_record_object(ev), ev.record_key().1), *ev)).collect();
    let mut marks = Vec::new();
    // The items whose record versions are marked.
    let mut marked: HashSet<usize> = HashSet::new();
    let mut new_links: Vec<LearnerLink> = Vec::new();
    let mut forget: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for s in sync::settle(&calls, results) {
        let first = seen.insert((s.sobject, s.external_id.clone()));
        if s.sobject == sync::CONTACT_OBJECT {
            let Some((learner, write)) = contact_writes.get(&s.external_id) else { continue };
            let o = match &s.outcome {
                RecordOutcome::Created { id } | RecordOutcome::Updated { id } => {
                    if first {
                        let (outcome, reason, link) = contact_outcome(write, id, learner);
                        b.entry("Contact", learner, Some(learner), Some(id.clone()), outcome, reason, None);
                        new_links.push(link);
                    }
                    MessageOutcome::Done
                }
                RecordOutcome::Failed(f) => {
                    if first {
                        tracing::warn!(tenant = %tenant_id, learner = %learner, class = %f.class, code = %f.code, message = %f.message, "Contact write failed");
                        if !f.class.redeliver() {
                            b.entry(
                                "Contact",
                                learner,
                                Some(learner),
                                None,
                                Outcome::Failed,
                                Some(&f.code),
                                Some(f.message.clone()),
                            );
                        }
                    }
                    // The learner's records fail with it (they refer to this Contact).
                    MessageOutcome::Failed {
                        class: f.class.worst(ErrorClass::Retryable),
                        reason: format!("Contact {}: {}", f.code, f.message),
                    }
                }
            };
            if s.item != NO_MESSAGE {
                b.out.push((s.item, o));
            }
            continue;
        }
        let ev = events.get(&(s.sobject, s.external_id.as_str())).copied();
        let learner = ev.map(learner_of);
        let o = match &s.outcome {
            RecordOutcome::Created { id } | RecordOutcome::Updated { id } => {
                let created = matches!(s.outcome, RecordOutcome::Created { .. });
                if first {
                    tracing::info!(tenant = %tenant_id, object = s.sobject, lms_id = %s.external_id, salesforce_id = %id,
                        outcome = if created { "created" } else { "updated" }, "record synced");
                    b.entry(
                        s.sobject,
                        &s.external_id,
                        learner,
                        Some(id.clone()),
                        if created { Outcome::Created } else { Outcome::Updated },
                        None,
                        None,
                    );
                    if let Some(ev) = ev {
                        marks.push((applied_key(ev), Applied { updated_at: ev.updated_at(), event_id: ev.id.clone() }));
                        marked.insert(s.item);
                    }
                    // A Contact found linked by the query is remembered.
                    if let (Some(r), Some(l)) = (&resolved, learner)
                        && let Some(Decision::Sync { contact_id: Some(c), contact_write: None }) = r.decisions.get(l)
                        && r.links.get(l).is_none_or(|k| k.state != LinkState::Linked || &k.contact_id != c)
                    {
                        new_links.push(LearnerLink {
                            learner_id: l.to_string(),
                            contact_id: c.clone(),
                            account_id: None,
                            state: LinkState::Linked,
                            at: time::OffsetDateTime::now_utc(),
                        });
                    }
                }
                MessageOutcome::Done
            }
            // No Contact carries the learner id (deleted or relinked in
            // Salesforce meanwhile): forget the link and resolve again.
            RecordOutcome::Failed(f) if resolved.is_some() && sync::is_missing_contact(f) => {
                if first {
                    tracing::warn!(tenant = %tenant_id, object = s.sobject, lms_id = %s.external_id, learner = ?learner,
                        "no Contact carries the learner id; the learner is resolved again on redelivery");
                    if let Some(l) = learner {
                        forget.push(l.to_string());
                    }
                }
                MessageOutcome::Failed { class: ErrorClass::Retryable, reason: format!("{}: {}", f.code, f.message) }
            }
            RecordOutcome::Failed(f) if f.class.redeliver() => {
                tracing::warn!(tenant = %tenant_id, object = s.sobject, lms_id = %s.external_id, class = %f.class,
                    code = %f.code, message = %f.message, "record failed; message returned for retry");
                MessageOutcome::Failed { class: f.class, reason: format!("{}: {}", f.code, f.message) }
            }
            RecordOutcome::Failed(f) => {
                if first {
                    tracing::warn!(tenant = %tenant_id, object = s.sobject, lms_id = %s.external_id, class = %f.class,
                        code = %f.code, message = %f.message, outcome = "failed", "record rejected by Salesforce");
                    b.entry(
                        s.sobject,
                        &s.external_id,
                        learner,
                        None,
                        Outcome::Failed,
                        Some(&f.code),
                        Some(f.message.clone()),
                    );
                }
                MessageOutcome::Rejected { code: f.code.clone(), message: f.message.clone() }
            }
        };
        b.out.push((s.item, o));
    }
    forget.sort();
    forget.dedup();
    // Links, applied versions and the activity log are independent: written
    // side by side (links in order: remembered, then forgotten).
    let link_memory = async {
        if !new_links.is_empty()
            && let Err(e) = deps.links.put_links(tenant_id, &new_links).await
        {
            // Only memory: the next batch looks the learners up again.
            tracing::warn!(tenant = %tenant_id, error = %e.chain(), "could not remember learner links");
        }
        if !forget.is_empty()
            && let Err(e) = deps.links.forget_links(tenant_id, &forget).await
        {
            tracing::warn!(tenant = %tenant_id, error = %e.chain(), "could not forget stale learner links");
        }
    };
    let mark = async {
        if marks.is_empty() {
            return Ok(());
        }
        deps.applied.mark_applied(tenant_id, &marks).await
    };
    let ((), marked_ok) = tokio::join!(link_memory, mark);
    // The next batch may write now; the activity log guards no ordering.
    if let Some(l) = lock.take() {
        l.release().await;
    }
    let locked_ms = since(started);
    record_activity(deps, b.tenant, &b.run_id, started, &b.entries).await;
    tracing::info!(tenant = %tenant_id, records = calls.iter().map(CompositeCall::record_count).sum::<usize>(), calls = calls.len(),
        lease_wait_ms, prepare_ms, salesforce_ms, locked_ms, total_ms = since(started), "batch timings");
    if let Err(e) = marked_ok {
        // The records are written but, unmarked, a late older event could
        // overwrite them: their messages come back, are written again
        // (idempotent) and marked.
        tracing::error!(tenant = %tenant_id, error = %e.chain(), records = marks.len(), "could not record applied versions; the records' messages return to the queue");
        for (item, o) in b.out.iter_mut() {
            if marked.contains(item) && *o == MessageOutcome::Done {
                *o = MessageOutcome::Failed { class: e.class.worst(ErrorClass::Retryable), reason: e.chain() };
            }
        }
    }
    b.out
}

/// Every message of the tenant's batch goes back to the queue, failed with `class`.
fn return_all(tenant_id: &TenantId, items: &[Item], class: ErrorClass, reason: String) -> Vec<(usize, MessageOutcome)> {
    tracing::warn!(tenant = %tenant_id, class = %class, reason = %reason, messages = items.len(), "tenant's messages returned to the queue");
    items.iter().map(|it| (it.index, MessageOutcome::Failed { class, reason: reason.clone() })).collect()
}

/// Milliseconds since `t`, for the batch timings line.
fn since(t: time::OffsetDateTime) -> u64 {
    u64::try_from((time::OffsetDateTime::now_utc() - t).whole_milliseconds()).unwrap_or(0)
}

/// The activity outcome and the link to remember after a Contact write.
fn contact_outcome(write: &ContactWrite, id: &str, learner: &str) -> (Outcome, Option<&'static str>, LearnerLink) {
    let link = |state: LinkState, account: Option<&String>| LearnerLink {
        learner_id: learner.to_string(),
        contact_id: id.to_string(),
        account_id: account.cloned(),
        state,
        at: time::OffsetDateTime::now_utc(),
    };
    match write {
        ContactWrite::Link { account_id, .. } => (Outcome::Linked, None, link(LinkState::Linked, account_id.as_ref())),
        ContactWrite::Move { account_id, .. } => {
            (Outcome::Updated, Some("moved"), link(LinkState::Linked, Some(account_id)))
        }
        ContactWrite::Create { account_id } => (Outcome::Created, None, link(LinkState::Linked, account_id.as_ref())),
        ContactWrite::Unlink { .. } => (Outcome::Unlinked, Some("learner_inactive"), link(LinkState::Unlinked, None)),
    }
}

/// The tenant became disconnected while the batch ran: park it whole.
struct Parked(String);

/// Run the calls in order. A session that expired is refreshed once; a
/// throttled call stops the batch (the rest is returned as throttled).
async fn execute(
    deps: &Deps,
    tenant: &learnlink_core::tenant::Tenant,
    links: &Links<'_>,
    tokens: &mut learnlink_core::salesforce::TokenSet,
    calls: &[CompositeCall],
) -> Result<Vec<Result<Vec<Vec<RecordOutcome>>, SalesforceError>>, Parked> {
    let mut results = Vec::with_capacity(calls.len());
    let mut refreshed = false;
    for call in calls {
        let mut res = deps.salesforce.composite_upsert(&tokens.session(), call).await;
        if matches!(res, Err(SalesforceError::SessionExpired)) && !refreshed {
            refreshed = true;
            match deps.tokens.refreshed(links, tenant, tokens, time::OffsetDateTime::now_utc).await {
                Ok(t) => {
                    *tokens = t;
                    res = deps.salesforce.composite_upsert(&tokens.session(), call).await;
                }
                // Disconnected: keep the whole batch (what was written already
                // is rewritten idempotently on replay).
                Err(e) if e.parks_work() => return Err(Parked(e.to_string())),
                Err(e) => {
                    tracing::error!(tenant = %tenant.id, class = %e.class(), error = %learnlink_core::error::error_chain(&e), "session refresh failed");
                    res = Err(SalesforceError::Transport(learnlink_core::PortError::new(
                        e.class(),
                        learnlink_core::error::error_chain(&e),
                    )));
                }
            }
        }
        // Throttled: stop sending for this tenant; the rest waits in the queue.
        let throttled = matches!(&res, Err(e) if e.class() == ErrorClass::Throttled);
        results.push(res);
        if throttled {
            break;
        }
    }
    for _ in results.len()..calls.len() {
        results.push(Err(SalesforceError::Api {
            class: ErrorClass::Throttled,
            status: 403,
            code: "NOT_SENT".into(),
            message: "not sent: the org's API limit was reached earlier in this batch".into(),
        }));
    }
    Ok(results)
}

/// The activity log and the run summary. A failure here is logged and does
/// not fail the messages: their records were written.
async fn record_activity(
    deps: &Deps,
    tenant: &TenantId,
    run_id: &str,
    started: time::OffsetDateTime,
    entries: &[ActivityEntry],
) {
    if entries.is_empty() {
        return;
    }
    let count = |o: Outcome| entries.iter().filter(|e| e.outcome == o).count() as u64;
    let run = RunSummary {
        run_id: run_id.to_string(),
        job: "webhook".into(),
        started_at: started,
        finished_at: time::OffsetDateTime::now_utc(),
        created: count(Outcome::Created),
        updated: count(Outcome::Updated),
        skipped: count(Outcome::Skipped),
        failed: count(Outcome::Failed),
    };
    if let Err(e) = deps.activity.record(tenant, entries).await {
        tracing::error!(tenant = %tenant, error = %e.chain(), entries = entries.len(), "could not write the activity log");
    }
    if let Err(e) = deps.activity.record_run(tenant, &run).await {
        tracing::error!(tenant = %tenant, error = %e.chain(), "could not record the run summary");
    }
}

#[cfg(test)]
mod tests;
