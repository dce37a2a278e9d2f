//! oauth-callback (SPEC §3.1): the OAuth 2.0 web-server flow with PKCE.
//!
//! `GET /oauth/{tenant}/start` draws a ≥128-bit `state` and a PKCE verifier,
//! keeps them single-use in DynamoDB for 10 minutes and redirects to the
//! tenant's Salesforce login host (production, sandbox or My Domain).
//! `GET /oauth/callback` takes the state atomically (unknown, used or expired
//! → a clear error page, nothing stored), exchanges the code with the
//! verifier, checks the integration user's profile and permission sets,
//! stores the tokens in Secrets Manager, marks the connection CONNECTED
//! (keeping every setting), records the gap to backfill if the tenant had been
//! disconnected, and replays the work parked meanwhile.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use http::HeaderValue;
use learnlink_adapters::lambda::{html_response, path_param};
use learnlink_core::connection::{IntegrationUser, drain_parked, update_connection};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{
    ConfigStore, ConnectionStore, JobQueue, OAuthStateStore, ParkStore, PendingAuth, SalesforceApi, SecretStore,
};
use learnlink_core::salesforce::oauth::AuthorizeRequest;
use learnlink_core::salesforce::{SalesforceError, TokenSet};
use learnlink_core::tenant::{SalesforceEnvironment, SecretNames, Tenant};
use learnlink_core::{Classify, PortError};
use secrecy::SecretString;
use serde_json::{Map, Value};
use std::sync::Arc;
use time::OffsetDateTime;

/// How long a started authorization stays valid.
pub const STATE_TTL: time::Duration = time::Duration::minutes(10);
/// Parked jobs replayed right at relink (the health check replays the rest).
pub const DRAIN_AT_RELINK: usize = 5_000;

pub struct Deps {
    pub configs: Arc<dyn ConfigStore>,
    pub states: Arc<dyn OAuthStateStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub salesforce: Arc<dyn SalesforceApi>,
    pub connections: Arc<dyn ConnectionStore>,
    pub parking: Arc<dyn ParkStore>,
    pub sync_queue: Arc<dyn JobQueue>,
    pub names: SecretNames,
    /// How long a started authorization stays valid ([`STATE_TTL`] unless configured).
    pub state_ttl: time::Duration,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(status: u16, title: &str, paragraphs: &[String]) -> ApiGatewayV2httpResponse {
    let body: String = paragraphs.iter().map(|p| format!("<p>{}</p>", escape(p))).collect();
    let mut r = html_response(
        status,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>learnlink: {t}</title></head>\
             <body><h1>{t}</h1>{body}</body></html>",
            t = escape(title)
        ),
    );
    r.headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn unavailable(e: &PortError) -> ApiGatewayV2httpResponse {
    tracing::error!(error = %e.chain(), "OAuth request failed on a store");
    page(503, "Try again in a moment", &["learnlink could not reach one of its stores. Nothing was changed.".into()])
}

/// Where Salesforce sends the browser back: this API's own callback.
pub fn redirect_uri(req: &ApiGatewayV2httpRequest) -> String {
    let host = req
        .request_context
        .domain_name
        .clone()
        .or_else(|| req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    let local = host.starts_with("127.0.0.1") || host.starts_with("localhost");
    let scheme = req
        .headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| if local { "http".into() } else { "https".into() });
    format!("{scheme}://{host}/oauth/callback")
}

async fn tenant(deps: &Deps, raw: &str) -> Result<Option<Tenant>, PortError> {
    let Ok(id) = TenantId::parse(raw) else { return Ok(None) };
    match deps.configs.current_config(&id).await? {
        Some(c) => Tenant::from_stored(&c).map(Some),
        None => Ok(None),
    }
}

pub async fn start(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> ApiGatewayV2httpResponse {
    let raw = path_param(req, "tenant").unwrap_or("");
    let t = match tenant(deps, raw).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return page(404, "Unknown tenant", &[format!("There is no tenant named {raw:?}. Nothing was changed.")]);
        }
        Err(e) => return unavailable(&e),
    };
    let redirect = redirect_uri(req);
    let auth = AuthorizeRequest {
        login_url: t.salesforce.login_url().to_string(),
        client_id: t.salesforce_client_id.clone(),
        redirect_uri: redirect.clone(),
        scope: Some("api refresh_token".into()),
        prompt: Some("login consent".into()),
    };
    let started = match learnlink_adapters::salesforce::oauth::authorize_start(&auth) {
        Ok(s) => s,
        Err(e) => {
            return page(
                500,
                "Cannot start the connection",
                &[format!("The tenant's Salesforce settings are unusable: {e}")],
            );
        }
    };
    let pending = PendingAuth {
        tenant: t.id.clone(),
        code_verifier: started.pkce.verifier().clone(),
        redirect_uri: redirect,
        expires_at: now + deps.state_ttl,
    };
    if let Err(e) = deps.states.save_state(started.state.as_str(), &pending).await {
        return unavailable(&e);
    }
    tracing::info!(tenant = %t.id, "OAuth connect started");
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = 302;
    if let Ok(v) = HeaderValue::from_str(&started.url) {
        r.headers.insert(http::header::LOCATION, v);
    }
    r.headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn query<'a>(req: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    req.query_string_parameters.first(name).filter(|v| !v.is_empty())
}

fn field<'a>(row: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let mut cur = row.get(path[0])?;
    for p in &path[1..] {
        cur = cur.get(p)?;
    }
    Some(cur)
}

/// The integration user's rights: admin (Modify All Data, or the System
/// Administrator profile) is more than learnlink needs (SPEC §3.5).
pub async fn check_integration_user(
    sf: &dyn SalesforceApi,
    tokens: &TokenSet,
) -> Result<Option<IntegrationUser>, SalesforceError> {
    let Some(user_id) = tokens.user_id.clone() else { return Ok(None) };
    let session = tokens.session();
    let id = learnlink_core::soql::quote(&user_id);
    let users = sf
        .query(
            &session,
            &format!("SELECT Id, Username, Profile.Name, Profile.PermissionsModifyAllData FROM User WHERE Id = {id}"),
        )
        .await?;
    let Some(u) = users.first() else { return Ok(None) };
    let profile = field(u, &["Profile", "Name"]).and_then(Value::as_str).map(str::to_string);
    let mut admin_sources = Vec::new();
    let profile_mad = field(u, &["Profile", "PermissionsModifyAllData"]).and_then(Value::as_bool).unwrap_or(false);
    if profile_mad || profile.as_deref() == Some("System Administrator") {
        admin_sources.push(format!("profile {}", profile.clone().unwrap_or_default()));
    }
    let sets = sf
        .query(
            &session,
            &format!(
                "SELECT PermissionSet.Name, PermissionSet.PermissionsModifyAllData FROM PermissionSetAssignment \
                 WHERE AssigneeId = {id}"
            ),
        )
        .await?;
    for s in &sets {
        if field(s, &["PermissionSet", "PermissionsModifyAllData"]).and_then(Value::as_bool).unwrap_or(false) {
            let name = field(s, &["PermissionSet", "Name"]).and_then(Value::as_str).unwrap_or("?");
            admin_sources.push(format!("permission set {name}"));
        }
    }
    Ok(Some(IntegrationUser {
        user_id,
        username: u.get("Username").and_then(Value::as_str).map(str::to_string),
        profile,
        admin_rights: !admin_sources.is_empty(),
        admin_sources,
    }))
}

pub async fn callback(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> ApiGatewayV2httpResponse {
    let invalid = || {
        page(
            400,
            "This sign-in link cannot be used",
            &[
                "The link is unknown, has expired (after 10 minutes) or was used already. Nothing was stored.".into(),
                "Start again with `learnlink connect <tenant>`.".into(),
            ],
        )
    };
    let Some(state) = query(req, "state") else { return invalid() };
    // The state is taken (deleted) whatever happens next: single use.
    let pending = match deps.states.take_state(state, now).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            tracing::warn!("OAuth callback with an unknown, used or expired state");
            return invalid();
        }
        Err(e) => return unavailable(&e),
    };
    let tenant_name = pending.tenant.to_string();
    if let Some(error) = query(req, "error") {
        let description = query(req, "error_description").unwrap_or("");
        tracing::warn!(tenant = %tenant_name, error, "Salesforce did not grant access");
        return page(
            400,
            "Salesforce did not grant access",
            &[
                format!("Salesforce answered {error}: {description}. Nothing was stored."),
                format!("To try again: `learnlink connect {tenant_name}`, then approve access."),
            ],
        );
    }
    let Some(code) = query(req, "code") else { return invalid() };
    let t = match tenant(deps, &tenant_name).await {
        Ok(Some(t)) => t,
        Ok(None) => return page(404, "Unknown tenant", &[format!("The tenant {tenant_name:?} no longer exists.")]),
        Err(e) => return unavailable(&e),
    };
    let exchanged = deps
        .salesforce
        .exchange_code(
            t.salesforce.login_url(),
            &t.salesforce_client_id,
            &SecretString::from(code.to_string()),
            &pending.redirect_uri,
            &pending.code_verifier,
        )
        .await;
    let mut tokens = match exchanged {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(tenant = %tenant_name, class = %e.class(), code = %e.code(), "the code exchange failed");
            return page(
                if e.class() == learnlink_core::ErrorClass::Permanent { 400 } else { 502 },
                "The connection could not be completed",
                &[
                    format!(
                        "Salesforce refused to exchange the authorization code ({}). Nothing was stored.",
                        e.code()
                    ),
                    format!("Start again with `learnlink connect {tenant_name}`."),
                ],
            );
        }
    };
    tokens.env = Some(match &t.salesforce {
        SalesforceEnvironment::Production => "production".into(),
        SalesforceEnvironment::Sandbox => "sandbox".into(),
        SalesforceEnvironment::MyDomain(u) => u.clone(),
    });
    let user = match check_integration_user(deps.salesforce.as_ref(), &tokens).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(tenant = %tenant_name, error = %e, "could not read the integration user's rights");
            None
        }
    };
    if let Err(e) = deps.secrets.put_secret(&deps.names.salesforce_tokens(&t.id), &tokens.to_secret_json()).await {
        return unavailable(&e);
    }
    let overlap = time::Duration::minutes(overlap_minutes(deps, &t).await);
    let gap_id = uuid::Uuid::new_v4().simple().to_string();
    let state = match update_connection(deps.connections.as_ref(), &t.id, |s| {
        s.mark_connected(now, overlap, gap_id.clone());
        s.integration_user = user.clone();
        s.failures = Default::default();
    })
    .await
    {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    let gap = state.gap_backfills.iter().find(|g| g.id == gap_id).cloned();
    let replayed = match drain_parked(deps.parking.as_ref(), deps.sync_queue.as_ref(), &t.id, DRAIN_AT_RELINK).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(tenant = %t.id, error = %e.chain(), "replaying parked work failed; the health check continues");
            0
        }
    };
    tracing::info!(tenant = %t.id, replayed, gap = gap.is_some(), admin = user.as_ref().is_some_and(|u| u.admin_rights), "Salesforce connected");
    let mut lines = vec![format!(
        "learnlink is connected to Salesforce for tenant {tenant_name}{}. You can close this window.",
        user.as_ref().and_then(|u| u.username.as_ref()).map(|n| format!(" as {n}")).unwrap_or_default()
    )];
    if replayed > 0 {
        lines.push(format!("{replayed} job(s) kept while disconnected are being sent to Salesforce now."));
    }
    if let Some(g) = gap {
        lines.push(format!(
            "The gap from {} to {} is recorded for a backfill.",
            g.from.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            g.to.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
        ));
    }
    if let Some(u) = user.filter(|u| u.admin_rights) {
        lines.push(format!(
            "Warning: the integration user has admin rights ({}): more than learnlink needs. Give it a profile and \
             permission sets without Modify All Data (least privilege).",
            u.admin_sources.join(", ")
        ));
    }
    page(200, "Connected", &lines)
}

async fn overlap_minutes(deps: &Deps, t: &Tenant) -> i64 {
    let Ok(Some(c)) = deps.configs.current_config(&t.id).await else { return 60 };
    serde_json::from_value::<learnlink_core::config::TenantConfig>(c.doc)
        .map(|c| c.backfill.relink_overlap_minutes() as i64)
        .unwrap_or(60)
}

pub async fn handle(deps: &Deps, req: &ApiGatewayV2httpRequest, now: OffsetDateTime) -> ApiGatewayV2httpResponse {
    let path = req.raw_path.as_deref().unwrap_or("");
    if path == "/oauth/callback" {
        callback(deps, req, now).await
    } else if path.starts_with("/oauth/") && path.ends_with("/start") {
        start(deps, req, now).await
    } else {
        page(404, "Not found", &["No such page.".into()])
    }
}

#[cfg(test)]
mod tests;
