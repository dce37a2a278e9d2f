//! `PATCH /services/data/vXX.X/composite/sobjects/{SObject}/{ExternalIdField}`:
//! sObject Collections upsert by external id.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use crate::errors::{ApiError, sf_json};
use crate::rest::{enter, take_lock_fault, valid_version};
use crate::state::{Org, SfState};
use crate::store::WriteCtx;
use crate::values::now_ms;
use crate::write::{Operation, RecordResult, WriteOptions, write_records};

/// Most records in one collections request.
pub const MAX_RECORDS: usize = 200;

/// Parses a JSON request body, with Salesforce's parser error.
pub fn parse_body(body: &[u8]) -> Result<Json, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::json_parser(format!(
            "{} at [line:{}, column:{}]",
            match e.classify() {
                serde_json::error::Category::Eof => "Unexpected end-of-input".to_owned(),
                _ => "Unexpected character".to_owned(),
            },
            e.line(),
            e.column()
        ))
    })
}

/// Runs a collections upsert against the (locked) org.
pub fn upsert(
    state: &SfState,
    org: &mut Org,
    sobject: &str,
    ext_field: &str,
    body: &Json,
    lock_fault: bool,
) -> Result<Vec<RecordResult>, ApiError> {
    let schema = state.schema();
    let Some(object) = schema.object_index(sobject) else {
        return Err(ApiError::invalid_type(sobject));
    };
    let Some(def) = schema.objects.get(object) else {
        return Err(ApiError::invalid_type(sobject));
    };
    let key_field = def
        .field_index(ext_field)
        .filter(|i| *i == def.system.id || def.fields.get(*i).is_some_and(|f| f.external_id))
        .ok_or_else(|| ApiError::bad_external_id_field(ext_field))?;
    let Some(map) = body.as_object() else {
        return Err(ApiError::json_parser("Cannot deserialize instance of SObjectCollection from non-object value"));
    };
    if let Some(k) = map.keys().find(|k| *k != "allOrNone" && *k != "records") {
        return Err(ApiError::json_parser(format!("Unrecognized field \"{k}\" (not marked as ignorable)")));
    }
    let all_or_none = match map.get("allOrNone") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Json::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(ApiError::json_parser(format!(
                "Cannot deserialize instance of boolean from {} value {other}",
                crate::values::json_token(other)
            )));
        }
    };
    let records = match map.get("records") {
        Some(Json::Array(r)) => r,
        Some(other) => {
            return Err(ApiError::json_parser(format!(
                "Cannot deserialize instance of list from {} value {other}",
                crate::values::json_token(other)
            )));
        }
        None => {
            return Err(ApiError::invalid_input("The records field is required."));
        }
    };
    if records.len() > MAX_RECORDS {
        return Err(ApiError::exceeded_id_limit());
    }
    let user = state.identity().integration_user_id.clone();
    let opts =
        WriteOptions { all_or_none, lock_fault, admin: false, ctx: WriteCtx { user_id: &user, now_ms: now_ms() } };
    let results = write_records(schema, &mut org.store, object, Operation::Upsert { key_field }, records, opts);
    Ok(results)
}

/// Counts written and failed records.
pub fn count_results(org: &mut Org, results: &[RecordResult]) {
    let ok = results.iter().filter(|r| r.success).count() as u64;
    org.stats.records_written += ok;
    org.stats.records_failed += results.len() as u64 - ok;
}

/// `PATCH /services/data/{version}/composite/sobjects/{SObject}/{ExternalIdField}`.
pub async fn upsert_handler(
    State(state): State<SfState>,
    Path((version, sobject, ext_field)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_version(&version) {
        return ApiError::not_found().into_response();
    }
    let call = match enter(&state, &headers, "collections_upsert") {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let resp = match parse_body(&body) {
        Err(e) => e.into_response(),
        Ok(json) => {
            let mut org = state.org();
            let lock = take_lock_fault(&mut org);
            match upsert(&state, &mut org, &sobject, &ext_field, &json, lock) {
                Ok(results) => {
                    count_results(&mut org, &results);
                    sf_json(StatusCode::OK, &results)
                }
                Err(e) => e.into_response(),
            }
        }
    };
    call.finish(resp)
}
