//! The LMS client (reqwest + rustls/ring) behind [`LmsApi`]: the canonical LMS
//! REST API of SPEC §9.2 (the LMS emulator in `tests/lms-emulator` speaks it).
//!
//! - [`LmsClient::learners`]: `GET {base}/api/v1/learners?ids=a,b,c` in chunks
//!   of [`MAX_IDS_PER_REQUEST`]; unknown ids are simply absent. An id the
//!   comma-separated list cannot carry (it contains a comma) is read alone
//!   with `GET {base}/api/v1/learners/{id}`.
//! - [`LmsClient::departments`]: `GET {base}/api/v1/departments`, following
//!   every `next_cursor`.
//!
//! - [`LmsWriter`] (imports, SPEC §5): `POST {base}/api/v1/learners/upsert`,
//!   `POST {base}/api/v1/learners/deactivate` and `POST
//!   {base}/api/v1/learners/lookup`, in calls of at most
//!   [`MAX_LEARNERS_PER_BATCH`] items, results concatenated in order. A
//!   failure part-way returns the error alone: the chunks before it were
//!   applied, and applying the batch again is safe (they come back
//!   `unchanged`, no second welcome email).
//!
//! The API key goes as `Authorization: Bearer <key>`. Every failure is a
//! [`PortError`] of the one taxonomy, naming the LMS (its base URL) and the
//! HTTP status, never the key (an LMS message echoing it is redacted) nor a
//! query string:
//! - 429 → throttled, with the `Retry-After` seconds as a [`Throttled`]
//!   cause ([`retry_after`] reads it back);
//! - 5xx, 408, transport failures (connect, timeout, reset), a truncated or
//!   non-JSON body → retryable;
//! - 401/403 (the key), 400, 404 and other 4xx, redirects (never followed: they
//!   would carry the key elsewhere), JSON of the wrong shape → permanent.

pub mod memory;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use learnlink_core::model::{Department, Learner};
use learnlink_core::ports::{
    DeactivateOutcome, LearnerBatch, LearnerUpsert, LmsApi, LmsConnection, LmsWriter, MAX_LEARNERS_PER_BATCH,
    UpsertOutcome,
};
use learnlink_core::{ErrorClass, PortError};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use memory::MemoryLms;

/// Most ids one `GET /api/v1/learners?ids=` carries (the API's limit).
pub const MAX_IDS_PER_REQUEST: usize = 100;

/// How the client behaves; `LmsClientConfig::default()` is production's.
#[derive(Debug, Clone)]
pub struct LmsClientConfig {
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// `limit` asked for on list pages (the API allows 1..=1000).
    pub page_limit: usize,
    /// Upper bound on pages followed by one list call.
    pub max_pages: usize,
}

impl Default for LmsClientConfig {
    fn default() -> Self {
        LmsClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            page_limit: 1000,
            max_pages: 10_000,
        }
    }
}

/// The cause attached to a throttled [`PortError`]: how long the LMS asked to
/// wait (`Retry-After` in seconds), when it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Option<Duration>,
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.retry_after {
            Some(d) => write!(f, "Retry-After: {} s", d.as_secs()),
            None => f.write_str("no Retry-After"),
        }
    }
}

impl std::error::Error for Throttled {}

/// The wait the LMS asked for, if `e` is a throttled answer that carried one.
pub fn retry_after(e: &PortError) -> Option<Duration> {
    e.source.as_deref().and_then(|s| s.downcast_ref::<Throttled>()).and_then(|t| t.retry_after)
}

/// The LMS client. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct LmsClient {
    http: reqwest::Client,
    config: LmsClientConfig,
}

#[derive(Deserialize)]
struct Page<T> {
    data: Vec<T>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// `{"results": [...]}` of the batch endpoints.
#[derive(Deserialize)]
struct Results<T> {
    results: Vec<T>,
}

#[derive(Serialize)]
struct UpsertBody<'a> {
    learners: &'a [LearnerUpsert],
    send_welcome_email: bool,
    remove_missing_groups: bool,
}

#[derive(Serialize)]
struct DeactivateBody<'a> {
    external_ids: &'a [String],
}

#[derive(Serialize)]
struct LookupBody<'a> {
    external_ids: &'a [&'a str],
    emails: &'a [&'a str],
}

#[derive(Deserialize)]
struct Found {
    learners: Vec<Learner>,
}

/// One LMS, as errors name it (the base URL without credentials or query).
struct Target<'a> {
    base: Url,
    shown: String,
    conn: &'a LmsConnection,
}

impl<'a> Target<'a> {
    fn new(conn: &'a LmsConnection) -> Result<Self, PortError> {
        let invalid = || {
            PortError::permanent(format!(
                "the LMS base URL {:?} is not an http(s) URL without credentials, query or fragment",
                conn.base_url.chars().take(200).collect::<String>()
            ))
        };
        let base = Url::parse(conn.base_url.trim()).map_err(|_| invalid())?;
        let ok = matches!(base.scheme(), "http" | "https")
            && base.host_str().is_some_and(|h| !h.is_empty())
            && base.username().is_empty()
            && base.password().is_none()
            && base.query().is_none()
            && base.fragment().is_none()
            && !base.cannot_be_a_base();
        if !ok {
            return Err(invalid());
        }
        let shown = base.as_str().trim_end_matches('/').to_string();
        Ok(Target { base, shown, conn })
    }

    /// `{base}/api/v1/<segments>`.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    /// Text from the LMS, safe to put in an error: the key never appears,
    /// and it is kept short.
    fn scrub(&self, text: &str) -> String {
        let key = self.conn.api_key.expose_secret();
        let mut out: String = text.chars().take(300).collect();
        if !key.is_empty() {
            out = out.replace(key, "[redacted]");
        }
        out
    }
}

impl LmsClient {
    pub fn new() -> Result<Self, PortError> {
        Self::with_config(LmsClientConfig::default())
    }

    pub fn with_config(config: LmsClientConfig) -> Result<Self, PortError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("learnlink/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the API key elsewhere: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PortError::permanent("building the LMS HTTP client").with_source(e))?;
        Ok(LmsClient { http, config })
    }

    pub fn config(&self) -> &LmsClientConfig {
        &self.config
    }

    /// The learners with these ids (each at most once; unknown ids absent),
    /// in chunks of [`MAX_IDS_PER_REQUEST`].
    pub async fn learners(&self, conn: &LmsConnection, ids: &[String]) -> Result<Vec<Learner>, PortError> {
        let target = Target::new(conn)?;
        let mut seen = HashSet::new();
        let wanted: Vec<&str> =
            ids.iter().map(String::as_str).filter(|id| !id.is_empty() && seen.insert(*id)).collect();
        let (listable, alone): (Vec<&str>, Vec<&str>) = wanted.iter().partition(|id| !id.contains(','));
        let mut out: Vec<Learner> = Vec::with_capacity(wanted.len());
        for chunk in listable.chunks(MAX_IDS_PER_REQUEST) {
            let mut url = target.url(&["learners"]);
            url.query_pairs_mut().append_pair("ids", &chunk.join(","));
            let page: Page<Learner> = self.get_json(&target, "GET /api/v1/learners?ids=", url).await?;
            out.extend(page.data);
        }
        for id in alone {
            if let Some(l) = self.learner_at(&target, id).await? {
                out.push(l);
            }
        }
        // Only what was asked for, each once.
        let mut returned = HashSet::new();
        out.retain(|l| seen.contains(l.id.as_str()) && returned.insert(l.id.clone()));
        Ok(out)
    }

    /// One learner, `None` when the LMS does not know it.
    pub async fn learner(&self, conn: &LmsConnection, id: &str) -> Result<Option<Learner>, PortError> {
        let target = Target::new(conn)?;
        self.learner_at(&target, id).await
    }

    async fn learner_at(&self, target: &Target<'_>, id: &str) -> Result<Option<Learner>, PortError> {
        // `.` and `..` would not stay one path segment: no LMS id.
        if id.is_empty() || id == "." || id == ".." {
            return Ok(None);
        }
        let what = "GET /api/v1/learners/{id}";
        let resp = self.send(target, what, target.url(&["learners", id])).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Self::read_json(target, what, resp).await.map(Some)
    }

    /// Every department, following every cursor.
    pub async fn departments(&self, conn: &LmsConnection) -> Result<Vec<Department>, PortError> {
        let target = Target::new(conn)?;
        let what = "GET /api/v1/departments";
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..self.config.max_pages.max(1) {
            let mut url = target.url(&["departments"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("limit", &self.config.page_limit.clamp(1, 1000).to_string());
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let page: Page<Department> = self.get_json(&target, what, url).await?;
            out.extend(page.data);
            match page.next_cursor.filter(|c| !c.is_empty()) {
                None => return Ok(out),
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(PortError::permanent(format!(
                        "LMS {}: {what} returned the same cursor twice; paging would not end",
                        target.shown
                    )));
                }
                Some(next) => cursor = Some(next),
            }
        }
        Err(PortError::permanent(format!(
            "LMS {}: {what} had more than {} pages; stopped following its cursor",
            target.shown, self.config.max_pages
        )))
    }

    /// Upserts the learners in calls of [`MAX_LEARNERS_PER_BATCH`]: one
    /// outcome per learner, in order.
    pub async fn upsert_learners(
        &self,
        conn: &LmsConnection,
        batch: &LearnerBatch,
    ) -> Result<Vec<UpsertOutcome>, PortError> {
        let target = Target::new(conn)?;
        let what = "POST /api/v1/learners/upsert";
        let mut out = Vec::with_capacity(batch.learners.len());
        for chunk in batch.learners.chunks(MAX_LEARNERS_PER_BATCH) {
            let body = UpsertBody {
                learners: chunk,
                send_welcome_email: batch.send_welcome_email,
                remove_missing_groups: batch.remove_missing_groups,
            };
            let answer: Results<UpsertOutcome> =
                self.post_json(&target, what, target.url(&["learners", "upsert"]), &body).await?;
            out.extend(one_each(&target, what, answer.results, chunk.len())?);
        }
        Ok(out)
    }

    /// Deactivates the learners with these external ids in calls of
    /// [`MAX_LEARNERS_PER_BATCH`]: one outcome per id, in order.
    pub async fn deactivate_learners(
        &self,
        conn: &LmsConnection,
        external_ids: &[String],
    ) -> Result<Vec<DeactivateOutcome>, PortError> {
        let target = Target::new(conn)?;
        let what = "POST /api/v1/learners/deactivate";
        let mut out = Vec::with_capacity(external_ids.len());
        for chunk in external_ids.chunks(MAX_LEARNERS_PER_BATCH) {
            let body = DeactivateBody { external_ids: chunk };
            let answer: Results<DeactivateOutcome> =
                self.post_json(&target, what, target.url(&["learners", "deactivate"]), &body).await?;
            out.extend(one_each(&target, what, answer.results, chunk.len())?);
        }
        Ok(out)
    }

    /// The learners with any of these external ids or emails, each once
    /// (empty and repeated values are not sent), in calls carrying at most
    /// [`MAX_LEARNERS_PER_BATCH`] of each.
    pub async fn find_learners(
        &self,
        conn: &LmsConnection,
        external_ids: &[String],
        emails: &[String],
    ) -> Result<Vec<Learner>, PortError> {
        let target = Target::new(conn)?;
        let what = "POST /api/v1/learners/lookup";
        let distinct = |values: &[String]| -> Vec<String> {
            let mut seen = HashSet::new();
            values.iter().map(|v| v.trim()).filter(|v| !v.is_empty() && seen.insert(*v)).map(str::to_string).collect()
        };
        let (external_ids, emails) = (distinct(external_ids), distinct(emails));
        let (external_ids, emails): (Vec<&str>, Vec<&str>) =
            (external_ids.iter().map(String::as_str).collect(), emails.iter().map(String::as_str).collect());
        let (mut id_chunks, mut email_chunks) =
            (external_ids.chunks(MAX_LEARNERS_PER_BATCH), emails.chunks(MAX_LEARNERS_PER_BATCH));
        let mut out: Vec<Learner> = Vec::new();
        let mut returned = HashSet::new();
        loop {
            let body = LookupBody {
                external_ids: id_chunks.next().unwrap_or_default(),
                emails: email_chunks.next().unwrap_or_default(),
            };
            if body.external_ids.is_empty() && body.emails.is_empty() {
                return Ok(out);
            }
            let found: Found = self.post_json(&target, what, target.url(&["learners", "lookup"]), &body).await?;
            out.extend(found.learners.into_iter().filter(|l| returned.insert(l.id.clone())));
        }
    }

    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        target: &Target<'_>,
        what: &str,
        url: Url,
        body: &B,
    ) -> Result<T, PortError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            PortError::permanent(format!("LMS {}: {what}: encoding the body", target.shown)).with_source(e)
        })?;
        let resp = self
            .http
            .post(url)
            .bearer_auth(target.conn.api_key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport(target, what, e))?;
        Self::read_json(target, what, resp).await
    }

    async fn send(&self, target: &Target<'_>, what: &str, url: Url) -> Result<reqwest::Response, PortError> {
        self.http
            .get(url)
            .bearer_auth(target.conn.api_key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport(target, what, e))
    }

    async fn get_json<T: DeserializeOwned>(&self, target: &Target<'_>, what: &str, url: Url) -> Result<T, PortError> {
        let resp = self.send(target, what, url).await?;
        Self::read_json(target, what, resp).await
    }

    async fn read_json<T: DeserializeOwned>(
        target: &Target<'_>,
        what: &str,
        resp: reqwest::Response,
    ) -> Result<T, PortError> {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.bytes().await.map_err(|e| transport(target, &format!("reading the answer to {what}"), e))?;
        if !status.is_success() {
            return Err(status_error(target, what, status, retry_after, &body));
        }
        serde_json::from_slice(&body).map_err(|e| {
            let class = if e.is_data() { ErrorClass::Permanent } else { ErrorClass::Retryable };
            let why = if e.is_data() { "JSON that is not the canonical LMS API's" } else { "a body that is not JSON" };
            PortError::new(class, format!("LMS {}: {what} answered {} with {why}", target.shown, status.as_u16()))
                .with_source(e)
        })
    }
}

/// The results of a batch call: exactly one per item sent.
fn one_each<T>(target: &Target<'_>, what: &str, results: Vec<T>, sent: usize) -> Result<Vec<T>, PortError> {
    if results.len() == sent {
        Ok(results)
    } else {
        Err(PortError::permanent(format!(
            "LMS {}: {what} answered {} results for {sent} items",
            target.shown,
            results.len()
        )))
    }
}

/// An answer that is not a success, in the taxonomy.
fn status_error(
    target: &Target<'_>,
    what: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> PortError {
    let code = status.as_u16();
    let reason = status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default();
    // The LMS's own sentence, when it sent the canonical error shape.
    let detail = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(|m| format!(": {}", target.scrub(m))))
        .unwrap_or_default();
    let head = format!("LMS {}: {what} answered {code}{reason}{detail}", target.shown);
    match code {
        429 => {
            let wait = match retry_after {
                Some(d) => format!("; retry after {} s", d.as_secs()),
                None => String::new(),
            };
            PortError::throttled(format!("{head}{wait}")).with_source(Throttled { retry_after })
        }
        408 | 500..=599 => PortError::retryable(head),
        401 | 403 => PortError::permanent(format!("{head} (check the LMS API key configured for this tenant)")),
        300..=399 => PortError::permanent(format!("{head} (redirects are not followed; check the LMS base URL)")),
        404 => PortError::permanent(format!("{head} (check the LMS base URL)")),
        _ => PortError::permanent(head),
    }
}

/// A request that did not complete. No URL in the message or the cause (the
/// query carries learner ids).
fn transport(target: &Target<'_>, what: &str, e: reqwest::Error) -> PortError {
    let e = e.without_url();
    let (class, why) = if e.is_timeout() {
        (ErrorClass::Retryable, "timed out")
    } else if e.is_connect() {
        (ErrorClass::Retryable, "could not connect")
    } else if e.is_builder() {
        (ErrorClass::Permanent, "could not be built")
    } else {
        (ErrorClass::Retryable, "did not complete")
    };
    PortError::new(class, format!("LMS {}: {what}: the request {why}", target.shown)).with_source(e)
}

#[async_trait]
impl LmsApi for LmsClient {
    async fn learners(&self, lms: &LmsConnection, ids: &[String]) -> Result<Vec<Learner>, PortError> {
        LmsClient::learners(self, lms, ids).await
    }

    async fn departments(&self, lms: &LmsConnection) -> Result<Vec<Department>, PortError> {
        LmsClient::departments(self, lms).await
    }
}

#[async_trait]
impl LmsWriter for LmsClient {
    async fn upsert_learners(
        &self,
        lms: &LmsConnection,
        batch: &LearnerBatch,
    ) -> Result<Vec<UpsertOutcome>, PortError> {
        LmsClient::upsert_learners(self, lms, batch).await
    }

    async fn deactivate_learners(
        &self,
        lms: &LmsConnection,
        external_ids: &[String],
    ) -> Result<Vec<DeactivateOutcome>, PortError> {
        LmsClient::deactivate_learners(self, lms, external_ids).await
    }

    async fn find_learners(
        &self,
        lms: &LmsConnection,
        external_ids: &[String],
        emails: &[String],
    ) -> Result<Vec<Learner>, PortError> {
        LmsClient::find_learners(self, lms, external_ids, emails).await
    }
}

#[cfg(test)]
mod tests;
