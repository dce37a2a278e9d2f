//! The REST API under `/services/data`: authentication, API usage accounting, injected
//! faults, and one dispatcher for every resource, shared by top-level requests and
//! Composite / graph / batch subrequests.
//!
//! Kinds of request (statistics and fault scopes): `query` (query, queryAll, query
//! more), `collections` (sObject Collections), `composite` (composite, graph, batch),
//! `bulk` (Bulk API 2.0), `rest` (everything else: sObject rows, describe, limits,
//! resources), `auth` (OAuth, not counted against the limit).

pub mod collections;
pub mod composite;
pub mod describe;
pub mod limits;
pub mod query;
pub mod sobjects;

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::errors::{ApiError, sf_json};
use crate::state::{FaultKind, Org, SfState};
use crate::values::now_ms;

/// Name of the header carrying the API usage.
pub const LIMIT_HEADER: &str = "sforce-limit-info";

/// An admitted API call: usage to report in `Sforce-Limit-Info`.
#[derive(Debug, Clone, Copy)]
pub struct ApiCall {
    pub used: u64,
    pub limit: u64,
}

impl ApiCall {
    /// Adds `Sforce-Limit-Info: api-usage=N/LIMIT` to `resp`.
    pub fn finish(self, mut resp: Response) -> Response {
        let value = format!("api-usage={}/{}", self.used, self.limit);
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(LIMIT_HEADER, v);
        }
        resp
    }
}

/// What an admitted request may do.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The user of the access token.
    pub user_id: String,
    /// Write requests fail every record with `UNABLE_TO_LOCK_ROW` (injected fault).
    pub lock_fault: bool,
    /// `Sforce-Query-Options: batchSize=N`.
    pub batch_size: Option<usize>,
    /// Inside a Composite request (no nested composite).
    pub nested: bool,
    /// Top-level `/composite`: its upsert subrequests are counted in
    /// `composite_subrequests`.
    pub api_version: String,
}

/// Whether `v` looks like an API version segment (`v63.0`).
pub fn valid_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return false;
    };
    !major.is_empty()
        && !minor.is_empty()
        && major.chars().all(|c| c.is_ascii_digit())
        && minor.chars().all(|c| c.is_ascii_digit())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth")).then(|| token.trim())
}

/// Admits an API request: checks the session, applies injected faults, enforces
/// the daily limit, and counts the call under `kind` / `endpoint`.
pub async fn admit(
    state: &SfState,
    headers: &HeaderMap,
    kind: &str,
    endpoint: &str,
    is_write: bool,
) -> Result<(ApiCall, Ctx), Response> {
    let (call, ctx, latency, error) = {
        let mut org = state.org();
        org.stats.totals.requests += 1;
        let timeout = org.settings.session_timeout_ms;
        let user = bearer(headers).and_then(|t| org.tokens.use_access(t, timeout, now_ms()));
        let Some(user_id) = user else {
            org.stats.totals.rejected += 1;
            return Err(ApiError::invalid_session().into_response());
        };
        let limit = org.daily_api_limit;
        let used = org.api_used_today();
        let fault = org.take_fault(kind, is_write);
        match fault.map(|f| f.kind) {
            Some(FaultKind::InvalidSession) => {
                org.stats.totals.rejected += 1;
                return Err(ApiError::invalid_session().into_response());
            }
            Some(FaultKind::RequestLimitExceeded) => {
                org.stats.totals.rejected += 1;
                return Err(ApiCall { used, limit }.finish(ApiError::request_limit_exceeded().into_response()));
            }
            _ => {}
        }
        if used >= limit {
            org.stats.totals.rejected += 1;
            return Err(ApiCall { used, limit }.finish(ApiError::request_limit_exceeded().into_response()));
        }
        org.api_used = used + 1;
        org.stats.api_calls += 1;
        org.stats.totals.api_calls += 1;
        org.count(kind, endpoint);
        let call = ApiCall { used: used + 1, limit };
        let error = match fault.map(|f| f.kind) {
            Some(FaultKind::ServerError) => {
                org.error_counter += 1;
                Some(ApiError::unknown_exception(1_234_567_890u64.wrapping_mul(org.error_counter)))
            }
            Some(FaultKind::ServerUnavailable) => Some(ApiError::server_unavailable()),
            _ => None,
        };
        let ctx = Ctx {
            user_id,
            lock_fault: fault.is_some_and(|f| f.kind == FaultKind::UnableToLockRow),
            batch_size: query::batch_size(headers),
            nested: false,
            api_version: String::new(),
        };
        let latency = fault.filter(|f| f.kind == FaultKind::Latency).map(|f| f.latency_ms);
        (call, ctx, latency, error)
    };
    if let Some(ms) = latency {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match error {
        Some(e) => Err(call.finish(e.into_response())),
        None => Ok((call, ctx)),
    }
}

/// A parsed request to one resource (top-level or subrequest).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub version: String,
    /// Path segments after the version, percent-decoded, no empty trailing segment.
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Option<Json>,
}

impl Req {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn seg(&self, i: usize) -> Option<&str> {
        self.segs.get(i).map(String::as_str)
    }
}

/// A response to one resource.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    /// `None`: no body (204).
    pub body: Option<Json>,
}

impl Resp {
    pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Self {
        Resp { status, headers: Vec::new(), body: Some(serde_json::to_value(body).unwrap_or(Json::Null)) }
    }

    pub fn ok<T: Serialize>(body: &T) -> Self {
        Self::json(StatusCode::OK, body)
    }

    pub fn no_content() -> Self {
        Resp { status: StatusCode::NO_CONTENT, headers: Vec::new(), body: None }
    }

    pub fn error(e: &ApiError) -> Self {
        Resp { status: e.status, headers: Vec::new(), body: Some(e.body()) }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn into_response(self) -> Response {
        let mut resp = match &self.body {
            Some(b) => sf_json(self.status, b),
            None => self.status.into_response(),
        };
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}

impl From<ApiError> for Resp {
    fn from(e: ApiError) -> Self {
        Resp::error(&e)
    }
}

/// Kind, endpoint name and whether it writes, from the method and path.
pub fn classify(method: &Method, segs: &[String]) -> (&'static str, &'static str, bool) {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    match (m, s.as_slice()) {
        (_, ["query", ..]) if s.len() == 1 => ("query", "query", false),
        (_, ["query", _]) => ("query", "query_more", false),
        (_, ["queryAll"]) => ("query", "query_all", false),
        (_, ["queryAll", _]) => ("query", "query_more", false),
        ("POST", ["composite", "sobjects"]) => ("collections", "collections_create", true),
        ("PATCH", ["composite", "sobjects"]) => ("collections", "collections_update", true),
        ("DELETE", ["composite", "sobjects"]) => ("collections", "collections_delete", true),
        (_, ["composite", "sobjects", _]) => ("collections", "collections_retrieve", false),
        (_, ["composite", "sobjects", _, _]) => ("collections", "collections_upsert", true),
        (_, ["composite", "sobjects", ..]) => ("collections", "collections", false),
        (_, ["composite"]) => ("composite", "composite", true),
        (_, ["composite", "graph"]) => ("composite", "composite_graph", true),
        (_, ["composite", "batch"]) => ("composite", "composite_batch", true),
        (_, ["composite", ..]) => ("composite", "composite_other", false),
        (_, ["jobs", ..]) => ("bulk", "bulk", m != "GET"),
        (_, ["limits"]) => ("rest", "limits", false),
        (_, []) => ("rest", "resources", false),
        (_, ["sobjects"]) => ("rest", "describe_global", false),
        (_, ["sobjects", _, "describe"]) => ("rest", "describe", false),
        ("POST", ["sobjects", _]) => ("rest", "sobject_create", true),
        (_, ["sobjects", _]) => ("rest", "sobject_info", false),
        ("GET", ["sobjects", _, _]) => ("rest", "sobject_get", false),
        ("PATCH", ["sobjects", _, _]) => ("rest", "sobject_update", true),
        ("DELETE", ["sobjects", _, _]) => ("rest", "sobject_delete", true),
        ("GET", ["sobjects", _, _, _]) => ("rest", "sobject_get_by_external_id", false),
        ("PATCH" | "POST", ["sobjects", _, _, _]) => ("rest", "sobject_upsert", true),
        ("DELETE", ["sobjects", _, _, _]) => ("rest", "sobject_delete", true),
        _ => ("rest", "not_found", false),
    }
}

/// Splits a path (after `/services/data/`) into decoded segments.
pub fn split_path(path: &str) -> Vec<String> {
    let mut segs: Vec<String> =
        path.split('/').map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()).collect();
    while segs.last().is_some_and(String::is_empty) {
        segs.pop();
    }
    segs
}

/// Parses a query string.
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// Parses a JSON request body, with Salesforce's parser error.
pub fn parse_body(body: &[u8]) -> Result<Option<Json>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        ApiError::json_parser(format!(
            "{} at [line:{}, column:{}]",
            match e.classify() {
                serde_json::error::Category::Eof => "Unexpected end-of-input",
                _ => "Unexpected character",
            },
            e.line(),
            e.column()
        ))
    })
}

/// `/services/data/{version}/...`: every REST resource.
pub async fn data_handler(
    State(state): State<SfState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix("/services/data/").unwrap_or("");
    let mut segs = split_path(path);
    if segs.is_empty() {
        return versions(State(state)).await;
    }
    let version = segs.remove(0);
    if !valid_version(&version) {
        return ApiError::not_found().into_response();
    }
    let query = parse_query(uri.query());
    if segs.first().map(String::as_str) == Some("jobs") {
        return crate::bulk::handle(state, method, version, segs, query, headers, body).await;
    }
    let (kind, endpoint, is_write) = classify(&method, &segs);
    let (call, mut ctx) = match admit(&state, &headers, kind, endpoint, is_write).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    ctx.api_version = version.clone();
    let parsed = match parse_body(&body) {
        Ok(b) => b,
        Err(e) => return call.finish(e.into_response()),
    };
    let req = Req { method, version, segs, query, body: parsed };
    let resp = {
        let mut org = state.org();
        dispatch(&state, &mut org, &ctx, &req)
    };
    call.finish(resp.into_response())
}

/// Runs one request against the (locked) org.
pub fn dispatch(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req) -> Resp {
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    let not_allowed = |allowed: &str| Resp::error(&ApiError::method_not_allowed(m, allowed));
    match segs.as_slice() {
        [] => match m {
            "GET" | "HEAD" => Resp::ok(&resources(&req.version, state, org)),
            _ => not_allowed("GET,HEAD"),
        },
        ["limits"] => match m {
            "GET" | "HEAD" => Resp::ok(&limits::limits(state.schema(), org)),
            _ => not_allowed("GET,HEAD"),
        },
        ["query"] | ["queryAll"] => match m {
            "GET" | "HEAD" => query::run(state, org, ctx, req, segs[0] == "queryAll"),
            _ => not_allowed("GET,HEAD"),
        },
        ["query", loc] | ["queryAll", loc] => match m {
            "GET" | "HEAD" => query::more(state, org, req, loc),
            _ => not_allowed("GET,HEAD"),
        },
        ["sobjects"] => match m {
            "GET" | "HEAD" => Resp::ok(&describe::global(state.schema(), &req.version)),
            _ => not_allowed("GET,HEAD"),
        },
        ["sobjects", obj, "describe"] => match m {
            "GET" | "HEAD" => describe::object(state.schema(), obj, &req.version),
            _ => not_allowed("GET,HEAD"),
        },
        ["sobjects", obj] => match m {
            "GET" | "HEAD" => describe::basic_info(state.schema(), obj, &req.version),
            "POST" => sobjects::create(state, org, ctx, req, obj),
            _ => not_allowed("GET,HEAD,POST"),
        },
        ["sobjects", obj, id] => match m {
            "GET" | "HEAD" => sobjects::get(state, org, req, obj, id),
            "PATCH" => sobjects::update(state, org, ctx, req, obj, id),
            "DELETE" => sobjects::delete(state, org, ctx, obj, id),
            _ => not_allowed("GET,PATCH,HEAD,DELETE"),
        },
        ["sobjects", obj, field, value] => match m {
            "GET" | "HEAD" => sobjects::get_by_external_id(state, org, req, obj, field, value),
            "PATCH" | "POST" => sobjects::upsert(state, org, ctx, req, obj, field, value),
            "DELETE" => sobjects::delete_by_external_id(state, org, ctx, req, obj, field, value),
            _ => not_allowed("GET,PATCH,HEAD,POST,DELETE"),
        },
        ["composite", "sobjects"] => match m {
            "POST" => collections::create(state, org, ctx, req),
            "PATCH" => collections::update(state, org, ctx, req),
            "DELETE" => collections::delete(state, org, ctx, req),
            _ => not_allowed("POST,PATCH,DELETE"),
        },
        ["composite", "sobjects", obj] => match m {
            "GET" | "POST" => collections::retrieve(state, org, req, obj),
            _ => not_allowed("GET,POST"),
        },
        ["composite", "sobjects", obj, field] => match m {
            "PATCH" => collections::upsert(state, org, ctx, req, obj, field),
            _ => not_allowed("PATCH"),
        },
        ["composite"] if !ctx.nested => match m {
            "POST" => composite::composite(state, org, ctx, req),
            _ => not_allowed("POST"),
        },
        ["composite", "graph"] if !ctx.nested => match m {
            "POST" => composite::graph(state, org, ctx, req),
            _ => not_allowed("POST"),
        },
        ["composite", "batch"] if !ctx.nested => match m {
            "POST" => composite::batch(state, org, ctx, req),
            _ => not_allowed("POST"),
        },
        _ => Resp::error(&ApiError::not_found()),
    }
}

/// `GET /services/data/vXX.X/`: the resources of the version.
fn resources(version: &str, state: &SfState, org: &Org) -> Json {
    let p = |r: &str| format!("/services/data/{version}/{r}");
    let mut m = serde_json::Map::new();
    for r in [
        "tooling",
        "metadata",
        "eclair",
        "folders",
        "prechatForms",
        "chatter",
        "tabs",
        "appMenu",
        "quickActions",
        "queryAll",
        "commerce",
        "analytics",
        "search",
        "composite",
        "parameterizedSearch",
        "theme",
        "nouns",
        "event",
        "recent",
        "connect",
        "licensing",
        "limits",
        "process",
        "async-queries",
        "query",
        "jobs",
        "match",
        "compactLayouts",
        "sobjects",
        "actions",
        "support",
    ] {
        m.insert(r.to_owned(), Json::String(p(r)));
    }
    m.insert(
        "identity".to_owned(),
        Json::String(format!(
            "{}/id/{}/{}",
            crate::oauth::login_base(
                state,
                if org.identity.sandbox {
                    crate::tokens::LoginHost::Sandbox
                } else {
                    crate::tokens::LoginHost::Production
                }
            ),
            org.identity.org_id,
            org.identity.integration_user_id
        )),
    );
    Json::Object(m)
}

#[derive(Serialize)]
struct Version {
    label: String,
    url: String,
    version: String,
}

/// Release names of API versions 31.0 ..= 66.0.
fn versions_list() -> Vec<Version> {
    let seasons = ["Spring", "Summer", "Winter"];
    (31u32..=66)
        .map(|v| {
            // v31 = Summer '14; three releases a year; Winter carries next year's number.
            let k = v - 31;
            let season = seasons[((k + 1) % 3) as usize];
            let year = 14 + (k + 1) / 3 + u32::from(season == "Winter");
            // Salesforce really labels v42.0 with a typographic apostrophe.
            let apostrophe = if v == 42 { '\u{2019}' } else { '\'' };
            Version {
                label: format!("{season} {apostrophe}{year:02}"),
                url: format!("/services/data/v{v}.0"),
                version: format!("{v}.0"),
            }
        })
        .collect()
}

/// `GET /services/data`: available versions (no authentication, no usage header,
/// as recorded).
pub async fn versions(State(state): State<SfState>) -> Response {
    {
        let mut org = state.org();
        org.stats.totals.requests += 1;
        *org.stats.by_endpoint.entry("versions".to_owned()).or_default() += 1;
    }
    sf_json(StatusCode::OK, &versions_list())
}

/// Fallback for unknown resources.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    let _ = uri;
    ApiError::not_found().into_response()
}

/// A JSON body the handlers share for "the body is required".
pub fn body_or_error(req: &Req) -> Result<&Json, ApiError> {
    req.body.as_ref().ok_or_else(|| ApiError::json_parser("No content to map due to end-of-input"))
}

/// `{"id": ..., "success": true, "errors": []}` (+ `created` for upserts).
pub fn save_result(id: &str, created: Option<bool>) -> Json {
    match created {
        None => json!({"id": id, "success": true, "errors": []}),
        Some(c) => json!({"id": id, "success": true, "errors": [], "created": c}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_labels_match_the_recording() {
        let v = versions_list();
        assert_eq!(v.first().map(|x| x.label.as_str()), Some("Summer '14"));
        assert_eq!(v.get(1).map(|x| x.label.as_str()), Some("Winter '15"));
        assert_eq!(v.get(2).map(|x| x.label.as_str()), Some("Spring '15"));
        assert_eq!(v.last().map(|x| x.label.as_str()), Some("Spring '26"));
        assert_eq!(v.last().map(|x| x.url.as_str()), Some("/services/data/v66.0"));
        assert!(valid_version("v63.0"));
        assert!(!valid_version("63.0"));
        assert!(!valid_version("vX.0"));
    }

    #[test]
    fn classification() {
        let s = |p: &str| split_path(p);
        assert_eq!(classify(&Method::GET, &s("query")).0, "query");
        assert_eq!(classify(&Method::PATCH, &s("composite/sobjects/A/B")).1, "collections_upsert");
        assert_eq!(classify(&Method::POST, &s("composite")).0, "composite");
        assert_eq!(classify(&Method::GET, &s("sobjects/Account/describe/")).1, "describe");
        assert_eq!(s("sobjects/Contact/Email/a%40b.c"), vec!["sobjects", "Contact", "Email", "a@b.c"]);
    }
}
