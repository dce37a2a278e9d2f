//! Shared emulator state: configuration, schema and the one org (records, tokens,
//! API usage, injected faults, open query cursors, statistics) behind a mutex.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::ids;
use crate::schema::Schema;
use crate::soql::Query;
use crate::store::Store;
use crate::tokens::TokenStore;
use crate::values::now_ms;

/// Configuration of an emulator instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL clients reach the emulator at (`instance_url`). `None`: derived from
    /// the bound address by [`crate::serve`] (`http://HOST:PORT`).
    pub public_url: Option<String>,
    /// Daily API request limit (`Sforce-Limit-Info: api-usage=N/LIMIT`).
    pub daily_api_limit: u64,
    /// Records per query page (Salesforce: 2000; a `Sforce-Query-Options:
    /// batchSize=N` request header can lower it per query).
    pub query_page_size: usize,
    /// Open query cursors kept per org; older ones are dropped (Salesforce keeps
    /// ~10 per user).
    pub max_query_cursors: usize,
    /// When set, `client_id` must equal it on token requests.
    pub client_id: Option<String>,
    /// When set and a `client_secret` is presented, it must equal it.
    pub client_secret: Option<String>,
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
}

/// A snapshot of a query whose later pages are served through `nextRecordsUrl`.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub locator: String,
    pub query: Arc<Query>,
    pub rows: Arc<Vec<usize>>,
    pub page_size: usize,
}

/// Counters exposed at `GET /__emulator/stats`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub api_calls: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub composite_subrequests: BTreeMap<String, u64>,
    pub records_written: u64,
    pub records_failed: u64,
    pub refreshes: u64,
    pub faults_injected: u64,
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
    pub faults: VecDeque<FaultKind>,
    pub cursors: VecDeque<Cursor>,
    pub cursor_counter: u64,
    pub stats: Stats,
    pub error_counter: u64,
}

impl Org {
    fn new(schema: &Schema, config: &Config) -> Self {
        Org {
            store: Store::new(schema),
            tokens: TokenStore::default(),
            api_used: 0,
            api_day: now_ms().div_euclid(86_400_000),
            daily_api_limit: config.daily_api_limit,
            query_page_size: config.query_page_size.clamp(1, 2000),
            faults: VecDeque::new(),
            cursors: VecDeque::new(),
            cursor_counter: 0,
            stats: Stats::default(),
            error_counter: 0,
        }
    }

    /// Counts one request of `kind` in the statistics.
    pub fn count_kind(&mut self, kind: &str) {
        *self.stats.by_kind.entry(kind.to_owned()).or_default() += 1;
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
}

/// Identity of the org and its users.
#[derive(Debug, Clone)]
pub struct Identity {
    pub org_id: String,
    pub integration_user_id: String,
    /// Author of records seeded through the admin API (not the integration user,
    /// so loop prevention can tell them apart).
    pub admin_user_id: String,
}

struct Shared {
    config: Config,
    base_url: String,
    schema: Schema,
    identity: Identity,
    org: Mutex<Org>,
}

/// Cheaply clonable handle on the emulator state.
#[derive(Clone)]
pub struct SfState {
    inner: Arc<Shared>,
}

impl SfState {
    /// New state. The base URL is `config.public_url` or `http://127.0.0.1`
    /// ([`crate::serve`] fills `public_url` from the bound address).
    pub fn new(config: Config) -> Self {
        let schema = Schema::learnlink();
        let base_url =
            config.public_url.clone().unwrap_or_else(|| "http://127.0.0.1".to_owned()).trim_end_matches('/').to_owned();
        let identity = Identity {
            org_id: ids::mint("00D", 1),
            integration_user_id: ids::mint("005", 1),
            admin_user_id: ids::mint("005", 2),
        };
        let org = Mutex::new(Org::new(&schema, &config));
        SfState { inner: Arc::new(Shared { config, base_url, schema, identity, org }) }
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

    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The 15-character org id (prefix of access tokens).
    pub fn org15(&self) -> &str {
        self.inner.identity.org_id.get(..15).unwrap_or_default()
    }

    /// Locks the org. A poisoned lock (a panic while held) is recovered: the state
    /// is plain data and stays usable.
    pub fn org(&self) -> MutexGuard<'_, Org> {
        self.inner.org.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets every record, token, counter and fault; limits go back to the
    /// configuration.
    pub fn reset(&self) {
        let fresh = Org::new(&self.inner.schema, &self.inner.config);
        *self.org() = fresh;
    }
}
