//! The canonical LMS REST API under `/api/v1` (API-key auth, cursor paging).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::data::{Dataset, parse_rfc3339};
use crate::state::LmsState;

/// Largest page.
pub const MAX_LIMIT: usize = 1000;
/// Default page.
pub const DEFAULT_LIMIT: usize = 100;

/// A JSON error `{"error": {"code", "message", "parameter"?}}`.
pub fn error(status: StatusCode, code: &str, message: &str, parameter: Option<&str>) -> Response {
    let mut e = json!({ "code": code, "message": message });
    if let (Some(p), Some(obj)) = (parameter, e.as_object_mut()) {
        obj.insert("parameter".to_owned(), json!(p));
    }
    (status, Json(json!({ "error": e }))).into_response()
}

pub(crate) fn bad_param(parameter: &str, message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_parameter", message, Some(parameter))
}

/// Checks `Authorization: Bearer <api key>`.
pub fn authorize(state: &LmsState, headers: &HeaderMap) -> Result<(), Response> {
    let ok = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer") && key.trim() == state.config().api_key);
    if ok {
        Ok(())
    } else {
        state.stats().unauthorized += 1;
        Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid API key: send Authorization: Bearer <key>",
            None,
        ))
    }
}

/// [`authorize`], then one request off the rate limit: 429 with
/// `Retry-After` (whole seconds, at least 1) when it is used up.
pub fn admit(state: &LmsState, headers: &HeaderMap) -> Result<(), Response> {
    authorize(state, headers)?;
    state.take_request().map_err(|wait| {
        state.stats().rate_limited += 1;
        let secs = wait.as_millis().div_ceil(1000).max(1);
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &format!("rate limit exceeded: retry after {secs} s"),
            None,
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        r
    })
}

/// Keyset position: (updated_at ms, index) of the last item returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub updated_at: i64,
    pub index: u32,
}

/// Opaque cursor: hex of `v1:<updated_at>:<index>`.
pub fn encode_cursor(p: Position) -> String {
    hex::encode(format!("v1:{}:{}", p.updated_at, p.index))
}

pub fn decode_cursor(s: &str) -> Option<Position> {
    let raw = String::from_utf8(hex::decode(s).ok()?).ok()?;
    let mut parts = raw.split(':');
    if parts.next()? != "v1" {
        return None;
    }
    let updated_at = parts.next()?.parse().ok()?;
    let index = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(Position { updated_at, index })
}

/// Validated list parameters.
#[derive(Debug, Clone, Copy)]
pub struct ListParams {
    pub updated_since: Option<i64>,
    pub after: Option<Position>,
    pub limit: usize,
}

/// The optional timestamp parameter `name` (ms since the epoch); 400 naming
/// it when it is not RFC 3339.
pub fn timestamp_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Response> {
    match q.get(name).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => parse_rfc3339(s).map(Some).ok_or_else(|| {
            bad_param(name, &format!("{name} must be an RFC 3339 timestamp, e.g. 2026-05-12T10:00:00.000Z"))
        }),
    }
}

pub fn list_params(q: &HashMap<String, String>) -> Result<ListParams, Response> {
    let updated_since = timestamp_param(q, "updated_since")?;
    let after = match q.get("cursor").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            Some(decode_cursor(s).ok_or_else(|| bad_param("cursor", "cursor is not a cursor this API returned"))?)
        }
    };
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad_param("limit", "limit must be an integer between 1 and 1000"));
            }
        },
    };
    Ok(ListParams { updated_since, after, limit })
}

/// A list answer: `{"data": [...], "next_cursor": "..." | null}`.
#[derive(Serialize)]
pub struct Page<T: Serialize> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Pages through entities without timestamps (ordered by id).
fn page_by_id<T: Serialize>(len: usize, render: impl Fn(u32) -> Option<T>, p: ListParams) -> Response {
    let n = u32::try_from(len).unwrap_or(u32::MAX);
    let start = p.after.map_or(0, |a| a.index.saturating_add(1)).min(n);
    let end = u32::try_from(p.limit).map_or(n, |l| start.saturating_add(l)).min(n);
    let data: Vec<T> = (start..end).filter_map(&render).collect();
    let next_cursor = (end < n && end > start).then(|| encode_cursor(Position { updated_at: 0, index: end - 1 }));
    Json(Page { data, next_cursor }).into_response()
}

fn guard(
    state: &LmsState,
    endpoint: &str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<(ListParams, std::sync::Arc<Dataset>), Response> {
    state.count(endpoint);
    admit(state, headers)?;
    let p = list_params(q)?;
    Ok((p, state.data()))
}

/// Most ids `GET /api/v1/learners?ids=` takes.
pub const MAX_IDS: usize = 100;

/// `GET /api/v1/learners`: a page in `(updated_at, id)` order, or with
/// `ids=a,b,c` (at most [`MAX_IDS`]) those learners in that order, unknown
/// ids absent, in the same `{"data", "next_cursor": null}` shape.
pub async fn learners(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (p, data) = match guard(&state, "GET /api/v1/learners", &headers, &q) {
        Err(r) => return r,
        Ok(ok) => ok,
    };
    if let Some(ids) = q.get("ids") {
        return learners_by_ids(&data, ids, &q);
    }
    let (items, next) = data.learners_page(p.updated_since, p.after.map(|a| (a.updated_at, a.index)), p.limit);
    let next_cursor = next.map(|(updated_at, index)| encode_cursor(Position { updated_at, index }));
    Json(Page { data: items, next_cursor }).into_response()
}

fn learners_by_ids(data: &Dataset, ids: &str, q: &HashMap<String, String>) -> Response {
    for other in ["cursor", "updated_since", "limit"] {
        if q.contains_key(other) {
            return bad_param(other, &format!("{other} cannot be combined with ids"));
        }
    }
    let ids: Vec<&str> = ids.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if ids.is_empty() {
        return bad_param("ids", "ids must list at least one learner id, comma-separated");
    }
    if ids.len() > MAX_IDS {
        return bad_param("ids", &format!("ids takes at most {MAX_IDS} learner ids, got {}", ids.len()));
    }
    let mut seen = std::collections::HashSet::new();
    let indexes: Vec<u32> = ids.iter().filter_map(|id| data.learner_index(id)).filter(|i| seen.insert(*i)).collect();
    Json(Page { data: data.learners_by_index(&indexes), next_cursor: None }).into_response()
}

/// `GET /api/v1/enrollments`: a page in `(updated_at, id)` order of those
/// with `updated_since <= updated_at < updated_until` (each bound optional).
pub async fn enrollments(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (p, data) = match guard(&state, "GET /api/v1/enrollments", &headers, &q) {
        Err(r) => return r,
        Ok(ok) => ok,
    };
    let until = match timestamp_param(&q, "updated_until") {
        Err(r) => return r,
        Ok(u) => u,
    };
    // Current versions: enrollments moved on (crate::enrollments) sit at the end.
    let (items, next) =
        data.enrollments_page(p.updated_since, until, p.after.map(|a| (a.updated_at, a.index)), p.limit);
    let next_cursor = next.map(|(updated_at, index)| encode_cursor(Position { updated_at, index }));
    Json(Page { data: items, next_cursor }).into_response()
}

/// Departments have no timestamps: `updated_since` is validated and ignored.
pub async fn departments(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match guard(&state, "GET /api/v1/departments", &headers, &q) {
        Err(r) => r,
        Ok((p, data)) => page_by_id(data.departments.len(), |i| data.department(i), p),
    }
}

/// Courses have no timestamps: `updated_since` is validated and ignored.
pub async fn courses(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match guard(&state, "GET /api/v1/courses", &headers, &q) {
        Err(r) => r,
        Ok((p, data)) => page_by_id(data.courses.len(), |i| data.course(i), p),
    }
}

/// `GET /api/v1/enrollments/count?updated_since=&updated_until=`: enrollments with
/// `updated_since <= updated_at < updated_until`.
pub async fn enrollments_count(
    State(state): State<LmsState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    state.count("GET /api/v1/enrollments/count");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let mut bounds = [None, None];
    for (slot, name) in bounds.iter_mut().zip(["updated_since", "updated_until"]) {
        match timestamp_param(&q, name) {
            Ok(t) => *slot = t,
            Err(r) => return r,
        }
    }
    let count = state.data().enrollments_count(bounds[0], bounds[1]);
    Json(json!({ "count": count })).into_response()
}

/// Fallback under `/api`.
pub async fn not_found(State(state): State<LmsState>, headers: HeaderMap) -> Response {
    state.count("other");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let p = Position { updated_at: 1_767_225_600_000, index: 42 };
        assert_eq!(decode_cursor(&encode_cursor(p)), Some(p));
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor(&hex::encode("v2:1:2")), None);
    }
}
