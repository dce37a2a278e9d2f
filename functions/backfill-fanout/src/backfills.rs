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

/// A refused request: status, stable code (the admin API's codes), one sentence.
#[derive(Debug, PartialEq)]
struct Bad(u16, &'static str, String);

impl Bad {
    fn field(message: impl Into<String>) -> Bad {
        Bad(400, "invalid_field", message.into())
    }
    fn body(message: impl Into<String>) -> Bad {
        Bad(400, "malformed_body", message.into())
    }
    fn response(&self) -> ApiGatewayV2httpResponse {
        error_response(self.0, self.1, &self.2)
    }
}

const SHAPE: &str = r#"{"since": "<RFC 3339>", "until"?: "<RFC 3339>", "only_changed"?: true|false}"#;

/// The body of a start request: its window and `only_changed`. The codes are
/// the admin API's: `malformed_body` (not a JSON object), `invalid_field`
/// (a member missing, unknown or of the wrong kind), `invalid_window`.
fn parse_start(body: &[u8], now: OffsetDateTime) -> Result<(Window, bool), Bad> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Bad::body(format!("the request needs a JSON body: {SHAPE}")));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Bad::body(format!("the body is not JSON: {e}")))?;
    let Some(o) = v.as_object() else {
        return Err(Bad::body(format!("the body must be a JSON object: {SHAPE}")));
    };
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "since" | "until" | "only_changed")) {
        return Err(Bad::field(format!("unknown field {k:?}; a backfill request is {SHAPE}")));
    }
    let time =
        |name: &str| -> Result<Option<OffsetDateTime>, Bad> {
            match o.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_str().and_then(learnlink_core::import::parse_timestamp).map(Some).ok_or_else(|| {
                    Bad::field(format!("{name} must be an RFC 3339 timestamp, e.g. 2025-11-20T00:00:00Z"))
                }),
            }
        };
    let since = time("since")?
        .ok_or_else(|| Bad::field("since is required: an RFC 3339 timestamp, e.g. 2025-11-20T00:00:00Z"))?;
    let until = time("until")?.unwrap_or(now);
    let only_changed = match o.get("only_changed") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(Bad::field("only_changed must be true or false")),
    };
    let window = Window::new(since, until).map_err(|m| Bad(400, "invalid_window", m))?;
    Ok((window, only_changed))
}

/// `POST /admin/tenants/{tenant}/backfills {"since", "until"?, "only_changed"?}`.
pub async fn start_http(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> ApiGatewayV2httpResponse {
    if !admin_authorized(&deps.auth, req) {
        return error_response(401, "unauthorized", "a valid admin credential is required");
    }
    let Some(tenant) = path_param(req, "tenant").or_else(|| {
        req.raw_path.as_deref().and_then(|p| p.strip_prefix("/admin/tenants/")).and_then(|p| p.split('/').next())
    }) else {
        return error_response(404, "not_found", "the path names no tenant");
    };
    // As the admin API: a tenant id that cannot be one names no tenant.
    let Ok(tenant_id) = TenantId::parse(tenant) else {
        return error_response(404, "unknown_tenant", &format!("no tenant named {tenant:?}"));
    };
    let parsed = body_bytes(req).map_err(Bad::body).and_then(|b| parse_start(&b, now));
    let (window, only_changed) = match parsed {
        Ok(p) => p,
        Err(bad) => return bad.response(),
    };
    let tenant = match deps.tenants.get_tenant(&tenant_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return error_response(404, "unknown_tenant", &format!("no tenant named {tenant:?}")),
        Err(e) => return unavailable(&e.chain()),
    };
    let req = StartRequest { window, only_changed, origin: Origin::Admin };
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

#[cfg(test)]
mod request_tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-24 10:00 UTC);

    fn code(body: &str) -> (u16, &'static str) {
        let Bad(status, code, message) = parse_start(body.as_bytes(), NOW).unwrap_err();
        assert!(!message.is_empty());
        (status, code)
    }

    #[test]
    fn a_start_request_is_read_with_the_admin_api_codes() {
        let (w, only) = parse_start(br#"{"since": "2026-01-01T00:00:00Z"}"#, NOW).unwrap();
        assert_eq!((w.since, w.until, only), (time::macros::datetime!(2026-01-01 0:00 UTC), NOW, false));
        let (w, only) = parse_start(
            br#"{"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z", "only_changed": true}"#,
            NOW,
        )
        .unwrap();
        assert_eq!((w.until, only), (time::macros::datetime!(2026-02-01 0:00 UTC), true));
        let malformed = (400, "malformed_body");
        let field = (400, "invalid_field");
        for (body, want) in [
            ("", malformed),
            ("  ", malformed),
            ("{\"since\"", malformed),
            ("[1]", malformed),
            ("\"2026-01-01T00:00:00Z\"", malformed),
            ("{}", field),
            (r#"{"until": "2026-01-01T00:00:00Z"}"#, field),
            (r#"{"since": null}"#, field),
            (r#"{"since": "last week"}"#, field),
            (r#"{"since": 1767225600}"#, field),
            (r#"{"since": "2026-01-01T00:00:00Z", "until": "soon"}"#, field),
            (r#"{"since": "2026-01-01T00:00:00Z", "shards": 3}"#, field),
            (r#"{"since": "2026-01-01T00:00:00Z", "only_changed": "yes"}"#, field),
            (r#"{"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}"#, (400, "invalid_window")),
        ] {
            assert_eq!(code(body), want, "{body}");
        }
    }
}
