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

/// The runtime view of tenants (what the functions need to do their work),
/// read from the current configuration.
#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, PortError>;
}

/// Every configuration store is a tenant store.
#[async_trait]
impl<T: ConfigStore> TenantStore for T {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError> {
        self.current_config(id).await?.map(|c| Tenant::from_stored(&c)).transpose()
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, PortError> {
        self.list_configs().await?.iter().map(Tenant::from_stored).collect()
    }
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get_secret(&self, name: &str) -> Result<Option<SecretString>, PortError>;
    /// Create the secret or store a new current version of it.
    async fn put_secret(&self, name: &str, value: &SecretString) -> Result<(), PortError>;
}

/// Whether an event id was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First sighting: enqueue it, then `remember` it.
    Fresh,
    /// Enqueued before (within the TTL), or repeated earlier in the same
    /// delivery: drop it.
    Duplicate,
}

/// Event ids already enqueued (SPEC §4.1). The ids of a delivery are read
/// before the send and written after it, so only what is surely in the queue
/// is remembered: a crash between the two, or two deliveries of one event
/// racing, enqueue an event twice, which idempotent writes absorb; an event is
/// never dropped as a duplicate of one that was not enqueued.
#[async_trait]
pub trait DedupeStore: Send + Sync {
    /// One answer per key, in order; a key repeated in `keys` is a duplicate
    /// after its first. An id remembered until before `now` is forgotten.
    async fn seen_many(&self, keys: &[String], now: OffsetDateTime) -> Result<Vec<Claim>, PortError>;
    /// Remember `keys` as enqueued at `now`, for `ttl`.
    async fn remember_many(&self, keys: &[String], now: OffsetDateTime, ttl: time::Duration) -> Result<(), PortError>;
}

/// The answers of [`DedupeStore::seen_many`] from the set of keys found.
pub fn dedupe_answers(keys: &[String], found: &std::collections::HashSet<String>) -> Vec<Claim> {
    let mut answered = std::collections::HashSet::new();
    keys.iter()
        .map(|k| {
            let first = answered.insert(k.as_str());
            if first && !found.contains(k) { Claim::Fresh } else { Claim::Duplicate }
        })
        .collect()
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Send encoded jobs (`job::encode`, `job::pack`); one result per
    /// message, in order.
    async fn send_encoded(&self, bodies: &[String]) -> Vec<Result<(), PortError>>;

    /// Make received messages visible again at once (visibility timeout 0),
    /// by their receipt handles: a consumer hands them back to the next
    /// batch (`fill::defer_to_fill`). One result per handle, in order.
    async fn release(&self, receipt_handles: &[String]) -> Vec<Result<(), PortError>>;

    /// Send jobs; one result per job, in order.
    async fn send(&self, jobs: &[SyncJob]) -> Vec<Result<(), PortError>> {
        let bodies: Vec<String> = jobs.iter().map(crate::job::encode).collect();
        self.send_encoded(&bodies).await
    }
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

    /// `grant_type=authorization_code` with the PKCE verifier.
    async fn exchange_code(
        &self,
        login_url: &str,
        client_id: &str,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: &SecretString,
    ) -> Result<TokenSet, SalesforceError>;

    /// The org's API usage as the last response from `instance_url` reported
    /// it in `Sforce-Limit-Info` (None: none seen yet).
    fn last_usage(&self, instance_url: &str) -> Option<crate::budget::ApiUsage>;

    /// `GET /limits` (also a cheap probe that the session works).
    async fn limits(&self, session: &Session) -> Result<crate::budget::OrgLimits, SalesforceError>;

    /// A SOQL query, every page.
    async fn query(
        &self,
        session: &Session,
        soql: &str,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, SalesforceError>;

    /// One page of a query: the first (`QueryCursor::Start`) or the one a
    /// `nextRecordsUrl` names.
    async fn query_page(
        &self,
        session: &Session,
        cursor: &crate::salesforce::query::QueryCursor,
    ) -> Result<crate::salesforce::query::QueryPage, SalesforceError>;

    /// Bulk API 2.0, first half (SPEC §6.3): plan `records` (one sObject,
    /// one external id) as upsert jobs, create each, upload its CSV and
    /// close it (UploadComplete). Returns the jobs to wait for and the
    /// records refused before sending. `Err` only when nothing was sent
    /// (the first job could not be created); a job that fails after its
    /// creation is aborted and its records come back in `not_sent`.
    async fn bulk_submit(
        &self,
        session: &Session,
        records: &[crate::salesforce::SfRecord],
    ) -> Result<crate::salesforce::bulk::BulkSubmission, SalesforceError>;

    /// Bulk API 2.0, second half: wait for `jobs` (polling with backoff),
    /// read their results and match them onto `records` by external id:
    /// one outcome per record, in order. A record no result names is
    /// unprocessed (retryable). Reads `failedResults` only when a job
    /// reports failures and `unprocessedrecords` only when a job did not
    /// complete. Also resumes jobs submitted by an earlier invocation: an
    /// `Open` job (its upload never completed) is aborted and its records
    /// are unprocessed.
    async fn bulk_outcomes(
        &self,
        session: &Session,
        jobs: &[String],
        records: &[crate::salesforce::SfRecord],
    ) -> Result<crate::salesforce::bulk::BulkReport, SalesforceError>;

    /// `POST /sobjects/{sobject}`: the new record's Id.
    async fn create_record(
        &self,
        session: &Session,
        sobject: &str,
        body: &serde_json::Value,
    ) -> Result<String, SalesforceError>;

    /// `PATCH /sobjects/{sobject}/{id}`.
    async fn update_record(
        &self,
        session: &Session,
        sobject: &str,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<(), SalesforceError>;
}

#[async_trait]
pub trait QueueStats: Send + Sync {
    /// Messages in the queue, visible or in flight.
    async fn depth(&self, queue_url: &str) -> Result<u64, PortError>;
}

/// One stored version of a tenant's configuration document.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConfig {
    pub tenant: TenantId,
    pub version: u64,
    pub created_at: OffsetDateTime,
    pub changed_at: OffsetDateTime,
    /// The document as stored (valid, without secrets).
    pub doc: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum PutConfigError {
    /// Creating a tenant that exists, or updating from a version that is no
    /// longer the current one.
    #[error("the configuration changed concurrently (current version: {current:?})")]
    Conflict { current: Option<u64> },
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Versioned configuration documents: every change is a new version; the
/// current one is read in one request.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    async fn current_config(&self, tenant: &TenantId) -> Result<Option<StoredConfig>, PortError>;
    async fn config_version(&self, tenant: &TenantId, version: u64) -> Result<Option<StoredConfig>, PortError>;
    /// `(version, changed_at)`, newest first.
    async fn config_versions(&self, tenant: &TenantId) -> Result<Vec<(u64, OffsetDateTime)>, PortError>;
    /// Store `doc` as the next version. `expected = None` creates the tenant
    /// (conflict if it exists); `Some(v)` requires `v` to be current.
    async fn put_config(
        &self,
        tenant: &TenantId,
        expected: Option<u64>,
        doc: &serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<StoredConfig, PutConfigError>;
    /// The current configuration of every tenant.
    async fn list_configs(&self) -> Result<Vec<StoredConfig>, PortError>;
}

#[async_trait]
pub trait ActivityLog: Send + Sync {
    async fn record(&self, tenant: &TenantId, entries: &[crate::activity::ActivityEntry]) -> Result<(), PortError>;
    /// Newest first; `cursor` continues a previous page.
    async fn query(
        &self,
        tenant: &TenantId,
        filter: &crate::activity::ActivityFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<crate::activity::ActivityPage, PortError>;
    async fn record_run(&self, tenant: &TenantId, run: &crate::activity::RunSummary) -> Result<(), PortError>;
    /// Newest first.
    async fn runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<crate::activity::RunSummary>, PortError>;
}

/// The stored lifecycle of each tenant's connection (SPEC §3). Its store
/// also holds the tenant's leases: the `refresh` lease makes token refresh
/// single-flight across instances.
#[async_trait]
pub trait ConnectionStore: TenantLease + Send + Sync {
    async fn connection(&self, tenant: &TenantId) -> Result<Option<crate::connection::ConnectionState>, PortError>;
    /// Store the state if its stored `revision` is still `expected` (None:
    /// nothing stored yet). Returns false on a concurrent change.
    async fn put_connection(
        &self,
        tenant: &TenantId,
        state: &crate::connection::ConnectionState,
        expected: Option<u64>,
    ) -> Result<bool, PortError>;
}

/// Named per-tenant leases (SPEC §4.2: one writer of a tenant's records at
/// a time): a conditional write with an expiry and a fencing counter.
#[async_trait]
pub trait TenantLease: Send + Sync {
    /// Take lease `name` of `tenant` for `ttl` unless another holder has a
    /// live one (the same holder renews); the fencing counter grows with
    /// every grant. `None`: someone else holds it.
    async fn acquire(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<Option<u64>, PortError>;
    /// Give it up (a no-op when another holder has it now).
    async fn release(&self, tenant: &TenantId, name: &str, holder: &str) -> Result<(), PortError>;
}

/// Work kept while a tenant cannot be written to (disconnected, paused).
#[async_trait]
pub trait ParkStore: Send + Sync {
    /// Keep jobs under their keys (idempotent: a key parked twice is one job).
    async fn park(&self, tenant: &TenantId, jobs: &[(String, String)]) -> Result<(), PortError>;
    /// Up to `limit` parked `(key, job)`, oldest first, and whether more exist.
    async fn parked(&self, tenant: &TenantId, limit: usize) -> Result<(Vec<(String, String)>, bool), PortError>;
    async fn unpark(&self, tenant: &TenantId, keys: &[String]) -> Result<(), PortError>;
    async fn parked_count(&self, tenant: &TenantId) -> Result<u64, PortError>;
}

/// A started OAuth authorization, kept until its callback (single use).
#[derive(Clone)]
pub struct PendingAuth {
    pub tenant: TenantId,
    pub code_verifier: SecretString,
    pub redirect_uri: String,
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for PendingAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuth")
            .field("tenant", &self.tenant)
            .field("redirect_uri", &self.redirect_uri)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait OAuthStateStore: Send + Sync {
    async fn save_state(&self, state: &str, pending: &PendingAuth) -> Result<(), PortError>;
    /// Remove and return the pending authorization: a second call, or a call
    /// after `expires_at`, gets `None`.
    async fn take_state(&self, state: &str, now: OffsetDateTime) -> Result<Option<PendingAuth>, PortError>;
}

/// Where and how to read a tenant's LMS (SPEC §9.2 canonical REST API).
#[derive(Clone)]
pub struct LmsConnection {
    pub base_url: String,
    pub api_key: SecretString,
}

impl std::fmt::Debug for LmsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmsConnection").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// The LMS reads job 1 needs (SPEC §4.3): learners by id, the department tree.
#[async_trait]
pub trait LmsApi: Send + Sync {
    /// The learners with these ids; ids the LMS does not know are absent.
    async fn learners(&self, lms: &LmsConnection, ids: &[String]) -> Result<Vec<crate::model::Learner>, PortError>;
    /// Every department (all pages).
    async fn departments(&self, lms: &LmsConnection) -> Result<Vec<crate::model::Department>, PortError>;
}

/// What learnlink knows of a learner's Contact (SPEC §4.3), so a steady
/// stream of enrollments needs no Contact lookup at all.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LearnerLink {
    pub learner_id: String,
    pub contact_id: String,
    #[serde(default)]
    pub account_id: Option<String>,
    pub state: LinkState,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// `Contact.LMS_Learner_Id__c` carries the learner id.
    Linked,
    /// An admin chose this Contact in the review queue; the worker links it
    /// on the learner's next record.
    Chosen,
    /// Unlinked when the learner was deactivated.
    Unlinked,
}

#[async_trait]
pub trait LinkStore: Send + Sync {
    /// The links known for these learners (absent: unknown).
    async fn links(
        &self,
        tenant: &TenantId,
        learner_ids: &[String],
    ) -> Result<std::collections::HashMap<String, LearnerLink>, PortError>;
    async fn put_links(&self, tenant: &TenantId, links: &[LearnerLink]) -> Result<(), PortError>;
    /// Forget links found wrong (the Contact was deleted or relinked in Salesforce).
    async fn forget_links(&self, tenant: &TenantId, learner_ids: &[String]) -> Result<(), PortError>;
}

/// The LMS version of a record last written to Salesforce (SPEC §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub updated_at: OffsetDateTime,
    /// The event that carried it: a redelivery of the same event is not
    /// applied twice.
    pub event_id: String,
}

#[async_trait]
pub trait AppliedStore: Send + Sync {
    /// Markers for these record keys (`enrollment#E1`, `certification#C9`).
    async fn applied(
        &self,
        tenant: &TenantId,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, Applied>, PortError>;
    /// Record what was written (of several marks for one key, the newest).
    /// Callers mark only versions newer than what they read, so markers move
    /// forward.
    async fn mark_applied(&self, tenant: &TenantId, marks: &[(String, Applied)]) -> Result<(), PortError>;
}

/// A learner whose Contact is ambiguous (SPEC §4.3), waiting for an admin.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReviewItem {
    pub learner_id: String,
    pub email: String,
    /// The matching field and the value that matched several Contacts.
    pub matching_field: String,
    pub match_value: String,
    /// Candidate Contact ids.
    pub candidates: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// How many records are held for this learner.
    pub held: u64,
}

#[async_trait]
pub trait ReviewStore: Send + Sync {
    /// Put the learner in the queue (or refresh its candidates and
    /// `last_seen`) and hold these `(key, job)` until it is resolved;
    /// holding a key twice keeps one job.
    async fn hold(&self, tenant: &TenantId, item: &ReviewItem, jobs: &[(String, String)]) -> Result<(), PortError>;
    /// Up to `limit` items in learner-id order after `after`, and the cursor of the next page.
    async fn review_items(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ReviewItem>, Option<String>), PortError>;
    async fn review_item(&self, tenant: &TenantId, learner_id: &str) -> Result<Option<ReviewItem>, PortError>;
    /// Up to `limit` held `(key, job)` of the learner, and whether more exist.
    async fn held(
        &self,
        tenant: &TenantId,
        learner_id: &str,
        limit: usize,
    ) -> Result<(Vec<(String, String)>, bool), PortError>;
    /// Release held jobs (after they were sent back to the queue).
    async fn release(&self, tenant: &TenantId, learner_id: &str, keys: &[String]) -> Result<(), PortError>;
    /// Remove the item once nothing is held for it.
    async fn remove_item(&self, tenant: &TenantId, learner_id: &str) -> Result<(), PortError>;
}

/// A message the sync queue gave up on (SPEC §4.5).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// How many times it was received before it was moved.
    pub receive_count: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
}

#[async_trait]
pub trait DeadLetterQueue: Send + Sync {
    /// Every message in the DLQ (up to `max`), without removing any.
    async fn list(&self, max: usize) -> Result<Vec<DeadLetter>, PortError>;
    /// Send these messages back to the sync queue, then delete them from
    /// the DLQ (send first: nothing is lost, a duplicate is idempotent).
    /// Returns the ids replayed.
    async fn replay(&self, message_ids: &[String]) -> Result<Vec<String>, PortError>;
}

/// One learner as an import writes it (SPEC §5): matched in the LMS by
/// `external_id` (kept in the learner's `fields.external_id`), else by email
/// (case-insensitive), else created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LearnerUpsert {
    /// The source record's id (Salesforce User/Contact Id, HRIS employee id).
    pub external_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department_id: Option<String>,
    /// Custom fields (`external_id` is added by the LMS side, not here).
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
    pub active: bool,
    /// Group names the learner belongs to (`None`: memberships untouched).
    /// Groups missing in the LMS are created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// A batch of learner upserts and how to apply it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LearnerBatch {
    pub learners: Vec<LearnerUpsert>,
    /// Ask the LMS to send its welcome email to the learners it creates.
    pub send_welcome_email: bool,
    /// With `groups: Some(..)`, also remove memberships not listed.
    pub remove_missing_groups: bool,
}

/// The LMS's answer for one upserted learner, in request order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum UpsertOutcome {
    Created {
        id: String,
    },
    Updated {
        id: String,
    },
    /// Matched and already as asked.
    Unchanged {
        id: String,
    },
    /// Refused (bad email, unknown department, …): nothing changed for it.
    Failed {
        code: String,
        message: String,
    },
}

/// The LMS's answer for one learner to deactivate (by external id), in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DeactivateOutcome {
    Deactivated { id: String },
    AlreadyInactive { id: String },
    NotFound,
}

/// The LMS's write side for imports (SPEC §5, §9.2): batched upserts with
/// groups and the welcome-email option, deactivation, and the lookup a
/// preview needs. Batches hold at most [`MAX_LEARNERS_PER_BATCH`].
#[async_trait]
pub trait LmsWriter: Send + Sync {
    /// One outcome per learner, in order.
    async fn upsert_learners(&self, lms: &LmsConnection, batch: &LearnerBatch)
    -> Result<Vec<UpsertOutcome>, PortError>;
    /// Deactivate (disable login, records kept) the learners with these
    /// external ids; one outcome per id, in order.
    async fn deactivate_learners(
        &self,
        lms: &LmsConnection,
        external_ids: &[String],
    ) -> Result<Vec<DeactivateOutcome>, PortError>;
    /// The learners matching these external ids or emails (for a preview).
    async fn find_learners(
        &self,
        lms: &LmsConnection,
        external_ids: &[String],
        emails: &[String],
    ) -> Result<Vec<crate::model::Learner>, PortError>;
}

/// Most learners one [`LmsWriter`] call carries (the LMS API's limit).
pub const MAX_LEARNERS_PER_BATCH: usize = 1000;

/// Where and how to read a tenant's HRIS (a Merge-style unified HRIS API).
#[derive(Clone)]
pub struct HrisConnection {
    pub base_url: String,
    pub api_key: SecretString,
    /// `X-Account-Token`: which linked HR system.
    pub account_token: SecretString,
}

impl std::fmt::Debug for HrisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HrisConnection").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

/// One page of `GET /api/hris/v1/employees`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmployeePage {
    /// The employees as the HRIS sent them (raw, for mapping and preview).
    pub results: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The cursor of the next page (`None`: last page).
    pub next: Option<String>,
}

/// A unified HRIS (SPEC §5.1): employees modified after a time, in cursor
/// pages ordered by `(modified_at, id)`; groups by id.
#[async_trait]
pub trait HrisApi: Send + Sync {
    /// `modified_after` (RFC 3339, exclusive) applies to the first page;
    /// `cursor` (a previous page's `next`) to the following ones.
    async fn employees_page(
        &self,
        hris: &HrisConnection,
        modified_after: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<EmployeePage, PortError>;
    /// Every group: id → name.
    async fn groups(&self, hris: &HrisConnection) -> Result<std::collections::BTreeMap<String, String>, PortError>;
}

/// Which import state: the live one (moves the checkpoint) or a dry run's
/// (starts from the live checkpoint, writes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportLane {
    Live,
    DryRun,
    /// The scheduler's mark (`scheduled_through` only), apart from the runs'
    /// states so starting a run never races a page's checkpoint write.
    Schedule,
}

/// Each tenant's import state (SPEC §5.2): the checkpoint, written after
/// every page, and the current or last run. Writes are conditional on the
/// version read, so a redelivered page cannot move anything twice.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// The state and its version (absent: never imported).
    async fn import_state(
        &self,
        tenant: &TenantId,
        lane: ImportLane,
    ) -> Result<Option<(crate::import::engine::ImportState, u64)>, PortError>;
    /// Store `state` as version `expected + 1` (`expected` None: the item
    /// must not exist). `Ok(false)`: someone else wrote first.
    async fn put_import_state(
        &self,
        tenant: &TenantId,
        lane: ImportLane,
        state: &crate::import::engine::ImportState,
        expected: Option<u64>,
    ) -> Result<bool, PortError>;
}

/// One page of LMS enrollments of a window (SPEC §9.2), in `(updated_at,
/// id)` order.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentPage {
    pub enrollments: Vec<crate::model::Enrollment>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// The LMS reads a backfill needs (SPEC §6.2): counts for a window, and the
/// window's enrollments page by page.
#[async_trait]
pub trait LmsEnrollments: Send + Sync {
    /// Enrollments with `window.since <= updated_at < window.until`.
    async fn count_enrollments(&self, lms: &LmsConnection, window: &crate::backfill::Window) -> Result<u64, PortError>;
    /// One page (at most `limit`, ≤ 1,000) of the window's enrollments,
    /// from the start (`cursor` None) or from a cursor this API returned.
    async fn enrollments_page(
        &self,
        lms: &LmsConnection,
        window: &crate::backfill::Window,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<EnrollmentPage, PortError>;
}

/// Backfills and their shards (SPEC §6.2), with versions: every write is
/// conditional on the version read (`expected` None: the item must not
/// exist), `Ok(false)` when someone else wrote first.
#[async_trait]
pub trait BackfillStore: Send + Sync {
    async fn backfill(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<(crate::backfill::Backfill, u64)>, PortError>;
    async fn put_backfill(
        &self,
        backfill: &crate::backfill::Backfill,
        expected: Option<u64>,
    ) -> Result<bool, PortError>;
    /// The tenant's backfills, newest first (at most `limit`).
    async fn list_backfills(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<crate::backfill::Backfill>, PortError>;
    /// Every tenant's open backfills ([`crate::backfill::Backfill::is_open`]:
    /// not final, or owing a kill-switch restore) for the scheduler's sweep.
    async fn unfinished_backfills(&self) -> Result<Vec<crate::backfill::Backfill>, PortError>;
    async fn shard(
        &self,
        tenant: &TenantId,
        backfill_id: &str,
        index: u32,
    ) -> Result<Option<(crate::backfill::Shard, u64)>, PortError>;
    async fn put_shard(
        &self,
        tenant: &TenantId,
        backfill_id: &str,
        shard: &crate::backfill::Shard,
        expected: Option<u64>,
    ) -> Result<bool, PortError>;
    /// Store a new plan's shards (none may exist yet).
    async fn put_new_shards(
        &self,
        tenant: &TenantId,
        backfill_id: &str,
        shards: &[crate::backfill::Shard],
    ) -> Result<(), PortError>;
    /// Every shard of a backfill, by index.
    async fn shards(&self, tenant: &TenantId, backfill_id: &str) -> Result<Vec<crate::backfill::Shard>, PortError>;
    /// The tenant's active backfill (at most one runs at a time) and the
    /// item's version.
    async fn active_backfill(&self, tenant: &TenantId) -> Result<Option<(String, u64)>, PortError>;
    /// Make `id` the active backfill (`Some(id)`) or clear it (`None`),
    /// conditional on the version read.
    async fn set_active_backfill(
        &self,
        tenant: &TenantId,
        id: Option<&str>,
        expected: Option<u64>,
    ) -> Result<bool, PortError>;
    /// The windows completed backfills covered, and the item's version.
    async fn coverage(
        &self,
        tenant: &TenantId,
    ) -> Result<(crate::backfill::coverage::Coverage, Option<u64>), PortError>;
    async fn put_coverage(
        &self,
        tenant: &TenantId,
        coverage: &crate::backfill::coverage::Coverage,
        expected: Option<u64>,
    ) -> Result<bool, PortError>;
}
