//! `GET /services/data/vXX.X/query?q=`, `queryAll`, and `query/{locator}` paging.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::errors::{ApiError, sf_json};
use crate::ids;
use crate::rest::{enter, valid_version};
use crate::soql::{self, OrderedObject};
use crate::state::{Cursor, Org, SfState};

/// A page of query results.
#[derive(Debug, Serialize)]
pub struct QueryResult {
    #[serde(rename = "totalSize")]
    pub total_size: usize,
    pub done: bool,
    #[serde(rename = "nextRecordsUrl", skip_serializing_if = "Option::is_none")]
    pub next_records_url: Option<String>,
    pub records: Vec<OrderedObject>,
}

/// Page size requested with `Sforce-Query-Options: batchSize=N` (200..=2000).
pub fn batch_size(headers: &HeaderMap) -> Option<usize> {
    let v = headers.get("sforce-query-options")?.to_str().ok()?;
    v.split(',').find_map(|part| {
        let (k, n) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("batchSize") {
            n.trim().parse::<usize>().ok().map(|n| n.clamp(200, 2000))
        } else {
            None
        }
    })
}

fn page(state: &SfState, org: &Org, cursor: &Cursor, offset: usize, version: &str) -> QueryResult {
    let end = offset.saturating_add(cursor.page_size).min(cursor.rows.len());
    let records = cursor
        .rows
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(|idx| soql::render_row(state.schema(), &org.store, &cursor.query, *idx, version))
        .collect();
    let done = end >= cursor.rows.len();
    QueryResult {
        total_size: cursor.rows.len(),
        done,
        next_records_url: (!done).then(|| format!("/services/data/{version}/query/{}-{end}", cursor.locator)),
        records,
    }
}

/// Runs `q` against the (locked) org and returns its first page.
pub fn run_query(
    state: &SfState,
    org: &mut Org,
    q: &str,
    version: &str,
    page_size: Option<usize>,
) -> Result<QueryResult, ApiError> {
    let parsed = soql::parse(state.schema(), q)?;
    let rows = soql::execute(&org.store, &parsed);
    if parsed.columns.is_none() {
        return Ok(QueryResult { total_size: rows.len(), done: true, next_records_url: None, records: Vec::new() });
    }
    org.cursor_counter += 1;
    let locator = ids::mint("01g", org.cursor_counter);
    let cursor = Cursor {
        locator,
        query: Arc::new(parsed),
        rows: Arc::new(rows),
        page_size: page_size.unwrap_or(org.query_page_size).max(1),
    };
    let result = page(state, org, &cursor, 0, version);
    if !result.done {
        org.cursors.push_back(cursor);
        while org.cursors.len() > state.config().max_query_cursors.max(1) {
            org.cursors.pop_front();
        }
    }
    Ok(result)
}

/// Serves `query/{locator}` (`<locator>-<offset>`).
pub fn query_more(state: &SfState, org: &mut Org, locator: &str, version: &str) -> Result<QueryResult, ApiError> {
    let (id, offset) = locator.rsplit_once('-').ok_or_else(ApiError::invalid_query_locator)?;
    let offset: usize = offset.parse().map_err(|_| ApiError::invalid_query_locator())?;
    let cursor = org.cursors.iter().find(|c| c.locator == id).cloned().ok_or_else(ApiError::invalid_query_locator)?;
    if offset > cursor.rows.len() {
        return Err(ApiError::invalid_query_locator());
    }
    Ok(page(state, org, &cursor, offset, version))
}

fn respond(result: Result<QueryResult, ApiError>) -> Response {
    match result {
        Ok(r) => sf_json(StatusCode::OK, &r),
        Err(e) => e.into_response(),
    }
}

fn missing_q() -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", "A query string has to be specified")
}

async fn query_common(
    state: SfState,
    version: String,
    params: HashMap<String, String>,
    headers: HeaderMap,
    kind: &str,
) -> Response {
    if !valid_version(&version) {
        return ApiError::not_found().into_response();
    }
    let call = match enter(&state, &headers, kind) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let result = match params.get("q").filter(|q| !q.trim().is_empty()) {
        None => Err(missing_q()),
        Some(q) => {
            let mut org = state.org();
            run_query(&state, &mut org, q, &version, batch_size(&headers))
        }
    };
    call.finish(respond(result))
}

/// `GET /services/data/{version}/query?q=...`.
pub async fn query_handler(
    State(state): State<SfState>,
    Path(version): Path<String>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    query_common(state, version, params, headers, "query").await
}

/// `GET /services/data/{version}/queryAll?q=...` (no deleted records exist yet, so
/// this answers like `query`).
pub async fn query_all_handler(
    State(state): State<SfState>,
    Path(version): Path<String>,
    QueryParams(params): QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    query_common(state, version, params, headers, "query_all").await
}

/// `GET /services/data/{version}/query/{locator}`.
pub async fn query_more_handler(
    State(state): State<SfState>,
    Path((version, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !valid_version(&version) {
        return ApiError::not_found().into_response();
    }
    let call = match enter(&state, &headers, "query_more") {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let result = {
        let mut org = state.org();
        query_more(&state, &mut org, &locator, &version)
    };
    call.finish(respond(result))
}
