//! backfill-fanout (SPEC §6.2, §5.1): plans backfills into shards and fans
//! out the scheduled imports.
//!
//! - The import schedule (an EventBridge rule in the template, every minute;
//!   the local runtime fires it) evaluates each tenant's own `import.schedule`
//!   (rate or cron, UTC): a tenant whose next occurrence after its
//!   `scheduled_through` mark has come gets one import run (its first page
//!   job on the sync queue), and the mark moves to the event's time — with a
//!   conditional write, so two overlapping invocations start one run. The
//!   mark is an item of its own (`SCHEDULE`), apart from the run's state.
//!   Occurrences missed while nothing ran become one run (the checkpoint
//!   makes it complete).
//! - Backfills ([`backfills`]): `POST /admin/tenants/{tenant}/backfills`
//!   plans and starts one (counts from the LMS, shards stored, kill switch
//!   engaged, shards sent to the backfill queue); the same schedule starts
//!   relink gap backfills and sweeps unfinished ones.

pub mod backfills;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use learnlink_adapters::lambda::AdminAuth;
use learnlink_core::import::Source;
use learnlink_core::import::engine::{ImportState, start_job};
use learnlink_core::ports::{ImportLane, ImportStore, JobQueue, TenantStore};
use learnlink_core::schedule::Schedule;
use serde_json::{Value, json};
use std::sync::Arc;
use time::OffsetDateTime;

pub struct Deps {
    pub tenants: Arc<dyn TenantStore>,
    pub imports: Arc<dyn ImportStore>,
    /// The sync queue (import runs).
    pub queue: Arc<dyn JobQueue>,
    /// Backfills: plans and shards, the LMS's windows, Salesforce (kill
    /// switch, limits), the backfill queue, the activity log.
    pub backfills: Arc<dyn learnlink_core::ports::BackfillStore>,
    pub lms_enrollments: Arc<dyn learnlink_core::ports::LmsEnrollments>,
    pub salesforce: Arc<dyn learnlink_core::ports::SalesforceApi>,
    pub shards_queue: Arc<dyn JobQueue>,
    pub activity: Arc<dyn learnlink_core::ports::ActivityLog>,
    pub secrets: Arc<dyn learnlink_core::ports::SecretStore>,
    pub connections: Arc<dyn learnlink_core::ports::ConnectionStore>,
    pub names: learnlink_core::tenant::SecretNames,
    pub tokens: learnlink_core::connection::TokenProvider,
    pub auth: AdminAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("backfill-fanout cannot handle this event: {0}")]
    UnknownEvent(String),
    #[error("the HTTP request event is invalid: {0}")]
    BadRequestEvent(#[from] serde_json::Error),
    #[error("the import schedule could not be evaluated: {0}")]
    Port(#[from] learnlink_core::PortError),
}

pub async fn handle(deps: &Deps, event: Value) -> Result<Value, HandlerError> {
    if event.get("requestContext").is_some() {
        let req: ApiGatewayV2httpRequest = serde_json::from_value(event)?;
        let r = backfills::start_http(deps, &req, OffsetDateTime::now_utc()).await;
        return Ok(serde_json::to_value(r)?);
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let now = event
            .get("time")
            .and_then(Value::as_str)
            .and_then(learnlink_core::import::parse_timestamp)
            .unwrap_or_else(OffsetDateTime::now_utc);
        let started = fire_imports(deps, now).await?;
        let backfills = backfills::sweep(deps, now).await;
        return Ok(json!({ "imports_started": started, "backfills": backfills }));
    }
    Err(HandlerError::UnknownEvent("neither an HTTP API request nor a scheduled event".into()))
}

/// Starts the imports that are due at `now`; returns the tenants started.
pub async fn fire_imports(deps: &Deps, now: OffsetDateTime) -> Result<Vec<String>, HandlerError> {
    let mut started = Vec::new();
    for tenant in deps.tenants.list_tenants().await? {
        if tenant.paused || Source::of(&tenant.import).is_none() {
            continue;
        }
        let schedule = match Schedule::parse(tenant.import.schedule()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(tenant = %tenant.id, error = %e, "the tenant's import schedule is invalid");
                continue;
            }
        };
        let found = deps.imports.import_state(&tenant.id, ImportLane::Schedule).await?;
        let (mut state, version) = match found {
            Some((s, v)) => (s, Some(v)),
            None => (ImportState::default(), None),
        };
        // A tenant seen for the first time starts counting from its creation.
        let since = state.scheduled_through.unwrap_or(tenant.created_at);
        let due = schedule.next_after(tenant.created_at, since).is_some_and(|next| next <= now);
        if !due {
            if state.scheduled_through.is_none() {
                state.scheduled_through = Some(since);
                deps.imports.put_import_state(&tenant.id, ImportLane::Schedule, &state, version).await?;
            }
            continue;
        }
        state.scheduled_through = Some(now);
        if !deps.imports.put_import_state(&tenant.id, ImportLane::Schedule, &state, version).await? {
            continue; // another invocation took this occurrence
        }
        let run_id = format!("sched-{}", now.unix_timestamp());
        match deps.queue.send(&[start_job(&tenant.id, &run_id, false)]).await.into_iter().next() {
            Some(Err(e)) => {
                tracing::error!(tenant = %tenant.id, error = %e.chain(), "the scheduled import could not be enqueued; the next occurrence runs it")
            }
            _ => {
                tracing::info!(tenant = %tenant.id, run = %run_id, "scheduled import started");
                started.push(tenant.id.to_string());
            }
        }
    }
    Ok(started)
}

#[cfg(test)]
mod engine_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use learnlink_adapters::dynamo::memory::MemoryState;
    use learnlink_adapters::sqs::memory::MemoryQueue;
    use learnlink_core::job::SyncJob;
    use learnlink_core::model::TenantId;
    use time::macros::datetime;

    fn deps(state: &Arc<MemoryState>, queue: &Arc<MemoryQueue>) -> Deps {
        Deps {
            tenants: state.clone(),
            imports: state.clone(),
            queue: queue.clone(),
            backfills: state.clone(),
            lms_enrollments: Arc::new(learnlink_adapters::lms::memory::MemoryLms::new()),
            salesforce: Arc::new(learnlink_adapters::salesforce::memory::MemorySalesforce::new()),
            shards_queue: queue.clone(),
            activity: Arc::new(learnlink_adapters::dynamo::memory::MemoryActivity::new()),
            secrets: Arc::new(learnlink_adapters::secrets::memory::MemorySecrets::new()),
            connections: state.clone(),
            names: learnlink_core::tenant::SecretNames::default(),
            tokens: learnlink_core::connection::TokenProvider::new("test"),
            auth: AdminAuth::Bearer(secrecy::SecretString::from("t")),
        }
    }

    fn seed(state: &MemoryState, id: &str, import: Value) {
        state.seed_config(
            &TenantId::parse(id).unwrap(),
            json!({"name": id, "salesforce": {"environment": "production", "client_id": "cid"}, "import": import}),
            datetime!(2026-11-20 0:00 UTC),
        );
    }

    #[tokio::test]
    async fn routes_events() {
        let (state, queue) = (Arc::new(MemoryState::new()), Arc::new(MemoryQueue::new()));
        let d = deps(&state, &queue);
        let http = json!({"rawPath": "/admin/tenants/acme/backfills", "requestContext": {"http": {"method": "POST",
            "path": "/admin/tenants/acme/backfills", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "timeEpoch": 0}});
        // Unauthenticated: refused before anything is read.
        assert_eq!(handle(&d, http).await.unwrap()["statusCode"], 401);
        let sched = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-23T03:00:00Z", "detail": {}});
        let out = handle(&d, sched).await.unwrap();
        assert_eq!(out["imports_started"], json!([]));
        assert_eq!(out["backfills"], json!([]));
        assert!(handle(&d, json!({})).await.is_err());
    }

    #[tokio::test]
    async fn each_tenant_runs_on_its_own_schedule_once_per_occurrence() {
        let (state, queue) = (Arc::new(MemoryState::new()), Arc::new(MemoryQueue::new()));
        seed(&state, "daily", json!({"source": "salesforce_user"}));
        seed(&state, "hourly", json!({"source": "salesforce_contact", "schedule": "rate(1 hour)"}));
        seed(&state, "none", json!({}));
        let d = deps(&state, &queue);
        // The first evaluation after creation: the daily 03:00 has come (Nov 20 03:00 after Nov 20 00:00).
        let started = fire_imports(&d, datetime!(2026-11-20 03:00:30 UTC)).await.unwrap();
        assert_eq!(started, vec!["daily".to_string(), "hourly".to_string()]);
        // A minute later nothing is due; an overlapping invocation at the same time starts nothing either.
        assert!(fire_imports(&d, datetime!(2026-11-20 03:01:30 UTC)).await.unwrap().is_empty());
        assert!(fire_imports(&d, datetime!(2026-11-20 03:00:30 UTC)).await.unwrap().is_empty());
        assert_eq!(fire_imports(&d, datetime!(2026-11-20 04:00:10 UTC)).await.unwrap(), vec!["hourly".to_string()]);
        // Days without invocations become one run.
        assert_eq!(fire_imports(&d, datetime!(2026-11-23 05:00:00 UTC)).await.unwrap(), vec!["daily", "hourly"]);
        let jobs = queue.sent();
        assert_eq!(jobs.len(), 5);
        assert!(jobs.iter().all(|j| matches!(j, SyncJob::ImportPage { page: 1, dry_run: false, .. })));
    }

    #[tokio::test]
    async fn the_schedule_mark_never_touches_a_running_import_state() {
        let (state, queue) = (Arc::new(MemoryState::new()), Arc::new(MemoryQueue::new()));
        seed(&state, "busy", json!({"source": "salesforce_user", "schedule": "rate(1 hour)"}));
        let t = TenantId::parse("busy").unwrap();
        let live = ImportState { scheduled_through: None, ..Default::default() };
        assert!(state.put_import_state(&t, ImportLane::Live, &live, None).await.unwrap());
        fire_imports(&deps(&state, &queue), datetime!(2026-11-20 00:30 UTC)).await.unwrap();
        fire_imports(&deps(&state, &queue), datetime!(2026-11-20 01:30 UTC)).await.unwrap();
        // The run's state is as the worker left it (version 1): its next conditional write succeeds.
        assert_eq!(state.import_state(&t, ImportLane::Live).await.unwrap().map(|(_, v)| v), Some(1));
        assert_eq!(queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_paused_tenant_is_not_started() {
        let (state, queue) = (Arc::new(MemoryState::new()), Arc::new(MemoryQueue::new()));
        state.seed_config(
            &TenantId::parse("paused").unwrap(),
            json!({"name": "p", "paused": true, "salesforce": {"environment": "production", "client_id": "cid"},
                "import": {"source": "salesforce_user", "schedule": "rate(1 minute)"}}),
            datetime!(2026-11-20 0:00 UTC),
        );
        assert!(fire_imports(&deps(&state, &queue), datetime!(2026-11-21 0:00 UTC)).await.unwrap().is_empty());
    }
}
