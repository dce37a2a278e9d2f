//! sObject Collections: create (`POST /composite/sobjects`), update (`PATCH`), delete
//! (`DELETE ?ids=&allOrNone=`), retrieve (`GET|POST /composite/sobjects/{T}`) and
//! upsert by external id (`PATCH /composite/sobjects/{T}/{field}`). At most 200
//! records; `allOrNone` rolls every record back with `ALL_OR_NONE_OPERATION_ROLLED_BACK`.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::errors::{ApiError, RecordError};
use crate::rest::sobjects::{object_or_404, record_url};
use crate::rest::{Ctx, Req, Resp, body_or_error};
use crate::state::{Org, SfState};
use crate::store::WriteCtx;
use crate::values::now_ms;
use crate::write::{self, Claims, Operation, RecordResult, WriteOptions};

/// Most records in one collections request.
pub const MAX_RECORDS: usize = 200;

/// Counts written and failed records.
pub fn count_results(org: &mut Org, results: &[RecordResult]) {
    let ok = results.iter().filter(|r| r.success).count() as u64;
    org.stats.records_written += ok;
    org.stats.records_failed += results.len() as u64 - ok;
}

fn parse_bool(v: Option<&Json>) -> Result<bool, ApiError> {
    match v {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Json::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(ApiError::json_parser(format!(
            "Cannot deserialize instance of boolean from {} value {other}",
            crate::values::json_token(other)
        ))),
    }
}

/// Parses `{"allOrNone": ..., "records": [...]}`.
fn parse_collection(body: &Json) -> Result<(bool, &Vec<Json>), ApiError> {
    let Some(map) = body.as_object() else {
        return Err(ApiError::json_parser("Cannot deserialize instance of SObjectCollection from non-object value"));
    };
    if let Some(k) = map.keys().find(|k| *k != "allOrNone" && *k != "records") {
        return Err(ApiError::json_parser(format!("Unrecognized field \"{k}\" (not marked as ignorable)")));
    }
    let all_or_none = parse_bool(map.get("allOrNone"))?;
    let records = match map.get("records") {
        Some(Json::Array(r)) => r,
        Some(other) => {
            return Err(ApiError::json_parser(format!(
                "Cannot deserialize instance of list from {} value {other}",
                crate::values::json_token(other)
            )));
        }
        None => return Err(ApiError::invalid_input("The records field is required.")),
    };
    if records.len() > MAX_RECORDS {
        return Err(ApiError::exceeded_id_limit());
    }
    Ok((all_or_none, records))
}

fn opts<'a>(org: &Org, ctx: &Ctx, wctx: WriteCtx<'a>, all_or_none: bool) -> WriteOptions<'a> {
    let mut o = WriteOptions::api(wctx, org.settings.automation);
    o.all_or_none = all_or_none;
    o.lock_fault = ctx.lock_fault;
    o.require_attributes = true;
    o
}

/// Create or update records of any objects (each named by `attributes.type`).
fn create_or_update(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req, op: Operation) -> Resp {
    let body = match body_or_error(req) {
        Ok(b) => b,
        Err(e) => return Resp::error(&e),
    };
    let (all_or_none, records) = match parse_collection(body) {
        Ok(x) => x,
        Err(e) => return Resp::error(&e),
    };
    let schema = state.schema();
    // Group by object, keeping positions, so duplicate checks see each group whole.
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut planned: Vec<Option<Result<write::Prepared, RecordError>>> = vec![None; records.len()];
    for (i, r) in records.iter().enumerate() {
        let ty = r.get("attributes").and_then(|a| a.get("type")).and_then(Json::as_str);
        match ty.map(|t| (t, schema.object_index(t))) {
            None => planned[i] = Some(Err(RecordError::missing_attributes())),
            Some((t, None)) => planned[i] = Some(Err(RecordError::unknown_sobject(t))),
            Some((_, Some(o))) => groups.entry(o).or_default().push(i),
        }
    }
    let identity = org.identity.clone();
    let wctx = WriteCtx { user_id: &ctx.user_id, org_id: &identity.org_id, now_ms: now_ms() };
    let o = opts(org, ctx, wctx, all_or_none);
    let mut claims = Claims::new();
    for (object, positions) in groups {
        let group: Vec<Json> = positions.iter().filter_map(|p| records.get(*p).cloned()).collect();
        let writable = schema
            .objects
            .get(object)
            .is_some_and(|d| if op == Operation::Insert { d.createable } else { d.updateable });
        let results = if writable {
            write::plan(schema, &org.store, object, op, &group, o, &mut claims, 0)
        } else {
            let name = schema.objects.get(object).map(|d| d.name.clone()).unwrap_or_default();
            let verb = if op == Operation::Insert { "insert" } else { "update" };
            group.iter().map(|_| Err(RecordError::invalid_type_for_operation(&name, verb))).collect()
        };
        for (p, r) in positions.into_iter().zip(results) {
            if let Some(slot) = planned.get_mut(p) {
                *slot = Some(r);
            }
        }
    }
    let planned: Vec<Result<write::Prepared, RecordError>> =
        planned.into_iter().map(|p| p.unwrap_or_else(|| Err(RecordError::missing_attributes()))).collect();
    let results = write::finish(schema, &mut org.store, planned, false, o);
    count_results(org, &results);
    Resp::ok(&results)
}

/// `POST /composite/sobjects`.
pub fn create(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req) -> Resp {
    create_or_update(state, org, ctx, req, Operation::Insert)
}

/// `PATCH /composite/sobjects`.
pub fn update(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req) -> Resp {
    create_or_update(state, org, ctx, req, Operation::Update)
}

/// `DELETE /composite/sobjects?ids=...&allOrNone=`.
pub fn delete(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req) -> Resp {
    let ids: Vec<String> =
        req.param("ids").unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if ids.is_empty() {
        return Resp::error(&ApiError::invalid_input("The ids parameter is required."));
    }
    if ids.len() > MAX_RECORDS {
        return Resp::error(&ApiError::exceeded_id_limit());
    }
    let all_or_none = req.param("allOrNone").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let identity = org.identity.clone();
    let wctx = WriteCtx { user_id: &ctx.user_id, org_id: &identity.org_id, now_ms: now_ms() };
    let results = write::delete_records(state.schema(), &mut org.store, &ids, all_or_none, ctx.lock_fault, false, wctx);
    count_results(org, &results);
    Resp::ok(&results)
}

/// `GET /composite/sobjects/{T}?ids=&fields=` or `POST` with `{"ids", "fields"}`.
pub fn retrieve(state: &SfState, org: &mut Org, req: &Req, obj: &str) -> Resp {
    let (object, def) = match object_or_404(state, obj) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let list = |v: Option<&Json>, q: Option<&str>| -> Vec<String> {
        match v {
            Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).map(str::to_owned).collect(),
            _ => q.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        }
    };
    let body = req.body.as_ref();
    let ids = list(body.and_then(|b| b.get("ids")), req.param("ids"));
    let fields = list(body.and_then(|b| b.get("fields")), req.param("fields"));
    if ids.is_empty() || fields.is_empty() {
        return Resp::error(&ApiError::invalid_input("Both ids and fields are required."));
    }
    if ids.len() > 2000 {
        return Resp::error(&ApiError::exceeded_id_limit());
    }
    let mut cols = Vec::new();
    for f in &fields {
        match def.field_index(f) {
            Some(i) => cols.push(i),
            None => {
                return Resp::error(&ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    format!("No such column '{f}' on sobject of type {}", def.name),
                ));
            }
        }
    }
    let out: Vec<Json> = ids
        .iter()
        .map(|id| {
            let Some(idx) = crate::ids::normalize(id).and_then(|i| org.store.find_live(object, &i)) else {
                return Json::Null;
            };
            let Some(rec) = org.store.record(object, idx) else { return Json::Null };
            let mut m = Map::new();
            m.insert(
                "attributes".into(),
                serde_json::json!({"type": def.name, "url": record_url(&req.version, &def.name, rec.id())}),
            );
            for c in &cols {
                if let Some(f) = def.fields.get(*c) {
                    m.insert(f.name.clone(), rec.get(*c).to_json());
                }
            }
            Json::Object(m)
        })
        .collect();
    Resp::ok(&out)
}

/// `PATCH /composite/sobjects/{T}/{ExternalIdField}`.
pub fn upsert(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req, obj: &str, ext_field: &str) -> Resp {
    let schema = state.schema();
    let (Some(object), Some(def)) = (schema.object_index(obj), schema.object(obj)) else {
        return Resp::error(&ApiError::invalid_type(obj));
    };
    let Some(key_field) = def
        .field_index(ext_field)
        .filter(|i| *i == def.system.id || def.fields.get(*i).is_some_and(|f| f.external_id || f.id_lookup))
    else {
        return Resp::error(&ApiError::bad_external_id_field(ext_field));
    };
    let body = match body_or_error(req) {
        Ok(b) => b,
        Err(e) => return Resp::error(&e),
    };
    let (all_or_none, records) = match parse_collection(body) {
        Ok(x) => x,
        Err(e) => return Resp::error(&e),
    };
    let identity = org.identity.clone();
    let wctx = WriteCtx { user_id: &ctx.user_id, org_id: &identity.org_id, now_ms: now_ms() };
    let o = opts(org, ctx, wctx, all_or_none);
    let results = write::write_records(schema, &mut org.store, object, Operation::Upsert { key_field }, records, o);
    count_results(org, &results);
    Resp::ok(&results)
}
