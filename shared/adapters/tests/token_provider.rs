//! The token provider over the in-memory fakes: single-flight refresh across
//! many instances, confirmation of a refused refresh token, outages.

#![allow(clippy::unwrap_used)]

use learnlink_adapters::TokioSleeper;
use learnlink_adapters::dynamo::memory::MemoryState;
use learnlink_adapters::salesforce::memory::MemorySalesforce;
use learnlink_adapters::secrets::memory::MemorySecrets;
use learnlink_core::connection::{ConnectionError, LinkStatus, Links, TokenProvider};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{ConnectionStore, SecretStore};
use learnlink_core::salesforce::TokenSet;
use learnlink_core::tenant::{SalesforceEnvironment, SecretNames, Tenant};
use learnlink_core::{Classify, ErrorClass};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

struct World {
    state: Arc<MemoryState>,
    secrets: Arc<MemorySecrets>,
    sf: Arc<MemorySalesforce>,
    names: SecretNames,
    tenant: Tenant,
}

fn tokens(access: &str, refresh: &str) -> TokenSet {
    TokenSet {
        access_token: SecretString::from(access.to_string()),
        refresh_token: SecretString::from(refresh.to_string()),
        instance_url: "https://fake".into(),
        issued_at: None,
        user_id: None,
        org_id: None,
        env: None,
    }
}

async fn world() -> World {
    let w = World {
        state: Arc::new(MemoryState::new()),
        secrets: Arc::new(MemorySecrets::new()),
        sf: Arc::new(MemorySalesforce::new()),
        names: SecretNames::default(),
        tenant: Tenant {
            id: TenantId::parse("acme").unwrap(),
            name: "Acme".into(),
            salesforce: SalesforceEnvironment::Production,
            salesforce_client_id: "cid".into(),
            sources: vec![],
            paused: false,
            lms_base_url: None,
            sync: Default::default(),
            import: Default::default(),
            backfill: Default::default(),
            api_budget: Default::default(),
            version: 1,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        },
    };
    w.sf.issue_tokens("access-0", "refresh-0");
    w.secrets.put_secret("learnlink/acme/salesforce", &tokens("access-0", "refresh-0").to_secret_json()).await.unwrap();
    w
}

impl World {
    fn links(&self) -> Links<'_> {
        Links {
            secrets: self.secrets.as_ref(),
            salesforce: self.sf.as_ref(),
            connections: self.state.as_ref(),
            names: &self.names,
            sleeper: &TokioSleeper,
        }
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_instances_with_an_expired_token_refresh_once() {
    let w = Arc::new(world().await);
    w.sf.expire_sessions();
    let stale = tokens("access-0", "refresh-0");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let w = w.clone();
            let stale = stale.clone();
            tokio::spawn(async move {
                // Each task is one Lambda instance: its own provider and cache.
                let p = TokenProvider::new(format!("instance-{i}"));
                p.refreshed(&w.links(), &w.tenant, &stale, now).await
            })
        })
        .collect();
    for t in tasks {
        let fresh = t.await.unwrap().unwrap();
        assert_eq!(fresh.access_token.expose_secret(), "access-1");
    }
    assert_eq!(w.sf.refreshes(), 1, "exactly one refresh");
    let state = w.state.connection(&w.tenant.id).await.unwrap().unwrap();
    assert_ne!(state.status, LinkStatus::Disconnected);
    let stored =
        TokenSet::from_secret_json(&w.secrets.get_secret("learnlink/acme/salesforce").await.unwrap().unwrap()).unwrap();
    assert_eq!(stored.refresh_token.expose_secret(), "refresh-1", "the rotated token is stored");
}

#[tokio::test]
async fn a_revoked_token_disconnects_after_confirmation() {
    let w = world().await;
    w.sf.revoke_all();
    let p = TokenProvider::new("i1");
    let e = p.refreshed(&w.links(), &w.tenant, &tokens("access-0", "refresh-0"), now).await.unwrap_err();
    assert!(matches!(e, ConnectionError::Disconnected { .. }), "{e}");
    assert!(e.parks_work());
    let state = w.state.connection(&w.tenant.id).await.unwrap().unwrap();
    assert_eq!(state.status, LinkStatus::Disconnected);
    assert_eq!(state.cause.unwrap().code(), "refresh_token_revoked_or_expired");
    assert!(state.disconnected_at.is_some());
    // Known to be disconnected: no more calls to Salesforce.
    let calls = w.sf.calls();
    assert!(matches!(p.session(&w.links(), &w.tenant).await, Err(ConnectionError::Disconnected { .. })));
    assert_eq!(w.sf.calls(), calls);
}

#[tokio::test]
async fn a_token_rotated_by_another_instance_is_not_a_disconnection() {
    let w = world().await;
    w.sf.expire_sessions();
    // Instance B refreshed (rotating refresh-0 into refresh-1) and stored it.
    let b = TokenProvider::new("b");
    b.refreshed(&w.links(), &w.tenant, &tokens("access-0", "refresh-0"), now).await.unwrap();
    // Instance A still holds the old session: it picks up B's tokens.
    let a = TokenProvider::new("a");
    let fresh = a.refreshed(&w.links(), &w.tenant, &tokens("access-0", "refresh-0"), now).await.unwrap();
    assert_eq!(fresh.refresh_token.expose_secret(), "refresh-1");
    assert_eq!(w.sf.refreshes(), 1);
}

#[tokio::test]
async fn an_outage_is_counted_not_a_disconnection() {
    let w = world().await;
    w.sf.set_outage(Some(503));
    let p = TokenProvider::new("i1");
    for _ in 0..3 {
        let e = p.refreshed(&w.links(), &w.tenant, &tokens("access-0", "refresh-0"), now).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Retryable, "{e}");
        assert!(!e.parks_work());
    }
    let state = w.state.connection(&w.tenant.id).await.unwrap().unwrap();
    assert_ne!(state.status, LinkStatus::Disconnected);
    assert_eq!(state.failures_on(now()), 3);
}
