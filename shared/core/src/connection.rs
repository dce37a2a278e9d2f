//! The connection lifecycle (SPEC §3): the stored state of each tenant's
//! Salesforce connection, and the token provider every function uses.
//!
//! Refresh under Refresh Token Rotation is single-flight across all
//! instances: a DynamoDB lease per tenant (conditional write, expiry,
//! fencing counter). The holder re-reads the secret (another instance may
//! already have rotated), refreshes, and writes the new token set to Secrets
//! Manager *before* using it. "Token request is already being processed" is
//! retried with backoff. A real `invalid_grant` is confirmed by re-reading the
//! stored secret once; only then is the connection DISCONNECTED. Failures of
//! the org itself (5xx, network) are counted per day and never disconnect.

use crate::error::{Classify, ErrorClass, PortError, error_chain};
use crate::ports::{ConnectionStore, SalesforceApi, SecretStore};
use crate::salesforce::{SalesforceError, TokenSet};
use crate::tenant::{SecretNames, Tenant};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// The tenant lease (`TenantLease`) that makes token refresh single-flight.
pub const REFRESH_LEASE: &str = "refresh";
/// How long a refresh lease lives if its holder dies.
pub const LEASE_TTL: time::Duration = time::Duration::seconds(60);
/// How long an instance waits for another one's refresh before giving up
/// (the message is retried later).
pub const REFRESH_WAIT: Duration = Duration::from_secs(45);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    NeverConnected,
    Connected,
    Disconnected,
}

/// Why a connection is DISCONNECTED, as far as Salesforce tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DisconnectCause {
    /// `invalid_grant` "expired access/refresh token": revoked (password
    /// reset, app revoked by an admin, token reuse) or expired by policy.
    RefreshTokenRevokedOrExpired,
    /// The integration user was deactivated.
    IntegrationUserInactive,
    /// Any other refusal of the refresh token, with Salesforce's words.
    RefreshRefused { description: String },
}

impl DisconnectCause {
    pub fn from_description(description: &str) -> DisconnectCause {
        let d = description.to_ascii_lowercase();
        if d.contains("expired access/refresh token") || d.contains("expired") || d.contains("revoked") {
            DisconnectCause::RefreshTokenRevokedOrExpired
        } else if d.contains("inactive user") {
            DisconnectCause::IntegrationUserInactive
        } else {
            DisconnectCause::RefreshRefused { description: description.to_string() }
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            DisconnectCause::RefreshTokenRevokedOrExpired => "refresh_token_revoked_or_expired",
            DisconnectCause::IntegrationUserInactive => "integration_user_inactive",
            DisconnectCause::RefreshRefused { .. } => "refresh_refused",
        }
    }

    pub fn sentence(&self) -> String {
        match self {
            DisconnectCause::RefreshTokenRevokedOrExpired => {
                "Salesforce revoked or expired the refresh token (for example the integration \
                 user's password was reset, an admin revoked the app, or the token sat unused past the org's policy)."
                    .into()
            }
            DisconnectCause::IntegrationUserInactive => "The integration user was deactivated in Salesforce.".into(),
            DisconnectCause::RefreshRefused { description } => {
                format!("Salesforce refused the refresh token: {description}.")
            }
        }
    }
}

/// Failures of the org counted per UTC day (SPEC §3.4): an outage shows as
/// DEGRADED with its count, never as a disconnection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyFailures {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationUser {
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Modify All Data (or the System Administrator profile): more than the
    /// integration needs.
    pub admin_rights: bool,
    /// Where the admin rights come from (profile, permission set names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_sources: Vec<String>,
}

/// A window to backfill after a relink (SPEC §3.4); executed by the backfill
/// work, recorded and shown until then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapBackfill {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionState {
    pub status: LinkStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<DisconnectCause>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<OffsetDateTime>,
    /// Last successful refresh (or connect): the keep-alive clock.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub last_refresh_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub failures: DailyFailures,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_user: Option<IntegrationUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_usage: Option<crate::budget::ApiUsage>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub last_probe_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gap_backfills: Vec<GapBackfill>,
    /// Optimistic concurrency: bumped on every write.
    #[serde(default)]
    pub revision: u64,
}

impl Default for ConnectionState {
    fn default() -> Self {
        ConnectionState {
            status: LinkStatus::NeverConnected,
            cause: None,
            connected_at: None,
            disconnected_at: None,
            last_refresh_at: None,
            failures: DailyFailures::default(),
            integration_user: None,
            api_usage: None,
            last_probe_at: None,
            gap_backfills: Vec::new(),
            revision: 0,
        }
    }
}

pub fn utc_day(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

impl ConnectionState {
    /// Failures counted today (0 when the count is from another day).
    pub fn failures_on(&self, now: OffsetDateTime) -> u32 {
        if self.failures.day == utc_day(now) { self.failures.count } else { 0 }
    }

    pub fn record_failure(&mut self, now: OffsetDateTime, error: String) {
        let day = utc_day(now);
        if self.failures.day != day {
            self.failures = DailyFailures { day, count: 0, last_error: None };
        }
        self.failures.count += 1;
        self.failures.last_error = Some(error);
    }

    pub fn mark_disconnected(&mut self, cause: DisconnectCause, now: OffsetDateTime) {
        if self.status != LinkStatus::Disconnected {
            self.disconnected_at = Some(now);
        }
        self.status = LinkStatus::Disconnected;
        self.cause = Some(cause);
    }

    /// A (re)connection: keeps everything else; records the gap to backfill
    /// when the tenant had been disconnected.
    pub fn mark_connected(
        &mut self,
        now: OffsetDateTime,
        overlap: time::Duration,
        gap_id: String,
    ) -> Option<GapBackfill> {
        let gap = self.disconnected_at.map(|since| GapBackfill {
            id: gap_id,
            from: since - overlap,
            to: now,
            recorded_at: now,
            state: "pending".into(),
        });
        if let Some(g) = &gap {
            self.gap_backfills.push(g.clone());
        }
        self.status = LinkStatus::Connected;
        self.cause = None;
        self.disconnected_at = None;
        self.connected_at = Some(now);
        self.last_refresh_at = Some(now);
        gap
    }
}

/// Read-modify-write of the connection state with optimistic concurrency.
pub async fn update_connection(
    store: &dyn ConnectionStore,
    tenant: &crate::model::TenantId,
    f: impl Fn(&mut ConnectionState),
) -> Result<ConnectionState, PortError> {
    for _ in 0..10 {
        let current = store.connection(tenant).await?;
        let expected = current.as_ref().map(|c| c.revision);
        let mut next = current.unwrap_or_default();
        f(&mut next);
        next.revision = expected.unwrap_or(0) + 1;
        if store.put_connection(tenant, &next, expected).await? {
            return Ok(next);
        }
    }
    Err(PortError::retryable(format!("the connection state of {tenant} kept changing concurrently")))
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("tenant {0} has not connected Salesforce yet")]
    NotConnected(String),
    #[error("tenant {tenant} is disconnected: {}", cause.sentence())]
    Disconnected { tenant: String, cause: DisconnectCause },
    #[error("another instance is refreshing the session of {0}; retry shortly")]
    Busy(String),
    #[error("reading or writing the tenant's connection failed")]
    Store(#[source] PortError),
    #[error("refreshing the Salesforce session failed")]
    Refresh(#[source] SalesforceError),
}

impl ConnectionError {
    /// Whether work for this tenant should be parked rather than retried.
    pub fn parks_work(&self) -> bool {
        matches!(self, ConnectionError::NotConnected(_) | ConnectionError::Disconnected { .. })
    }
}

impl Classify for ConnectionError {
    fn class(&self) -> ErrorClass {
        match self {
            ConnectionError::NotConnected(_) | ConnectionError::Disconnected { .. } => ErrorClass::Permanent,
            ConnectionError::Busy(_) => ErrorClass::Retryable,
            ConnectionError::Store(e) => e.class,
            ConnectionError::Refresh(e) => e.class(),
        }
    }
}

/// Sleeping, injectable so tests do not wait.
#[async_trait::async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, d: Duration);
}

/// What the token provider needs.
pub struct Links<'a> {
    pub secrets: &'a dyn SecretStore,
    pub salesforce: &'a dyn SalesforceApi,
    pub connections: &'a dyn ConnectionStore,
    pub names: &'a SecretNames,
    pub sleeper: &'a dyn Sleeper,
}

/// One per function instance: caches each tenant's token set.
pub struct TokenProvider {
    holder: String,
    cache: Mutex<HashMap<String, TokenSet>>,
}

impl TokenProvider {
    /// `holder` names this instance in leases (a random id per cold start).
    pub fn new(holder: impl Into<String>) -> TokenProvider {
        TokenProvider { holder: holder.into(), cache: Mutex::new(HashMap::new()) }
    }

    fn cached(&self, tenant: &Tenant) -> Option<TokenSet> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(tenant.id.as_str()).cloned()
    }

    fn remember(&self, tenant: &Tenant, t: &TokenSet) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(tenant.id.to_string(), t.clone());
    }

    pub fn forget(&self, tenant: &Tenant) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(tenant.id.as_str());
    }

    async fn stored(&self, l: &Links<'_>, tenant: &Tenant) -> Result<TokenSet, ConnectionError> {
        let secret = l
            .secrets
            .get_secret(&l.names.salesforce_tokens(&tenant.id))
            .await
            .map_err(ConnectionError::Store)?
            .ok_or_else(|| ConnectionError::NotConnected(tenant.id.to_string()))?;
        TokenSet::from_secret_json(&secret).map_err(ConnectionError::Store)
    }

    /// A session to use: cached, else stored — unless the connection is
    /// known to be DISCONNECTED.
    pub async fn session(&self, l: &Links<'_>, tenant: &Tenant) -> Result<TokenSet, ConnectionError> {
        if let Some(state) = l.connections.connection(&tenant.id).await.map_err(ConnectionError::Store)?
            && state.status == LinkStatus::Disconnected
        {
            self.forget(tenant);
            return Err(ConnectionError::Disconnected {
                tenant: tenant.id.to_string(),
                cause: state.cause.unwrap_or(DisconnectCause::RefreshTokenRevokedOrExpired),
            });
        }
        if let Some(t) = self.cached(tenant) {
            return Ok(t);
        }
        let t = self.stored(l, tenant).await?;
        self.remember(tenant, &t);
        Ok(t)
    }

    /// A fresh session after `stale` was refused with INVALID_SESSION_ID (or,
    /// for the keep-alive, to refresh on purpose). Single-flight across all
    /// instances; see the module documentation.
    pub async fn refreshed(
        &self,
        l: &Links<'_>,
        tenant: &Tenant,
        stale: &TokenSet,
        now: impl Fn() -> OffsetDateTime,
    ) -> Result<TokenSet, ConnectionError> {
        let started = std::time::Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let stored = self.stored(l, tenant).await?;
            if stored.access_token.expose_secret() != stale.access_token.expose_secret() {
                self.remember(tenant, &stored);
                return Ok(stored);
            }
            let lease = l
                .connections
                .acquire(&tenant.id, REFRESH_LEASE, &self.holder, now(), LEASE_TTL)
                .await
                .map_err(ConnectionError::Store)?;
            if let Some(fence) = lease {
                let outcome = self.refresh_holding_lease(l, tenant, stale, fence, &now).await;
                if let Err(e) = l.connections.release(&tenant.id, REFRESH_LEASE, &self.holder).await {
                    tracing::warn!(tenant = %tenant.id, error = %e.chain(), "could not release the refresh lease; it expires by itself");
                }
                match outcome {
                    Ok(Some(t)) => return Ok(t),
                    Ok(None) => {} // retry after the backoff below
                    Err(e) => return Err(e),
                }
            }
            if started.elapsed() > REFRESH_WAIT {
                return Err(ConnectionError::Busy(tenant.id.to_string()));
            }
            l.sleeper.sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// `Ok(None)`: try again (Salesforce is still processing a refresh, or
    /// another instance rotated the token meanwhile).
    async fn refresh_holding_lease(
        &self,
        l: &Links<'_>,
        tenant: &Tenant,
        stale: &TokenSet,
        fence: u64,
        now: &impl Fn() -> OffsetDateTime,
    ) -> Result<Option<TokenSet>, ConnectionError> {
        // Re-read under the lease: someone may have refreshed just before.
        let stored = self.stored(l, tenant).await?;
        if stored.access_token.expose_secret() != stale.access_token.expose_secret() {
            self.remember(tenant, &stored);
            return Ok(Some(stored));
        }
        let result = l
            .salesforce
            .refresh(tenant.salesforce.login_url(), &tenant.salesforce_client_id, &stored.refresh_token)
            .await;
        match result {
            Ok(mut fresh) => {
                fresh.env = stored.env.clone();
                fresh.user_id = fresh.user_id.or(stored.user_id.clone());
                fresh.org_id = fresh.org_id.or(stored.org_id.clone());
                // The rotated refresh token is stored before anything uses the
                // new access token: losing it would orphan the connection.
                let name = l.names.salesforce_tokens(&tenant.id);
                let mut stored_ok = Err(PortError::retryable("not attempted"));
                for _ in 0..3 {
                    stored_ok = l.secrets.put_secret(&name, &fresh.to_secret_json()).await;
                    if stored_ok.is_ok() {
                        break;
                    }
                }
                stored_ok.map_err(ConnectionError::Store)?;
                let at = now();
                let _ = update_connection(l.connections, &tenant.id, |s| {
                    s.last_refresh_at = Some(at);
                    if s.status == LinkStatus::NeverConnected {
                        s.status = LinkStatus::Connected;
                        s.connected_at = Some(at);
                    }
                })
                .await
                .map_err(|e| tracing::warn!(tenant = %tenant.id, error = %e.chain(), "could not record the refresh"));
                tracing::info!(tenant = %tenant.id, fence, "Salesforce session refreshed");
                self.remember(tenant, &fresh);
                Ok(Some(fresh))
            }
            Err(SalesforceError::InvalidGrant { description }) if description.contains("already being processed") => {
                tracing::info!(tenant = %tenant.id, "a refresh is already being processed; waiting");
                Ok(None)
            }
            Err(SalesforceError::InvalidGrant { description }) => {
                // Confirm: re-read the stored secret once. If the refresh
                // token changed, another instance rotated it: not a
                // disconnection.
                let again = self.stored(l, tenant).await?;
                if again.refresh_token.expose_secret() != stored.refresh_token.expose_secret() {
                    self.remember(tenant, &again);
                    return Ok(Some(again));
                }
                let cause = DisconnectCause::from_description(&description);
                let at = now();
                update_connection(l.connections, &tenant.id, |s| s.mark_disconnected(cause.clone(), at))
                    .await
                    .map_err(ConnectionError::Store)?;
                self.forget(tenant);
                tracing::warn!(tenant = %tenant.id, cause = cause.code(), "Salesforce connection is DISCONNECTED");
                Err(ConnectionError::Disconnected { tenant: tenant.id.to_string(), cause })
            }
            Err(e) => {
                let at = now();
                let text = error_chain(&e);
                let _ = update_connection(l.connections, &tenant.id, |s| s.record_failure(at, text.clone())).await;
                Err(ConnectionError::Refresh(e))
            }
        }
    }
}

/// Parked jobs read per page while draining.
const PARKED_PAGE: usize = 500;

/// A page of parked `(key, job)` as queue bodies, each with the keys whose
/// jobs it carries. Event jobs are packed per source (in parked order) with
/// `job::pack`; other jobs go as they are. A job that cannot be decoded
/// stays parked (logged).
fn repack(tenant: &crate::model::TenantId, page: Vec<(String, String)>) -> (Vec<String>, Vec<Vec<String>>) {
    use crate::job::SyncJob;
    let mut bodies = Vec::new();
    let mut owners: Vec<Vec<String>> = Vec::new();
    // Per source: the events, and the key each came from.
    let mut by_source: std::collections::BTreeMap<String, (Vec<crate::webhook::LmsEvent>, Vec<usize>)> =
        std::collections::BTreeMap::new();
    let mut keys: Vec<String> = Vec::new();
    for (key, body) in page {
        match crate::job::decode(&body) {
            Ok(SyncJob::LmsEvent { source, event, .. }) => {
                let e = by_source.entry(source).or_default();
                e.0.push(event);
                e.1.push(keys.len());
                keys.push(key);
            }
            Ok(SyncJob::LmsEvents { source, events, .. }) => {
                let e = by_source.entry(source).or_default();
                for ev in events {
                    e.0.push(ev);
                    e.1.push(keys.len());
                }
                keys.push(key);
            }
            Ok(_) => {
                bodies.push(body);
                owners.push(vec![key]);
            }
            Err(e) => {
                tracing::error!(tenant = %tenant, key = %key, error = %e, "a parked job cannot be decoded; it stays parked")
            }
        }
    }
    for (source, (events, from)) in by_source {
        for p in crate::job::pack(tenant, &source, &events, crate::job::MAX_MESSAGE_BYTES) {
            // A job's events are side by side: its key once per message.
            let mut ks: Vec<String> = Vec::new();
            for i in p.events.clone() {
                let k = &keys[from[i]];
                if ks.last() != Some(k) {
                    ks.push(k.clone());
                }
            }
            bodies.push(p.body);
            owners.push(ks);
        }
    }
    (bodies, owners)
}

/// Replay parked work: send it back to the sync queue, then release it.
/// Returns how many jobs went out. At most `limit` per call; the rest waits
/// for the next call (the health check drains what is left).
///
/// Parked events travel packed: a page of parked jobs (one event each, as a
/// worker parks them) goes out as a few `LmsEvents` messages per source
/// rather than one message per job, so a long disconnection's thousands of
/// jobs cost tens of sends, not thousands. A job is released only when
/// every message carrying its events was accepted.
pub async fn drain_parked(
    parking: &dyn crate::ports::ParkStore,
    queue: &dyn crate::ports::JobQueue,
    tenant: &crate::model::TenantId,
    limit: usize,
) -> Result<usize, PortError> {
    let mut sent = 0usize;
    while sent < limit {
        let (page, more) = parking.parked(tenant, PARKED_PAGE.min(limit - sent)).await?;
        if page.is_empty() {
            break;
        }
        let (bodies, owners) = repack(tenant, page);
        if bodies.is_empty() {
            break;
        }
        let results = queue.send_encoded(&bodies).await;
        // A key is released when none of the messages carrying it failed
        // (a job split over two messages is carried by both).
        let failed: std::collections::HashSet<&String> =
            owners.iter().zip(&results).filter(|(_, r)| r.is_err()).flat_map(|(keys, _)| keys).collect();
        let mut done: Vec<String> = owners.iter().flatten().filter(|k| !failed.contains(k)).cloned().collect();
        done.dedup();
        let progressed = done.len();
        parking.unpark(tenant, &done).await?;
        sent += progressed;
        if !failed.is_empty() {
            return Err(PortError::retryable(format!("the sync queue refused {} parked job(s)", failed.len())));
        }
        if !more {
            break;
        }
    }
    if sent > 0 {
        tracing::info!(tenant = %tenant, jobs = sent, "parked work replayed");
    }
    Ok(sent)
}
