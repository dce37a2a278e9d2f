//! A typed client over the admin API (`infra/openapi.yaml`). Every call
//! returns the typed answer together with the JSON as it came (for `--json`),
//! or an [`ApiError`] carrying the HTTP status, the stable code, the sentence
//! and the violations.

use crate::env::{Origin, Target};
use crate::error::{Failure, ViolationLine, exit, exit_code_for_status};
pub use learnlink_core::activity::ActivityEntry;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, IF_MATCH};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use url::Url;

/// A failed call: no answer (`status: None`) or an error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
    pub violations: Vec<ViolationLine>,
    /// The error document: the API's own, or one of the same shape.
    pub body: Value,
}

impl ApiError {
    /// The exit code this failure means.
    pub fn exit_code(&self) -> u8 {
        exit_code_for_status(self.status)
    }

    fn local(status: Option<u16>, code: &str, message: String) -> ApiError {
        let body = json!({"error": {"code": code, "message": message}});
        ApiError { status, code: code.into(), message, violations: Vec::new(), body }
    }

    /// From an error answer: the API's `{"error": {...}}`, or a sentence about the status.
    pub fn from_response(status: u16, body: &[u8]) -> ApiError {
        #[derive(Deserialize)]
        struct Envelope {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            code: String,
            message: String,
            #[serde(default)]
            violations: Vec<ViolationLine>,
        }
        if let Ok(raw) = serde_json::from_slice::<Value>(body)
            && let Ok(e) = serde_json::from_value::<Envelope>(raw.clone())
        {
            return ApiError {
                status: Some(status),
                code: e.error.code,
                message: e.error.message,
                violations: e.error.violations,
                body: raw,
            };
        }
        let (code, what) = match status {
            400 => ("bad_request", "the request was refused as malformed"),
            401 => ("unauthorized", "a valid admin credential is required"),
            403 => ("forbidden", "the admin credential is not allowed to do this"),
            404 => ("not_found", "no such resource"),
            409 => ("conflict", "the request conflicts with the current state"),
            422 => ("invalid", "the document is invalid"),
            429 => ("throttled", "the API is throttling requests"),
            500..=599 => ("unavailable", "the API is unavailable"),
            _ => ("unexpected_status", "the API gave an unexpected answer"),
        };
        ApiError::local(Some(status), code, format!("{what} (HTTP {status})"))
    }

    /// Into a command failure, with a hint where one helps.
    pub fn into_failure(self, origin: &Origin) -> Failure {
        let hint = match self.exit_code() {
            exit::UNAUTHORIZED => Some(match origin {
                Origin::StackEnv(p) => format!(
                    "the token comes from {}; `make up` writes a new one each time it starts the stack",
                    p.display()
                ),
                Origin::Explicit => "check --token / LEARNLINK_ADMIN_TOKEN".to_string(),
            }),
            exit::INVALID if !self.violations.is_empty() => {
                Some("fix every violation listed (paths are JSON pointers into the document) and try again".into())
            }
            exit::UNAVAILABLE if self.status.is_none() => Some(match origin {
                Origin::StackEnv(p) => {
                    format!("the address comes from {}: is the local stack up? `make up` starts it", p.display())
                }
                Origin::Explicit => "check --api-url / LEARNLINK_API_URL".to_string(),
            }),
            exit::UNAVAILABLE if self.status == Some(429) => {
                Some("a service learnlink reads is throttling requests: try again later".into())
            }
            exit::UNAVAILABLE => Some("a store learnlink depends on failed: try again in a moment".into()),
            _ => None,
        };
        Failure {
            exit: self.exit_code(),
            code: self.code,
            message: self.message,
            violations: self.violations,
            hint,
            body: Some(self.body),
        }
    }
}

/// An answer: the typed value and the JSON as it came.
#[derive(Debug, Clone)]
pub struct Doc<T> {
    pub raw: Value,
    pub data: T,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TenantSummary {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TenantList {
    pub tenants: Vec<TenantSummary>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConfigDocument {
    pub tenant: String,
    pub version: u64,
    #[serde(default)]
    pub changed_at: String,
    pub config: Value,
    #[serde(default)]
    pub webhook_secrets: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VersionEntry {
    pub version: u64,
    #[serde(default)]
    pub changed_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VersionList {
    #[serde(default)]
    pub tenant: String,
    pub versions: Vec<VersionEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DiffChange {
    pub path: String,
    pub op: String,
    #[serde(default)]
    pub from: Option<Value>,
    #[serde(default)]
    pub to: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConfigDiff {
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub from: u64,
    #[serde(default)]
    pub to: u64,
    pub changes: Vec<DiffChange>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    #[serde(default)]
    pub tenant: String,
    pub status: String,
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub sentence: String,
    #[serde(default)]
    pub remedy: Option<String>,
    #[serde(default)]
    pub dlq_depth: u64,
    #[serde(default)]
    pub parked: u64,
    #[serde(default)]
    pub failures_today: u64,
    #[serde(default)]
    pub connected_at: Option<String>,
    #[serde(default)]
    pub warnings: Vec<HealthWarning>,
    #[serde(default)]
    pub gap_backfills: Vec<GapBackfill>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HealthWarning {
    #[serde(default)]
    pub cause: String,
    #[serde(default)]
    pub sentence: String,
    #[serde(default)]
    pub remedy: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GapBackfill {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub state: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActivityPage {
    #[serde(default)]
    pub tenant: String,
    /// The core's entry type: the one the API serializes and `to_csv` writes.
    pub entries: Vec<ActivityEntry>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    #[serde(default)]
    pub job: String,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub finished_at: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub updated: u64,
    #[serde(default)]
    pub skipped: u64,
    #[serde(default)]
    pub failed: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunList {
    #[serde(default)]
    pub tenant: String,
    pub runs: Vec<RunSummary>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ReviewItem {
    pub learner_id: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub matching_field: String,
    #[serde(default)]
    pub match_value: String,
    #[serde(default)]
    pub candidates: Vec<String>,
    #[serde(default)]
    pub first_seen: String,
    #[serde(default)]
    pub last_seen: String,
    #[serde(default)]
    pub held: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReviewPage {
    #[serde(default)]
    pub tenant: String,
    pub items: Vec<ReviewItem>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReviewResolved {
    #[serde(default)]
    pub tenant: String,
    pub learner_id: String,
    pub contact_id: String,
    pub released: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    #[serde(default)]
    pub receive_count: u64,
    #[serde(default)]
    pub sent_at: String,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub record: Option<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeadLetters {
    #[serde(default)]
    pub tenant: Option<String>,
    pub messages: Vec<DeadLetter>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeadLettersReplayed {
    #[serde(default)]
    pub tenant: String,
    pub replayed: u64,
    #[serde(default)]
    pub message_ids: Vec<String>,
}

/// A backfill's time window `[since, until)`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BackfillWindow {
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
}

/// A backfill as the API shows it (`Backfill` in the OpenAPI document).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Backfill {
    pub id: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub window: BackfillWindow,
    /// `{"kind": "admin" | "relink" | "onboarding", …}`.
    #[serde(default)]
    pub origin: Value,
    /// `{"only_changed", "bulk_threshold", "shard_size"}`.
    #[serde(default)]
    pub options: Value,
    #[serde(default)]
    pub status: String,
    /// `{"state": "off" | "pending" | "engaged" | "restored", "previous"?: bool | null}`.
    #[serde(default)]
    pub kill_switch: Value,
    #[serde(default)]
    pub expected: u64,
    #[serde(default)]
    pub shards: u64,
    #[serde(default)]
    pub skipped: Vec<BackfillWindow>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub paused_at: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl Backfill {
    /// Whether the backfill has ended (completed, failed or cancelled).
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }
}

/// A backfill's progress (`Progress` in the OpenAPI document).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Progress {
    #[serde(default)]
    pub shards_total: u64,
    #[serde(default)]
    pub shards_done: u64,
    #[serde(default)]
    pub shards_failed: u64,
    #[serde(default)]
    pub expected: u64,
    #[serde(default)]
    pub pages: u64,
    #[serde(default)]
    pub read: u64,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub updated: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub handed_over: u64,
    /// Records job 1 had already written newer: not written by the backfill.
    #[serde(default)]
    pub stale: u64,
    #[serde(default)]
    pub api_calls: u64,
    #[serde(default)]
    pub written: u64,
    #[serde(default)]
    pub percent: f64,
    #[serde(default)]
    pub elapsed_seconds: u64,
    #[serde(default)]
    pub eta_seconds: Option<u64>,
}

/// A backfill with its progress (and its shards when asked for).
#[derive(Debug, Clone, Deserialize)]
pub struct BackfillView {
    pub backfill: Backfill,
    #[serde(default)]
    pub progress: Progress,
    #[serde(default)]
    pub shards: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BackfillList {
    pub backfills: Vec<BackfillView>,
}

/// One answer of the enrollments export: CSV text and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct CsvPage {
    pub csv: String,
    pub next_cursor: Option<String>,
}

/// The filters of `GET …/activity`.
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    pub outcome: Option<String>,
    pub learner: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl ActivityQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let mut add = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        };
        add("outcome", &self.outcome);
        add("learner", &self.learner);
        add("since", &self.since);
        add("until", &self.until);
        add("cursor", &self.cursor);
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        q
    }
}

/// The admin API client.
pub struct Client {
    base: Url,
    token: Option<SecretString>,
    http: reqwest::Client,
    origin: Origin,
}

impl Client {
    /// A client for a resolved target. Redirects are not followed (the
    /// credential never goes elsewhere); the loopback is never proxied.
    pub fn new(target: Target, timeout: Duration) -> Result<Client, Failure> {
        learnlink_adapters::install_crypto_provider();
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .timeout(timeout)
            .user_agent(concat!("learnlink-cli/", env!("CARGO_PKG_VERSION")));
        let loopback = match target.url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if loopback {
            b = b.no_proxy();
        }
        let http = b.build().map_err(|e| Failure::unexpected(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client { base: target.url, token: target.token, http, origin: target.origin })
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The token, to keep it out of anything printed.
    pub fn secret(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.expose_secret())
    }

    /// The base URL with path segments appended (each one percent-encoded).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        url
    }

    fn tenant_url(&self, tenant: &str, rest: &[&str]) -> Url {
        let mut segs = vec!["admin", "tenants", tenant];
        segs.extend_from_slice(rest);
        self.url(&segs)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<(u16, Body), ApiError> {
        let mut rb = rb;
        if let Some(t) = &self.token {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose_secret())).map_err(|_| {
                ApiError::local(None, "invalid_token", "the admin token holds characters a header cannot carry".into())
            })?;
            v.set_sensitive(true);
            rb = rb.header(AUTHORIZATION, v);
        }
        let resp = rb.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let next_cursor = resp
            .headers()
            .get(NEXT_CURSOR_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e))?;
        if !(200..300).contains(&status) {
            return Err(ApiError::from_response(status, &bytes));
        }
        Ok((status, Body { bytes: bytes.to_vec(), content_type, next_cursor }))
    }

    /// A transport failure, without the URL's query or anything secret.
    fn transport(&self, e: &reqwest::Error) -> ApiError {
        let what = if e.is_timeout() {
            "did not answer in time"
        } else if e.is_connect() {
            "refused the connection or cannot be reached"
        } else if e.is_body() || e.is_decode() {
            "broke off its answer"
        } else {
            "cannot be reached"
        };
        let mut base = self.base.clone();
        base.set_query(None);
        ApiError::local(
            None,
            "unreachable",
            format!("the learnlink API at {} {what}", base.as_str().trim_end_matches('/')),
        )
    }

    fn parse<T: DeserializeOwned>(&self, status: u16, body: &Body) -> Result<Doc<T>, ApiError> {
        let raw: Value = serde_json::from_slice(&body.bytes).map_err(|e| {
            ApiError::local(
                Some(status),
                "bad_response",
                format!("the API answered {status} with a body that is not JSON ({e})"),
            )
        })?;
        let data = serde_json::from_value(raw.clone()).map_err(|e| {
            ApiError::local(Some(status), "bad_response", format!("the API's answer has an unexpected shape ({e})"))
        })?;
        Ok(Doc { raw, data })
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url, query: &[(&str, String)]) -> Result<Doc<T>, ApiError> {
        let rb = self.http.get(url).header(ACCEPT, "application/json").query(query);
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }

    /// `GET /admin/tenants` (listTenants).
    pub async fn list_tenants(&self) -> Result<Doc<TenantList>, ApiError> {
        self.get_json(self.url(&["admin", "tenants"]), &[]).await
    }

    /// `GET /admin/tenants/{tenant}` (getTenant).
    pub async fn get_tenant(&self, tenant: &str) -> Result<Doc<TenantSummary>, ApiError> {
        self.get_json(self.tenant_url(tenant, &[]), &[]).await
    }

    /// `POST /admin/tenants` (createTenant).
    pub async fn create_tenant(&self, id: &str, config: &Value) -> Result<Doc<ConfigDocument>, ApiError> {
        let rb = self.http.post(self.url(&["admin", "tenants"])).json(&json!({"id": id, "config": config}));
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }

    /// `GET /admin/tenants/{tenant}/config` (getConfig).
    pub async fn get_config(&self, tenant: &str, version: Option<u64>) -> Result<Doc<ConfigDocument>, ApiError> {
        let q: Vec<(&str, String)> = version.map(|v| ("version", v.to_string())).into_iter().collect();
        self.get_json(self.tenant_url(tenant, &["config"]), &q).await
    }

    /// `PUT /admin/tenants/{tenant}/config` (putConfig), with `If-Match` when a version is given.
    pub async fn put_config(
        &self,
        tenant: &str,
        config: &Value,
        if_match: Option<u64>,
    ) -> Result<Doc<ConfigDocument>, ApiError> {
        let mut rb = self.http.put(self.tenant_url(tenant, &["config"])).json(config);
        if let Some(v) = if_match {
            rb = rb.header(IF_MATCH, v.to_string());
        }
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }

    /// `POST /admin/tenants/{tenant}/config/validate` (validateConfig).
    pub async fn validate_config(&self, tenant: &str, config: &Value) -> Result<Doc<Value>, ApiError> {
        let rb = self.http.post(self.tenant_url(tenant, &["config", "validate"])).json(config);
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }

    /// `GET /admin/tenants/{tenant}/config/versions` (listConfigVersions).
    pub async fn list_versions(&self, tenant: &str) -> Result<Doc<VersionList>, ApiError> {
        self.get_json(self.tenant_url(tenant, &["config", "versions"]), &[]).await
    }

    /// `GET /admin/tenants/{tenant}/config/diff` (diffConfig).
    pub async fn diff_config(
        &self,
        tenant: &str,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Result<Doc<ConfigDiff>, ApiError> {
        let mut q = Vec::new();
        if let Some(f) = from {
            q.push(("from", f.to_string()));
        }
        if let Some(t) = to {
            q.push(("to", t.to_string()));
        }
        self.get_json(self.tenant_url(tenant, &["config", "diff"]), &q).await
    }

    /// `GET /admin/tenants/{tenant}/status` (getStatus).
    pub async fn get_status(&self, tenant: &str) -> Result<Doc<Health>, ApiError> {
        self.get_json(self.tenant_url(tenant, &["status"]), &[]).await
    }

    /// `GET /admin/tenants/{tenant}/activity` (listActivity), one page as JSON.
    pub async fn list_activity(&self, tenant: &str, q: &ActivityQuery) -> Result<Doc<ActivityPage>, ApiError> {
        self.get_json(self.tenant_url(tenant, &["activity"]), &q.pairs()).await
    }

    /// `GET /admin/tenants/{tenant}/activity?format=csv`: one page as CSV.
    pub async fn activity_csv(&self, tenant: &str, q: &ActivityQuery) -> Result<String, ApiError> {
        let mut pairs = q.pairs();
        pairs.push(("format", "csv".into()));
        let rb = self.http.get(self.tenant_url(tenant, &["activity"])).header(ACCEPT, "text/csv").query(&pairs);
        let (status, body) = self.send(rb).await?;
        if body.content_type.starts_with("application/json") {
            return Err(ApiError::local(
                Some(status),
                "bad_response",
                "the API answered JSON where CSV was asked for".into(),
            ));
        }
        String::from_utf8(body.bytes)
            .map_err(|_| ApiError::local(Some(status), "bad_response", "the API's CSV is not UTF-8".into()))
    }

    /// `GET /admin/tenants/{tenant}/runs` (listRuns).
    pub async fn list_runs(&self, tenant: &str, limit: Option<u32>) -> Result<Doc<RunList>, ApiError> {
        let q: Vec<(&str, String)> = limit.map(|l| ("limit", l.to_string())).into_iter().collect();
        self.get_json(self.tenant_url(tenant, &["runs"]), &q).await
    }
}

impl Client {
    /// `GET /admin/tenants/{tenant}/review` (listReview), one page.
    pub async fn list_review(
        &self,
        tenant: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Doc<ReviewPage>, ApiError> {
        let mut q = Vec::new();
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        self.get_json(self.tenant_url(tenant, &["review"]), &q).await
    }

    /// `POST /admin/tenants/{tenant}/review/{learner}/resolve` (resolveReview).
    pub async fn resolve_review(
        &self,
        tenant: &str,
        learner: &str,
        contact: &str,
    ) -> Result<Doc<ReviewResolved>, ApiError> {
        let url = self.tenant_url(tenant, &["review", learner, "resolve"]);
        let rb = self.http.post(url).json(&json!({ "contact_id": contact }));
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }

    /// `GET /admin/tenants/{tenant}/dlq` (listTenantDeadLetters), or `GET /admin/dlq`
    /// (listDeadLetters) without a tenant.
    pub async fn list_dlq(&self, tenant: Option<&str>) -> Result<Doc<DeadLetters>, ApiError> {
        let url = match tenant {
            Some(t) => self.tenant_url(t, &["dlq"]),
            None => self.url(&["admin", "dlq"]),
        };
        self.get_json(url, &[]).await
    }

    /// `POST /admin/tenants/{tenant}/dlq/replay` (replayTenantDeadLetters):
    /// these messages, or every one of the tenant's when `ids` is empty.
    pub async fn replay_dlq(&self, tenant: &str, ids: &[String]) -> Result<Doc<DeadLettersReplayed>, ApiError> {
        let mut rb = self.http.post(self.tenant_url(tenant, &["dlq", "replay"]));
        if !ids.is_empty() {
            rb = rb.json(&json!({ "message_ids": ids }));
        }
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }
}

impl Client {
    /// `POST /admin/tenants/{tenant}/imports` (startImport).
    pub async fn start_import(&self, tenant: &str, dry_run: bool) -> Result<Doc<Value>, ApiError> {
        let rb = self.http.post(self.tenant_url(tenant, &["imports"])).json(&json!({ "dry_run": dry_run }));
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }

    /// `GET /admin/tenants/{tenant}/imports` (getImports).
    pub async fn import_state(&self, tenant: &str) -> Result<Doc<Value>, ApiError> {
        self.get_json(self.tenant_url(tenant, &["imports"]), &[]).await
    }

    /// `POST /admin/tenants/{tenant}/imports/preview` (previewImport).
    pub async fn preview_import(&self, tenant: &str, limit: u64) -> Result<Doc<Value>, ApiError> {
        let rb =
            self.http.post(self.tenant_url(tenant, &["imports", "preview"])).query(&[("limit", limit.to_string())]);
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }
}

impl Client {
    /// `POST /admin/tenants/{tenant}/backfills` (startBackfill), served by the backfill-fanout function.
    pub async fn start_backfill(
        &self,
        tenant: &str,
        since: &str,
        until: Option<&str>,
        only_changed: bool,
    ) -> Result<Doc<BackfillView>, ApiError> {
        let mut body = json!({ "since": since, "only_changed": only_changed });
        if let (Some(u), Some(o)) = (until, body.as_object_mut()) {
            o.insert("until".into(), json!(u));
        }
        let rb = self.http.post(self.tenant_url(tenant, &["backfills"])).json(&body);
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }

    /// `GET /admin/tenants/{tenant}/backfills` (listBackfills): newest first.
    pub async fn list_backfills(&self, tenant: &str, limit: Option<u32>) -> Result<Doc<BackfillList>, ApiError> {
        let q: Vec<(&str, String)> = limit.map(|l| ("limit", l.to_string())).into_iter().collect();
        self.get_json(self.tenant_url(tenant, &["backfills"]), &q).await
    }

    /// `GET /admin/tenants/{tenant}/backfills/{id}` (getBackfill).
    pub async fn get_backfill(&self, tenant: &str, id: &str, shards: bool) -> Result<Doc<BackfillView>, ApiError> {
        let q: Vec<(&str, String)> = if shards { vec![("shards", "true".into())] } else { Vec::new() };
        self.get_json(self.tenant_url(tenant, &["backfills", id]), &q).await
    }

    /// `POST /admin/tenants/{tenant}/backfills/{id}/cancel` (cancelBackfill).
    pub async fn cancel_backfill(&self, tenant: &str, id: &str) -> Result<Doc<BackfillView>, ApiError> {
        let rb = self.http.post(self.tenant_url(tenant, &["backfills", id, "cancel"]));
        let (status, body) = self.send(rb).await?;
        self.parse(status, &body)
    }

    /// `GET /admin/tenants/{tenant}/exports/enrollments` (exportEnrollments): one answer of CSV.
    pub async fn export_enrollments(
        &self,
        tenant: &str,
        since: &str,
        until: &str,
        cursor: Option<&str>,
    ) -> Result<CsvPage, ApiError> {
        let mut q = vec![("since", since.to_string()), ("until", until.to_string())];
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        let rb =
            self.http.get(self.tenant_url(tenant, &["exports", "enrollments"])).header(ACCEPT, "text/csv").query(&q);
        let (status, body) = self.send(rb).await?;
        if !body.content_type.starts_with("text/csv") {
            return Err(ApiError::local(
                Some(status),
                "bad_response",
                format!("the API answered {:?} where CSV was asked for", body.content_type),
            ));
        }
        let csv = String::from_utf8(body.bytes)
            .map_err(|_| ApiError::local(Some(status), "bad_response", "the API's CSV is not UTF-8".into()))?;
        Ok(CsvPage { csv, next_cursor: body.next_cursor })
    }
}

/// A successful answer's body and content type.
struct Body {
    bytes: Vec<u8>,
    content_type: String,
    /// `Learnlink-Next-Cursor`, when the answer has one.
    next_cursor: Option<String>,
}

/// The header of a paged CSV answer that carries the next page's cursor.
pub const NEXT_CURSOR_HEADER: &str = "learnlink-next-cursor";

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        let target = Target {
            url: crate::env::parse_api_url(base).unwrap(),
            token: Some(SecretString::from("tok-xyz")),
            origin: Origin::Explicit,
        };
        Client::new(target, Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_segments() {
        let c = client("https://api.example.com/prod/");
        assert_eq!(c.url(&["admin", "tenants"]).as_str(), "https://api.example.com/prod/admin/tenants");
        assert_eq!(
            c.tenant_url("a/b?c", &["config"]).as_str(),
            "https://api.example.com/prod/admin/tenants/a%2Fb%3Fc/config"
        );
        let c = client("http://127.0.0.1:4569");
        assert_eq!(
            c.tenant_url("acme", &["config", "diff"]).as_str(),
            "http://127.0.0.1:4569/admin/tenants/acme/config/diff"
        );
        assert_eq!(c.secret(), Some("tok-xyz"));
    }

    #[test]
    fn error_answers_become_api_errors_with_their_exit_codes() {
        let body = br#"{"error":{"code":"invalid_config","message":"the configuration has 2 violations","violations":[{"path":"/name","message":"too long"},{"path":"/salesforce","message":"required"}]}}"#;
        let e = ApiError::from_response(422, body);
        assert_eq!(e.exit_code(), 4);
        assert_eq!(e.code, "invalid_config");
        assert_eq!(e.violations.len(), 2);
        assert_eq!(e.body["error"]["violations"][1]["path"], "/salesforce");

        let e = ApiError::from_response(502, b"<html>Bad gateway</html>");
        assert_eq!(e.exit_code(), 7);
        assert_eq!(e.code, "unavailable");
        assert_eq!(e.body["error"]["message"], "the API is unavailable (HTTP 502)");

        assert_eq!(ApiError::from_response(401, b"").exit_code(), 5);
        assert_eq!(ApiError::from_response(404, b"{}").exit_code(), 3);
        assert_eq!(
            ApiError::from_response(409, b"{\"error\":{\"code\":\"conflict\",\"message\":\"x\"}}").exit_code(),
            6
        );
    }

    #[test]
    fn failures_carry_hints_for_the_common_cases() {
        let f = ApiError::from_response(401, b"").into_failure(&Origin::Explicit);
        assert_eq!(f.exit, 5);
        assert!(f.hint.unwrap().contains("LEARNLINK_ADMIN_TOKEN"));
        let f = ApiError::local(None, "unreachable", "x".into())
            .into_failure(&Origin::StackEnv("/w/.learnlink/stack.env".into()));
        assert_eq!(f.exit, 7);
        assert!(f.hint.unwrap().contains("make up"));
    }

    #[test]
    fn activity_queries_only_carry_what_is_set() {
        let q = ActivityQuery { outcome: Some("failed".into()), limit: Some(50), ..Default::default() };
        assert_eq!(q.pairs(), vec![("outcome", "failed".to_string()), ("limit", "50".to_string())]);
    }
}
