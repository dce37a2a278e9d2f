//! Shared state of the LMS emulator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::Serialize;

use crate::data::{Dataset, DatasetParams, generate};

/// Configuration of an LMS emulator instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// API key expected as `Authorization: Bearer <key>` on `/api/**`.
    pub api_key: String,
    /// Data set generated at start-up.
    pub dataset: DatasetParams,
}

impl Default for Config {
    fn default() -> Self {
        Config { api_key: "lms-local-key".to_owned(), dataset: DatasetParams::default() }
    }
}

/// Counters exposed at `GET /__emulator/stats`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// Requests served per endpoint (`"GET /api/v1/learners"`), 401s included.
    pub requests: BTreeMap<String, u64>,
    pub unauthorized: u64,
    pub webhooks_sent: u64,
    pub webhook_events_sent: u64,
    pub webhook_errors: u64,
}

struct Shared {
    config: Config,
    data: RwLock<Arc<Dataset>>,
    stats: Mutex<Stats>,
    client: reqwest::Client,
}

/// Cheaply clonable handle on the emulator state.
#[derive(Clone)]
pub struct LmsState {
    inner: Arc<Shared>,
}

impl LmsState {
    /// New state with the configured data set (invalid parameters fall back to an
    /// empty data set).
    pub fn new(config: Config) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data = if config.dataset.validate().is_ok() { generate(config.dataset) } else { Dataset::default() };
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        LmsState {
            inner: Arc::new(Shared {
                config,
                data: RwLock::new(Arc::new(data)),
                stats: Mutex::new(Stats::default()),
                client,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// The current data set.
    pub fn data(&self) -> Arc<Dataset> {
        self.inner.data.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the data set.
    pub fn set_data(&self, data: Dataset) {
        *self.inner.data.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(data);
    }

    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        self.inner.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a served request.
    pub fn count(&self, endpoint: &str) {
        *self.stats().requests.entry(endpoint.to_owned()).or_default() += 1;
    }
}
