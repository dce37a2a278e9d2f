//! Import pages (SPEC §5.2) on the sync queue: one page per message, the
//! next page enqueued by this one. The page itself is
//! [`learnlink_core::import::engine::run_page`]; this module finds what it
//! needs (the tenant's settings, a Salesforce session, the integration
//! user, the LMS and HRIS connections) and turns the result into the
//! message's outcome: done, duplicate and interrupted runs are
//! acknowledged, a retryable failure returns the message to the queue.

use crate::{Deps, MessageOutcome};
use learnlink_core::Classify;
use learnlink_core::ErrorClass;
use learnlink_core::credentials;
use learnlink_core::import::Source;
use learnlink_core::import::engine::{self, ImportPorts, PageInput, PageOutcome};
use learnlink_core::job::ImportStep;
use learnlink_core::model::TenantId;

/// An import page job's fields.
pub struct PageJob<'a> {
    pub tenant: &'a TenantId,
    pub run_id: &'a str,
    pub page: u32,
    pub dry_run: bool,
    pub step: &'a ImportStep,
}

fn failed(class: ErrorClass, reason: impl Into<String>) -> MessageOutcome {
    MessageOutcome::Failed { class, reason: reason.into() }
}

/// Runs one import page.
pub async fn handle_page(deps: &Deps, job: &PageJob<'_>) -> MessageOutcome {
    let tenant = match deps.tenants.get_tenant(job.tenant).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return MessageOutcome::Rejected {
                code: "unknown_tenant".into(),
                message: format!("unknown tenant {}", job.tenant),
            };
        }
        Err(e) => return failed(e.class, e.chain()),
    };
    let Some(source) = Source::of(&tenant.import) else {
        return MessageOutcome::Rejected {
            code: "no_import_source".into(),
            message: format!("tenant {} has no import source (import.source)", tenant.id),
        };
    };
    if tenant.paused {
        // The run stops; the checkpoint stays and the next run resumes from it.
        tracing::info!(tenant = %tenant.id, run = job.run_id, "tenant paused: import page dropped, the next run resumes");
        return MessageOutcome::Done;
    }
    let lms = match credentials::lms_connection(deps.secrets.as_ref(), &deps.names, &tenant).await {
        Ok(c) => c,
        Err(e) => return credential_outcome(e),
    };
    let mut hris = None;
    let mut tokens = None;
    let mut integration_user = None;
    if source == Source::Hris {
        hris = match credentials::hris_connection(deps.secrets.as_ref(), &deps.names, &tenant).await {
            Ok(h) => Some(h),
            Err(e) => return credential_outcome(e),
        };
    } else {
        let links = deps.connection_links();
        tokens = match deps.tokens.session(&links, &tenant).await {
            Ok(t) => Some(t),
            Err(e) if e.parks_work() => {
                tracing::warn!(tenant = %tenant.id, error = %e, "not connected: import page dropped, the next run resumes");
                return MessageOutcome::Done;
            }
            Err(e) => return failed(e.class(), learnlink_core::error::error_chain(&e)),
        };
        integration_user = match deps.connections.connection(&tenant.id).await {
            Ok(c) => c.and_then(|c| c.integration_user).map(|u| u.user_id),
            Err(e) => return failed(e.class, e.chain()),
        };
    }
    let session = tokens.as_ref().map(|t| t.session());
    let ports = ImportPorts {
        salesforce: deps.salesforce.as_ref(),
        hris: deps.hris.as_ref(),
        lms: deps.lms_writer.as_ref(),
        store: deps.imports.as_ref(),
        queue: deps.queue.as_ref(),
        activity: deps.activity.as_ref(),
    };
    let input = PageInput {
        tenant: &tenant.id,
        settings: &tenant.import,
        session: session.as_ref(),
        hris: hris.as_ref(),
        lms: &lms,
        integration_user: integration_user.as_deref(),
        now: time::OffsetDateTime::now_utc(),
        run_id: job.run_id,
        page: job.page,
        dry_run: job.dry_run,
        step: job.step,
    };
    match engine::run_page(&ports, &input).await {
        Ok(PageOutcome::Done { counts, more }) => {
            tracing::info!(tenant = %tenant.id, run = job.run_id, page = job.page, seen = counts.seen,
                created = counts.created, updated = counts.updated, skipped = counts.skipped, failed = counts.failed,
                more, "import page done");
            MessageOutcome::Done
        }
        Ok(PageOutcome::Duplicate) => {
            tracing::info!(tenant = %tenant.id, run = job.run_id, page = job.page, "import page already done (redelivery)");
            MessageOutcome::Done
        }
        Ok(PageOutcome::Interrupted { reason }) => {
            tracing::warn!(tenant = %tenant.id, run = job.run_id, page = job.page, reason = %reason,
                "import run interrupted; the checkpoint is kept and the next run resumes from it");
            MessageOutcome::Done
        }
        Err(e) => failed(e.class, e.chain()),
    }
}

/// A page failing its last delivery moves to the DLQ: say so in the
/// activity log (the run stops there; its checkpoint is kept, so the next
/// run resumes, and `learnlink dlq replay` can send the page back).
pub async fn dead_letter(deps: &Deps, job: &PageJob<'_>, reason: &str, count: u32) {
    tracing::error!(tenant = %job.tenant, run = job.run_id, page = job.page, receive_count = count, reason = %reason,
        "last delivery of an import page failed: the message moves to the dead-letter queue");
    let entry = learnlink_core::activity::ActivityEntry {
        at: time::OffsetDateTime::now_utc(),
        job: format!("import:{}", job.run_id),
        direction: learnlink_core::activity::Direction::SalesforceToLms,
        object: "ImportPage".into(),
        lms_id: format!("page {}", job.page),
        learner_id: None,
        salesforce_id: None,
        outcome: learnlink_core::activity::Outcome::Failed,
        reason: Some("dead_letter".into()),
        message: Some(format!(
            "{reason} (after {count} deliveries; the next run resumes from the checkpoint, or replay with `learnlink dlq replay {}`)",
            job.tenant
        )),
    };
    if let Err(e) = deps.activity.record(job.tenant, &[entry]).await {
        tracing::error!(tenant = %job.tenant, error = %e.chain(), "could not write the activity log");
    }
}

/// A tenant without the connection it needs is refused (logged, not
/// retried); a Secrets Manager failure returns the message.
pub(crate) fn credential_outcome(e: learnlink_core::credentials::CredentialError) -> MessageOutcome {
    use learnlink_core::credentials::CredentialError;
    match e {
        CredentialError::Store(e) => failed(e.class, format!("reading the credentials: {}", e.chain())),
        other => MessageOutcome::Rejected { code: other.code().into(), message: other.to_string() },
    }
}
