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
use learnlink_core::job::{self, SyncJob};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{ActivityLog, ConnectionStore, ParkStore, SalesforceApi, SecretStore, TenantStore};
use learnlink_core::salesforce::{RecordOutcome, SalesforceError};
use learnlink_core::sync::{self, CompositeCall};
use learnlink_core::tenant::SecretNames;
use learnlink_core::webhook::LmsEvent;
use learnlink_core::{Classify, ErrorClass};
use std::collections::BTreeMap;
use std::sync::Arc;

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
}

impl Deps {
    fn links(&self) -> Links<'_> {
        Links {
            secrets: self.secrets.as_ref(),
            salesforce: self.salesforce.as_ref(),
            connections: self.connections.as_ref(),
            names: &self.names,
            sleeper: &learnlink_adapters::TokioSleeper,
        }
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
}

impl MessageOutcome {
    fn merge(&mut self, other: MessageOutcome) {
        use MessageOutcome::*;
        let replace = match (&*self, &other) {
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
        if let MessageOutcome::Failed { .. } = outcome {
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
    let mut by_tenant: BTreeMap<TenantId, Vec<Item>> = BTreeMap::new();
    for (i, rec) in event.records.iter().enumerate() {
        let id = rec.message_id.as_deref().unwrap_or("?");
        let receive_count = rec.attributes.get("ApproximateReceiveCount").map(String::as_str).unwrap_or("?");
        match job::decode(rec.body.as_deref().unwrap_or("")) {
            Ok(SyncJob::LmsEvent { tenant, source, event }) => {
                let key = format!("{source}#{}", event.id);
                by_tenant.entry(tenant).or_default().push(Item {
                    index: i,
                    event,
                    key,
                    body: rec.body.clone().unwrap_or_default(),
                })
            }
            Err(e) => {
                tracing::error!(message_id = id, receive_count, error = %e, "poison message: it cannot be decoded and stays for the DLQ");
                outcomes[i] = MessageOutcome::Failed { class: ErrorClass::Permanent, reason: e.to_string() };
            }
        }
    }
    for (tenant, items) in by_tenant {
        for (i, o) in sync_tenant(deps, &tenant, &items).await {
            outcomes[i].merge(o);
        }
    }
    outcomes
}

/// One decoded message of a batch.
struct Item {
    index: usize,
    event: LmsEvent,
    /// The parking key (source and event id): parking twice keeps one job.
    key: String,
    /// The message as it came, parked verbatim.
    body: String,
}

/// Keep a tenant's messages while it cannot be written to (not connected,
/// disconnected, paused); they are acknowledged once parked and replayed on
/// relink or resume.
async fn park(deps: &Deps, tenant: &TenantId, items: &[Item], why: &str) -> Vec<(usize, MessageOutcome)> {
    let jobs: Vec<(String, String)> = items.iter().map(|it| (it.key.clone(), it.body.clone())).collect();
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

async fn sync_tenant(deps: &Deps, tenant_id: &TenantId, items: &[Item]) -> Vec<(usize, MessageOutcome)> {
    let fail_all = |class: ErrorClass, reason: String| -> Vec<(usize, MessageOutcome)> {
        tracing::warn!(tenant = %tenant_id, class = %class, reason = %reason, messages = items.len(), "tenant's messages returned to the queue");
        items.iter().map(|it| (it.index, MessageOutcome::Failed { class, reason: reason.clone() })).collect()
    };
    let tenant = match deps.tenants.get_tenant(tenant_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return fail_all(ErrorClass::Permanent, format!("unknown tenant {tenant_id}")),
        Err(e) => return fail_all(e.class, e.chain()),
    };
    if tenant.paused {
        return park(deps, tenant_id, items, "paused by an admin").await;
    }
    let links = deps.links();
    let mut tokens = match deps.tokens.session(&links, &tenant).await {
        Ok(t) => t,
        Err(e) if e.parks_work() => return park(deps, tenant_id, items, &e.to_string()).await,
        Err(e) => return fail_all(e.class(), learnlink_core::error::error_chain(&e)),
    };
    let calls: Vec<CompositeCall> = sync::plan(items.iter().map(|it| (it.index, &it.event)));
    let mut results = Vec::with_capacity(calls.len());
    let mut refreshed = false;
    for call in &calls {
        let mut res = deps.salesforce.composite_upsert(&tokens.session(), call).await;
        if matches!(res, Err(SalesforceError::SessionExpired)) && !refreshed {
            refreshed = true;
            match deps.tokens.refreshed(&links, &tenant, &tokens, time::OffsetDateTime::now_utc).await {
                Ok(t) => {
                    tokens = t;
                    res = deps.salesforce.composite_upsert(&tokens.session(), call).await;
                }
                // Disconnected: keep the whole batch (what was written already
                // is rewritten idempotently on replay).
                Err(e) if e.parks_work() => return park(deps, tenant_id, items, &e.to_string()).await,
                Err(e) => {
                    tracing::error!(tenant = %tenant_id, class = %e.class(), error = %learnlink_core::error::error_chain(&e), "session refresh failed");
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
    // Calls not made (after throttling) fail as throttled.
    let done = results.len();
    for _ in done..calls.len() {
        results.push(Err(SalesforceError::Api {
            class: ErrorClass::Throttled,
            status: 403,
            code: "NOT_SENT".into(),
            message: "not sent: the org's API limit was reached earlier in this batch".into(),
        }));
    }
    let started = time::OffsetDateTime::now_utc();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let learner_of = |item: usize| {
        items.iter().find(|it| it.index == item).map(|it| match &it.event.payload {
            learnlink_core::webhook::EventPayload::Enrollment(e) => e.learner_id.clone(),
            learnlink_core::webhook::EventPayload::Certification(c) => c.learner_id.clone(),
        })
    };
    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for s in sync::settle(&calls, results) {
        // One entry per record outcome (several messages may carry one record).
        let entry =
            |outcome: Outcome, salesforce_id: Option<String>, reason: Option<String>, message: Option<String>| {
                ActivityEntry {
                    at: time::OffsetDateTime::now_utc(),
                    job: format!("webhook:{run_id}"),
                    direction: Direction::LmsToSalesforce,
                    object: s.sobject.to_string(),
                    lms_id: s.external_id.clone(),
                    learner_id: learner_of(s.item),
                    salesforce_id,
                    outcome,
                    reason,
                    message,
                }
            };
        let first = seen.insert((s.sobject, s.external_id.clone()));
        match &s.outcome {
            RecordOutcome::Created { id } if first => {
                entries.push(entry(Outcome::Created, Some(id.clone()), None, None))
            }
            RecordOutcome::Updated { id } if first => {
                entries.push(entry(Outcome::Updated, Some(id.clone()), None, None))
            }
            RecordOutcome::Failed(f) if first && !f.class.redeliver() => {
                entries.push(entry(Outcome::Failed, None, Some(f.code.clone()), Some(f.message.clone())))
            }
            _ => {}
        }
        let o = match &s.outcome {
            RecordOutcome::Created { id } | RecordOutcome::Updated { id } => {
                let created = matches!(s.outcome, RecordOutcome::Created { .. });
                tracing::info!(tenant = %tenant_id, object = s.sobject, lms_id = %s.external_id, salesforce_id = %id,
                    outcome = if created { "created" } else { "updated" }, "record synced");
                MessageOutcome::Done
            }
            RecordOutcome::Failed(f) if f.class.redeliver() => {
                tracing::warn!(tenant = %tenant_id, object = s.sobject, lms_id = %s.external_id, class = %f.class,
                    code = %f.code, message = %f.message, "record failed; message returned for retry");
                MessageOutcome::Failed { class: f.class, reason: format!("{}: {}", f.code, f.message) }
            }
            RecordOutcome::Failed(f) => {
                tracing::warn!(tenant = %tenant_id, object = s.sobject, lms_id = %s.external_id, class = %f.class,
                    code = %f.code, message = %f.message, outcome = "failed", "record rejected by Salesforce");
                MessageOutcome::Rejected { code: f.code.clone(), message: f.message.clone() }
            }
        };
        out.push((s.item, o));
    }
    record_activity(deps, tenant_id, &run_id, started, &entries).await;
    out
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
