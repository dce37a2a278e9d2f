//! Connection health (SPEC §3.5): a status, one human sentence and the
//! remedy, computed from observations; every other warning listed too.

use crate::budget::ApiUsage;
use crate::connection::{ConnectionState, GapBackfill, IntegrationUser, LinkStatus};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Connected,
    Degraded,
    Disconnected,
    Paused,
}

/// One reason the tenant is not simply CONNECTED.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub cause: String,
    pub sentence: String,
    pub remedy: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub tenant: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub sentence: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    pub dlq_depth: u64,
    /// Messages waiting in the sync queue (all tenants): how far behind learnlink is.
    pub backlog: u64,
    pub parked: u64,
    pub failures_today: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_usage: Option<ApiUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disconnected_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh_at: Option<String>,
    /// When the keep-alive refreshes the connection at the latest, so an
    /// idle-expiry policy of the org never expires it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_due_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_user: Option<IntegrationUser>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gap_backfills: Vec<GapBackfill>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    pub paused: bool,
    pub has_tokens: bool,
    pub connection: ConnectionState,
    pub dlq_depth: u64,
    pub backlog: u64,
    pub parked: u64,
    pub now: OffsetDateTime,
    pub keepalive: time::Duration,
}

fn fmt(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Below this share of the daily API allowance left, the tenant is DEGRADED.
pub const LOW_API_BUDGET: f64 = 0.10;
/// Above this many waiting messages, learnlink is lagging.
pub const BACKLOG_THRESHOLD: u64 = 10_000;

pub fn assess(tenant: &str, o: &Observations) -> Health {
    let c = &o.connection;
    let failures_today = c.failures_on(o.now);
    let mut warnings = Vec::new();
    if failures_today > 0 {
        let last = c.failures.last_error.clone().unwrap_or_default();
        warnings.push(Warning {
            cause: "salesforce_errors_today".into(),
            sentence: format!(
                "Salesforce failed {failures_today} time(s) today (last: {last}); learnlink keeps the work and retries: \
                 this is an outage, not a disconnection."
            ),
            remedy: "Nothing to do unless it lasts; check https://status.salesforce.com for the org's instance.".into(),
        });
    }
    if let Some(u) = c.integration_user.as_ref().filter(|u| u.admin_rights) {
        warnings.push(Warning {
            cause: "integration_user_admin_rights".into(),
            sentence: format!(
                "The integration user {} has admin rights ({}): more than learnlink needs.",
                u.username.as_deref().unwrap_or(&u.user_id),
                u.admin_sources.join(", ")
            ),
            remedy: "Give the integration user a profile and permission sets without Modify All Data or System \
                     Administrator (least privilege), then `learnlink connect` again."
                .into(),
        });
    }
    if o.dlq_depth > 0 {
        warnings.push(Warning {
            cause: "dlq_not_empty".into(),
            sentence: format!("{} message(s) wait in the dead-letter queue.", o.dlq_depth),
            remedy: format!("Inspect and replay them: `learnlink dlq list {tenant}`"),
        });
    }
    if o.backlog > BACKLOG_THRESHOLD {
        warnings.push(Warning {
            cause: "lagging".into(),
            sentence: format!("{} messages wait in the sync queue: changes reach Salesforce late.", o.backlog),
            remedy: "It drains by itself; if it keeps growing, check the sync-worker's errors and concurrency.".into(),
        });
    }
    if let Some(u) = c.api_usage.as_ref().filter(|u| u.limit > 0)
        && (u.limit.saturating_sub(u.used) as f64) < (u.limit as f64) * LOW_API_BUDGET
    {
        warnings.push(Warning {
            cause: "api_budget_low".into(),
            sentence: format!("The org has used {} of its {} API calls today.", u.used, u.limit),
            remedy: "Jobs pause and resume in the next window; raise the org's limit or lower learnlink's share \
                     (api_budget.max_share_of_remaining)."
                .into(),
        });
    }
    if o.parked > 0 && c.status == LinkStatus::Connected && !o.paused {
        warnings.push(Warning {
            cause: "parked_work_draining".into(),
            sentence: format!("{} job(s) kept while the tenant could not be written are being replayed.", o.parked),
            remedy: "Nothing to do: the health check replays them.".into(),
        });
    }
    let mut h = Health {
        tenant: tenant.to_string(),
        status: Status::Connected,
        cause: None,
        sentence: "Everything looks good.".into(),
        remedy: None,
        dlq_depth: o.dlq_depth,
        backlog: o.backlog,
        parked: o.parked,
        failures_today,
        warnings: Vec::new(),
        api_usage: c.api_usage,
        connected_at: c.connected_at.map(fmt),
        disconnected_at: c.disconnected_at.map(fmt),
        last_refresh_at: c.last_refresh_at.map(fmt),
        keepalive_due_by: c.last_refresh_at.filter(|_| c.status == LinkStatus::Connected).map(|t| fmt(t + o.keepalive)),
        integration_user: c.integration_user.clone(),
        gap_backfills: c.gap_backfills.clone(),
    };
    let relink = format!("Relink: `learnlink connect {tenant}`");
    if o.paused {
        h.status = Status::Paused;
        h.cause = Some("paused_by_admin".into());
        h.sentence = "Paused by an admin: arriving work is kept and nothing is written.".into();
        h.remedy = Some(format!("Resume: `learnlink config set {tenant} paused false`"));
    } else if c.status == LinkStatus::Disconnected {
        let cause = c.cause.clone().unwrap_or(crate::connection::DisconnectCause::RefreshTokenRevokedOrExpired);
        h.status = Status::Disconnected;
        h.cause = Some(cause.code().into());
        h.sentence = format!("{} Arriving work is kept ({} job(s) so far).", cause.sentence(), o.parked);
        h.remedy = Some(relink);
    } else if !o.has_tokens {
        h.status = Status::Disconnected;
        h.cause = Some("never_connected".into());
        h.sentence =
            format!("No Salesforce connection is stored for this tenant; arriving work is kept ({} job(s)).", o.parked);
        h.remedy = Some(relink);
    } else if let Some(first) = warnings.first() {
        h.status = Status::Degraded;
        h.cause = Some(first.cause.clone());
        h.sentence = first.sentence.clone();
        h.remedy = Some(first.remedy.clone());
    }
    h.warnings = warnings;
    h
}

/// Observes a tenant through the ports and assesses it.
pub struct Probe<'a> {
    pub secrets: &'a dyn crate::ports::SecretStore,
    pub queues: &'a dyn crate::ports::QueueStats,
    pub connections: &'a dyn crate::ports::ConnectionStore,
    pub parking: &'a dyn crate::ports::ParkStore,
    pub names: &'a crate::tenant::SecretNames,
    pub dead_letter_queues: &'a [String],
    /// The sync queue, whose depth is the backlog.
    pub sync_queue: Option<&'a str>,
    pub keepalive: time::Duration,
}

impl Probe<'_> {
    pub async fn check(&self, tenant: &crate::tenant::Tenant, now: OffsetDateTime) -> Result<Health, crate::PortError> {
        let has_tokens = self.secrets.get_secret(&self.names.salesforce_tokens(&tenant.id)).await?.is_some();
        let mut dlq_depth = 0;
        for q in self.dead_letter_queues {
            dlq_depth += self.queues.depth(q).await?;
        }
        let backlog = match self.sync_queue {
            Some(q) => self.queues.depth(q).await?,
            None => 0,
        };
        let connection = self.connections.connection(&tenant.id).await?.unwrap_or_default();
        let parked = self.parking.parked_count(&tenant.id).await?;
        Ok(assess(
            tenant.id.as_str(),
            &Observations {
                paused: tenant.paused,
                has_tokens,
                connection,
                dlq_depth,
                backlog,
                parked,
                now,
                keepalive: self.keepalive,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::DisconnectCause;
    use time::macros::datetime;

    fn obs() -> Observations {
        Observations {
            paused: false,
            has_tokens: true,
            connection: ConnectionState { status: LinkStatus::Connected, ..Default::default() },
            dlq_depth: 0,
            backlog: 0,
            parked: 0,
            now: datetime!(2026-11-23 10:00 UTC),
            keepalive: time::Duration::days(7),
        }
    }

    #[test]
    fn statuses_in_order_of_precedence() {
        let h = assess("acme", &obs());
        assert_eq!((h.status, h.sentence.as_str()), (Status::Connected, "Everything looks good."));

        let mut o = obs();
        o.dlq_depth = 3;
        o.connection.integration_user = Some(IntegrationUser {
            user_id: "005".into(),
            username: Some("int@acme".into()),
            profile: Some("System Administrator".into()),
            admin_rights: true,
            admin_sources: vec!["profile System Administrator".into()],
        });
        let h = assess("acme", &o);
        assert_eq!(h.status, Status::Degraded);
        assert_eq!(h.cause.as_deref(), Some("integration_user_admin_rights"));
        assert_eq!(h.warnings.len(), 2);

        let mut o = obs();
        o.connection.record_failure(o.now, "503 SERVER_UNAVAILABLE".into());
        let h = assess("acme", &o);
        assert_eq!((h.status, h.failures_today), (Status::Degraded, 1));
        assert!(h.sentence.contains("not a disconnection"));
        // Yesterday's failures do not count today.
        let mut o2 = o.clone();
        o2.now += time::Duration::days(1);
        assert_eq!(assess("acme", &o2).status, Status::Connected);

        let mut o = obs();
        o.connection.mark_disconnected(DisconnectCause::RefreshTokenRevokedOrExpired, o.now);
        o.parked = 7;
        let h = assess("acme", &o);
        assert_eq!(h.status, Status::Disconnected);
        assert_eq!(h.cause.as_deref(), Some("refresh_token_revoked_or_expired"));
        assert!(h.remedy.unwrap().contains("learnlink connect acme"));
        assert!(h.sentence.contains("7 job(s)"));

        let mut o = obs();
        o.paused = true;
        assert_eq!(assess("acme", &o).status, Status::Paused);
        let mut o = obs();
        o.has_tokens = false;
        o.connection = ConnectionState::default();
        assert_eq!(assess("acme", &o).cause.as_deref(), Some("never_connected"));
        let mut o = obs();
        o.connection.api_usage = Some(ApiUsage { used: 14_000, limit: 15_000 });
        assert_eq!(assess("acme", &o).cause.as_deref(), Some("api_budget_low"));
        let mut o = obs();
        o.backlog = 20_000;
        assert_eq!(assess("acme", &o).cause.as_deref(), Some("lagging"));
    }

    #[test]
    fn relink_records_the_gap_and_keeps_settings() {
        let t0 = datetime!(2026-11-20 10:00 UTC);
        let mut s = ConnectionState { status: LinkStatus::Connected, ..Default::default() };
        s.mark_disconnected(DisconnectCause::RefreshTokenRevokedOrExpired, t0);
        s.mark_disconnected(DisconnectCause::RefreshTokenRevokedOrExpired, t0 + time::Duration::hours(1));
        assert_eq!(s.disconnected_at, Some(t0), "the first disconnection time is kept");
        let now = datetime!(2026-11-23 10:00 UTC);
        let gap = s.mark_connected(now, time::Duration::minutes(60), "g1".into()).unwrap();
        assert_eq!((gap.from, gap.to), (t0 - time::Duration::minutes(60), now));
        assert_eq!(s.status, LinkStatus::Connected);
        assert!(s.disconnected_at.is_none());
        assert_eq!(s.gap_backfills.len(), 1);
        assert_eq!(assess("acme", &Observations { connection: s, ..obs() }).gap_backfills.len(), 1);
    }
}
