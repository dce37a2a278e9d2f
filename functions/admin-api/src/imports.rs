//! Imports (SPEC §5.1, §5.6): start a run (or a dry run) on demand, read
//! the import state, and preview what the next run would do with each
//! person of its first page (raw source payload and computed action),
//! writing nothing.

use crate::{Answer, Deps, Fail, current, int_param, json_body};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use learnlink_adapters::lambda::json_response;
use learnlink_core::Classify;
use learnlink_core::credentials;
use learnlink_core::import::Source;
use learnlink_core::import::engine::{self, ImportPorts, PageInput, start_job};
use learnlink_core::job::ImportStep;
use learnlink_core::ports::ImportLane;
use learnlink_core::tenant::Tenant;
use serde_json::{Value, json};
use time::OffsetDateTime;

async fn tenant(deps: &Deps, raw: &str) -> Result<Tenant, Fail> {
    let stored = current(deps, raw).await?;
    Tenant::from_stored(&stored).map_err(Fail::from)
}

fn no_source(t: &Tenant) -> Fail {
    Fail::new(
        409,
        "no_import_source",
        format!(
            "tenant {} has no import source: set import.source (salesforce_user, salesforce_contact or hris)",
            t.id
        ),
    )
}

/// `POST /admin/tenants/{t}/imports` `{"dry_run": bool}` → 202 with the run id.
pub(crate) async fn start(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> Answer {
    let t = tenant(deps, raw).await?;
    if Source::of(&t.import).is_none() {
        return Err(no_source(&t));
    }
    let body = if req.body.as_deref().is_none_or(str::is_empty) { json!({}) } else { json_body(req)? };
    if !body.is_object() {
        // An array, a number, …: not an empty object (it must not start a run).
        return Err(Fail::bad_request("malformed_body", "the body must be a JSON object: {\"dry_run\": true|false}"));
    }
    let dry_run = match body.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Fail::bad_request("invalid_field", "dry_run must be true or false")),
    };
    if let Some(k) = body.as_object().and_then(|o| o.keys().find(|k| *k != "dry_run")) {
        return Err(Fail::bad_request("invalid_field", format!("unknown field {k:?}")));
    }
    let run_id = format!("{}-{}", if dry_run { "dry" } else { "run" }, now.unix_timestamp_nanos() / 1_000_000);
    if let Some(Err(e)) = deps.sync_queue.send(&[start_job(&t.id, &run_id, dry_run)]).await.into_iter().next() {
        return Err(e.into());
    }
    Ok(json_response(202, &json!({ "tenant": t.id, "run_id": run_id, "dry_run": dry_run })))
}

/// `GET /admin/tenants/{t}/imports`: the live and dry-run states.
pub(crate) async fn state(deps: &Deps, raw: &str) -> Answer {
    let t = tenant(deps, raw).await?;
    let live = deps.imports.import_state(&t.id, ImportLane::Live).await?.map(|(s, _)| s);
    let dry = deps.imports.import_state(&t.id, ImportLane::DryRun).await?.map(|(s, _)| s);
    Ok(json_response(
        200,
        &json!({
            "tenant": t.id,
            "source": Source::of(&t.import),
            "schedule": t.import.schedule(),
            "live": live,
            "dry_run": dry,
        }),
    ))
}

/// `POST /admin/tenants/{t}/imports/preview?limit=N` (1..=2000, default 50).
pub(crate) async fn preview(deps: &Deps, raw: &str, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> Answer {
    let t = tenant(deps, raw).await?;
    let Some(source) = Source::of(&t.import) else { return Err(no_source(&t)) };
    let limit = int_param(req, "limit", 1, 2000)?.unwrap_or(50) as usize;
    let lms = credentials::lms_connection(deps.secrets.as_ref(), &deps.names, &t).await.map_err(credential_fail)?;
    let mut hris = None;
    let mut tokens = None;
    let mut integration_user = None;
    if source == Source::Hris {
        hris =
            Some(credentials::hris_connection(deps.secrets.as_ref(), &deps.names, &t).await.map_err(credential_fail)?);
    } else {
        let links = learnlink_adapters::links(
            deps.secrets.as_ref(),
            deps.salesforce.as_ref(),
            deps.connections.as_ref(),
            &deps.names,
        );
        tokens =
            Some(deps.tokens.session(&links, &t).await.map_err(|e| {
                Fail::new(409, "not_connected", format!("tenant {} cannot reach Salesforce: {e}", t.id))
            })?);
        integration_user =
            deps.connections.connection(&t.id).await?.and_then(|c| c.integration_user).map(|u| u.user_id);
    }
    let session = tokens.as_ref().map(|t| t.session());
    let ports = ImportPorts {
        salesforce: deps.salesforce.as_ref(),
        hris: deps.hris.as_ref(),
        lms: deps.lms_writer.as_ref(),
        store: deps.imports.as_ref(),
        queue: deps.sync_queue.as_ref(),
        activity: deps.activity.as_ref(),
    };
    let input = PageInput {
        tenant: &t.id,
        settings: &t.import,
        session: session.as_ref(),
        hris: hris.as_ref(),
        lms: &lms,
        integration_user: integration_user.as_deref(),
        now,
        run_id: "preview",
        page: 1,
        dry_run: true,
        step: &ImportStep::Start,
    };
    match engine::preview(&ports, &input, limit).await {
        Ok(p) => Ok(json_response(200, &json!({ "tenant": t.id, "preview": p }))),
        Err(e) => Err(Fail::new(
            if e.class() == learnlink_core::ErrorClass::Permanent { 422 } else { 503 },
            "preview_failed",
            format!("the preview could not read the source or the LMS: {}", e.chain()),
        )),
    }
}

pub(crate) fn credential_fail(e: learnlink_core::credentials::CredentialError) -> Fail {
    use learnlink_core::credentials::CredentialError;
    match e {
        CredentialError::Store(e) => Fail::from(e),
        CredentialError::NotConfigured(m) => Fail::new(409, "not_configured", m),
        CredentialError::Missing(m) => Fail::new(409, "missing_secret", m),
        CredentialError::Unreadable(m) => Fail::new(409, "unreadable_secret", m),
    }
}
