//! `POST /services/data/vXX.X/composite`: up to 25 subrequests (at most 5 of them
//! sObject Collections or query requests) executed in order in one transaction;
//! counted as one API call.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::errors::{ApiError, sf_json};
use crate::rest::collections::{parse_body, upsert};
use crate::rest::query::{query_more, run_query};
use crate::rest::{enter, take_lock_fault, valid_version};
use crate::state::{Org, SfState};

/// Most subrequests in one composite request.
pub const MAX_SUBREQUESTS: usize = 25;
/// Most sObject Collections / query subrequests in one composite request.
pub const MAX_COLLECTION_OR_QUERY: usize = 5;

#[derive(Debug, Serialize)]
pub struct SubResponse {
    pub body: Json,
    #[serde(rename = "httpHeaders")]
    pub http_headers: Map<String, Json>,
    #[serde(rename = "httpStatusCode")]
    pub http_status_code: u16,
    #[serde(rename = "referenceId")]
    pub reference_id: String,
}

#[derive(Debug, Serialize)]
struct CompositeResponse {
    #[serde(rename = "compositeResponse")]
    composite_response: Vec<SubResponse>,
}

struct Sub {
    method: String,
    url: String,
    reference_id: String,
    body: Option<Json>,
}

/// What a subrequest addresses.
enum Target {
    Upsert { sobject: String, field: String },
    Query { version: String, q: Option<String>, all: bool },
    QueryMore { version: String, locator: String },
    Unsupported,
}

impl Target {
    fn is_collection_or_query(&self) -> bool {
        !matches!(self, Target::Unsupported)
    }
}

fn classify(sub: &Sub) -> Target {
    let Ok(url) = url::Url::parse("http://composite.invalid").and_then(|b| b.join(&sub.url)) else {
        return Target::Unsupported;
    };
    let segments: Vec<String> = url.path_segments().map(|s| s.map(percent_decode).collect()).unwrap_or_default();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = sub.method.to_ascii_uppercase();
    match (method.as_str(), segs.as_slice()) {
        ("PATCH", ["services", "data", v, "composite", "sobjects", obj, field]) if valid_version(v) => {
            Target::Upsert { sobject: (*obj).to_owned(), field: (*field).to_owned() }
        }
        ("GET", ["services", "data", v, kind]) if valid_version(v) && (*kind == "query" || *kind == "queryAll") => {
            let q = url.query_pairs().find(|(k, _)| k == "q").map(|(_, v)| v.into_owned());
            Target::Query { version: (*v).to_owned(), q, all: *kind == "queryAll" }
        }
        ("GET", ["services", "data", v, "query", locator]) if valid_version(v) => {
            Target::QueryMore { version: (*v).to_owned(), locator: (*locator).to_owned() }
        }
        _ => Target::Unsupported,
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

fn parse_subrequests(body: &Json) -> Result<(bool, Vec<Sub>), ApiError> {
    let Some(map) = body.as_object() else {
        return Err(ApiError::json_parser("Cannot deserialize instance of CompositeRequest from non-object value"));
    };
    let all_or_none = match map.get("allOrNone") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::json_parser(format!(
                "Cannot deserialize instance of boolean from {} value {other}",
                crate::values::json_token(other)
            )));
        }
    };
    let Some(Json::Array(list)) = map.get("compositeRequest") else {
        return Err(ApiError::json_parser("Missing required field: compositeRequest"));
    };
    let mut subs = Vec::with_capacity(list.len());
    let mut refs = HashSet::new();
    for item in list {
        let Some(m) = item.as_object() else {
            return Err(ApiError::json_parser(
                "Cannot deserialize instance of CompositeSubrequest from non-object value",
            ));
        };
        let field = |name: &str| -> Result<String, ApiError> {
            m.get(name)
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| ApiError::json_parser(format!("Missing required field: {name}")))
        };
        let sub = Sub {
            method: field("method")?,
            url: field("url")?,
            reference_id: field("referenceId")?,
            body: m.get("body").cloned(),
        };
        if !sub.reference_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ApiError::invalid_input(format!(
                "Invalid reference id: {}. Reference IDs can only contain alphanumeric characters and underscores.",
                sub.reference_id
            )));
        }
        if !refs.insert(sub.reference_id.clone()) {
            return Err(ApiError::invalid_input(format!(
                "Duplicate ReferenceId provided in the request: {}",
                sub.reference_id
            )));
        }
        subs.push(sub);
    }
    Ok((all_or_none, subs))
}

fn halted(reference_id: &str) -> SubResponse {
    SubResponse {
        body: serde_json::json!([{
            "errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction failed."
        }]),
        http_headers: Map::new(),
        http_status_code: 400,
        reference_id: reference_id.to_owned(),
    }
}

fn error_sub(e: &ApiError, reference_id: &str) -> SubResponse {
    SubResponse {
        body: e.body(),
        http_headers: Map::new(),
        http_status_code: e.status.as_u16(),
        reference_id: reference_id.to_owned(),
    }
}

fn ok_sub<T: Serialize>(body: &T, reference_id: &str) -> SubResponse {
    SubResponse {
        body: serde_json::to_value(body).unwrap_or(Json::Null),
        http_headers: Map::new(),
        http_status_code: 200,
        reference_id: reference_id.to_owned(),
    }
}

fn execute(state: &SfState, org: &mut Org, all_or_none: bool, subs: &[Sub]) -> Vec<SubResponse> {
    let targets: Vec<Target> = subs.iter().map(classify).collect();
    let writes = targets.iter().any(|t| matches!(t, Target::Upsert { .. }));
    let lock = writes && take_lock_fault(org);
    if all_or_none {
        org.store.begin();
    }
    let mut out: Vec<SubResponse> = Vec::with_capacity(subs.len());
    let mut pending_counts: Vec<(usize, usize)> = Vec::new();
    let mut failed = false;
    for (sub, target) in subs.iter().zip(&targets) {
        let kind = match target {
            Target::Upsert { .. } => "collections_upsert",
            Target::Query { all: false, .. } => "query",
            Target::Query { all: true, .. } => "query_all",
            Target::QueryMore { .. } => "query_more",
            Target::Unsupported => "unsupported",
        };
        *org.stats.composite_subrequests.entry(kind.to_owned()).or_default() += 1;
        let resp = match target {
            Target::Upsert { sobject, field } => {
                let body = sub.body.clone().unwrap_or(Json::Null);
                match upsert(state, org, sobject, field, &body, lock) {
                    Ok(results) => {
                        let ok = results.iter().filter(|r| r.success).count();
                        pending_counts.push((ok, results.len() - ok));
                        ok_sub(&results, &sub.reference_id)
                    }
                    Err(e) => error_sub(&e, &sub.reference_id),
                }
            }
            Target::Query { version, q, .. } => match q.as_deref().filter(|q| !q.trim().is_empty()) {
                None => error_sub(
                    &ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", "A query string has to be specified"),
                    &sub.reference_id,
                ),
                Some(q) => match run_query(state, org, q, version, None) {
                    Ok(r) => ok_sub(&r, &sub.reference_id),
                    Err(e) => error_sub(&e, &sub.reference_id),
                },
            },
            Target::QueryMore { version, locator } => match query_more(state, org, locator, version) {
                Ok(r) => ok_sub(&r, &sub.reference_id),
                Err(e) => error_sub(&e, &sub.reference_id),
            },
            Target::Unsupported => error_sub(&ApiError::not_found(), &sub.reference_id),
        };
        let is_error = resp.http_status_code >= 400;
        out.push(resp);
        if is_error && all_or_none {
            failed = true;
            break;
        }
    }
    if all_or_none && failed {
        org.store.rollback(state.schema());
        let mut failed_resp = out.pop();
        let failed_at = out.len();
        return subs
            .iter()
            .enumerate()
            .map(|(i, sub)| match failed_resp.take() {
                Some(r) if i == failed_at => r,
                other => {
                    failed_resp = other;
                    halted(&sub.reference_id)
                }
            })
            .collect();
    }
    if all_or_none {
        org.store.commit();
    }
    for (ok, bad) in pending_counts {
        org.stats.records_written += ok as u64;
        org.stats.records_failed += bad as u64;
    }
    out
}

/// `POST /services/data/{version}/composite`.
pub async fn composite_handler(
    State(state): State<SfState>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return ApiError::not_found().into_response();
    }
    let call = match enter(&state, &headers, "composite") {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let parsed = parse_body(&body).and_then(|json| parse_subrequests(&json));
    let resp = match parsed {
        Err(e) => e.into_response(),
        Ok((all_or_none, subs)) => {
            if subs.len() > MAX_SUBREQUESTS {
                ApiError::composite_too_many_subrequests(subs.len()).into_response()
            } else {
                let heavy = subs.iter().filter(|s| classify(s).is_collection_or_query()).count();
                if heavy > MAX_COLLECTION_OR_QUERY {
                    ApiError::composite_too_many_collections(heavy).into_response()
                } else {
                    let mut org = state.org();
                    let results = execute(&state, &mut org, all_or_none, &subs);
                    sf_json(StatusCode::OK, &CompositeResponse { composite_response: results })
                }
            }
        }
    };
    call.finish(resp)
}
