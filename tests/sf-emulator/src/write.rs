//! Record writes as the REST API, sObject Collections, Composite and Bulk API perform
//! them: per-record validation from the schema, relationship references by external
//! id, upsert matching by external id (or any `idLookup` field), `DUPLICATE_EXTERNAL_ID`
//! within a request, partial success or `allOrNone`, deletes to the recycle bin, and
//! the automation stand-in after each successful enrollment write.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::automation;
use crate::errors::RecordError;
use crate::ids;
use crate::schema::{FieldType, ObjectDef, Origin, Schema};
use crate::store::{Store, WriteCtx, index_key};
use crate::values::{self, FieldValue};

/// What to do with each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Plain create.
    Insert,
    /// Update of the record named by the record's `Id` / `id`.
    Update,
    /// Upsert matching on this (external id, id lookup or `Id`) field.
    Upsert { key_field: usize },
}

/// Options of one write request.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions<'a> {
    pub all_or_none: bool,
    /// Every record fails with `UNABLE_TO_LOCK_ROW` (injected fault).
    pub lock_fault: bool,
    /// Seeding through the admin API: `attributes` optional, every stored field
    /// settable (Id, audit fields, system fields), references not checked for
    /// existence.
    pub admin: bool,
    /// Admin seeding without required-field checks.
    pub lenient: bool,
    /// Records must carry `attributes.type` (sObject Collections).
    pub require_attributes: bool,
    /// Upsert never creates (`?updateOnly=true`).
    pub update_only: bool,
    /// Run the automation stand-in after successful writes.
    pub automation: bool,
    pub ctx: WriteCtx<'a>,
}

impl<'a> WriteOptions<'a> {
    /// Options for an API client write.
    pub fn api(ctx: WriteCtx<'a>, automation: bool) -> Self {
        WriteOptions {
            all_or_none: false,
            lock_fault: false,
            admin: false,
            lenient: false,
            require_attributes: false,
            update_only: false,
            automation,
            ctx,
        }
    }
}

/// One entry of a collections response array.
#[derive(Debug, Clone, Serialize)]
pub struct RecordResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub success: bool,
    pub errors: Vec<RecordError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

impl RecordResult {
    pub fn failed(error: RecordError, upsert: bool) -> Self {
        RecordResult { id: None, success: false, errors: vec![error], created: upsert.then_some(false) }
    }

    pub fn ok(id: String, created: Option<bool>) -> Self {
        RecordResult { id: Some(id), success: true, errors: Vec::new(), created }
    }
}

/// The record a prepared write goes to.
#[derive(Debug, Clone)]
pub enum Target {
    /// A new record (admin seeding may give its id).
    New(Option<String>),
    Existing(usize),
    /// Several records match the upsert key (single-record upsert answers 300).
    Multiple(Vec<usize>),
}

/// A validated write, ready to apply.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub object: usize,
    pub changes: Vec<(usize, FieldValue)>,
    pub target: Target,
}

/// Unique values claimed by earlier records of one request: (object, field, key).
pub type Claims = HashMap<(usize, usize, String), usize>;

/// Writes `records` (request JSON) into `object`. Returns one result per record, in
/// order. Nothing is written when `all_or_none` is set and any record fails.
pub fn write_records(
    schema: &Schema,
    store: &mut Store,
    object: usize,
    op: Operation,
    records: &[Json],
    opts: WriteOptions<'_>,
) -> Vec<RecordResult> {
    let mut claims = Claims::new();
    let planned = plan(schema, store, object, op, records, opts, &mut claims, 0);
    let upsert = matches!(op, Operation::Upsert { .. });
    finish(schema, store, planned, upsert, opts)
}

/// Applies planned writes (with `allOrNone` and the lock fault) and returns results.
pub fn finish(
    schema: &Schema,
    store: &mut Store,
    planned: Vec<Result<Prepared, RecordError>>,
    upsert: bool,
    opts: WriteOptions<'_>,
) -> Vec<RecordResult> {
    if opts.lock_fault {
        return planned
            .iter()
            .map(|o| {
                let id = match o {
                    Ok(Prepared { object, target: Target::Existing(idx), .. }) => {
                        store.record(*object, *idx).map(|r| r.id().to_owned())
                    }
                    Ok(Prepared { object, .. }) => schema.objects.get(*object).map(|d| ids::mint(&d.key_prefix, 0)),
                    Err(_) => None,
                }
                .unwrap_or_else(|| ids::mint("000", 0));
                RecordResult::failed(RecordError::unable_to_lock_row(&id), upsert)
            })
            .collect();
    }
    let any_failed = planned.iter().any(Result::is_err);
    if opts.all_or_none && any_failed {
        return planned
            .into_iter()
            .map(|o| match o {
                Err(e) => RecordResult::failed(e, upsert),
                Ok(_) => RecordResult::failed(RecordError::rolled_back(), upsert),
            })
            .collect();
    }
    planned
        .into_iter()
        .map(|o| match o {
            Err(e) => RecordResult::failed(e, upsert),
            Ok(p) => {
                let (id, created) = apply(schema, store, p, opts);
                RecordResult::ok(id, upsert.then_some(created))
            }
        })
        .collect()
}

/// Validates every record of one object (one request), in order. `base` is the
/// position of the first record in the request (for claims across objects).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    schema: &Schema,
    store: &Store,
    object: usize,
    op: Operation,
    records: &[Json],
    opts: WriteOptions<'_>,
    claims: &mut Claims,
    base: usize,
) -> Vec<Result<Prepared, RecordError>> {
    let Some(def) = schema.objects.get(object) else {
        return records.iter().map(|_| Err(RecordError::unknown_sobject("?"))).collect();
    };
    // Duplicate keys inside the request fail every record that carries them.
    let duplicates = match op {
        Operation::Upsert { key_field } => duplicate_keys(def, key_field, records),
        Operation::Update => duplicate_keys(def, def.system.id, records),
        Operation::Insert => HashSet::new(),
    };
    let mut out = Vec::with_capacity(records.len());
    for (i, raw) in records.iter().enumerate() {
        let outcome = if duplicates.contains(&i) {
            let key_field = match op {
                Operation::Upsert { key_field } => key_field,
                _ => def.system.id,
            };
            let field = def.fields.get(key_field).map(|f| f.name.as_str()).unwrap_or("Id");
            let value = raw.as_object().and_then(|m| get_ci(m, field)).map(display).unwrap_or_default();
            if op == Operation::Update {
                Err(RecordError::new("DUPLICATE_VALUE", format!("Duplicate id in list: {value}"), vec![]))
            } else {
                Err(RecordError::duplicate_external_id(&value, field))
            }
        } else {
            prepare(schema, store, def, object, op, raw, opts)
                .and_then(|p| check_unique(store, def, p, claims, base + i))
                .and_then(|p| match p.target {
                    Target::Multiple(ref m) => {
                        let (field, value) = match op {
                            Operation::Upsert { key_field } => {
                                let f = def.fields.get(key_field).map(|f| f.name.clone()).unwrap_or_default();
                                let v = raw.as_object().and_then(|m| get_ci(m, &f)).map(display).unwrap_or_default();
                                (f, v)
                            }
                            _ => (String::new(), String::new()),
                        };
                        Err(RecordError::several_matches(&field, &value, m.len()))
                    }
                    _ => Ok(p),
                })
        };
        out.push(outcome);
    }
    out
}

/// Applies one prepared write; returns (id, created).
pub fn apply(schema: &Schema, store: &mut Store, p: Prepared, opts: WriteOptions<'_>) -> (String, bool) {
    let Some(def) = schema.objects.get(p.object) else {
        return (String::new(), false);
    };
    let (idx, created) = match p.target {
        Target::Existing(idx) => {
            store.update(def, p.object, idx, &p.changes, opts.ctx);
            (idx, false)
        }
        Target::New(given) => {
            let mut values = vec![FieldValue::Null; def.fields.len()];
            for (f, v) in p.changes {
                if let Some(slot) = values.get_mut(f) {
                    *slot = v;
                }
            }
            let id = given.unwrap_or_else(|| store.mint_id(def));
            (store.insert(def, p.object, id, values, opts.ctx), true)
        }
        Target::Multiple(_) => return (String::new(), false),
    };
    let id = store.record(p.object, idx).map(|r| r.id().to_owned()).unwrap_or_default();
    if opts.automation {
        automation::after_write(schema, store, p.object, idx, created, opts.ctx);
    }
    (id, created)
}

/// Deletes records by id, as sObject Collections DELETE does.
pub fn delete_records(
    schema: &Schema,
    store: &mut Store,
    ids_in: &[String],
    all_or_none: bool,
    lock_fault: bool,
    force: bool,
    ctx: WriteCtx<'_>,
) -> Vec<RecordResult> {
    let mut seen = HashSet::new();
    let planned: Vec<Result<(usize, usize, String), RecordError>> = ids_in
        .iter()
        .map(|raw| {
            let Some(id) = ids::normalize(raw.trim()) else {
                return Err(RecordError::malformed_id("Record ID", raw, "Id"));
            };
            if !seen.insert(id.clone()) {
                return Err(RecordError::new("DUPLICATE_VALUE", format!("Duplicate id in list: {raw}"), vec![]));
            }
            let Some((object, idx)) = store.find_any(schema, &id) else {
                return Err(RecordError::invalid_cross_reference(None));
            };
            if store.record(object, idx).is_some_and(|r| r.deleted) {
                return Err(RecordError::entity_is_deleted());
            }
            if !force && schema.objects.get(object).is_some_and(|d| !d.deletable) {
                let name = schema.objects.get(object).map(|d| d.name.as_str()).unwrap_or("");
                return Err(RecordError::invalid_type_for_operation(name, "delete"));
            }
            Ok((object, idx, id))
        })
        .collect();
    let with_id = |e: RecordError, id: Option<&str>| RecordResult {
        id: id.map(str::to_owned),
        success: false,
        errors: vec![e],
        created: None,
    };
    if lock_fault {
        return planned
            .iter()
            .zip(ids_in)
            .map(|(p, raw)| {
                let id = p.as_ref().map(|(_, _, id)| id.clone()).unwrap_or_else(|_| raw.clone());
                with_id(RecordError::unable_to_lock_row(&id), Some(&id))
            })
            .collect();
    }
    let any_failed = planned.iter().any(Result::is_err);
    planned
        .into_iter()
        .zip(ids_in)
        .map(|(p, raw)| match p {
            Err(e) => with_id(e, ids::normalize(raw.trim()).as_deref()),
            Ok((_, _, id)) if all_or_none && any_failed => with_id(RecordError::rolled_back(), Some(&id)),
            Ok((object, idx, id)) => {
                if let Some(def) = schema.objects.get(object) {
                    store.delete(def, object, idx, ctx);
                }
                RecordResult::ok(id, None)
            }
        })
        .collect()
}

pub fn get_ci<'a>(m: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
    m.get(name).or_else(|| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn display(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn duplicate_keys(def: &ObjectDef, key_field: usize, records: &[Json]) -> HashSet<usize> {
    let Some(field) = def.fields.get(key_field) else {
        return HashSet::new();
    };
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let Some(v) = r.as_object().and_then(|m| get_ci(m, &field.name)) else {
            continue;
        };
        if v.is_null() || v.as_str() == Some("") {
            continue;
        }
        let key = if key_field == def.system.id {
            v.as_str().and_then(ids::normalize).unwrap_or_else(|| display(v))
        } else if field.case_sensitive {
            display(v)
        } else {
            display(v).to_lowercase()
        };
        seen.entry(key).or_default().push(i);
    }
    seen.into_values().filter(|v| v.len() > 1).flatten().collect()
}

/// Parses an id value for the key of an update/upsert-by-Id.
fn parse_key_id(def: &ObjectDef, v: &Json) -> Result<Option<String>, RecordError> {
    let field = def.fields.get(def.system.id);
    let label = field.map(|f| f.label.as_str()).unwrap_or("Record ID");
    match v {
        Json::Null => Ok(None),
        Json::String(id) if id.is_empty() => Ok(None),
        Json::String(id) => match ids::normalize(id) {
            Some(n) if n.starts_with(&def.key_prefix) => Ok(Some(n)),
            Some(_) => Err(RecordError::invalid_cross_reference(None)),
            None => Err(RecordError::malformed_id(label, id, "Id")),
        },
        other => Err(RecordError::cannot_deserialize("id", values::json_token(other), &display(other))),
    }
}

/// Parses and validates one record, and finds the record it writes to.
pub fn prepare(
    schema: &Schema,
    store: &Store,
    def: &ObjectDef,
    object: usize,
    op: Operation,
    raw: &Json,
    opts: WriteOptions<'_>,
) -> Result<Prepared, RecordError> {
    let Some(map) = raw.as_object() else {
        return Err(RecordError::cannot_deserialize("SObject", values::json_token(raw), &display(raw)));
    };
    match map.get("attributes") {
        Some(Json::Object(attrs)) => match attrs.get("type").and_then(Json::as_str) {
            Some(t) if t.eq_ignore_ascii_case(&def.name) => {}
            Some(t) => return Err(RecordError::record_type_mismatch(t, &def.name)),
            None if !opts.require_attributes => {}
            None => return Err(RecordError::missing_attributes()),
        },
        Some(_) => return Err(RecordError::missing_attributes()),
        None if opts.require_attributes => return Err(RecordError::missing_attributes()),
        None => {}
    }
    let s = def.system;
    let id_name = def.fields.get(s.id).map(|f| f.name.as_str()).unwrap_or("Id");

    // 1. The target record.
    let target = match op {
        Operation::Insert => {
            let given = get_ci(map, id_name).filter(|v| !v.is_null() && v.as_str() != Some(""));
            match given {
                None => Target::New(None),
                Some(v) if opts.admin => {
                    let id = parse_key_id(def, v)?.ok_or_else(RecordError::id_in_insert)?;
                    if store.find_by_id(object, &id).is_some() {
                        return Err(RecordError::new(
                            "DUPLICATE_VALUE",
                            format!("duplicate value found: Id duplicates value on record with id: {id}"),
                            vec![],
                        ));
                    }
                    Target::New(Some(id))
                }
                Some(_) => return Err(RecordError::id_in_insert()),
            }
        }
        Operation::Update => {
            let v = get_ci(map, id_name).ok_or_else(RecordError::missing_id)?;
            let id = parse_key_id(def, v)?.ok_or_else(RecordError::missing_id)?;
            match store.find_by_id(object, &id) {
                Some(idx) if store.record(object, idx).is_some_and(|r| r.deleted) => {
                    return Err(RecordError::entity_is_deleted());
                }
                Some(idx) => Target::Existing(idx),
                None => return Err(RecordError::invalid_cross_reference(None)),
            }
        }
        Operation::Upsert { key_field } => {
            let kdef = def.fields.get(key_field).ok_or_else(|| RecordError::unknown_field("?", &def.name))?;
            let raw_key = get_ci(map, &kdef.name);
            if key_field == s.id {
                match raw_key.map(|v| parse_key_id(def, v)).transpose()?.flatten() {
                    None if opts.update_only => return Err(RecordError::missing_id()),
                    None => Target::New(None),
                    Some(id) => match store.find_by_id(object, &id) {
                        Some(idx) if store.record(object, idx).is_some_and(|r| !r.deleted) => Target::Existing(idx),
                        Some(_) => return Err(RecordError::entity_is_deleted()),
                        None => return Err(RecordError::invalid_cross_reference(None)),
                    },
                }
            } else {
                let key = match raw_key {
                    Some(v) => values::from_json(kdef, v)?,
                    None => FieldValue::Null,
                };
                if key.is_null() {
                    return Err(RecordError::missing_external_id(&kdef.name));
                }
                match store.find_indexed(def, object, key_field, &key).as_slice() {
                    [] if opts.update_only => return Err(RecordError::invalid_cross_reference(None)),
                    [] => Target::New(None),
                    [one] => Target::Existing(*one),
                    many => Target::Multiple(many.to_vec()),
                }
            }
        }
    };
    let is_new = matches!(target, Target::New(_));

    // 2. The field values.
    let mut changes: Vec<(usize, FieldValue)> = Vec::with_capacity(map.len());
    let mut read_only: Vec<String> = Vec::new();
    let mut direct_refs: HashSet<usize> = HashSet::new();
    let mut relationship_refs: Vec<usize> = Vec::new();
    for (name, v) in map {
        if name == "attributes" {
            continue;
        }
        if let Some(fi) = def.field_index(name) {
            let Some(field) = def.fields.get(fi) else {
                continue;
            };
            if fi == s.id {
                // The id selects the record; it is never written as a value.
                continue;
            }
            let settable = if opts.admin {
                field.origin != Origin::Computed
            } else if is_new {
                field.createable()
            } else {
                field.updateable()
            };
            if !settable {
                read_only.push(field.name.clone());
                continue;
            }
            // Seeding may store empty strings as Salesforce itself does for some
            // platform fields (e.g. User.BadgeText); clients' "" means null.
            let value = if opts.admin && v.as_str() == Some("") && field.ty.is_textual() {
                FieldValue::Text(String::new())
            } else if opts.admin && opts.lenient && field.ty == FieldType::Email && v.is_string() {
                // Platform users carry addresses the API would refuse (no dot in the domain).
                FieldValue::Text(v.as_str().unwrap_or_default().to_owned())
            } else {
                values::from_json(field, v)?
            };
            let value = match (&field.ty, value) {
                (FieldType::Reference { to, .. }, FieldValue::Text(id)) if !id.is_empty() => {
                    direct_refs.insert(fi);
                    FieldValue::Text(resolve_id(schema, store, to, &id, &field.label, &field.name, opts.admin)?)
                }
                (_, other) => other,
            };
            changes.push((fi, value));
        } else if let Some(fi) = def.relationship_field(name) {
            let value = resolve_relationship(schema, store, def, fi, v)?;
            relationship_refs.push(fi);
            changes.push((fi, value));
        } else {
            return Err(RecordError::unknown_field(name, &def.name));
        }
    }
    if !read_only.is_empty() {
        return Err(RecordError::not_writable(&read_only));
    }
    for fi in &relationship_refs {
        if direct_refs.contains(fi) {
            let (rel, field) = match def.fields.get(*fi).map(|f| (&f.ty, &f.name)) {
                Some((FieldType::Reference { relationship, .. }, name)) => (relationship.clone(), name.clone()),
                _ => (String::new(), String::new()),
            };
            return Err(RecordError::both_reference_and_id(&rel, &field));
        }
    }

    // 3. Required fields: on create every required field needs a value (defaults
    // count); on update a required field may not be cleared.
    if !(opts.admin && opts.lenient) {
        let mut missing: Vec<String> = Vec::new();
        for (i, f) in def.fields.iter().enumerate() {
            if !f.required || f.defaulted_on_create {
                continue;
            }
            let given = changes.iter().rev().find(|(fi, _)| *fi == i).map(|(_, v)| v);
            let is_missing = match (is_new, given) {
                (_, Some(v)) => v.is_null() && f.default.is_none(),
                (true, None) => f.default.is_none(),
                (false, None) => false,
            };
            if is_missing {
                missing.push(f.name.clone());
            }
        }
        if !missing.is_empty() {
            return Err(RecordError::required_missing(&missing));
        }
    }
    Ok(Prepared { object, changes, target })
}

/// Checks unique fields against the store and against earlier records of the
/// request.
fn check_unique(
    store: &Store,
    def: &ObjectDef,
    p: Prepared,
    claims: &mut Claims,
    position: usize,
) -> Result<Prepared, RecordError> {
    let own = match p.target {
        Target::Existing(idx) => Some(idx),
        _ => None,
    };
    let mut mine = Vec::new();
    for (fi, v) in &p.changes {
        let Some(f) = def.fields.get(*fi) else {
            continue;
        };
        if !f.unique {
            continue;
        }
        if let Some(other) = store.find_indexed(def, p.object, *fi, v).into_iter().find(|o| Some(*o) != own) {
            let id = store.record(p.object, other).map(|r| r.id().to_owned()).unwrap_or_default();
            return Err(RecordError::duplicate_value(&f.name, &id));
        }
        if let Some(key) = index_key(v, f.case_sensitive) {
            if claims.contains_key(&(p.object, *fi, key.clone())) {
                return Err(RecordError::duplicate_value(&f.name, ""));
            }
            mine.push((p.object, *fi, key));
        }
    }
    for c in mine {
        claims.insert(c, position);
    }
    Ok(p)
}

/// Validates an id written into a reference field pointing at one of `to`.
fn resolve_id(
    schema: &Schema,
    store: &Store,
    to: &[String],
    id: &str,
    label: &str,
    field: &str,
    admin: bool,
) -> Result<String, RecordError> {
    let Some(id18) = ids::normalize(id) else {
        return Err(RecordError::malformed_id(label, id, field));
    };
    let targets: Vec<usize> = to.iter().filter_map(|t| schema.object_index(t)).collect();
    if targets.len() < to.len()
        && targets.iter().all(|t| schema.objects.get(*t).is_some_and(|d| !id18.starts_with(&d.key_prefix)))
    {
        // Points at an object the emulator does not model (e.g. UserLicense): accept.
        return Ok(id18);
    }
    let Some(target) =
        targets.iter().copied().find(|t| schema.objects.get(*t).is_some_and(|d| id18.starts_with(&d.key_prefix)))
    else {
        return Err(RecordError::wrong_id_type(label, id, field));
    };
    if !admin && store.find_live(target, &id18).is_none() {
        return Err(RecordError::invalid_cross_reference(Some(field)));
    }
    Ok(id18)
}

/// Resolves `"Contact__r": {"attributes": {...}, "LMS_Learner_Id__c": "L1"}` to the
/// parent's id.
fn resolve_relationship(
    schema: &Schema,
    store: &Store,
    def: &ObjectDef,
    ref_field: usize,
    v: &Json,
) -> Result<FieldValue, RecordError> {
    let Some(field) = def.fields.get(ref_field) else {
        return Err(RecordError::unknown_field("?", &def.name));
    };
    let FieldType::Reference { to, .. } = &field.ty else {
        return Err(RecordError::unknown_field(&field.name, &def.name));
    };
    let map = match v {
        Json::Null => return Ok(FieldValue::Null),
        Json::Object(m) => m,
        other => {
            let first = to.first().map(String::as_str).unwrap_or("");
            return Err(RecordError::cannot_deserialize(first, values::json_token(other), &display(other)));
        }
    };
    // Polymorphic relationships name the type in `attributes`.
    let type_name = map
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Json::as_str)
        .map(str::to_owned)
        .or_else(|| to.first().cloned())
        .unwrap_or_default();
    if !to.iter().any(|t| t.eq_ignore_ascii_case(&type_name)) {
        return Err(RecordError::unknown_field(&field.name, &def.name));
    }
    let (Some(target), Some(target_def)) = (schema.object_index(&type_name), schema.object(&type_name)) else {
        return Err(RecordError::unknown_field(&field.name, &def.name));
    };
    let keys: Vec<(&String, &Json)> = map.iter().filter(|(k, _)| *k != "attributes").collect();
    let [(name, value)] = keys.as_slice() else {
        return Err(RecordError::too_many_reference_fields(&target_def.name));
    };
    let Some(kf) = target_def.field_index(name) else {
        return Err(RecordError::not_an_external_id(name, &target_def.name));
    };
    let Some(key_def) = target_def.fields.get(kf) else {
        return Err(RecordError::not_an_external_id(name, &target_def.name));
    };
    if !(key_def.external_id || kf == target_def.system.id) {
        return Err(RecordError::not_an_external_id(&key_def.name, &target_def.name));
    }
    let key = if kf == target_def.system.id {
        match value.as_str().and_then(ids::normalize) {
            Some(id) => FieldValue::Text(id),
            None => {
                return Err(RecordError::foreign_key_not_found(&display(value), &key_def.name, &target_def.name));
            }
        }
    } else {
        values::from_json(key_def, value)?
    };
    match store.find_indexed(target_def, target, kf, &key).as_slice() {
        [idx] => Ok(FieldValue::Text(store.record(target, *idx).map(|r| r.id().to_owned()).unwrap_or_default())),
        [] => Err(RecordError::foreign_key_not_found(&display(value), &key_def.name, &target_def.name)),
        many => Err(RecordError::new(
            "INVALID_FIELD",
            format!(
                "Foreign key external ID: {} matched more than one record ({}) for field {} in entity {}",
                display(value),
                many.len(),
                key_def.name,
                target_def.name
            ),
            vec![],
        )),
    }
}
