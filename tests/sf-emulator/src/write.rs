//! Record writes as sObject Collections performs them: per-record validation from
//! the schema, relationship references by external id, upsert matching by external
//! id, `DUPLICATE_EXTERNAL_ID` within a request, partial success or `allOrNone`.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::errors::RecordError;
use crate::ids;
use crate::schema::{FieldType, ObjectDef, Schema};
use crate::store::{Store, WriteCtx, unique_key};
use crate::values::{self, FieldValue};

/// What to do with each record.
#[derive(Debug, Clone, Copy)]
pub enum Operation {
    /// Upsert matching on this (external id or `Id`) field.
    Upsert { key_field: usize },
    /// Plain create.
    Insert,
}

/// Options of one write request.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions<'a> {
    pub all_or_none: bool,
    /// Every record fails with `UNABLE_TO_LOCK_ROW` (injected fault).
    pub lock_fault: bool,
    /// Seeding through the admin API: `attributes` optional, audit dates settable.
    pub admin: bool,
    pub ctx: WriteCtx<'a>,
}

/// One entry of the response array.
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
    fn failed(error: RecordError, upsert: bool) -> Self {
        RecordResult { id: None, success: false, errors: vec![error], created: upsert.then_some(false) }
    }
}

enum Target {
    New,
    Existing(usize),
}

struct Prepared {
    changes: Vec<(usize, FieldValue)>,
    target: Target,
}

/// Writes `records` (request JSON) into `object`. Returns one result per record,
/// in order. Nothing is written when `all_or_none` is set and any record fails.
pub fn write_records(
    schema: &Schema,
    store: &mut Store,
    object: usize,
    op: Operation,
    records: &[Json],
    opts: WriteOptions<'_>,
) -> Vec<RecordResult> {
    let Some(def) = schema.objects.get(object) else {
        return Vec::new();
    };
    let upsert = matches!(op, Operation::Upsert { .. });
    let mut outcomes: Vec<Result<Prepared, RecordError>> = Vec::with_capacity(records.len());

    // Duplicate external ids inside the request fail every record that carries them.
    let duplicates = match op {
        Operation::Upsert { key_field } => duplicate_keys(def, key_field, records),
        Operation::Insert => HashSet::new(),
    };
    // Unique values claimed by earlier records of this request.
    let mut claimed: HashMap<(usize, String), usize> = HashMap::new();

    for (i, raw) in records.iter().enumerate() {
        let outcome = if duplicates.contains(&i) {
            let key_field = match op {
                Operation::Upsert { key_field } => key_field,
                Operation::Insert => 0,
            };
            let field = def.fields.get(key_field).map(|f| f.name.as_str()).unwrap_or("Id");
            let value = raw.as_object().and_then(|m| get_ci(m, field)).map(display).unwrap_or_default();
            Err(RecordError::duplicate_external_id(&value, field))
        } else {
            prepare(schema, store, def, object, op, raw, opts)
                .and_then(|p| check_unique(store, def, object, p, &mut claimed, i))
        };
        outcomes.push(outcome);
    }

    if opts.lock_fault {
        return outcomes
            .iter()
            .map(|o| {
                let id = match o {
                    Ok(Prepared { target: Target::Existing(idx), .. }) => {
                        store.table(object).and_then(|t| t.records.get(*idx)).map(|r| r.id().to_owned())
                    }
                    _ => None,
                }
                .unwrap_or_else(|| ids::mint(&def.key_prefix, 0));
                RecordResult::failed(RecordError::unable_to_lock_row(&id), upsert)
            })
            .collect();
    }

    let any_failed = outcomes.iter().any(Result::is_err);
    if opts.all_or_none && any_failed {
        return outcomes
            .into_iter()
            .map(|o| match o {
                Err(e) => RecordResult::failed(e, upsert),
                Ok(_) => RecordResult::failed(RecordError::rolled_back(), upsert),
            })
            .collect();
    }

    outcomes
        .into_iter()
        .map(|o| match o {
            Err(e) => RecordResult::failed(e, upsert),
            Ok(p) => {
                let (id, created) = apply(store, def, object, p, opts.ctx);
                RecordResult { id: Some(id), success: true, errors: Vec::new(), created: upsert.then_some(created) }
            }
        })
        .collect()
}

fn apply(store: &mut Store, def: &ObjectDef, object: usize, p: Prepared, ctx: WriteCtx<'_>) -> (String, bool) {
    match p.target {
        Target::Existing(idx) => {
            store.update(def, object, idx, &p.changes, ctx);
            let id =
                store.table(object).and_then(|t| t.records.get(idx)).map(|r| r.id().to_owned()).unwrap_or_default();
            (id, false)
        }
        Target::New => {
            let mut values = vec![FieldValue::Null; def.fields.len()];
            for (f, v) in p.changes {
                if let Some(slot) = values.get_mut(f) {
                    *slot = v;
                }
            }
            let id = store.mint_id(def);
            store.insert(def, object, id.clone(), values, ctx);
            (id, true)
        }
    }
}

fn get_ci<'a>(m: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
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

/// Parses and validates one record, and finds the record it updates.
fn prepare(
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
    // `attributes` must be there, and first, for collections.
    match map.get("attributes") {
        Some(Json::Object(attrs)) => match attrs.get("type").and_then(Json::as_str) {
            Some(t) if t.eq_ignore_ascii_case(&def.name) => {}
            Some(t) => return Err(RecordError::record_type_mismatch(t, &def.name)),
            None if opts.admin => {}
            None => return Err(RecordError::missing_attributes()),
        },
        Some(_) => return Err(RecordError::missing_attributes()),
        None if opts.admin => {}
        None => return Err(RecordError::missing_attributes()),
    }
    let key_field = match op {
        Operation::Upsert { key_field } => Some(key_field),
        Operation::Insert => None,
    };
    let s = def.system;
    let admin_settable = [s.created_date, s.last_modified_date, s.system_modstamp];

    let mut changes: Vec<(usize, FieldValue)> = Vec::with_capacity(map.len());
    let mut read_only: Vec<String> = Vec::new();
    let mut key_value: Option<FieldValue> = None;
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
            if Some(fi) == key_field && fi == s.id {
                // Upsert on Id: the id selects the record, it is not written.
                key_value = Some(match v {
                    Json::Null => FieldValue::Null,
                    Json::String(id) if id.is_empty() => FieldValue::Null,
                    Json::String(id) => match ids::normalize(id) {
                        Some(n) if n.starts_with(&def.key_prefix) => FieldValue::Text(n),
                        _ => return Err(RecordError::malformed_id(&field.label, id, &field.name)),
                    },
                    other => {
                        return Err(RecordError::cannot_deserialize("id", values::json_token(other), &display(other)));
                    }
                });
                continue;
            }
            let settable = field.writable() || (opts.admin && admin_settable.contains(&fi));
            if !settable {
                read_only.push(field.name.clone());
                continue;
            }
            let value = values::from_json(field, v)?;
            let value = match (&field.ty, value) {
                (FieldType::Reference { to, .. }, FieldValue::Text(id)) => {
                    direct_refs.insert(fi);
                    FieldValue::Text(resolve_id(schema, store, to, &id, &field.label, &field.name)?)
                }
                (_, other) => other,
            };
            if Some(fi) == key_field {
                key_value = Some(value.clone());
            }
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
            let (rel, field) = match def.fields.get(*fi).map(|f| &f.ty) {
                Some(FieldType::Reference { relationship, .. }) => {
                    (relationship.clone(), def.fields.get(*fi).map(|f| f.name.clone()).unwrap_or_default())
                }
                _ => (String::new(), String::new()),
            };
            return Err(RecordError::both_reference_and_id(&rel, &field));
        }
    }

    let target = match key_field {
        None => Target::New,
        Some(kf) => {
            let key = key_value.unwrap_or(FieldValue::Null);
            if key.is_null() {
                if kf == s.id {
                    Target::New
                } else {
                    let name = def.fields.get(kf).map(|f| f.name.as_str()).unwrap_or("Id");
                    return Err(RecordError::missing_external_id(name));
                }
            } else {
                match store.find_unique(def, object, kf, &key) {
                    Some(idx) => Target::Existing(idx),
                    None if kf == s.id => {
                        return Err(RecordError::invalid_cross_reference(None));
                    }
                    None => Target::New,
                }
            }
        }
    };

    // Required fields: on create every required field needs a value; on update a
    // required field may not be cleared.
    let mut missing: Vec<String> = Vec::new();
    for (i, f) in def.fields.iter().enumerate() {
        if !f.required {
            continue;
        }
        let given = changes.iter().rev().find(|(fi, _)| *fi == i).map(|(_, v)| v);
        let is_missing = match (&target, given) {
            (_, Some(v)) => v.is_null(),
            (Target::New, None) => true,
            (Target::Existing(_), None) => false,
        };
        if is_missing {
            missing.push(f.name.clone());
        }
    }
    if !missing.is_empty() {
        return Err(RecordError::required_missing(&missing));
    }
    Ok(Prepared { changes, target })
}

/// Checks unique fields against the store and against earlier records of the
/// request.
fn check_unique(
    store: &Store,
    def: &ObjectDef,
    object: usize,
    p: Prepared,
    claimed: &mut HashMap<(usize, String), usize>,
    position: usize,
) -> Result<Prepared, RecordError> {
    let own = match p.target {
        Target::Existing(idx) => Some(idx),
        Target::New => None,
    };
    let mut claims = Vec::new();
    for (fi, v) in &p.changes {
        let Some(f) = def.fields.get(*fi) else {
            continue;
        };
        if !f.unique {
            continue;
        }
        if let Some(other) = store.find_unique(def, object, *fi, v) {
            if Some(other) != own {
                let id = store
                    .table(object)
                    .and_then(|t| t.records.get(other))
                    .map(|r| r.id().to_owned())
                    .unwrap_or_default();
                return Err(RecordError::duplicate_value(&f.name, &id));
            }
        }
        if let Some(key) = unique_key(v, f.case_sensitive) {
            if claimed.contains_key(&(*fi, key.clone())) {
                return Err(RecordError::duplicate_value(&f.name, ""));
            }
            claims.push((*fi, key));
        }
    }
    for c in claims {
        claimed.insert(c, position);
    }
    Ok(p)
}

/// Validates an id written into a reference field pointing at `to`.
fn resolve_id(
    schema: &Schema,
    store: &Store,
    to: &str,
    id: &str,
    label: &str,
    field: &str,
) -> Result<String, RecordError> {
    let Some(id18) = ids::normalize(id) else {
        return Err(RecordError::malformed_id(label, id, field));
    };
    let Some(target) = schema.object_index(to) else {
        // Reference to an object the emulator does not model (e.g. User): accept.
        return Ok(id18);
    };
    let prefix_ok = schema.objects.get(target).is_some_and(|d| id18.starts_with(&d.key_prefix));
    if !prefix_ok {
        return Err(RecordError::wrong_id_type(label, id, field));
    }
    if store.find_by_id(target, &id18).is_none() {
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
            return Err(RecordError::cannot_deserialize(to, values::json_token(other), &display(other)));
        }
    };
    let (Some(target), Some(target_def)) = (schema.object_index(to), schema.object(to)) else {
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
    match store.find_unique(target_def, target, kf, &key) {
        Some(idx) => Ok(FieldValue::Text(
            store.table(target).and_then(|t| t.records.get(idx)).map(|r| r.id().to_owned()).unwrap_or_default(),
        )),
        None => Err(RecordError::foreign_key_not_found(&display(value), &key_def.name, &target_def.name)),
    }
}
