//! Shared state of the LMS emulator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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
    /// `/api/**` requests answered 429.
    pub rate_limited: u64,
    pub learners_created: u64,
    pub learners_updated: u64,
    pub learners_deactivated: u64,
    /// Upserted learners that were already as asked (nothing written).
    pub learners_unchanged: u64,
    /// Learners created with `send_welcome_email: true` (which ones:
    /// `GET /__emulator/welcome-emails`).
    pub welcome_emails_sent: u64,
    /// Group memberships added / removed (upserts and the group endpoints).
    pub memberships_added: u64,
    pub memberships_removed: u64,
    /// Groups created (`POST /api/v1/groups` and by name in upserts).
    pub groups_created: u64,
    /// Enrollment versions stored by `POST /__emulator/enrollments/advance`.
    pub enrollment_versions: u64,
}

/// At most `requests` authorized `/api/**` requests per `window_ms` (a fixed
/// window starting with its first request); more are answered 429 with
/// `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub window_ms: u64,
}

#[derive(Debug, Default)]
struct RateWindow {
    limit: Option<RateLimit>,
    started: Option<Instant>,
    used: u32,
}

struct Shared {
    config: Config,
    data: RwLock<Arc<Dataset>>,
    stats: Mutex<Stats>,
    rate: Mutex<RateWindow>,
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
                rate: Mutex::new(RateWindow::default()),
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

    /// The names of the groups learner `learner_id` belongs to, sorted
    /// (none for an unknown learner).
    pub fn group_names_of(&self, learner_id: &str) -> Vec<String> {
        let data = self.data();
        data.learner_index(learner_id).map(|i| data.group_names_of(i)).unwrap_or_default()
    }

    /// The ids of the learners sent a welcome email, in order (since the data
    /// set was last generated or reset).
    pub fn welcome_emails(&self) -> Vec<String> {
        self.data().welcome_emails()
    }

    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        self.inner.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a served request.
    pub fn count(&self, endpoint: &str) {
        *self.stats().requests.entry(endpoint.to_owned()).or_default() += 1;
    }

    /// Sets (or with `None` lifts) the rate limit; the window restarts.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        *self.rate() = RateWindow { limit, started: None, used: 0 };
    }

    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate().limit
    }

    fn rate(&self) -> MutexGuard<'_, RateWindow> {
        self.inner.rate.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one request from the rate limit, or says how long until the
    /// window ends.
    pub fn take_request(&self) -> Result<(), Duration> {
        let mut w = self.rate();
        let Some(limit) = w.limit else { return Ok(()) };
        let now = Instant::now();
        let window = Duration::from_millis(limit.window_ms);
        let started = match w.started {
            Some(s) if now.duration_since(s) < window => s,
            _ => {
                w.started = Some(now);
                w.used = 0;
                now
            }
        };
        if w.used < limit.requests {
            w.used += 1;
            Ok(())
        } else {
            Err(window.saturating_sub(now.duration_since(started)))
        }
    }

    /// The emulator's clock (Unix milliseconds).
    pub fn now_ms(&self) -> i64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }
}
