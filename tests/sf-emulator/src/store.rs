//! In-memory record storage: one table per object, records in creation order,
//! hash indexes on Id and on every unique field, and an undo journal so that a
//! Composite `allOrNone` request can be rolled back.

use std::collections::HashMap;

use crate::ids;
use crate::schema::{Computed, FieldType, ObjectDef, Schema};
use crate::values::FieldValue;

/// One record: values aligned with `ObjectDef::fields`.
#[derive(Debug, Clone)]
pub struct Record {
    pub values: Vec<FieldValue>,
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
    /// field index → (normalised value → record index).
    unique: HashMap<usize, HashMap<String, usize>>,
    auto_counter: u64,
}

impl Table {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[derive(Debug)]
enum Undo {
    Inserted { table: usize },
    Updated { table: usize, idx: usize, old: Record },
}

/// Who performs a write, and when.
#[derive(Debug, Clone, Copy)]
pub struct WriteCtx<'a> {
    pub user_id: &'a str,
    pub now_ms: i64,
}

/// All tables of the org.
#[derive(Debug)]
pub struct Store {
    pub tables: Vec<Table>,
    next_id: u64,
    journal: Option<Vec<Undo>>,
}

/// Key under which a unique value is indexed.
pub fn unique_key(value: &FieldValue, case_sensitive: bool) -> Option<String> {
    match value {
        FieldValue::Null => None,
        FieldValue::Text(s) if case_sensitive => Some(s.clone()),
        FieldValue::Text(s) => Some(s.to_lowercase()),
        other => Some(other.to_json().to_string()),
    }
}

impl Store {
    pub fn new(schema: &Schema) -> Self {
        Store { tables: schema.objects.iter().map(|_| Table::default()).collect(), next_id: 1, journal: None }
    }

    pub fn table(&self, object: usize) -> Option<&Table> {
        self.tables.get(object)
    }

    /// Record index of `id` (18 characters) in `object`'s table.
    pub fn find_by_id(&self, object: usize, id18: &str) -> Option<usize> {
        self.tables.get(object)?.by_id.get(id18).copied()
    }

    /// Record index whose unique `field` equals `value`.
    pub fn find_unique(&self, def: &ObjectDef, object: usize, field: usize, value: &FieldValue) -> Option<usize> {
        if field == def.system.id {
            return value.as_text().and_then(ids::normalize).and_then(|id| self.find_by_id(object, &id));
        }
        let f = def.fields.get(field)?;
        let key = unique_key(value, f.case_sensitive)?;
        self.tables.get(object)?.unique.get(&field)?.get(&key).copied()
    }

    /// Mints the next id for `def`.
    pub fn mint_id(&mut self, def: &ObjectDef) -> String {
        let id = ids::mint(&def.key_prefix, self.next_id);
        self.next_id += 1;
        id
    }

    /// Starts recording undo information.
    pub fn begin(&mut self) {
        self.journal = Some(Vec::new());
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
                    let Some(def) = schema.objects.get(table) else {
                        continue;
                    };
                    let Some(t) = self.tables.get_mut(table) else {
                        continue;
                    };
                    if let Some(rec) = t.records.pop() {
                        t.by_id.remove(rec.id());
                        unindex(t, def, &rec);
                    }
                }
                Undo::Updated { table, idx, old } => {
                    let (Some(def), Some(t)) = (schema.objects.get(table), self.tables.get_mut(table)) else {
                        continue;
                    };
                    if let Some(current) = t.records.get(idx).cloned() {
                        unindex(t, def, &current);
                    }
                    index(t, def, &old, idx);
                    if let Some(slot) = t.records.get_mut(idx) {
                        *slot = old;
                    }
                }
            }
        }
    }

    /// Inserts a record with `id` (minted by [`Store::mint_id`]); `values` are the
    /// client's values aligned with the fields. Audit fields are set unless the
    /// caller already set them (admin seeding).
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
        let now = FieldValue::DateTime(ctx.now_ms - ctx.now_ms.rem_euclid(1000));
        for f in [s.created_date, s.last_modified_date, s.system_modstamp] {
            if values[f].is_null() {
                values[f] = now.clone();
            }
        }
        for f in [s.created_by, s.last_modified_by] {
            values[f] = FieldValue::Text(ctx.user_id.to_owned());
        }
        let Some(t) = self.tables.get_mut(object) else {
            return 0;
        };
        for (i, f) in def.fields.iter().enumerate() {
            if let FieldType::AutoNumber { prefix, digits } = &f.ty {
                t.auto_counter += 1;
                values[i] = FieldValue::Text(format!("{prefix}{:0width$}", t.auto_counter, width = *digits));
            }
        }
        apply_computed(def, &mut values);
        let idx = t.records.len();
        let rec = Record { values };
        index(t, def, &rec, idx);
        t.by_id.insert(id, idx);
        t.records.push(rec);
        if let Some(j) = self.journal.as_mut() {
            j.push(Undo::Inserted { table: object });
        }
        idx
    }

    /// Applies `changes` to record `idx`, touching the audit fields.
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
        unindex(t, def, &old);
        let mut values = old.values.clone();
        for (f, v) in changes {
            if let Some(slot) = values.get_mut(*f) {
                *slot = v.clone();
            }
        }
        let s = def.system;
        let now = FieldValue::DateTime(ctx.now_ms - ctx.now_ms.rem_euclid(1000));
        values[s.last_modified_date] = now.clone();
        values[s.system_modstamp] = now;
        values[s.last_modified_by] = FieldValue::Text(ctx.user_id.to_owned());
        apply_computed(def, &mut values);
        let rec = Record { values };
        index(t, def, &rec, idx);
        if let Some(slot) = t.records.get_mut(idx) {
            *slot = rec;
        }
        if let Some(j) = self.journal.as_mut() {
            j.push(Undo::Updated { table: object, idx, old });
        }
    }
}

fn index(t: &mut Table, def: &ObjectDef, rec: &Record, idx: usize) {
    for f in def.unique_fields() {
        let cs = def.fields.get(f).is_some_and(|d| d.case_sensitive);
        if let Some(key) = unique_key(rec.get(f), cs) {
            t.unique.entry(f).or_default().insert(key, idx);
        }
    }
}

fn unindex(t: &mut Table, def: &ObjectDef, rec: &Record) {
    for f in def.unique_fields() {
        let cs = def.fields.get(f).is_some_and(|d| d.case_sensitive);
        if let Some(key) = unique_key(rec.get(f), cs) {
            if let Some(m) = t.unique.get_mut(&f) {
                m.remove(&key);
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
        }
    }
}
