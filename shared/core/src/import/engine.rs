//! One page of an import run over the ports (SPEC §5.2): read the page
//! (first query from the checkpoint minus the lookback, else the previous
//! page's `nextRecordsUrl` / HRIS cursor), plan every person, write the
//! learners to the LMS (batched upserts, deactivations), log one activity
//! entry per person, enqueue the next page, then store the checkpoint —
//! conditionally on the state read, so a redelivered page moves nothing
//! twice. `REQUEST_LIMIT_EXCEEDED` ends the run as interrupted with the
//! checkpoint of the last page done: the next run resumes there, nothing
//! skipped.

use super::{Checkpoint, ImportCounts, PersonAction, PlanContext, Source};
use crate::activity::{ActivityEntry, Direction, Outcome, RunSummary};
use crate::config::ImportSettings;
use crate::error::{Classify, ErrorClass, PortError};
use crate::job::{ImportStep, SyncJob};
use crate::model::TenantId;
use crate::ports::{
    ActivityLog, DeactivateOutcome, HrisApi, HrisConnection, ImportLane, ImportStore, JobQueue, LearnerBatch,
    LmsConnection, LmsWriter, MAX_LEARNERS_PER_BATCH, SalesforceApi, UpsertOutcome,
};
use crate::salesforce::query::QueryCursor;
use crate::salesforce::{SalesforceError, Session};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// HRIS page size asked for (Merge's maximum is 100).
pub const HRIS_PAGE_SIZE: u32 = 100;

/// A tenant's import state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportState {
    /// The last record imported (moves forward only).
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    /// The current or last run.
    #[serde(default)]
    pub run: Option<ImportRun>,
    /// The scheduler fired every occurrence up to this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub scheduled_through: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Done,
    /// Stopped early (API limit, a permanent failure); the checkpoint holds
    /// the last page done and the next run resumes from it.
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRun {
    pub run_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub dry_run: bool,
    /// The last page done (0: none yet).
    pub page: u32,
    pub status: RunStatus,
    pub counts: ImportCounts,
    /// The last record this run processed (a resumed query starts after it).
    #[serde(default)]
    pub position: Option<Checkpoint>,
    /// Why the run was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ImportRun {
    /// A run at its start: nothing done yet.
    pub fn start(run_id: &str, now: OffsetDateTime, dry_run: bool) -> ImportRun {
        ImportRun {
            run_id: run_id.to_string(),
            started_at: now,
            finished_at: None,
            dry_run,
            page: 0,
            status: RunStatus::Running,
            counts: ImportCounts::default(),
            position: None,
            message: None,
        }
    }
}

/// The HRIS group names a page's plan needs (group sync from an HRIS only).
async fn group_names(
    ports: &ImportPorts<'_>,
    input: &PageInput<'_>,
    source: Source,
) -> Result<Option<std::collections::BTreeMap<String, String>>, PortError> {
    match (source, input.settings.group_sync.as_ref().is_some_and(|g| g.enabled), input.hris) {
        (Source::Hris, true, Some(h)) => Ok(Some(ports.hris.groups(h).await?)),
        _ => Ok(None),
    }
}

/// What one import page needs.
pub struct ImportPorts<'a> {
    pub salesforce: &'a dyn SalesforceApi,
    pub hris: &'a dyn HrisApi,
    pub lms: &'a dyn LmsWriter,
    pub store: &'a dyn ImportStore,
    pub queue: &'a dyn JobQueue,
    pub activity: &'a dyn ActivityLog,
}

/// The tenant side of a page.
pub struct PageInput<'a> {
    pub tenant: &'a TenantId,
    pub settings: &'a ImportSettings,
    /// Salesforce sources.
    pub session: Option<&'a Session>,
    /// The HRIS source.
    pub hris: Option<&'a HrisConnection>,
    pub lms: &'a LmsConnection,
    /// Salesforce sources: its changes are ignored (loop prevention).
    pub integration_user: Option<&'a str>,
    pub now: OffsetDateTime,
    pub run_id: &'a str,
    pub page: u32,
    pub dry_run: bool,
    pub step: &'a ImportStep,
}

/// What became of a page.
#[derive(Debug, Clone, PartialEq)]
pub enum PageOutcome {
    /// Done; the next page was enqueued (`more`) or the run finished.
    Done { counts: ImportCounts, more: bool },
    /// Already done (a redelivery) or superseded by a newer run: nothing to do.
    Duplicate,
    /// The run stopped here; the checkpoint is kept for the next run.
    Interrupted { reason: String },
}

/// A page read from the source.
struct SourcePage {
    records: Vec<Map<String, Value>>,
    next: Option<ImportStep>,
}

fn lane(dry_run: bool) -> ImportLane {
    if dry_run { ImportLane::DryRun } else { ImportLane::Live }
}

/// A new run's first page job (and, for a dry run, its state seeded from
/// the live checkpoint happens on that page).
pub fn start_job(tenant: &TenantId, run_id: &str, dry_run: bool) -> SyncJob {
    SyncJob::ImportPage {
        tenant: tenant.clone(),
        run_id: run_id.to_string(),
        page: 1,
        dry_run,
        step: ImportStep::Start,
    }
}

/// Runs one page. `Err`: a retryable or throttled failure before anything
/// was stored — the message is to be redelivered (the page repeats
/// harmlessly: upserts by external id).
pub async fn run_page(ports: &ImportPorts<'_>, input: &PageInput<'_>) -> Result<PageOutcome, PortError> {
    let Some(source) = Source::of(input.settings) else {
        return Ok(PageOutcome::Interrupted { reason: "the tenant has no import source configured".into() });
    };
    let lane = lane(input.dry_run);
    let found = ports.store.import_state(input.tenant, lane).await?;
    let (mut state, version) = match found {
        Some((s, v)) => (s, Some(v)),
        None => (ImportState::default(), None),
    };
    if input.dry_run && input.page == 1 {
        // A dry run starts where the live import stands.
        let live = ports.store.import_state(input.tenant, ImportLane::Live).await?;
        state.checkpoint = live.and_then(|(s, _)| s.checkpoint);
    }
    match (&state.run, input.page) {
        (Some(run), 1) if run.run_id == input.run_id => return Ok(PageOutcome::Duplicate),
        (_, 1) => {}
        (Some(run), p) if run.run_id == input.run_id && run.page + 1 == p && run.status == RunStatus::Running => {}
        _ => return Ok(PageOutcome::Duplicate),
    }
    let mut run = match (&state.run, input.page) {
        (Some(run), p) if p > 1 => run.clone(),
        _ => ImportRun::start(input.run_id, input.now, input.dry_run),
    };

    let page = match read_page(ports, input, source, &state, &run).await {
        Ok(p) => p,
        Err(e) if e.stops_the_run() => {
            let reason = e.describe();
            run.status = RunStatus::Interrupted;
            run.finished_at = Some(input.now);
            run.message = Some(reason.clone());
            let summary = summary(&run, input.now);
            state.run = Some(run);
            if ports.store.put_import_state(input.tenant, lane, &state, version).await? {
                if !input.dry_run {
                    let _ = ports.activity.record_run(input.tenant, &summary).await;
                }
                return Ok(PageOutcome::Interrupted { reason });
            }
            return Ok(PageOutcome::Duplicate);
        }
        Err(e) => return Err(e.into_port()),
    };

    let group_names = group_names(ports, input, source).await?;
    let ctx = PlanContext {
        source,
        integration_user: input.integration_user,
        today: input.now.date(),
        group_names: group_names.as_ref(),
    };
    let actions: Vec<PersonAction> = page.records.iter().map(|r| super::plan_person(input.settings, &ctx, r)).collect();
    let (counts, entries) = apply(ports, input, &actions).await?;

    // The page is done: checkpoint, then the next page.
    let page_cp = super::page_checkpoint(source, &page.records);
    run.page = input.page;
    run.counts.add(&counts);
    run.position = Checkpoint::max(run.position.take(), page_cp.clone());
    state.checkpoint = Checkpoint::max(state.checkpoint.take(), page_cp);
    let more = page.next.is_some();
    if let Some(step) = page.next {
        let job = SyncJob::ImportPage {
            tenant: input.tenant.clone(),
            run_id: input.run_id.to_string(),
            page: input.page + 1,
            dry_run: input.dry_run,
            step,
        };
        if let Some(Err(e)) = ports.queue.send(std::slice::from_ref(&job)).await.into_iter().next() {
            return Err(e);
        }
    } else {
        run.status = RunStatus::Done;
        run.finished_at = Some(input.now);
    }
    let finished = run.status == RunStatus::Done;
    let summary = summary(&run, input.now);
    state.run = Some(run);
    if !ports.store.put_import_state(input.tenant, lane, &state, version).await? {
        return Ok(PageOutcome::Duplicate);
    }
    if !input.dry_run {
        // The log follows the state: a failure here loses log lines, never records.
        if let Err(e) = ports.activity.record(input.tenant, &entries).await {
            tracing::warn!(tenant = %input.tenant, error = %e.chain(), "import activity entries not recorded");
        }
        if finished && let Err(e) = ports.activity.record_run(input.tenant, &summary).await {
            tracing::warn!(tenant = %input.tenant, error = %e.chain(), "import run summary not recorded");
        }
    }
    Ok(PageOutcome::Done { counts, more })
}

fn summary(run: &ImportRun, now: OffsetDateTime) -> RunSummary {
    RunSummary {
        run_id: run.run_id.clone(),
        job: if run.dry_run { "import-dry-run".into() } else { "import".into() },
        started_at: run.started_at,
        finished_at: run.finished_at.unwrap_or(now),
        created: run.counts.created,
        updated: run.counts.updated + run.counts.deactivated,
        skipped: run.counts.skipped + run.counts.unchanged,
        failed: run.counts.failed,
    }
}

/// A failure reading the source.
enum ReadError {
    Salesforce(SalesforceError),
    Port(PortError),
}

impl ReadError {
    /// The org's daily API limit (or a permanent refusal) ends the run
    /// instead of retrying it to the DLQ.
    fn stops_the_run(&self) -> bool {
        match self {
            ReadError::Salesforce(e) => e.code() == "REQUEST_LIMIT_EXCEEDED" || e.class() == ErrorClass::Permanent,
            ReadError::Port(e) => e.class == ErrorClass::Permanent,
        }
    }

    fn describe(&self) -> String {
        match self {
            ReadError::Salesforce(e) => format!("{} ({})", e, e.code()),
            ReadError::Port(e) => e.chain(),
        }
    }

    fn into_port(self) -> PortError {
        match self {
            ReadError::Salesforce(e) => PortError::new(e.class(), e.to_string()),
            ReadError::Port(e) => e,
        }
    }
}

async fn read_page(
    ports: &ImportPorts<'_>,
    input: &PageInput<'_>,
    source: Source,
    state: &ImportState,
    run: &ImportRun,
) -> Result<SourcePage, ReadError> {
    let settings = input.settings;
    if source == Source::Hris {
        let hris = input.hris.ok_or_else(|| {
            ReadError::Port(PortError::permanent("the HRIS connection is not configured (import.hris)"))
        })?;
        let (after, cursor) = match input.step {
            ImportStep::HrisNext { cursor } => (None, Some(cursor.as_str())),
            _ => (super::hris_modified_after(settings, state.checkpoint.as_ref()), None),
        };
        let page =
            ports.hris.employees_page(hris, after.as_deref(), cursor, HRIS_PAGE_SIZE).await.map_err(ReadError::Port)?;
        return Ok(SourcePage {
            records: page.results,
            next: page.next.filter(|n| !n.is_empty()).map(|cursor| ImportStep::HrisNext { cursor }),
        });
    }
    let session = input.session.ok_or_else(|| ReadError::Port(PortError::permanent("no Salesforce session")))?;
    let include_deleted = source == Source::SalesforceContact && settings.deactivate_missing;
    let start = |soql: String| QueryCursor::Start { soql, include_deleted, batch_size: None };
    let bad_query = |e: crate::soql::SoqlError| ReadError::Port(PortError::permanent(format!("import query: {e}")));
    let cursor = match input.step {
        ImportStep::SalesforceNext { url } => QueryCursor::Next { url: url.clone() },
        _ => start(super::run_query(settings, source, state.checkpoint.as_ref()).map_err(bad_query)?),
    };
    let page = match ports.salesforce.query_page(session, &cursor).await {
        Ok(p) => p,
        // The query locator expired (or the org dropped it): query again
        // from this run's position, `>=` its second, ties dropped by id.
        Err(e)
            if matches!(e.code().as_str(), "INVALID_QUERY_LOCATOR" | "NOT_FOUND")
                && matches!(cursor, QueryCursor::Next { .. }) =>
        {
            let Some(position) = run.position.as_ref() else { return Err(ReadError::Salesforce(e)) };
            let soql = super::resume_query(settings, source, position).map_err(bad_query)?;
            let page = ports.salesforce.query_page(session, &start(soql)).await.map_err(ReadError::Salesforce)?;
            let next = page.next_records_url.clone().filter(|_| !page.done);
            let records = super::after(source, &page.records, Some(position)).into_iter().cloned().collect();
            return Ok(SourcePage { records, next: next.map(|url| ImportStep::SalesforceNext { url }) });
        }
        Err(e) => return Err(ReadError::Salesforce(e)),
    };
    let next = if page.done { None } else { page.next_records_url.clone() };
    Ok(SourcePage { records: page.records, next: next.map(|url| ImportStep::SalesforceNext { url }) })
}

/// Writes a page's actions (unless a dry run) and returns its counts and
/// activity entries (one per person).
async fn apply(
    ports: &ImportPorts<'_>,
    input: &PageInput<'_>,
    actions: &[PersonAction],
) -> Result<(ImportCounts, Vec<ActivityEntry>), PortError> {
    let mut counts = ImportCounts { pages: 1, seen: actions.len() as u64, ..Default::default() };
    let job = format!("import:{}", input.run_id);
    let entry =
        |lms_id: &str, external: Option<&str>, outcome: Outcome, reason: Option<String>, message: Option<String>| {
            ActivityEntry {
                at: input.now,
                job: job.clone(),
                direction: Direction::SalesforceToLms,
                object: "Learner".into(),
                lms_id: lms_id.to_string(),
                learner_id: (!lms_id.is_empty()).then(|| lms_id.to_string()),
                salesforce_id: external.map(str::to_string),
                outcome,
                reason,
                message,
            }
        };
    let mut entries = Vec::with_capacity(actions.len());
    let mut upserts = Vec::new();
    let mut deactivations = Vec::new();
    for a in actions {
        match a {
            PersonAction::Import { learner } => upserts.push(learner.clone()),
            PersonAction::Deactivate { external_id, reason } => deactivations.push((external_id.clone(), *reason)),
            PersonAction::Skip { external_id, skip } => {
                counts.skipped += 1;
                entries.push(entry(
                    "",
                    external_id.as_deref(),
                    Outcome::Skipped,
                    Some(skip.code().into()),
                    Some(skip.sentence()),
                ));
            }
        }
    }
    if input.dry_run {
        counts.would_import = upserts.len() as u64;
        counts.deactivated = deactivations.len() as u64;
        return Ok((counts, entries));
    }
    let group_sync = input.settings.group_sync.as_ref().filter(|g| g.enabled);
    for chunk in upserts.chunks(MAX_LEARNERS_PER_BATCH) {
        let batch = LearnerBatch {
            learners: chunk.to_vec(),
            send_welcome_email: input.settings.welcome_email,
            remove_missing_groups: group_sync.is_some_and(|g| g.remove_missing),
        };
        let outcomes = ports.lms.upsert_learners(input.lms, &batch).await?;
        if outcomes.len() != chunk.len() {
            return Err(PortError::retryable(format!(
                "the LMS answered {} outcomes for {} learners",
                outcomes.len(),
                chunk.len()
            )));
        }
        for (l, o) in chunk.iter().zip(outcomes) {
            let ext = Some(l.external_id.as_str());
            match o {
                UpsertOutcome::Created { id } => {
                    counts.created += 1;
                    entries.push(entry(&id, ext, Outcome::Created, None, None));
                }
                UpsertOutcome::Updated { id } => {
                    counts.updated += 1;
                    entries.push(entry(&id, ext, Outcome::Updated, None, None));
                }
                UpsertOutcome::Unchanged { id } => {
                    counts.unchanged += 1;
                    entries.push(entry(&id, ext, Outcome::Skipped, Some("unchanged".into()), None));
                }
                UpsertOutcome::Failed { code, message } => {
                    counts.failed += 1;
                    entries.push(entry("", ext, Outcome::Failed, Some(code), Some(message)));
                }
            }
        }
    }
    let ids: Vec<String> = deactivations.iter().map(|(id, _)| id.clone()).collect();
    for (chunk, reasons) in ids.chunks(MAX_LEARNERS_PER_BATCH).zip(deactivations.chunks(MAX_LEARNERS_PER_BATCH)) {
        let outcomes = ports.lms.deactivate_learners(input.lms, chunk).await?;
        for ((ext, reason), o) in reasons.iter().zip(outcomes) {
            let code = Some(reason.code().to_string());
            match o {
                DeactivateOutcome::Deactivated { id } => {
                    counts.deactivated += 1;
                    entries.push(entry(&id, Some(ext), Outcome::Unlinked, code, Some("learner deactivated".into())));
                }
                DeactivateOutcome::AlreadyInactive { id } => {
                    counts.unchanged += 1;
                    entries.push(entry(&id, Some(ext), Outcome::Skipped, code, Some("already inactive".into())));
                }
                DeactivateOutcome::NotFound => {
                    counts.skipped += 1;
                    entries.push(entry(
                        "",
                        Some(ext),
                        Outcome::Skipped,
                        code,
                        Some("no such learner in the LMS".into()),
                    ));
                }
            }
        }
    }
    Ok((counts, entries))
}

/// One person of a preview: the raw source payload and the computed action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewRow {
    pub external_id: Option<String>,
    /// `create`, `update`, `skip`, `deactivate`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learner: Option<crate::ports::LearnerUpsert>,
    pub raw: Map<String, Value>,
}

/// The preview of one source page (SPEC §5.6): writes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub source: Source,
    pub people: Vec<PreviewRow>,
    /// More people follow in the source.
    pub more: bool,
}

/// Reads the first page a run would read and computes each person's action;
/// create vs update from the LMS's learners by external id or email.
pub async fn preview(ports: &ImportPorts<'_>, input: &PageInput<'_>, limit: usize) -> Result<Preview, PortError> {
    let Some(source) = Source::of(input.settings) else {
        return Err(PortError::permanent("the tenant has no import source configured (import.source)"));
    };
    let state = ports.store.import_state(input.tenant, ImportLane::Live).await?.map(|(s, _)| s).unwrap_or_default();
    let run = ImportRun::start(input.run_id, input.now, true);
    let page = read_page(ports, input, source, &state, &run).await.map_err(ReadError::into_port)?;
    let more = page.next.is_some() || page.records.len() > limit;
    let records: Vec<Map<String, Value>> = page.records.into_iter().take(limit).collect();
    let group_names = group_names(ports, input, source).await?;
    let ctx = PlanContext {
        source,
        integration_user: input.integration_user,
        today: input.now.date(),
        group_names: group_names.as_ref(),
    };
    let actions: Vec<PersonAction> = records.iter().map(|r| super::plan_person(input.settings, &ctx, r)).collect();
    let (ids, emails): (Vec<String>, Vec<String>) = actions
        .iter()
        .filter_map(|a| match a {
            PersonAction::Import { learner } => Some((learner.external_id.clone(), learner.email.clone())),
            _ => None,
        })
        .unzip();
    let mut known_ids = std::collections::HashSet::new();
    let mut known_emails = std::collections::HashSet::new();
    for chunk in 0..ids.len().div_ceil(MAX_LEARNERS_PER_BATCH) {
        let r = chunk * MAX_LEARNERS_PER_BATCH..((chunk + 1) * MAX_LEARNERS_PER_BATCH).min(ids.len());
        for l in ports.lms.find_learners(input.lms, &ids[r.clone()], &emails[r]).await? {
            if let Some(x) = l.fields.get("external_id") {
                known_ids.insert(x.clone());
            }
            known_emails.insert(l.email.to_lowercase());
        }
    }
    let people = records
        .into_iter()
        .zip(actions)
        .map(|(raw, a)| match a {
            PersonAction::Import { learner } => {
                let exists =
                    known_ids.contains(&learner.external_id) || known_emails.contains(&learner.email.to_lowercase());
                PreviewRow {
                    external_id: Some(learner.external_id.clone()),
                    action: if exists { "update" } else { "create" }.into(),
                    reason: None,
                    learner: Some(learner),
                    raw,
                }
            }
            PersonAction::Deactivate { external_id, reason } => PreviewRow {
                external_id: Some(external_id),
                action: "deactivate".into(),
                reason: Some(reason.code().into()),
                learner: None,
                raw,
            },
            PersonAction::Skip { external_id, skip } => {
                PreviewRow { external_id, action: "skip".into(), reason: Some(skip.sentence()), learner: None, raw }
            }
        })
        .collect();
    Ok(Preview { source, people, more })
}
