//! The unified HRIS API under `/api/hris/v1` (API key + account token, cursor
//! paging).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::state::HrisState;
use crate::store::{Cursor, ListKind, PageKeys, parse_rfc3339};

/// Largest page.
pub const MAX_PAGE_SIZE: usize = 100;
/// Default page.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// A JSON error `{"error": {"code", "message", "parameter"?}}`.
pub fn error(status: StatusCode, code: &str, message: &str, parameter: Option<&str>) -> Response {
    let mut e = json!({ "code": code, "message": message });
    if let (Some(p), Some(obj)) = (parameter, e.as_object_mut()) {
        obj.insert("parameter".to_owned(), json!(p));
    }
    (status, Json(json!({ "error": e }))).into_response()
}

fn bad_param(state: &HrisState, parameter: &str, message: &str) -> Response {
    state.stats().bad_requests += 1;
    error(StatusCode::BAD_REQUEST, "invalid_parameter", message, Some(parameter))
}

fn header_is(headers: &HeaderMap, name: &str, expected: &str) -> Option<bool> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim() == expected)
}

/// An injected fault first, then `Authorization: Bearer <api key>` and
/// `X-Account-Token: <token>`.
pub fn admit(state: &HrisState, headers: &HeaderMap) -> Result<(), Response> {
    if let Some(status) = state.take_fault() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = error(status, "injected_fault", &format!("injected fault: {}", status.as_u16()), None);
        if status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return Err(r);
    }
    let key_ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer") && key.trim() == state.config().api_key);
    let token = header_is(headers, "x-account-token", &state.config().account_token);
    let message = match (key_ok, token) {
        (true, Some(true)) => return Ok(()),
        (false, _) => "missing or invalid API key: send Authorization: Bearer <key>",
        (true, None) => "missing account token: send X-Account-Token: <token>",
        (true, Some(false)) => "invalid account token",
    };
    state.stats().unauthorized += 1;
    Err(error(StatusCode::UNAUTHORIZED, "unauthorized", message, None))
}

fn page_size(state: &HrisState, q: &HashMap<String, String>) -> Result<usize, Response> {
    match q.get("page_size") {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(bad_param(state, "page_size", "page_size must be an integer between 1 and 100")),
        },
    }
}

fn cursor(state: &HrisState, q: &HashMap<String, String>, list: ListKind) -> Result<Option<Cursor>, Response> {
    match q.get("cursor").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => match Cursor::decode(s) {
            Some(c) if c.list == list => Ok(Some(c)),
            _ => Err(bad_param(state, "cursor", "cursor is not a cursor this list returned")),
        },
    }
}

/// A list answer.
#[derive(Serialize)]
struct Page<T: Serialize> {
    next: Option<String>,
    previous: Option<String>,
    results: Vec<T>,
}

fn render<T: Serialize>(results: Vec<T>, keys: &PageKeys) -> Response {
    let page = Page {
        next: keys.next.as_ref().map(Cursor::encode),
        previous: keys.previous.as_ref().map(Cursor::encode),
        results,
    };
    match serde_json::to_vec(&page) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", &e.to_string(), None),
    }
}

/// `GET /api/hris/v1/employees?modified_after=&cursor=&page_size=`: a page
/// in `(modified_at, id)` order. `modified_after` (exclusive) filters the
/// first page; a cursor carries it on (given beside a cursor, it must be the
/// cursor's).
pub async fn employees(
    State(state): State<HrisState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    state.count("GET /api/hris/v1/employees");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let modified_after = match q.get("modified_after").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match parse_rfc3339(s) {
            Some(t) => Some(t),
            None => {
                return bad_param(
                    &state,
                    "modified_after",
                    "modified_after must be an RFC 3339 timestamp, e.g. 2026-05-12T10:00:00.000Z",
                );
            }
        },
    };
    let size = match page_size(&state, &q) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let cursor = match cursor(&state, &q, ListKind::Employees) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let (Some(c), Some(m)) = (&cursor, modified_after)
        && c.modified_after != Some(m)
    {
        return bad_param(&state, "modified_after", "modified_after differs from the one the cursor was made with");
    }
    let store = state.store();
    let (items, keys) = store.employees_page(modified_after, cursor.as_ref(), size);
    let served = items.len() as u64;
    let response = render(items, &keys);
    drop(store);
    state.stats().employees_served += served;
    response
}

/// `GET /api/hris/v1/employees/{id}`.
pub async fn employee(State(state): State<HrisState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    state.count("GET /api/hris/v1/employees/{id}");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    match state.store().employee(&id) {
        Some(e) => Json(e).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such employee", None),
    }
}

/// `GET /api/hris/v1/groups?cursor=&page_size=`: a page in id order.
pub async fn groups(
    State(state): State<HrisState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    state.count("GET /api/hris/v1/groups");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    let size = match page_size(&state, &q) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let cursor = match cursor(&state, &q, ListKind::Groups) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let store = state.store();
    let (items, keys) = store.groups_page(cursor.as_ref(), size);
    render(items, &keys)
}

/// Fallback under `/api`.
pub async fn not_found(State(state): State<HrisState>, headers: HeaderMap) -> Response {
    state.count("other");
    if let Err(r) = admit(&state, &headers) {
        return r;
    }
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint", None)
}
