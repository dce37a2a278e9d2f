//! The REST API under `/services/data`: authentication, API usage accounting,
//! injected faults, and the resources (versions, sObject Collections upsert,
//! Composite, query).

pub mod collections;
pub mod composite;
pub mod query;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::errors::{ApiError, sf_json};
use crate::state::{FaultKind, Org, SfState};

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
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth")).then(|| token.trim())
}

/// Admits an API request: checks the session, applies injected faults, enforces
/// the daily limit, and counts the call under `kind`.
pub fn enter(state: &SfState, headers: &HeaderMap, kind: &str) -> Result<ApiCall, Response> {
    let mut org = state.org();
    let token_ok = bearer(headers).is_some_and(|t| org.tokens.access_valid(t));
    if !token_ok {
        return Err(ApiError::invalid_session().into_response());
    }
    let limit = org.daily_api_limit;
    let used = org.api_used_today();
    match org.faults.front().copied() {
        Some(FaultKind::InvalidSession) => {
            org.faults.pop_front();
            org.stats.faults_injected += 1;
            return Err(ApiError::invalid_session().into_response());
        }
        Some(FaultKind::RequestLimitExceeded) => {
            org.faults.pop_front();
            org.stats.faults_injected += 1;
            let call = ApiCall { used, limit };
            return Err(call.finish(ApiError::request_limit_exceeded().into_response()));
        }
        _ => {}
    }
    if used >= limit {
        let call = ApiCall { used, limit };
        return Err(call.finish(ApiError::request_limit_exceeded().into_response()));
    }
    org.api_used = used + 1;
    org.stats.api_calls += 1;
    org.count_kind(kind);
    let call = ApiCall { used: used + 1, limit };
    match org.faults.front().copied() {
        Some(FaultKind::ServerError) => {
            org.faults.pop_front();
            org.stats.faults_injected += 1;
            org.error_counter += 1;
            let id = 1_234_567_890u64.wrapping_mul(org.error_counter);
            Err(call.finish(ApiError::unknown_exception(id).into_response()))
        }
        Some(FaultKind::ServerUnavailable) => {
            org.faults.pop_front();
            org.stats.faults_injected += 1;
            Err(call.finish(ApiError::server_unavailable().into_response()))
        }
        _ => Ok(call),
    }
}

/// Consumes a pending `UNABLE_TO_LOCK_ROW` fault for a write request.
pub fn take_lock_fault(org: &mut Org) -> bool {
    if org.faults.front() == Some(&FaultKind::UnableToLockRow) {
        org.faults.pop_front();
        org.stats.faults_injected += 1;
        true
    } else {
        false
    }
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
    state.org().count_kind("versions");
    sf_json(StatusCode::OK, &versions_list())
}

/// Fallback for unknown resources.
pub async fn not_found(state: State<SfState>, headers: HeaderMap, uri: Uri) -> Response {
    if uri.path().starts_with("/services/data/") {
        // Salesforce authenticates before resolving the resource.
        return match enter(&state, &headers, "not_found") {
            Ok(call) => call.finish(ApiError::not_found().into_response()),
            Err(resp) => resp,
        };
    }
    ApiError::not_found().into_response()
}

/// 405 for a known resource used with the wrong method.
pub fn method_not_allowed(method: &Method, allowed: &str) -> Response {
    ApiError::method_not_allowed(method.as_str(), allowed).into_response()
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
}
