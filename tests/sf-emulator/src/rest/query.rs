//! `GET /services/data/vXX.X/query?q=`, `queryAll` (deleted records too, with
//! `IsDeleted`), and `query/{locator}-{offset}` paging through `nextRecordsUrl`.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::errors::ApiError;
use crate::ids;
use crate::rest::{Ctx, Req, Resp};
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
    let resource = if cursor.all { "queryAll" } else { "query" };
    QueryResult {
        total_size: cursor.rows.len(),
        done,
        next_records_url: (!done).then(|| format!("/services/data/{version}/{resource}/{}-{end}", cursor.locator)),
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
    all: bool,
) -> Result<QueryResult, ApiError> {
    let parsed = soql::parse(state.schema(), q)?;
    let rows = soql::execute(state.schema(), &org.store, &parsed, all);
    if parsed.columns.is_none() {
        return Ok(QueryResult { total_size: rows.len(), done: true, next_records_url: None, records: Vec::new() });
    }
    org.cursor_counter += 1;
    let locator = ids::mint("0r8", org.cursor_counter);
    let cursor = Cursor {
        locator,
        query: Arc::new(parsed),
        rows: Arc::new(rows),
        page_size: page_size.unwrap_or(org.query_page_size).max(1),
        all,
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

fn respond(result: Result<QueryResult, ApiError>) -> Resp {
    match result {
        Ok(r) => Resp::ok(&r),
        Err(e) => Resp::error(&e),
    }
}

/// `GET query?q=` / `queryAll?q=` (with `columns=true`: the query's column
/// metadata instead of its rows, as the Developer Console and the `sf` CLI
/// ask for it).
pub fn run(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req, all: bool) -> Resp {
    match req.param("q").filter(|q| !q.trim().is_empty()) {
        None => Resp::error(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        )),
        Some(q) if req.param("columns") == Some("true") => match columns(state, q) {
            Ok(v) => Resp::ok(&v),
            Err(e) => Resp::error(&e),
        },
        Some(q) => respond(run_query(state, org, q, &req.version, ctx.batch_size, all)),
    }
}

/// Apex type of a field, from its describe `soapType`.
fn apex_type(describe: &serde_json::Value) -> &'static str {
    match describe.get("soapType").and_then(|v| v.as_str()).unwrap_or("") {
        "tns:ID" => "Id",
        "xsd:boolean" => "Boolean",
        "xsd:double" => "Double",
        "xsd:int" => "Integer",
        "xsd:long" => "Long",
        "xsd:date" => "Date",
        "xsd:dateTime" => "Datetime",
        "xsd:time" => "Time",
        "xsd:base64Binary" => "Blob",
        _ => "String",
    }
}

fn column(o: &crate::schema::ObjectDef, f: &crate::schema::FieldDef, display: String) -> serde_json::Value {
    let d = crate::rest::describe::field(o, f);
    let apex = apex_type(&d);
    let flag = |k: &str| d.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    serde_json::json!({
        "aggregate": false,
        "apexType": apex,
        "booleanType": apex == "Boolean",
        "columnName": f.name,
        "custom": f.custom,
        "displayName": display,
        "foreignKeyName": null,
        "insertable": flag("createable"),
        "joinColumns": [],
        "numberType": matches!(apex, "Double" | "Integer" | "Long"),
        "textType": apex == "String",
        "updatable": flag("updateable"),
    })
}

/// `query?q=…&columns=true`: `{columnMetadata, entityName, groupBy, idSelected, keyPrefix}`.
pub fn columns(state: &SfState, q: &str) -> Result<serde_json::Value, ApiError> {
    use crate::soql::Path;
    let schema = state.schema();
    let parsed = soql::parse(schema, q)?;
    let object = &schema.objects[parsed.object];
    let mut out: Vec<serde_json::Value> = Vec::new();
    let mut id_selected = false;
    match &parsed.columns {
        None => out.push(serde_json::json!({
            "aggregate": true, "apexType": "Integer", "booleanType": false, "columnName": "expr0", "custom": false,
            "displayName": "COUNT()", "foreignKeyName": null, "insertable": false, "joinColumns": [],
            "numberType": true, "textType": false, "updatable": false,
        })),
        Some(paths) => {
            for p in paths {
                match p {
                    Path::Direct(i) => {
                        let f = &object.fields[*i];
                        id_selected |= f.name == "Id";
                        out.push(column(object, f, f.name.clone()));
                    }
                    Path::Parent { ref_field, parent, field } => {
                        let rf = &object.fields[*ref_field];
                        let rel = match &rf.ty {
                            crate::schema::FieldType::Reference { relationship, .. } => relationship.clone(),
                            _ => rf.name.clone(),
                        };
                        let po = &schema.objects[*parent];
                        let pf = &po.fields[*field];
                        let join = column(po, pf, format!("{rel}.{}", pf.name));
                        // Several fields of one parent share one column.
                        if let Some(existing) =
                            out.iter_mut().find(|c| c["columnName"] == rel.as_str() && c["joinColumns"].is_array())
                            && let Some(list) = existing["joinColumns"].as_array_mut()
                        {
                            list.push(join);
                            continue;
                        }
                        out.push(serde_json::json!({
                            "aggregate": false, "apexType": null, "booleanType": false, "columnName": rel,
                            "custom": rf.custom, "displayName": rel, "foreignKeyName": null, "insertable": false,
                            "joinColumns": [join], "numberType": false, "textType": false, "updatable": false,
                        }));
                    }
                }
            }
        }
    }
    Ok(serde_json::json!({
        "columnMetadata": out,
        "entityName": object.name,
        "groupBy": false,
        "idSelected": id_selected,
        "keyPrefix": object.key_prefix,
    }))
}

/// `GET query/{locator}`.
pub fn more(state: &SfState, org: &mut Org, req: &Req, locator: &str) -> Resp {
    respond(query_more(state, org, locator, &req.version))
}
