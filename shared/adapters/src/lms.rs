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
//! - [`LmsEnrollments`] (backfills, SPEC §6.2): `GET
//!   {base}/api/v1/enrollments/count?updated_since=&updated_until=` and one
//!   page at a time of `GET
//!   {base}/api/v1/enrollments?updated_since=&updated_until=&cursor=&limit=`
//!   (`limit` clamped to 1..=1000). The window's bounds go as RFC 3339 with
//!   milliseconds and `Z`, rounded up to the millisecond (the LMS keeps
//!   milliseconds: `t >= since` is `t >= ceil(since)`, likewise for
//!   `until`). An enrollment of a page outside the window (an LMS ignoring
//!   `updated_until`) is dropped, and one at or after `until` ends the paging.
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
use std::time::Duration;

use async_trait::async_trait;
use learnlink_core::PortError;
use learnlink_core::backfill::Window;
use learnlink_core::model::{Department, Enrollment, Learner, salesforce_datetime};
use learnlink_core::ports::{
    DeactivateOutcome, EnrollmentPage, LearnerBatch, LearnerUpsert, LmsApi, LmsConnection, LmsEnrollments, LmsWriter,
    MAX_LEARNERS_PER_BATCH, UpsertOutcome,
};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::http::{self, Api, Connection, Endpoint};
pub use crate::http::{Throttled, retry_after};
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

/// `{"count": n}` of `GET /api/v1/enrollments/count`.
#[derive(Deserialize)]
struct Count {
    count: u64,
}

/// Most enrollments one page asks for (the API's limit).
pub const MAX_ENROLLMENTS_PER_PAGE: u32 = 1000;

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

impl Connection for LmsConnection {
    const API: &'static Api = &Api {
        name: "LMS",
        prefix: &["api", "v1"],
        schema: "the canonical LMS API's",
        credentials: "LMS API key",
        message_at: &["/error/message"],
    };

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.api_key.expose_secret()]
    }
}

/// One LMS, as errors name it (the base URL without credentials or query).
type Target<'a> = Endpoint<'a, LmsConnection>;

impl LmsClient {
    pub fn new() -> Result<Self, PortError> {
        Self::with_config(LmsClientConfig::default())
    }

    pub fn with_config(config: LmsClientConfig) -> Result<Self, PortError> {
        // A redirect would carry the API key elsewhere: never followed.
        let http = http::client(LmsConnection::API, config.connect_timeout, config.request_timeout)?;
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
        target.read_json(what, resp).await.map(Some)
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
            match next_cursor(&target, what, cursor.as_deref(), page.next_cursor)? {
                None => return Ok(out),
                Some(next) => cursor = Some(next),
            }
        }
        Err(PortError::permanent(format!(
            "LMS {}: {what} had more than {} pages; stopped following its cursor",
            target.shown, self.config.max_pages
        )))
    }

    /// How many enrollments have `window.since <= updated_at < window.until`.
    pub async fn count_enrollments(&self, conn: &LmsConnection, window: &Window) -> Result<u64, PortError> {
        let target = Target::new(conn)?;
        let mut url = target.url(&["enrollments", "count"]);
        window_query(&mut url, window);
        let answer: Count = self.get_json(&target, "GET /api/v1/enrollments/count", url).await?;
        Ok(answer.count)
    }

    /// One page (at most `limit`, clamped to 1..=[`MAX_ENROLLMENTS_PER_PAGE`])
    /// of the window's enrollments in `(updated_at, id)` order, from the
    /// start (`cursor` None) or from a cursor a previous page returned.
    pub async fn enrollments_page(
        &self,
        conn: &LmsConnection,
        window: &Window,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<EnrollmentPage, PortError> {
        let target = Target::new(conn)?;
        let what = "GET /api/v1/enrollments";
        let cursor = cursor.filter(|c| !c.is_empty());
        let mut url = target.url(&["enrollments"]);
        window_query(&mut url, window);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &limit.clamp(1, MAX_ENROLLMENTS_PER_PAGE).to_string());
            if let Some(c) = cursor {
                q.append_pair("cursor", c);
            }
        }
        let page: Page<Enrollment> = self.get_json(&target, what, url).await?;
        let mut next = next_cursor(&target, what, cursor, page.next_cursor)?;
        // The API orders by `updated_at`: one at or after `until` ends the window.
        if page.data.iter().any(|e| e.updated_at >= window.until) {
            next = None;
        }
        let enrollments: Vec<Enrollment> = page.data.into_iter().filter(|e| window.contains(e.updated_at)).collect();
        Ok(EnrollmentPage { enrollments, next_cursor: next })
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
            .map_err(|e| target.transport(what, e))?;
        target.read_json(what, resp).await
    }

    async fn send(&self, target: &Target<'_>, what: &str, url: Url) -> Result<reqwest::Response, PortError> {
        self.http
            .get(url)
            .bearer_auth(target.conn.api_key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| target.transport(what, e))
    }

    async fn get_json<T: DeserializeOwned>(&self, target: &Target<'_>, what: &str, url: Url) -> Result<T, PortError> {
        let resp = self.send(target, what, url).await?;
        target.read_json(what, resp).await
    }
}

/// The cursor of the page after one read with `current`: `None` on the
/// last page (no cursor, or an empty one); a cursor equal to `current` is
/// refused (paging would not end).
fn next_cursor(
    target: &Target<'_>,
    what: &str,
    current: Option<&str>,
    next: Option<String>,
) -> Result<Option<String>, PortError> {
    match next.filter(|c| !c.is_empty()) {
        Some(next) if current == Some(next.as_str()) => Err(PortError::permanent(format!(
            "LMS {}: {what} returned the same cursor twice; paging would not end",
            target.shown
        ))),
        next => Ok(next),
    }
}

/// `updated_since` and `updated_until` of a window.
fn window_query(url: &mut Url, window: &Window) {
    url.query_pairs_mut()
        .append_pair("updated_since", &lms_datetime(window.since))
        .append_pair("updated_until", &lms_datetime(window.until));
}

/// RFC 3339 with milliseconds and `Z`, rounded up to the millisecond: the
/// LMS keeps milliseconds, so for its times `t >= x` is `t >= ceil(x)`.
fn lms_datetime(t: OffsetDateTime) -> String {
    let below_ms = t.nanosecond() % 1_000_000;
    let up = if below_ms == 0 {
        t
    } else {
        t.checked_add(time::Duration::nanoseconds(i64::from(1_000_000 - below_ms))).unwrap_or(t)
    };
    salesforce_datetime(up)
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

#[async_trait]
impl LmsEnrollments for LmsClient {
    async fn count_enrollments(&self, lms: &LmsConnection, window: &Window) -> Result<u64, PortError> {
        LmsClient::count_enrollments(self, lms, window).await
    }

    async fn enrollments_page(
        &self,
        lms: &LmsConnection,
        window: &Window,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<EnrollmentPage, PortError> {
        LmsClient::enrollments_page(self, lms, window, cursor, limit).await
    }
}

#[cfg(test)]
mod tests;
