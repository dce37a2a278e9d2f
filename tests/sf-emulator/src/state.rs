//! Shared emulator state: configuration, schema and the one org (records, tokens,
//! API usage, injected faults, open query cursors, Bulk API jobs, statistics) behind a
//! mutex.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::bulk::Jobs;
use crate::schema::{Schema, SchemaError};
use crate::seed::{self, Identity};
use crate::soql::Query;
use crate::store::Store;
use crate::tokens::TokenStore;
use crate::values::now_ms;

/// Configuration of an emulator instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL clients reach the emulator at (`instance_url`, and the production
    /// login host). `None`: derived from the bound address by [`crate::serve`].
    pub public_url: Option<String>,
    /// Daily API request limit (`Sforce-Limit-Info: api-usage=N/LIMIT`).
    pub daily_api_limit: u64,
    /// Records per query page (Salesforce: 2000; a `Sforce-Query-Options:
    /// batchSize=N` request header can lower it per query).
    pub query_page_size: usize,
    /// Open query cursors kept per org; older ones are dropped.
    pub max_query_cursors: usize,
    /// When set, `client_id` must equal it on authorize and token requests.
    pub client_id: Option<String>,
    /// When set and a `client_secret` is presented, it must equal it; the
    /// authorization-code grant without PKCE requires it.
    pub client_secret: Option<String>,
    /// Allowed `redirect_uri`s (the connected app's callback URLs). Empty: any.
    pub redirect_uris: Vec<String>,
    /// The learnlink metadata package (SFDX). `None`: located as
    /// [`crate::metadata::locate`] describes.
    pub metadata_dir: Option<PathBuf>,
    /// The org is a sandbox: its login host is the `/sandbox` one (test.salesforce.com).
    pub sandbox: bool,
    /// The integration user has the System Administrator profile.
    pub integration_user_admin: bool,
    /// The integration user is assigned a permission set with Modify All Data.
    pub integration_user_modify_all_data: bool,
    /// Runtime settings (changeable through `POST /__emulator/settings`).
    pub settings: Settings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            public_url: None,
            daily_api_limit: 15_000,
            query_page_size: 2000,
            max_query_cursors: 10,
            client_id: None,
            client_secret: None,
            redirect_uris: Vec::new(),
            metadata_dir: None,
            sandbox: false,
            integration_user_admin: false,
            integration_user_modify_all_data: false,
            settings: Settings::default(),
        }
    }
}

/// Settings tests change at run time (`POST /__emulator/settings`). Durations in ms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Access tokens expire after this long without use → 401 `INVALID_SESSION_ID`
    /// (Salesforce's session timeout; default 2 h).
    pub session_timeout_ms: u64,
    /// A refresh token unused for this long expires (`invalid_grant`); none: never.
    pub refresh_idle_ttl_ms: Option<u64>,
    /// How long a refresh-token request is "being processed": concurrent requests
    /// with the same token inside this window get "token request is already being
    /// processed".
    pub oauth_processing_delay_ms: u64,
    /// Lifetime of an authorization code (Salesforce: 15 min).
    pub auth_code_ttl_ms: u64,
    /// The user refuses consent: authorize redirects with `error=access_denied`.
    pub deny_consent: bool,
    /// The automation stand-in (enrollment trigger) is on.
    pub automation: bool,
    /// Salesforce rejects PKCE verifiers containing `~` (observed behaviour).
    pub pkce_reject_tilde: bool,
    /// Delay before a Bulk job leaves UploadComplete, and between its 200-record
    /// chunks (so tests can watch InProgress and abort mid-way).
    pub bulk_start_delay_ms: u64,
    pub bulk_chunk_delay_ms: u64,
    /// Records per Bulk query results page when `maxRecords` is not given.
    pub bulk_query_page_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            session_timeout_ms: 2 * 3600 * 1000,
            refresh_idle_ttl_ms: None,
            oauth_processing_delay_ms: 0,
            auth_code_ttl_ms: 15 * 60 * 1000,
            deny_consent: false,
            automation: true,
            pkce_reject_tilde: true,
            bulk_start_delay_ms: 20,
            bulk_chunk_delay_ms: 0,
            bulk_query_page_size: 10_000,
        }
    }
}

/// Kinds of injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 500 `UNKNOWN_EXCEPTION`.
    ServerError,
    /// 503 `SERVER_UNAVAILABLE`.
    ServerUnavailable,
    /// Every record of the next write request fails with `UNABLE_TO_LOCK_ROW`.
    UnableToLockRow,
    /// 403 `REQUEST_LIMIT_EXCEEDED`.
    RequestLimitExceeded,
    /// 401 `INVALID_SESSION_ID`.
    InvalidSession,
    /// The request is answered normally after `latency_ms`.
    Latency,
}

impl FaultKind {
    /// The kind's name in requests and statistics (`server_error`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ServerError => "server_error",
            FaultKind::ServerUnavailable => "server_unavailable",
            FaultKind::UnableToLockRow => "unable_to_lock_row",
            FaultKind::RequestLimitExceeded => "request_limit_exceeded",
            FaultKind::InvalidSession => "invalid_session",
            FaultKind::Latency => "latency",
        }
    }
}

/// A pending fault: applies to the next `remaining` matching requests, or,
/// with a `rate`, to each matching request with that probability (a
/// standing fault: until cleared, or until `remaining` hits are used up).
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// Kind of request it applies to (`query`, `collections`, `composite`, `bulk`,
    /// `rest`, `auth`); none: every API request (auth only when scoped to it).
    pub scope: Option<String>,
    /// Hits left; `None` (rate faults only): until cleared.
    pub remaining: Option<usize>,
    pub latency_ms: u64,
    /// Probability (0..=1] that a matching request is hit; `None`: every one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Matching requests seen and hits so far (rate faults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen: Option<u64>,
    pub hits: u64,
    /// The fault's own generator (seeded): which requests a rate hits.
    #[serde(skip)]
    pub rng: FaultRng,
}

/// splitmix64: a rate fault's deterministic sequence of draws (the same seed
/// and the same sequence of matching requests give the same hits).
#[derive(Debug, Clone, Default)]
pub struct FaultRng(u64);

impl FaultRng {
    pub fn new(seed: u64) -> Self {
        FaultRng(seed)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A snapshot of a query whose later pages are served through `nextRecordsUrl`.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub locator: String,
    pub query: Arc<Query>,
    pub rows: Arc<Vec<usize>>,
    pub page_size: usize,
    pub all: bool,
}

/// Call totals.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Totals {
    /// Requests counted against the daily API limit.
    pub api_calls: u64,
    /// OAuth requests (authorize, token, userinfo, revoke, identity): not counted
    /// against the limit, as on Salesforce.
    pub auth_calls: u64,
    /// Every request that reached the emulator's API (admin endpoints excluded).
    pub requests: u64,
    /// Requests refused before admission (bad session, limit reached).
    pub rejected: u64,
}

/// Counters exposed at `GET /__emulator/stats`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// Requests counted against the daily API limit.
    pub api_calls: u64,
    /// By kind of request: `query`, `collections`, `composite`, `bulk`, `rest`, `auth`.
    pub by_kind: BTreeMap<String, u64>,
    /// By endpoint (`collections_upsert`, `sobject_create`, `token`, ...).
    pub by_endpoint: BTreeMap<String, u64>,
    pub totals: Totals,
    pub composite_subrequests: BTreeMap<String, u64>,
    pub records_written: u64,
    pub records_failed: u64,
    pub bulk_records_processed: u64,
    pub bulk_records_failed: u64,
    pub refreshes: u64,
    pub faults_injected: u64,
    /// Injected faults by kind (`server_error`, `unable_to_lock_row`, ...).
    pub faults_injected_by_kind: BTreeMap<String, u64>,
}

/// The org.
#[derive(Debug)]
pub struct Org {
    pub store: Store,
    pub tokens: TokenStore,
    pub api_used: u64,
    pub api_day: i64,
    pub daily_api_limit: u64,
    pub query_page_size: usize,
    pub settings: Settings,
    pub faults: VecDeque<Fault>,
    pub cursors: VecDeque<Cursor>,
    pub cursor_counter: u64,
    pub stats: Stats,
    pub error_counter: u64,
    pub bulk: Jobs,
    pub identity: Identity,
}

/// What a pending fault does to the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultHit {
    pub kind: FaultKind,
    pub latency_ms: u64,
}

impl Org {
    /// Counts one admitted request of `kind` / `endpoint`.
    pub fn count(&mut self, kind: &str, endpoint: &str) {
        *self.stats.by_kind.entry(kind.to_owned()).or_default() += 1;
        *self.stats.by_endpoint.entry(endpoint.to_owned()).or_default() += 1;
    }

    /// API calls used today (resets at midnight UTC).
    pub fn api_used_today(&mut self) -> u64 {
        let day = now_ms().div_euclid(86_400_000);
        if day != self.api_day {
            self.api_day = day;
            self.api_used = 0;
        }
        self.api_used
    }

    /// Takes the first pending fault that applies to a request of `kind`;
    /// `UNABLE_TO_LOCK_ROW` only applies to writes. A rate fault that
    /// matches draws once: on a miss the next matching fault is tried.
    pub fn take_fault(&mut self, kind: &str, is_write: bool) -> Option<FaultHit> {
        let pos = self.faults.iter_mut().position(|f| {
            let scope_ok = match &f.scope {
                Some(s) => s == kind,
                None => kind != "auth",
            };
            if !scope_ok || (f.kind == FaultKind::UnableToLockRow && !is_write) {
                return false;
            }
            match f.rate {
                None => true,
                Some(rate) => {
                    f.seen = Some(f.seen.unwrap_or(0) + 1);
                    f.rng.next_f64() < rate
                }
            }
        })?;
        let f = self.faults.get_mut(pos)?;
        let hit = FaultHit { kind: f.kind, latency_ms: f.latency_ms };
        f.hits += 1;
        if let Some(r) = f.remaining.as_mut() {
            *r = r.saturating_sub(1);
            if *r == 0 {
                self.faults.remove(pos);
            }
        }
        self.stats.faults_injected += 1;
        *self.stats.faults_injected_by_kind.entry(hit.kind.name().to_owned()).or_default() += 1;
        Some(hit)
    }
}

struct Shared {
    config: Config,
    base_url: String,
    schema: Schema,
    org: Mutex<Org>,
}

/// Cheaply clonable handle on the emulator state.
#[derive(Clone)]
pub struct SfState {
    inner: Arc<Shared>,
}

fn new_org(schema: &Schema, config: &Config, base_url: &str) -> Org {
    let mut store = Store::new(schema);
    let identity = seed::seed_org(schema, &mut store, config, base_url);
    Org {
        store,
        tokens: TokenStore::default(),
        api_used: 0,
        api_day: now_ms().div_euclid(86_400_000),
        daily_api_limit: config.daily_api_limit,
        query_page_size: config.query_page_size.clamp(1, 2000),
        settings: config.settings.clone(),
        faults: VecDeque::new(),
        cursors: VecDeque::new(),
        cursor_counter: 0,
        stats: Stats::default(),
        error_counter: 0,
        bulk: Jobs::default(),
        identity,
    }
}

impl SfState {
    /// New state. The base URL is `config.public_url` or `http://127.0.0.1`
    /// ([`crate::serve`] fills `public_url` from the bound address). Metadata that
    /// cannot be loaded is logged and replaced by the embedded copy; use
    /// [`SfState::try_new`] to fail instead.
    pub fn new(config: Config) -> Self {
        match Self::try_new(config.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "learnlink metadata not loaded; using the embedded copy");
                Self::with_schema(config, crate::metadata::embedded_schema())
            }
        }
    }

    /// New state; fails when the metadata package cannot be loaded.
    pub fn try_new(config: Config) -> Result<Self, SchemaError> {
        let schema = crate::metadata::load_schema(config.metadata_dir.as_deref())?;
        Ok(Self::with_schema(config, schema))
    }

    fn with_schema(config: Config, schema: Schema) -> Self {
        let base_url =
            config.public_url.clone().unwrap_or_else(|| "http://127.0.0.1".to_owned()).trim_end_matches('/').to_owned();
        let org = Mutex::new(new_org(&schema, &config, &base_url));
        SfState { inner: Arc::new(Shared { config, base_url, schema, org }) }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// Identity of the org and its users (fixed for the life of the state).
    pub fn identity(&self) -> Identity {
        self.org().identity.clone()
    }

    /// The 15-character org id (prefix of access tokens).
    pub fn org15(&self) -> String {
        self.org().identity.org_id.get(..15).unwrap_or_default().to_owned()
    }

    /// Locks the org. A poisoned lock (a panic while held) is recovered: the state
    /// is plain data and stays usable.
    pub fn org(&self) -> MutexGuard<'_, Org> {
        self.inner.org.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets every record, token, counter, fault and job, and seeds the org anew;
    /// settings and limits go back to the configuration.
    pub fn reset(&self) {
        let fresh = new_org(&self.inner.schema, &self.inner.config, &self.inner.base_url);
        let mut org = self.org();
        org.bulk.cancel_all();
        *org = fresh;
    }
}
