//! Single-record resources: `POST /sobjects/{T}` (201), `GET|PATCH|DELETE
//! /sobjects/{T}/{id}` (200 / 204 / 204), and by external id `GET|PATCH|DELETE
//! /sobjects/{T}/{field}/{value}` (upsert: 201 created, 200 updated, 300 when several
//! records match, 404 for a GET miss).

use axum::http::StatusCode;
use serde_json::{Map, Value as Json, json};

use crate::errors::{ApiError, RecordError};
use crate::ids;
use crate::rest::{Ctx, Req, Resp, body_or_error, save_result};
use crate::schema::ObjectDef;
use crate::state::{Org, SfState};
use crate::store::{Store, WriteCtx};
use crate::values::now_ms;
use crate::write::{self, Operation, Prepared, RecordResult, Target, WriteOptions};

/// `/services/data/vXX.X/sobjects/{T}/{id}`.
pub fn record_url(version: &str, object: &str, id: &str) -> String {
    format!("/services/data/{version}/sobjects/{object}/{id}")
}

/// A record as the REST API returns it: `attributes`, then every field (or the
/// selected ones) in schema order.
pub fn render_record(
    def: &ObjectDef,
    store: &Store,
    object: usize,
    idx: usize,
    version: &str,
    only: Option<&[usize]>,
) -> Json {
    let Some(rec) = store.record(object, idx) else { return Json::Null };
    let mut m = Map::new();
    m.insert("attributes".into(), json!({"type": def.name, "url": record_url(version, &def.name, rec.id())}));
    for (i, f) in def.fields.iter().enumerate() {
        if only.is_some_and(|o| !o.contains(&i)) {
            continue;
        }
        m.insert(f.name.clone(), rec.get(i).to_json());
    }
    Json::Object(m)
}

pub fn object_or_404<'a>(state: &'a SfState, name: &str) -> Result<(usize, &'a ObjectDef), Resp> {
    let schema = state.schema();
    match (schema.object_index(name), schema.object(name)) {
        (Some(i), Some(d)) => Ok((i, d)),
        _ => Err(Resp::error(&ApiError::not_found())),
    }
}

pub fn write_ctx<'a>(org: &'a Org, user_id: &'a str) -> WriteCtx<'a> {
    WriteCtx { user_id, org_id: &org.identity.org_id, now_ms: now_ms() }
}

fn count(org: &mut Org, ok: bool) {
    if ok {
        org.stats.records_written += 1;
    } else {
        org.stats.records_failed += 1;
    }
}

fn body_map(req: &Req) -> Result<Map<String, Json>, Resp> {
    match body_or_error(req) {
        Ok(Json::Object(m)) => Ok(m.clone()),
        Ok(other) => Err(Resp::error(&ApiError::json_parser(format!(
            "Cannot deserialize instance of SObject from {} value",
            crate::values::json_token(other)
        )))),
        Err(e) => Err(Resp::error(&e)),
    }
}

/// Runs a one-record write and returns the single result.
fn write_one(
    state: &SfState,
    org: &mut Org,
    ctx: &Ctx,
    object: usize,
    op: Operation,
    record: Json,
    update_only: bool,
) -> Result<RecordResult, Vec<usize>> {
    let automation = org.settings.automation;
    let identity = org.identity.clone();
    let wctx = WriteCtx { user_id: &ctx.user_id, org_id: &identity.org_id, now_ms: now_ms() };
    let mut opts = WriteOptions::api(wctx, automation);
    opts.lock_fault = ctx.lock_fault;
    opts.update_only = update_only;
    let schema = state.schema();
    let Some(def) = schema.objects.get(object) else {
        return Ok(RecordResult::failed(RecordError::unknown_sobject("?"), false));
    };
    // Several matches answer 300 (not an error result).
    if let Ok(Prepared { target: Target::Multiple(m), .. }) =
        write::prepare(schema, &org.store, def, object, op, &record, opts)
    {
        return Err(m);
    }
    let results = write::write_records(schema, &mut org.store, object, op, std::slice::from_ref(&record), opts);
    let r =
        results.into_iter().next().unwrap_or_else(|| RecordResult::failed(RecordError::unknown_sobject("?"), false));
    count(org, r.success);
    Ok(r)
}

fn failure(r: &RecordResult) -> Resp {
    let e = r.errors.first().cloned().unwrap_or_else(|| RecordError::new("UNKNOWN_EXCEPTION", "unknown", vec![]));
    Resp::error(&ApiError::from_record(&e))
}

/// `POST /sobjects/{T}`.
pub fn create(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req, obj: &str) -> Resp {
    let (object, def) = match object_or_404(state, obj) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !def.createable {
        return Resp::error(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE_FOR_OPERATION",
            format!("entity type {} does not support insert", def.name),
        ));
    }
    let map = match body_map(req) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match write_one(state, org, ctx, object, Operation::Insert, Json::Object(map), false) {
        Ok(r) if r.success => {
            let id = r.id.clone().unwrap_or_default();
            Resp::json(StatusCode::CREATED, &save_result(&id, None))
                .with_header("location", record_url(&req.version, &def.name, &id))
        }
        Ok(r) => failure(&r),
        Err(_) => Resp::error(&ApiError::not_found()),
    }
}

fn locate(state: &SfState, org: &Org, object: usize, def: &ObjectDef, id: &str) -> Result<usize, Resp> {
    let _ = state;
    let Some(id18) = ids::normalize(id).filter(|i| i.starts_with(&def.key_prefix)) else {
        return Err(Resp::error(&ApiError::not_found()));
    };
    match org.store.find_by_id(object, &id18) {
        None => Err(Resp::error(&ApiError::not_found())),
        Some(idx) if org.store.record(object, idx).is_some_and(|r| r.deleted) => {
            Err(Resp::error(&ApiError::entity_deleted()))
        }
        Some(idx) => Ok(idx),
    }
}

fn selected_fields(def: &ObjectDef, req: &Req) -> Result<Option<Vec<usize>>, Resp> {
    let Some(list) = req.param("fields").filter(|f| !f.trim().is_empty()) else { return Ok(None) };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match def.field_index(name) {
            Some(i) => out.push(i),
            None => {
                return Err(Resp::error(&ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    format!("No such column '{name}' on sobject of type {}", def.name),
                )));
            }
        }
    }
    // The Id always comes along.
    if !out.contains(&def.system.id) {
        out.push(def.system.id);
    }
    Ok(Some(out))
}

/// `GET /sobjects/{T}/{id}[?fields=]`.
pub fn get(state: &SfState, org: &mut Org, req: &Req, obj: &str, id: &str) -> Resp {
    let (object, def) = match object_or_404(state, obj) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let only = match selected_fields(def, req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match locate(state, org, object, def, id) {
        Ok(idx) => Resp::ok(&render_record(def, &org.store, object, idx, &req.version, only.as_deref())),
        Err(r) => r,
    }
}

/// `PATCH /sobjects/{T}/{id}`: 204.
pub fn update(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req, obj: &str, id: &str) -> Resp {
    let (object, def) = match object_or_404(state, obj) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let idx = match locate(state, org, object, def, id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    if !def.updateable {
        return Resp::error(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE_FOR_OPERATION",
            format!("entity type {} does not support update", def.name),
        ));
    }
    let mut map = match body_map(req) {
        Ok(m) => m,
        Err(r) => return r,
    };
    map.retain(|k, _| !k.eq_ignore_ascii_case("Id"));
    let rid = org.store.record(object, idx).map(|r| r.id().to_owned()).unwrap_or_default();
    map.insert("Id".into(), Json::String(rid));
    match write_one(state, org, ctx, object, Operation::Update, Json::Object(map), false) {
        Ok(r) if r.success => Resp::no_content(),
        Ok(r) => failure(&r),
        Err(_) => Resp::error(&ApiError::not_found()),
    }
}

/// `DELETE /sobjects/{T}/{id}`: 204.
pub fn delete(state: &SfState, org: &mut Org, ctx: &Ctx, obj: &str, id: &str) -> Resp {
    let (object, def) = match object_or_404(state, obj) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let idx = match locate(state, org, object, def, id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    delete_at(state, org, ctx, object, idx)
}

fn delete_at(state: &SfState, org: &mut Org, ctx: &Ctx, object: usize, idx: usize) -> Resp {
    let rid = org.store.record(object, idx).map(|r| r.id().to_owned()).unwrap_or_default();
    let identity = org.identity.clone();
    let wctx = WriteCtx { user_id: &ctx.user_id, org_id: &identity.org_id, now_ms: now_ms() };
    let results = write::delete_records(state.schema(), &mut org.store, &[rid], false, ctx.lock_fault, false, wctx);
    match results.first() {
        Some(r) if r.success => {
            count(org, true);
            Resp::no_content()
        }
        Some(r) => {
            count(org, false);
            failure(r)
        }
        None => Resp::error(&ApiError::not_found()),
    }
}

fn key_field(def: &ObjectDef, field: &str) -> Result<usize, Resp> {
    def.field_index(field)
        .filter(|i| *i == def.system.id || def.fields.get(*i).is_some_and(|f| f.external_id || f.id_lookup))
        .ok_or_else(|| {
            Resp::error(&ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {field}"),
            ))
        })
}

fn matches(org: &Org, def: &ObjectDef, object: usize, field: usize, value: &str) -> Result<Vec<usize>, Resp> {
    let Some(f) = def.fields.get(field) else { return Ok(Vec::new()) };
    let v = crate::values::from_json(f, &Json::String(value.to_owned()))
        .map_err(|e| failure(&RecordResult::failed(e, false)))?;
    Ok(org.store.find_indexed(def, object, field, &v))
}

fn multiple_choices(req: &Req, def: &ObjectDef, org: &Org, object: usize, rows: &[usize]) -> Resp {
    let urls: Vec<String> = rows
        .iter()
        .filter_map(|i| org.store.record(object, *i))
        .map(|r| record_url(&req.version, &def.name, r.id()))
        .collect();
    Resp::json(StatusCode::MULTIPLE_CHOICES, &urls)
}

/// The object, its definition and the rows whose key `field` equals `value`
/// (`Id` finds the one record with that id): the by-external-id routes.
fn rows_by_key<'s>(
    state: &'s SfState,
    org: &Org,
    obj: &str,
    field: &str,
    value: &str,
) -> Result<(usize, &'s ObjectDef, Vec<usize>), Resp> {
    let (object, def) = object_or_404(state, obj)?;
    let kf = key_field(def, field)?;
    let rows = if kf == def.system.id {
        vec![locate(state, org, object, def, value)?]
    } else {
        matches(org, def, object, kf, value)?
    };
    Ok((object, def, rows))
}

/// `GET /sobjects/{T}/{field}/{value}`.
pub fn get_by_external_id(state: &SfState, org: &mut Org, req: &Req, obj: &str, field: &str, value: &str) -> Resp {
    let (object, def, rows) = match rows_by_key(state, org, obj, field, value) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let only = match selected_fields(def, req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match rows.as_slice() {
        [] => Resp::error(&ApiError::not_found()),
        [idx] => Resp::ok(&render_record(def, &org.store, object, *idx, &req.version, only.as_deref())),
        many => multiple_choices(req, def, org, object, many),
    }
}

/// `PATCH /sobjects/{T}/{field}/{value}[?updateOnly=true]`: upsert.
pub fn upsert(state: &SfState, org: &mut Org, ctx: &Ctx, req: &Req, obj: &str, field: &str, value: &str) -> Resp {
    let (object, def) = match object_or_404(state, obj) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let kf = match key_field(def, field) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut map = match body_map(req) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let update_only = req.param("updateOnly").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let key_name = def.fields.get(kf).map(|f| f.name.clone()).unwrap_or_default();
    let op = if kf == def.system.id {
        if let Err(r) = locate(state, org, object, def, value) {
            return r;
        }
        map.retain(|k, _| !k.eq_ignore_ascii_case("Id"));
        map.insert("Id".into(), Json::String(value.to_owned()));
        Operation::Update
    } else {
        if let Some((k, v)) = map.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key_name)) {
            if v.as_str() != Some(value) {
                let _ = k;
                return Resp::error(&ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    format!(
                        "The value of the external ID field {key_name} in the request body doesn't match the value in the URL"
                    ),
                ));
            }
        }
        map.retain(|k, _| !k.eq_ignore_ascii_case(&key_name));
        map.insert(key_name.clone(), Json::String(value.to_owned()));
        if update_only {
            match matches(org, def, object, kf, value) {
                Ok(r) if r.is_empty() => return Resp::error(&ApiError::not_found()),
                Ok(_) => {}
                Err(r) => return r,
            }
        }
        Operation::Upsert { key_field: kf }
    };
    match write_one(state, org, ctx, object, op, Json::Object(map), update_only) {
        Err(rows) => multiple_choices(req, def, org, object, &rows),
        Ok(r) if r.success => {
            let id = r.id.clone().unwrap_or_default();
            let created = r.created.unwrap_or(false);
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Resp::json(status, &save_result(&id, Some(created)))
                .with_header("location", record_url(&req.version, &def.name, &id))
        }
        Ok(r) => failure(&r),
    }
}

/// `DELETE /sobjects/{T}/{field}/{value}`.
pub fn delete_by_external_id(
    state: &SfState,
    org: &mut Org,
    ctx: &Ctx,
    req: &Req,
    obj: &str,
    field: &str,
    value: &str,
) -> Resp {
    let (object, def, rows) = match rows_by_key(state, org, obj, field, value) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match rows.as_slice() {
        [] => Resp::error(&ApiError::not_found()),
        [idx] => delete_at(state, org, ctx, object, *idx),
        many => multiple_choices(req, def, org, object, many),
    }
}
