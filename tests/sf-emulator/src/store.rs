//! In-memory record storage: one table per object, records in creation order, hash
//! indexes on Id and on every indexed field (unique, external id, id lookup), soft
//! deletion (the recycle bin that `queryAll` sees), and an undo journal so that a
//! Composite `allOrNone` request or a graph can be rolled back.

use std::collections::HashMap;

use crate::ids;
use crate::schema::{Computed, CustomSetting, FieldType, ObjectDef, Schema};
use crate::values::FieldValue;

/// One record: values aligned with `ObjectDef::fields`.
#[derive(Debug, Clone)]
pub struct Record {
    pub values: Vec<FieldValue>,
    /// In the recycle bin (only `queryAll` and the admin dump see it).
    pub deleted: bool,
}

impl Record {
    pub fn get(&self, field: usize) -> &FieldValue {
        self.values.get(field).unwrap_or(&FieldValue::Null)
    }

    pub fn id(&self) -> &str {
        self.values.first().and_then(FieldValue::as_text).unwrap_or_default()
    }
}

/// Records of one object.
#[derive(Debug, Default)]
pub struct Table {
    pub records: Vec<Record>,
    by_id: HashMap<String, usize>,
    /// field index → (normalised value → live record indices).
    index: HashMap<usize, HashMap<String, Vec<usize>>>,
    auto_counter: u64,
}

impl Table {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Live (not deleted) records.
    pub fn live(&self) -> impl Iterator<Item = (usize, &Record)> {
        self.records.iter().enumerate().filter(|(_, r)| !r.deleted)
    }
}

/// A side effect recorded by the automation stand-in ([`crate::automation`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SideEffect {
    pub kind: String,
    pub object: String,
    pub record_id: String,
    /// "insert" or "update".
    pub operation: String,
    /// The Task created for it.
    pub task_id: String,
    pub subject: String,
    pub at: String,
}

#[derive(Debug)]
enum Undo {
    Inserted { table: usize },
    Updated { table: usize, idx: usize, old: Record },
    Deleted { table: usize, idx: usize, old: Record },
    Effect,
}

/// Who performs a write, and when.
#[derive(Debug, Clone, Copy)]
pub struct WriteCtx<'a> {
    pub user_id: &'a str,
    pub org_id: &'a str,
    pub now_ms: i64,
}

/// All tables of the org.
#[derive(Debug)]
pub struct Store {
    pub tables: Vec<Table>,
    pub effects: Vec<SideEffect>,
    next_id: u64,
    journal: Option<Vec<Undo>>,
}

/// Key under which an indexed value is stored.
pub fn index_key(value: &FieldValue, case_sensitive: bool) -> Option<String> {
    match value {
        FieldValue::Null => None,
        FieldValue::Text(s) if case_sensitive => Some(s.clone()),
        FieldValue::Text(s) => Some(s.to_lowercase()),
        FieldValue::Number(n) => Some(format!("{n}")),
        other => Some(other.to_json().to_string()),
    }
}

fn second(ms: i64) -> FieldValue {
    FieldValue::DateTime(ms - ms.rem_euclid(1000))
}

impl Store {
    pub fn new(schema: &Schema) -> Self {
        Store {
            tables: schema.objects.iter().map(|_| Table::default()).collect(),
            effects: Vec::new(),
            next_id: 1,
            journal: None,
        }
    }

    pub fn table(&self, object: usize) -> Option<&Table> {
        self.tables.get(object)
    }

    /// The record at `idx` of `object`.
    pub fn record(&self, object: usize, idx: usize) -> Option<&Record> {
        self.tables.get(object)?.records.get(idx)
    }

    /// Record index of `id` (18 characters) in `object`'s table, deleted or not.
    pub fn find_by_id(&self, object: usize, id18: &str) -> Option<usize> {
        self.tables.get(object)?.by_id.get(id18).copied()
    }

    /// Record index of a live record with `id`.
    pub fn find_live(&self, object: usize, id18: &str) -> Option<usize> {
        let idx = self.find_by_id(object, id18)?;
        self.record(object, idx).filter(|r| !r.deleted).map(|_| idx)
    }

    /// Finds any record (of any object) by id: (object, index).
    pub fn find_any(&self, schema: &Schema, id: &str) -> Option<(usize, usize)> {
        let id18 = ids::normalize(id)?;
        let object = schema.object_by_prefix(ids::key_prefix(&id18)?)?;
        self.find_by_id(object, &id18).map(|i| (object, i))
    }

    /// Live records whose indexed `field` equals `value` (Id: the record itself).
    pub fn find_indexed(&self, def: &ObjectDef, object: usize, field: usize, value: &FieldValue) -> Vec<usize> {
        if field == def.system.id {
            return value
                .as_text()
                .and_then(ids::normalize)
                .and_then(|id| self.find_live(object, &id))
                .into_iter()
                .collect();
        }
        let Some(f) = def.fields.get(field) else { return Vec::new() };
        let Some(key) = index_key(value, f.case_sensitive) else { return Vec::new() };
        self.tables.get(object).and_then(|t| t.index.get(&field)).and_then(|m| m.get(&key)).cloned().unwrap_or_default()
    }

    /// The single live record whose unique `field` equals `value`.
    pub fn find_unique(&self, def: &ObjectDef, object: usize, field: usize, value: &FieldValue) -> Option<usize> {
        self.find_indexed(def, object, field, value).first().copied()
    }

    /// Mints the next id for `def`.
    pub fn mint_id(&mut self, def: &ObjectDef) -> String {
        let id = ids::mint(&def.key_prefix, self.next_id);
        self.next_id += 1;
        id
    }

    /// Moves the id counter to at least `n` (ids below it were handed out by hand).
    pub fn mint_id_counter_at_least(&mut self, n: u64) -> u64 {
        self.next_id = self.next_id.max(n);
        self.next_id
    }

    /// Starts recording undo information.
    pub fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.journal.is_some()
    }

    /// Stops recording and keeps every change.
    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Reverts every change since [`Store::begin`].
    pub fn rollback(&mut self, schema: &Schema) {
        let Some(journal) = self.journal.take() else {
            return;
        };
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Inserted { table } => {
                    let (Some(def), Some(t)) = (schema.objects.get(table), self.tables.get_mut(table)) else {
                        continue;
                    };
                    if let Some(rec) = t.records.pop() {
                        t.by_id.remove(rec.id());
                        unindex(t, def, &rec, t.records.len());
                    }
                }
                Undo::Updated { table, idx, old } | Undo::Deleted { table, idx, old } => {
                    let (Some(def), Some(t)) = (schema.objects.get(table), self.tables.get_mut(table)) else {
                        continue;
                    };
                    if let Some(current) = t.records.get(idx).cloned() {
                        unindex(t, def, &current, idx);
                    }
                    index(t, def, &old, idx);
                    if let Some(slot) = t.records.get_mut(idx) {
                        *slot = old;
                    }
                }
                Undo::Effect => {
                    self.effects.pop();
                }
            }
        }
    }

    /// Records an automation side effect.
    pub fn push_effect(&mut self, effect: SideEffect) {
        self.effects.push(effect);
        if let Some(j) = self.journal.as_mut() {
            j.push(Undo::Effect);
        }
    }

    /// Inserts a record with `id` (minted by [`Store::mint_id`] or given by admin
    /// seeding); `values` are aligned with the fields, `Null` meaning "not given".
    /// Defaults, audit fields (unless given), auto-numbers (unless given) and
    /// computed fields are filled in.
    pub fn insert(
        &mut self,
        def: &ObjectDef,
        object: usize,
        id: String,
        mut values: Vec<FieldValue>,
        ctx: WriteCtx<'_>,
    ) -> usize {
        values.resize(def.fields.len(), FieldValue::Null);
        let s = def.system;
        values[s.id] = FieldValue::Text(id.clone());
        let now = second(ctx.now_ms);
        for f in [s.created_date, s.last_modified_date, s.system_modstamp].into_iter().flatten() {
            if values[f].is_null() {
                values[f] = now.clone();
            }
        }
        for f in [s.created_by, s.last_modified_by, s.owner].into_iter().flatten() {
            if values[f].is_null() {
                values[f] = FieldValue::Text(ctx.user_id.to_owned());
            }
        }
        if let Some(f) = s.is_deleted {
            values[f] = FieldValue::Bool(false);
        }
        let Some(t) = self.tables.get_mut(object) else {
            return 0;
        };
        for (i, f) in def.fields.iter().enumerate() {
            if !values[i].is_null() {
                if let FieldType::AutoNumber { prefix, digits } = &f.ty {
                    // A seeded auto-number moves the counter past it.
                    if let Some(n) = values[i]
                        .as_text()
                        .and_then(|v| v.strip_prefix(prefix.as_str()))
                        .and_then(|d| (d.len() == *digits).then(|| d.parse::<u64>().ok()).flatten())
                    {
                        t.auto_counter = t.auto_counter.max(n);
                    }
                }
                continue;
            }
            match &f.ty {
                FieldType::AutoNumber { prefix, digits } => {
                    t.auto_counter += 1;
                    values[i] = FieldValue::Text(format!("{prefix}{:0width$}", t.auto_counter, width = *digits));
                }
                _ if f.name == "SetupOwnerId" && f.defaulted_on_create => {
                    values[i] = FieldValue::Text(ctx.org_id.to_owned());
                }
                _ if f.name_field && f.defaulted_on_create => {
                    // A custom object's text Name defaults to the record id.
                    values[i] = FieldValue::Text(id.get(..15).unwrap_or(&id).to_owned());
                }
                _ => {
                    if let Some(d) = &f.default {
                        values[i] = d.clone();
                    }
                }
            }
        }
        if def.custom_setting == Some(CustomSetting::Hierarchy) {
            if let (Some(name), Some(owner)) = (def.name_field(), def.field_index("SetupOwnerId")) {
                if values[name].is_null() {
                    let level = match values[owner].as_text().and_then(ids::key_prefix) {
                        Some("00D") => "Organization",
                        Some("00e") => "Profile",
                        _ => "User",
                    };
                    values[name] = FieldValue::Text(format!("{} ({level})", def.label));
                }
            }
        }
        apply_computed(def, &mut values);
        let idx = t.records.len();
        let rec = Record { values, deleted: false };
        index(t, def, &rec, idx);
        t.by_id.insert(id, idx);
        t.records.push(rec);
        if let Some(j) = self.journal.as_mut() {
            j.push(Undo::Inserted { table: object });
        }
        idx
    }

    /// Applies `changes` to record `idx`, touching the audit fields (unless they are
    /// among the changes: admin seeding).
    pub fn update(
        &mut self,
        def: &ObjectDef,
        object: usize,
        idx: usize,
        changes: &[(usize, FieldValue)],
        ctx: WriteCtx<'_>,
    ) {
        let Some(t) = self.tables.get_mut(object) else {
            return;
        };
        let Some(old) = t.records.get(idx).cloned() else {
            return;
        };
        unindex(t, def, &old, idx);
        let mut values = old.values.clone();
        let s = def.system;
        let now = second(ctx.now_ms);
        for f in [s.last_modified_date, s.system_modstamp].into_iter().flatten() {
            values[f] = now.clone();
        }
        if let Some(f) = s.last_modified_by {
            values[f] = FieldValue::Text(ctx.user_id.to_owned());
        }
        for (f, v) in changes {
            if let Some(slot) = values.get_mut(*f) {
                *slot = v.clone();
            }
        }
        apply_computed(def, &mut values);
        let rec = Record { values, deleted: old.deleted };
        index(t, def, &rec, idx);
        if let Some(slot) = t.records.get_mut(idx) {
            *slot = rec;
        }
        if let Some(j) = self.journal.as_mut() {
            j.push(Undo::Updated { table: object, idx, old });
        }
    }

    /// Moves record `idx` to the recycle bin.
    pub fn delete(&mut self, def: &ObjectDef, object: usize, idx: usize, ctx: WriteCtx<'_>) {
        let Some(t) = self.tables.get_mut(object) else {
            return;
        };
        let Some(old) = t.records.get(idx).cloned() else {
            return;
        };
        unindex(t, def, &old, idx);
        let mut rec = old.clone();
        rec.deleted = true;
        let s = def.system;
        if let Some(f) = s.is_deleted {
            rec.values[f] = FieldValue::Bool(true);
        }
        for f in [s.last_modified_date, s.system_modstamp].into_iter().flatten() {
            rec.values[f] = second(ctx.now_ms);
        }
        if let Some(f) = s.last_modified_by {
            rec.values[f] = FieldValue::Text(ctx.user_id.to_owned());
        }
        if let Some(slot) = t.records.get_mut(idx) {
            *slot = rec;
        }
        if let Some(j) = self.journal.as_mut() {
            j.push(Undo::Deleted { table: object, idx, old });
        }
    }
}

fn index(t: &mut Table, def: &ObjectDef, rec: &Record, idx: usize) {
    if rec.deleted {
        return;
    }
    for f in def.indexed_fields() {
        let cs = def.fields.get(f).is_some_and(|d| d.case_sensitive);
        if let Some(key) = index_key(rec.get(f), cs) {
            let slot = t.index.entry(f).or_default().entry(key).or_default();
            if !slot.contains(&idx) {
                slot.push(idx);
            }
        }
    }
}

fn unindex(t: &mut Table, def: &ObjectDef, rec: &Record, idx: usize) {
    if rec.deleted {
        return;
    }
    for f in def.indexed_fields() {
        let cs = def.fields.get(f).is_some_and(|d| d.case_sensitive);
        if let Some(key) = index_key(rec.get(f), cs) {
            if let Some(m) = t.index.get_mut(&f) {
                if let Some(list) = m.get_mut(&key) {
                    list.retain(|i| *i != idx);
                    if list.is_empty() {
                        m.remove(&key);
                    }
                }
            }
        }
    }
}

fn apply_computed(def: &ObjectDef, values: &mut [FieldValue]) {
    for c in &def.computed {
        match c {
            Computed::JoinNames { target, parts } => {
                let joined: Vec<&str> = parts
                    .iter()
                    .filter_map(|p| values.get(*p).and_then(FieldValue::as_text))
                    .filter(|s| !s.is_empty())
                    .collect();
                let v = if joined.is_empty() { FieldValue::Null } else { FieldValue::Text(joined.join(" ")) };
                if let Some(slot) = values.get_mut(*target) {
                    *slot = v;
                }
            }
            Computed::Address { target, parts } => {
                let obj: serde_json::Map<String, serde_json::Value> = parts
                    .iter()
                    .map(|(k, f)| {
                        let v =
                            f.and_then(|f| values.get(f)).map(FieldValue::to_json).unwrap_or(serde_json::Value::Null);
                        ((*k).to_owned(), v)
                    })
                    .collect();
                let all_null = obj.values().all(serde_json::Value::is_null);
                if let Some(slot) = values.get_mut(*target) {
                    *slot = if all_null { FieldValue::Null } else { FieldValue::Json(serde_json::Value::Object(obj)) };
                }
            }
        }
    }
}
