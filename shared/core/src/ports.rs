//! Ports: the narrow interfaces the core needs from the outside world.
//! Adapters (DynamoDB, SQS, Secrets Manager, Salesforce) implement them in
//! `learnlink-adapters`, each with an in-memory fake beside it.

use crate::error::PortError;
use crate::job::SyncJob;
use crate::model::TenantId;
use crate::salesforce::{RecordOutcome, SalesforceError, Session, TokenSet};
use crate::sync::CompositeCall;
use crate::tenant::Tenant;
use async_trait::async_trait;
use secrecy::SecretString;
use time::OffsetDateTime;

#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError>;
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), PortError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, PortError>;
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get_secret(&self, name: &str) -> Result<Option<SecretString>, PortError>;
    /// Create the secret or store a new current version of it.
    async fn put_secret(&self, name: &str, value: &SecretString) -> Result<(), PortError>;
}

/// The answer to a deduplication claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First sighting: process it, then `confirm` (or `release` on failure).
    Fresh,
    /// Seen before (or being processed right now): drop it.
    Duplicate,
}

#[async_trait]
pub trait DedupeStore: Send + Sync {
    /// Claim `key`. A pending claim older than `pending_grace` is considered
    /// abandoned and may be claimed again; a confirmed one lives until `ttl`.
    async fn claim(
        &self,
        key: &str,
        now: OffsetDateTime,
        pending_grace: time::Duration,
        ttl: time::Duration,
    ) -> Result<Claim, PortError>;
    async fn confirm(&self, key: &str) -> Result<(), PortError>;
    async fn release(&self, key: &str) -> Result<(), PortError>;
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Send jobs; one result per job, in order.
    async fn send(&self, jobs: &[SyncJob]) -> Vec<Result<(), PortError>>;
}

#[async_trait]
pub trait SalesforceApi: Send + Sync {
    /// One Composite call carrying sObject Collections upserts; one outcome
    /// per record, per collection.
    async fn composite_upsert(
        &self,
        session: &Session,
        call: &CompositeCall,
    ) -> Result<Vec<Vec<RecordOutcome>>, SalesforceError>;

    /// `grant_type=refresh_token` at the tenant's login host. Under Refresh
    /// Token Rotation the answer carries a new refresh token.
    async fn refresh(
        &self,
        login_url: &str,
        client_id: &str,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, SalesforceError>;
}

#[async_trait]
pub trait QueueStats: Send + Sync {
    /// Messages in the queue, visible or in flight.
    async fn depth(&self, queue_url: &str) -> Result<u64, PortError>;
}
