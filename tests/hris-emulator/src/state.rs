//! Shared state of the HRIS emulator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

use crate::data::{DatasetParams, generate};
use crate::store::Store;

/// Configuration of an HRIS emulator instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// API key expected as `Authorization: Bearer <key>` on `/api/**`.
    pub api_key: String,
    /// Linked account expected as `X-Account-Token: <token>` on `/api/**`.
    pub account_token: String,
    /// Data set generated at start-up (and by `POST /__emulator/reset`).
    pub dataset: DatasetParams,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_key: "hris-local-key".to_owned(),
            account_token: "hris-local-account".to_owned(),
            dataset: DatasetParams::default(),
        }
    }
}

/// Counters exposed at `GET /__emulator/stats`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// Requests per endpoint (`"GET /api/hris/v1/employees"`), failed ones
    /// included.
    pub requests: BTreeMap<String, u64>,
    /// `/api/**` requests answered 401.
    pub unauthorized: u64,
    /// `/api/**` requests answered 400.
    pub bad_requests: u64,
    /// `/api/**` requests failed by an injected fault.
    pub faults_served: u64,
    /// Employees returned by the employee list.
    pub employees_served: u64,
}

/// `POST /__emulator/faults`: the next `count` `/api/**` requests are answered
/// `status` (429 with `Retry-After: 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    pub status: u16,
    pub count: u32,
}

struct Shared {
    config: Config,
    store: RwLock<Store>,
    stats: Mutex<Stats>,
    faults: Mutex<Option<Faults>>,
}

/// Cheaply clonable handle on the emulator state.
#[derive(Clone)]
pub struct HrisState {
    inner: Arc<Shared>,
}

impl HrisState {
    /// New state with the configured data set (invalid parameters: empty).
    pub fn new(config: Config) -> Self {
        let store = if config.dataset.validate().is_ok() { generate(config.dataset) } else { Store::default() };
        HrisState {
            inner: Arc::new(Shared {
                config,
                store: RwLock::new(store),
                stats: Mutex::new(Stats::default()),
                faults: Mutex::new(None),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> RwLockReadGuard<'_, Store> {
        self.inner.store.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn store_mut(&self) -> RwLockWriteGuard<'_, Store> {
        self.inner.store.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces every employee and group.
    pub fn set_store(&self, store: Store) {
        let old = std::mem::replace(&mut *self.store_mut(), store);
        drop(old);
    }

    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        self.inner.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a request.
    pub fn count(&self, endpoint: &str) {
        *self.stats().requests.entry(endpoint.to_owned()).or_default() += 1;
    }

    fn faults(&self) -> MutexGuard<'_, Option<Faults>> {
        self.inner.faults.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets (or with `None` or a zero count clears) the pending faults.
    pub fn set_faults(&self, faults: Option<Faults>) {
        *self.faults() = faults.filter(|f| f.count > 0);
    }

    /// The faults still pending.
    pub fn pending_faults(&self) -> Option<Faults> {
        *self.faults()
    }

    /// Takes one pending fault: the status to answer with.
    pub fn take_fault(&self) -> Option<u16> {
        let mut f = self.faults();
        let current = (*f)?;
        *f = (current.count > 1).then_some(Faults { count: current.count - 1, ..current });
        drop(f);
        self.stats().faults_served += 1;
        Some(current.status)
    }

    /// The emulator's clock (Unix milliseconds).
    pub fn now_ms(&self) -> i64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }
}
