//! Composite resources, counted as one API call each:
//! - `POST /composite`: up to 25 subrequests (at most 5 of them sObject Collections or
//!   query requests), executed in order, `@{referenceId.path}` references resolved,
//!   `allOrNone` in one transaction;
//! - `POST /composite/graph`: graphs of subrequests, each graph all-or-none;
//! - `POST /composite/batch`: up to 25 independent subrequests.

use std::collections::{HashMap, HashSet};

use axum::http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::errors::ApiError;
use crate::rest::{Ctx, Req, Resp, body_or_error, classify, dispatch, parse_query, split_path, valid_version};
use crate::state::{Org, SfState};

/// Most subrequests in one composite request.
pub const MAX_SUBREQUESTS: usize = 25;
/// Most sObject Collections / query subrequests in one composite request.
pub const MAX_COLLECTION_OR_QUERY: usize = 5;
/// Most nodes in one composite graph request (all graphs together).
pub const MAX_GRAPH_NODES: usize = 500;

#[derive(Debug, Clone, Serialize)]
pub struct SubResponse {
    pub body: Json,
    #[serde(rename = "httpHeaders")]
    pub http_headers: Map<String, Json>,
    #[serde(rename = "httpStatusCode")]
    pub http_status_code: u16,
    #[serde(rename = "referenceId")]
    pub reference_id: String,
}

#[derive(Debug, Clone)]
struct Sub {
    method: String,
    url: String,
    reference_id: String,
    body: Option<Json>,
}

fn parse_bool(v: Option<&Json>) -> Result<bool, ApiError> {
    match v {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::json_parser(format!(
            "Cannot deserialize instance of boolean from {} value {other}",
            crate::values::json_token(other)
        ))),
    }
}

fn parse_subs(list: &Json) -> Result<Vec<Sub>, ApiError> {
    let Some(list) = list.as_array() else {
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
    Ok(subs)
}

/// Parses a subrequest URL into a request (`None`: not a data API URL).
fn to_req(method: &str, url: &str, body: Option<Json>) -> Option<Req> {
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (url, None),
    };
    let rest = path.strip_prefix("/services/data/")?;
    let mut segs = split_path(rest);
    if segs.is_empty() {
        return None;
    }
    let version = segs.remove(0);
    if !valid_version(&version) {
        return None;
    }
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).ok()?;
    Some(Req { method, version, segs, query: parse_query(query), body })
}

// ------------------------------------------------------------ references

/// Evaluates `ref.path[0].field` against earlier responses.
fn lookup<'a>(results: &'a HashMap<String, Json>, expr: &str) -> Option<&'a Json> {
    let split = expr.find(['.', '[']).unwrap_or(expr.len());
    let (name, mut rest) = expr.split_at(split);
    let mut cur = results.get(name)?;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let (key, tail) = r.split_at(end);
            cur = cur.get(key)?;
            rest = tail;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let n: usize = r[..end].trim().parse().ok()?;
            cur = cur.get(n)?;
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur)
}

fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `@{...}` in `s`; a string that is exactly one reference takes the
/// referenced value (keeping its JSON type).
fn substitute_str(s: &str, results: &HashMap<String, Json>) -> Result<Json, String> {
    if let Some(inner) = s.strip_prefix("@{").and_then(|r| r.strip_suffix('}')) {
        if !inner.contains('}') {
            return lookup(results, inner).cloned().ok_or_else(|| inner.to_owned());
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let expr = &after[..end];
        let v = lookup(results, expr).ok_or_else(|| expr.to_owned())?;
        out.push_str(&json_text(v));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Json::String(out))
}

fn substitute(v: &Json, results: &HashMap<String, Json>) -> Result<Json, String> {
    Ok(match v {
        Json::String(s) if s.contains("@{") => substitute_str(s, results)?,
        Json::Array(a) => Json::Array(a.iter().map(|x| substitute(x, results)).collect::<Result<_, _>>()?),
        Json::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                out.insert(k.clone(), substitute(x, results)?);
            }
            Json::Object(out)
        }
        other => other.clone(),
    })
}

fn bad_reference(expr: &str) -> ApiError {
    let name = expr.split(['.', '[']).next().unwrap_or(expr);
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "PROCESSING_HALTED",
        format!(
            "Invalid reference specified. No value for {expr} found in {name}. Provided referenceId ('{name}') and field name ('{expr}')"
        ),
    )
}

// ------------------------------------------------------------ execution

fn halted(reference_id: &str) -> SubResponse {
    SubResponse {
        body: json!([{
            "errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction failed."
        }]),
        http_headers: Map::new(),
        http_status_code: 400,
        reference_id: reference_id.to_owned(),
    }
}

fn sub_response(resp: Resp, reference_id: &str) -> SubResponse {
    let mut headers = Map::new();
    for (k, v) in resp.headers {
        if k == "location" {
            headers.insert("Location".into(), Json::String(v));
        }
    }
    SubResponse {
        body: resp.body.unwrap_or(Json::Null),
        http_headers: headers,
        http_status_code: resp.status.as_u16(),
        reference_id: reference_id.to_owned(),
    }
}

/// Runs subrequests in order; with `all_or_none` the first failure rolls everything
/// back and every other subrequest answers `PROCESSING_HALTED`.
fn execute(state: &SfState, org: &mut Org, ctx: &Ctx, subs: &[Sub], all_or_none: bool) -> (Vec<SubResponse>, bool) {
    let mut sub_ctx = ctx.clone();
    sub_ctx.nested = true;
    let before = (org.stats.records_written, org.stats.records_failed);
    if all_or_none {
        org.store.begin();
    }
    let mut out: Vec<SubResponse> = Vec::with_capacity(subs.len());
    let mut results: HashMap<String, Json> = HashMap::new();
    let mut failed_at: Option<usize> = None;
    for (i, sub) in subs.iter().enumerate() {
        let resolved = substitute_str(&sub.url, &results).and_then(|u| {
            let body = sub.body.as_ref().map(|b| substitute(b, &results)).transpose()?;
            Ok((json_text(&u), body))
        });
        let resp = match resolved {
            Err(expr) => Resp::error(&bad_reference(&expr)),
            Ok((url, body)) => match to_req(&sub.method, &url, body) {
                None => Resp::error(&ApiError::not_found()),
                Some(req) => {
                    let (_, endpoint, _) = classify(&req.method, &req.segs);
                    *org.stats.composite_subrequests.entry(endpoint.to_owned()).or_default() += 1;
                    dispatch(state, org, &sub_ctx, &req)
                }
            },
        };
        let sr = sub_response(resp, &sub.reference_id);
        let failed = sr.http_status_code >= 400;
        if !failed {
            results.insert(sub.reference_id.clone(), sr.body.clone());
        }
        out.push(sr);
        if failed && all_or_none {
            failed_at = Some(i);
            break;
        }
    }
    if let Some(at) = failed_at {
        org.store.rollback(state.schema());
        org.stats.records_written = before.0;
        org.stats.records_failed = before.1;
        let failed = out.pop();
        let responses = subs
            .iter()
            .enumerate()
            .map(|(i, sub)| match (&failed, i == at) {
                (Some(f), true) => f.clone(),
                _ => halted(&sub.reference_id),
            })
            .collect();
        return (responses, false);
    }
    if all_or_none {
        org.store.commit();
    }
    let ok = out.iter().all(|s| s.http_status_code < 400);
    (out, ok)
}

fn is_collection_or_query(sub: &Sub) -> bool {
    match to_req(&sub.method, &sub.url, None) {
        Some(req) => matches!(classify(&req.method, &req.segs).0, "collections" | "query"),
        None => false,
    }
}

/// `POST /composite`.
pub fn composite(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req) -> Resp {
    let body = match body_or_error(req) {
        Ok(b) => b,
        Err(e) => return Resp::error(&e),
    };
    let Some(map) = body.as_object() else {
        return Resp::error(&ApiError::json_parser(
            "Cannot deserialize instance of CompositeRequest from non-object value",
        ));
    };
    let all_or_none = match parse_bool(map.get("allOrNone")) {
        Ok(b) => b,
        Err(e) => return Resp::error(&e),
    };
    let subs = match map.get("compositeRequest").map(parse_subs) {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Resp::error(&e),
        None => return Resp::error(&ApiError::json_parser("Missing required field: compositeRequest")),
    };
    if subs.len() > MAX_SUBREQUESTS {
        return Resp::error(&ApiError::composite_too_many_subrequests(subs.len()));
    }
    let heavy = subs.iter().filter(|s| is_collection_or_query(s)).count();
    if heavy > MAX_COLLECTION_OR_QUERY {
        return Resp::error(&ApiError::composite_too_many_collections(heavy));
    }
    let (responses, _) = execute(state, org, ctx, &subs, all_or_none);
    Resp::ok(&json!({ "compositeResponse": responses }))
}

/// `POST /composite/graph`.
pub fn graph(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req) -> Resp {
    let body = match body_or_error(req) {
        Ok(b) => b,
        Err(e) => return Resp::error(&e),
    };
    let Some(graphs) = body.get("graphs").and_then(Json::as_array) else {
        return Resp::error(&ApiError::json_parser("Missing required field: graphs"));
    };
    let mut parsed = Vec::with_capacity(graphs.len());
    let mut ids = HashSet::new();
    let mut nodes = 0;
    for g in graphs {
        let Some(id) = g.get("graphId").and_then(Json::as_str).filter(|s| !s.is_empty()) else {
            return Resp::error(&ApiError::json_parser("Missing required field: graphId"));
        };
        if !ids.insert(id.to_owned()) {
            return Resp::error(&ApiError::invalid_input(format!("Duplicate graphId provided in the request: {id}")));
        }
        let subs = match g.get("compositeRequest").map(parse_subs) {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Resp::error(&e),
            None => return Resp::error(&ApiError::json_parser("Missing required field: compositeRequest")),
        };
        nodes += subs.len();
        parsed.push((id.to_owned(), subs));
    }
    if nodes > MAX_GRAPH_NODES {
        return Resp::error(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            format!("Composite graph requests cannot have more than {MAX_GRAPH_NODES} nodes. Number of nodes: {nodes}"),
        ));
    }
    let out: Vec<Json> = parsed
        .into_iter()
        .map(|(id, subs)| {
            let (responses, ok) = execute(state, org, ctx, &subs, true);
            json!({"graphId": id, "graphResponse": {"compositeResponse": responses}, "isSuccessful": ok})
        })
        .collect();
    Resp::ok(&json!({ "graphs": out }))
}

/// `POST /composite/batch`.
pub fn batch(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req) -> Resp {
    let body = match body_or_error(req) {
        Ok(b) => b,
        Err(e) => return Resp::error(&e),
    };
    let Some(list) = body.get("batchRequests").and_then(Json::as_array) else {
        return Resp::error(&ApiError::json_parser("Missing required field: batchRequests"));
    };
    if list.len() > MAX_SUBREQUESTS {
        return Resp::error(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            format!("Batch requests cannot have more than 25 subrequests. Number of subrequests: {}", list.len()),
        ));
    }
    let halt = body.get("haltOnError").and_then(Json::as_bool).unwrap_or(false);
    let mut sub_ctx = ctx.clone();
    sub_ctx.nested = true;
    let mut results = Vec::with_capacity(list.len());
    let mut has_errors = false;
    for item in list {
        if halt && has_errors {
            results.push(json!({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}]}));
            continue;
        }
        let method = item.get("method").and_then(Json::as_str).unwrap_or("GET");
        let url = item.get("url").and_then(Json::as_str).unwrap_or("");
        let full = if url.starts_with("/services/data/") {
            url.to_owned()
        } else {
            format!("/services/data/{}", url.trim_start_matches('/'))
        };
        let resp = match to_req(method, &full, item.get("richInput").cloned()) {
            None => Resp::error(&ApiError::not_found()),
            Some(r) => dispatch(state, org, &sub_ctx, &r),
        };
        if resp.status.as_u16() >= 400 {
            has_errors = true;
        }
        results.push(json!({"statusCode": resp.status.as_u16(), "result": resp.body.unwrap_or(Json::Null)}));
    }
    Resp::ok(&json!({"hasErrors": has_errors, "results": results}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let mut r = HashMap::new();
        r.insert("acc".to_owned(), json!({"id": "001X", "records": [{"Id": "003Y"}]}));
        r.insert("col".to_owned(), json!([{"id": "a0A1"}]));
        assert_eq!(substitute_str("@{acc.id}", &r), Ok(json!("001X")));
        assert_eq!(substitute_str("/x/@{acc.records[0].Id}/y", &r), Ok(json!("/x/003Y/y")));
        assert_eq!(substitute_str("@{col[0].id}", &r), Ok(json!("a0A1")));
        assert_eq!(substitute_str("@{nope.id}", &r), Err("nope.id".to_owned()));
    }
}
