//! The HRIS client (reqwest + rustls/ring) behind [`HrisApi`]: a Merge-style
//! unified HRIS API (the emulator in `tests/hris-emulator` speaks it).
//!
//! - [`HrisClient::employees_page`]: one `GET {base}/api/hris/v1/employees`
//!   with `page_size` (clamped to 1..=100) and either `modified_after` (the
//!   first page) or `cursor` (the following ones: a previous page's `next`,
//!   passed back verbatim; the cursor carries the filter). The employees come
//!   back raw.
//! - [`HrisClient::groups`]: `GET {base}/api/hris/v1/groups`, following every
//!   `next`; id → name.
//!
//! The API key goes as `Authorization: Bearer <key>`, the linked account as
//! `X-Account-Token: <token>`. Every failure is a [`PortError`] of the one
//! taxonomy, naming the HRIS (its base URL) and the HTTP status, never the key
//! nor the token (an HRIS message echoing one is redacted) nor a query string:
//! - 429 → throttled, with the `Retry-After` seconds as a [`Throttled`] cause
//!   ([`retry_after`] reads it back; the same type as the LMS client's);
//! - 5xx, 408, transport failures (connect, timeout, reset), a truncated or
//!   non-JSON body → retryable;
//! - 401/403 (the credentials), 400 (a bad cursor or timestamp), 404 and other
//!   4xx, redirects (never followed: they would carry the credentials
//!   elsewhere), JSON of the wrong shape → permanent.

pub mod memory;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use learnlink_core::PortError;
use learnlink_core::ports::{EmployeePage, HrisApi, HrisConnection};
use reqwest::Url;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::http::{self, Api, Connection, Endpoint};
pub use crate::http::{Throttled, retry_after};
pub use memory::MemoryHris;

/// Largest `page_size` the API takes.
pub const MAX_PAGE_SIZE: u32 = 100;

/// How the client behaves; `HrisClientConfig::default()` is production's.
#[derive(Debug, Clone)]
pub struct HrisClientConfig {
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// `page_size` asked for on group pages (1..=100).
    pub group_page_size: u32,
    /// Upper bound on pages followed by one [`HrisClient::groups`] call.
    pub max_pages: usize,
}

impl Default for HrisClientConfig {
    fn default() -> Self {
        HrisClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            group_page_size: MAX_PAGE_SIZE,
            max_pages: 10_000,
        }
    }
}

/// The HRIS client. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct HrisClient {
    http: reqwest::Client,
    config: HrisClientConfig,
}

#[derive(Deserialize)]
struct Page<T> {
    results: Vec<T>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct GroupRow {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

impl Connection for HrisConnection {
    const API: &'static Api = &Api {
        name: "HRIS",
        prefix: &["api", "hris", "v1"],
        schema: "the unified HRIS API's",
        credentials: "HRIS API key and account token",
        // `{"error": {"message"}}` or Merge's `{"detail"}`.
        message_at: &["/error/message", "/detail"],
    };

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn secrets(&self) -> Vec<&str> {
        vec![self.api_key.expose_secret(), self.account_token.expose_secret()]
    }
}

/// One HRIS, as errors name it (the base URL without credentials or query).
type Target<'a> = Endpoint<'a, HrisConnection>;

impl HrisClient {
    pub fn new() -> Result<Self, PortError> {
        Self::with_config(HrisClientConfig::default())
    }

    pub fn with_config(config: HrisClientConfig) -> Result<Self, PortError> {
        // A redirect would carry the credentials elsewhere: never followed.
        let http = http::client(HrisConnection::API, config.connect_timeout, config.request_timeout)?;
        Ok(HrisClient { http, config })
    }

    pub fn config(&self) -> &HrisClientConfig {
        &self.config
    }

    /// One page of employees in `(modified_at, id)` order: the first one
    /// after `modified_after` (exclusive), or with `cursor` (a previous
    /// page's `next`, sent verbatim; `modified_after` is then not sent, the
    /// cursor carries it) the following one.
    pub async fn employees_page(
        &self,
        conn: &HrisConnection,
        modified_after: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<EmployeePage, PortError> {
        let target = Target::new(conn)?;
        let what = "GET /api/hris/v1/employees";
        let mut url = target.url(&["employees"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("page_size", &page_size.clamp(1, MAX_PAGE_SIZE).to_string());
            match cursor {
                Some(c) => {
                    q.append_pair("cursor", c);
                }
                None => {
                    if let Some(m) = modified_after {
                        q.append_pair("modified_after", m);
                    }
                }
            }
        }
        let page: Page<Map<String, Value>> = self.get_json(&target, what, url).await?;
        let next = page.next.filter(|n| !n.is_empty());
        if next.is_some() && next.as_deref() == cursor {
            return Err(PortError::permanent(format!(
                "HRIS {}: {what} returned the cursor it was given; paging would not end",
                target.shown
            )));
        }
        Ok(EmployeePage { results: page.results, next })
    }

    /// Every group, id → name (a group without a name: empty), following
    /// every `next`.
    pub async fn groups(&self, conn: &HrisConnection) -> Result<BTreeMap<String, String>, PortError> {
        let target = Target::new(conn)?;
        let what = "GET /api/hris/v1/groups";
        let mut out = BTreeMap::new();
        let mut cursor: Option<String> = None;
        for _ in 0..self.config.max_pages.max(1) {
            let mut url = target.url(&["groups"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("page_size", &self.config.group_page_size.clamp(1, MAX_PAGE_SIZE).to_string());
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let page: Page<GroupRow> = self.get_json(&target, what, url).await?;
            out.extend(page.results.into_iter().map(|g| (g.id, g.name.unwrap_or_default())));
            match page.next.filter(|c| !c.is_empty()) {
                None => return Ok(out),
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(PortError::permanent(format!(
                        "HRIS {}: {what} returned the same cursor twice; paging would not end",
                        target.shown
                    )));
                }
                Some(next) => cursor = Some(next),
            }
        }
        Err(PortError::permanent(format!(
            "HRIS {}: {what} had more than {} pages; stopped following its cursor",
            target.shown, self.config.max_pages
        )))
    }

    async fn get_json<T: DeserializeOwned>(&self, target: &Target<'_>, what: &str, url: Url) -> Result<T, PortError> {
        let resp = self
            .http
            .get(url)
            .bearer_auth(target.conn.api_key.expose_secret())
            .header("X-Account-Token", target.conn.account_token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| target.transport(what, e))?;
        target.read_json(what, resp).await
    }
}

#[async_trait]
impl HrisApi for HrisClient {
    async fn employees_page(
        &self,
        hris: &HrisConnection,
        modified_after: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<EmployeePage, PortError> {
        HrisClient::employees_page(self, hris, modified_after, cursor, page_size).await
    }

    async fn groups(&self, hris: &HrisConnection) -> Result<BTreeMap<String, String>, PortError> {
        HrisClient::groups(self, hris).await
    }
}

#[cfg(test)]
mod tests;
