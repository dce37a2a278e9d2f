//! Backfills (SPEC §6): `POST /admin/tenants/{tenant}/backfills` plans and
//! starts one; the minute schedule starts the gap backfills of relinked
//! tenants (SPEC §3.4) and sweeps the unfinished ones (kill switch owed,
//! paused for the API budget, stalled).

use crate::Deps;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use learnlink_adapters::lambda::{admin_authorized, body_bytes, error_response, json_response, path_param};
use learnlink_core::backfill::engine::{self, ControlPorts, StartError, StartRequest};
use learnlink_core::backfill::{self, Origin, Window};
use learnlink_core::connection::Links;
use learnlink_core::credentials;
use learnlink_core::model::TenantId;
use learnlink_core::tenant::Tenant;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

impl Deps {
    fn control(&self) -> ControlPorts<'_> {
        ControlPorts {
            store: self.backfills.as_ref(),
            lms: self.lms_enrollments.as_ref(),
            salesforce: self.salesforce.as_ref(),
            activity: self.activity.as_ref(),
            shards_queue: self.shards_queue.as_ref(),
        }
    }

    fn links(&self) -> Links<'_> {
        learnlink_adapters::links(
            self.secrets.as_ref(),
            self.salesforce.as_ref(),
            self.connections.as_ref(),
            &self.names,
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    since: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    only_changed: bool,
}

fn parse_time(name: &str, s: &str) -> Result<OffsetDateTime, ApiGatewayV2httpResponse> {
    learnlink_core::import::parse_timestamp(s).ok_or_else(|| {
        error_response(400, "bad_request", &format!("{name} must be an RFC 3339 timestamp, e.g. 2025-11-20T00:00:00Z"))
    })
}

/// `POST /admin/tenants/{tenant}/backfills {"since", "until"?, "only_changed"?}`.
pub async fn start_http(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> ApiGatewayV2httpResponse {
    if !admin_authorized(&deps.auth, req) {
        return error_response(401, "unauthorized", "a valid admin credential is required");
    }
    let Some(tenant) = path_param(req, "tenant").or_else(|| {
        req.raw_path.as_deref().and_then(|p| p.strip_prefix("/admin/tenants/")).and_then(|p| p.split('/').next())
    }) else {
        return error_response(400, "bad_request", "the path names no tenant");
    };
    let Ok(tenant_id) = TenantId::parse(tenant) else {
        return error_response(400, "bad_request", "the tenant id is not a valid tenant id");
    };
    let body = match body_bytes(req) {
        Ok(b) => b,
        Err(e) => return error_response(400, "bad_request", &e),
    };
    let body: StartBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error_response(400, "bad_request", &format!("the body is not a backfill request: {e}")),
    };
    let since = match parse_time("since", &body.since) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let until = match body.until.as_deref().map(|u| parse_time("until", u)).transpose() {
        Ok(u) => u.unwrap_or(now),
        Err(r) => return r,
    };
    let window = match Window::new(since, until) {
        Ok(w) => w,
        Err(e) => return error_response(400, "bad_request", &e),
    };
    let tenant = match deps.tenants.get_tenant(&tenant_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return error_response(404, "unknown_tenant", &format!("no tenant named \"{tenant_id}\"")),
        Err(e) => return unavailable(&e.chain()),
    };
    let req = StartRequest { window, only_changed: body.only_changed, origin: Origin::Admin };
    match start(deps, &tenant, req, now).await {
        Ok(view) => json_response(202, &json!({"backfill": view.backfill, "progress": view.progress})),
        Err(Refused::Running(id)) => error_response(
            409,
            "backfill_running",
            &format!("backfill {id} of tenant {tenant_id} is still running; cancel it or wait for it to end"),
        ),
        Err(Refused::Unusable { code, message }) => error_response(409, &code, &message),
        Err(Refused::Upstream(m)) => error_response(502, "upstream_failed", &m),
        Err(Refused::Unavailable(m)) => unavailable(&m),
    }
}

fn unavailable(chain: &str) -> ApiGatewayV2httpResponse {
    tracing::error!(error = %chain, "backfill request failed");
    error_response(503, "unavailable", "a store learnlink depends on failed; retry later")
}

/// Why a start was refused, in the answer's terms.
pub enum Refused {
    Running(String),
    /// The tenant cannot be backfilled as configured (no LMS, not connected).
    Unusable {
        code: String,
        message: String,
    },
    /// The LMS or Salesforce failed.
    Upstream(String),
    Unavailable(String),
}

/// Plan and start a backfill for a tenant.
pub async fn start(
    deps: &Deps,
    tenant: &Tenant,
    req: StartRequest,
    now: OffsetDateTime,
) -> Result<engine::View, Refused> {
    let lms = credentials::lms_connection(deps.secrets.as_ref(), &deps.names, tenant).await.map_err(|e| match e {
        credentials::CredentialError::Store(e) => Refused::Unavailable(e.chain()),
        other => Refused::Unusable { code: other.code().into(), message: other.to_string() },
    })?;
    let tokens = deps.tokens.session(&deps.links(), tenant).await.map_err(|e| Refused::Unusable {
        code: "not_connected".into(),
        message: format!("tenant {} cannot reach Salesforce: {e}", tenant.id),
    })?;
    let session = tokens.session();
    let id = backfill::new_id(now, &uuid::Uuid::new_v4().simple().to_string());
    engine::start(&deps.control(), tenant, &lms, &session, tokens.org_id.as_deref(), req, id, now).await.map_err(|e| {
        match e {
            StartError::Running(id) => Refused::Running(id),
            StartError::Lms(e) => Refused::Upstream(format!("the LMS could not count the window: {}", e.chain())),
            e @ StartError::KillSwitch(_) => Refused::Upstream(learnlink_core::error::error_chain(&e)),
            StartError::Port(e) => Refused::Unavailable(e.chain()),
        }
    })
}

/// The minute sweep: relink gaps become backfills; unfinished backfills are
/// swept. Returns a line per action for the invocation's answer.
pub async fn sweep(deps: &Deps, now: OffsetDateTime) -> Vec<String> {
    let mut done = Vec::new();
    match deps.tenants.list_tenants().await {
        Ok(tenants) => {
            for t in &tenants {
                done.extend(start_gaps(deps, t, now).await);
            }
        }
        Err(e) => tracing::error!(error = %e.chain(), "tenants not listed; gap backfills wait for the next sweep"),
    }
    let open = match deps.backfills.unfinished_backfills().await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e.chain(), "unfinished backfills not listed");
            return done;
        }
    };
    for b in open {
        let tenant = match deps.tenants.get_tenant(&b.tenant).await {
            Ok(Some(t)) => t,
            _ => continue,
        };
        let tokens = match deps.tokens.session(&deps.links(), &tenant).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, backfill = %b.id, error = %e, "backfill not swept: no Salesforce session");
                continue;
            }
        };
        let session = tokens.session();
        match engine::sweep(&deps.control(), &b, &session, tokens.org_id.as_deref(), tenant.api_budget.policy(), now)
            .await
        {
            Ok(engine::SweepAction::Nothing) => {}
            Ok(a) => {
                tracing::info!(tenant = %tenant.id, backfill = %b.id, action = ?a, "backfill swept");
                done.push(format!("{}/{}: {a:?}", tenant.id, b.id));
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant.id, backfill = %b.id, error = %e.chain(), "backfill sweep failed")
            }
        }
    }
    done
}

/// Pending gaps of a relinked tenant (SPEC §3.4) become backfills, one at a
/// time; a gap is marked `started:<id>` once its backfill exists.
async fn start_gaps(deps: &Deps, tenant: &Tenant, now: OffsetDateTime) -> Vec<String> {
    let Ok(Some(conn)) = deps.connections.connection(&tenant.id).await else { return vec![] };
    let Some(gap) = conn.gap_backfills.iter().find(|g| g.state == "pending").cloned() else { return vec![] };
    if tenant.lms_base_url.is_none() || tenant.paused {
        return vec![];
    }
    let Ok(window) = Window::new(gap.from, gap.to) else { return vec![] };
    let req = StartRequest { window, only_changed: false, origin: Origin::Relink { gap_id: gap.id.clone() } };
    match start(deps, tenant, req, now).await {
        Ok(view) => {
            let id = view.backfill.id.clone();
            let gap_id = gap.id.clone();
            let r = learnlink_core::connection::update_connection(deps.connections.as_ref(), &tenant.id, |c| {
                for g in c.gap_backfills.iter_mut() {
                    if g.id == gap_id && g.state == "pending" {
                        g.state = format!("started:{id}");
                    }
                }
            })
            .await;
            if let Err(e) = r {
                tracing::error!(tenant = %tenant.id, error = %e.chain(), "the gap's backfill started but the gap was not marked");
            }
            tracing::info!(tenant = %tenant.id, gap = %gap.id, backfill = %view.backfill.id, "gap backfill started");
            vec![format!("{}: gap {} → {}", tenant.id, gap.id, view.backfill.id)]
        }
        Err(Refused::Running(_)) => vec![],
        Err(Refused::Unusable { message, .. } | Refused::Upstream(message) | Refused::Unavailable(message)) => {
            tracing::warn!(tenant = %tenant.id, gap = %gap.id, reason = %message, "gap backfill not started; the next sweep tries again");
            vec![]
        }
    }
}
