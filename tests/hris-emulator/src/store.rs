//! Employees and groups in Merge's unified HRIS shape, the `(modified_at, id)`
//! order, and keyset paging with opaque cursors.
//!
//! Every change the emulator makes (an upsert without `modified_at`, a patch,
//! a delete) is stamped with the emulator clock, but strictly after every
//! `modified_at` held: a changed employee moves to the end of the order, so a
//! cursor (a position in that order) never skips it and never serves the same
//! version twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::Base;
use crate::prng::SplitMix64;

/// `employment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EmploymentStatus {
    Active,
    Pending,
    Inactive,
}

/// One employee as `GET /api/hris/v1/employees` renders it. Fields beyond
/// these given to the admin endpoints are kept and rendered after them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Employee {
    pub id: String,
    #[serde(default)]
    pub remote_id: Option<String>,
    #[serde(default)]
    pub employee_number: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub display_full_name: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub work_email: Option<String>,
    #[serde(default)]
    pub personal_email: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub employment_status: Option<EmploymentStatus>,
    /// RFC 3339.
    #[serde(default)]
    pub start_date: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub termination_date: Option<String>,
    #[serde(default)]
    pub remote_was_deleted: bool,
    /// Unix milliseconds; rendered `2026-05-12T10:00:00.000Z`.
    #[serde(with = "ms_rfc3339")]
    pub modified_at: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Employee {
    /// Checks what serde cannot: a non-empty id, RFC 3339 dates.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() {
            return Err("id must be a non-empty string".to_owned());
        }
        for (name, v) in [("start_date", &self.start_date), ("termination_date", &self.termination_date)] {
            if let Some(s) = v
                && parse_rfc3339(s).is_none()
            {
                return Err(format!("{name} must be an RFC 3339 timestamp or null"));
            }
        }
        Ok(())
    }
}

/// One group as `GET /api/hris/v1/groups` renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    #[serde(default)]
    pub remote_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `TEAM`, `DEPARTMENT`, `COST_CENTER`, `BUSINESS_UNIT`, `GROUP`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// `modified_at` as RFC 3339 with milliseconds, UTC `Z`.
pub mod ms_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339_ms(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom("modified_at must be an RFC 3339 timestamp"))
    }
}

/// `2026-05-12T10:00:00.000Z`.
pub use lms_emulator::data::rfc3339_ms;

/// An RFC 3339 timestamp in Unix milliseconds (rounded down).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// A uuid-like id (version 4 layout) from two random words, as ASCII.
pub fn uuid_bytes(g: &mut SplitMix64) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let a = g.next_u64();
    let b = g.next_u64();
    // 32 hex digits: a's 16, then b's 16 with the version and variant set.
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let digits = (((u128::from(a) << 64) | u128::from(b)) & !(0xf_u128 << 76)) | (0x4_u128 << 76);
    let mut out = [b'-'; 36];
    let mut d = 0;
    for (pos, slot) in out.iter_mut().enumerate() {
        if matches!(pos, 8 | 13 | 18 | 23) {
            continue;
        }
        *slot = HEX[((digits >> (124 - 4 * d)) & 0xf) as usize];
        d += 1;
    }
    out
}

/// [`uuid_bytes`] as a string.
pub fn uuid_like(g: &mut SplitMix64) -> String {
    String::from_utf8_lossy(&uuid_bytes(g)).into_owned()
}

// ------------------------------------------------------------------ cursors

/// A key of the order: `(modified_at ms, id)`; groups use `(0, id)`.
pub type Key = (i64, String);

/// Which list a cursor pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Employees,
    Groups,
}

/// Which way a cursor pages from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The items after the key (`next`).
    After,
    /// The items before the key (`previous`).
    Before,
}

/// What a cursor carries: the list, the direction, the filter of the first
/// page (`modified_after`, exclusive) and the position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub list: ListKind,
    pub direction: Direction,
    pub modified_after: Option<i64>,
    pub key: Key,
}

const CURSOR_VERSION: &str = "h1";

impl Cursor {
    /// Opaque text: base64url of `h1|e|a|<modified_after>|<ms>|<id>`.
    pub fn encode(&self) -> String {
        let list = match self.list {
            ListKind::Employees => "e",
            ListKind::Groups => "g",
        };
        let dir = match self.direction {
            Direction::After => "a",
            Direction::Before => "b",
        };
        let after = self.modified_after.map(|m| m.to_string()).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}|{list}|{dir}|{after}|{}|{}", self.key.0, self.key.1))
    }

    /// `None`: not a cursor this emulator made.
    pub fn decode(s: &str) -> Option<Cursor> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?).ok()?;
        let mut parts = raw.splitn(6, '|');
        if parts.next()? != CURSOR_VERSION {
            return None;
        }
        let list = match parts.next()? {
            "e" => ListKind::Employees,
            "g" => ListKind::Groups,
            _ => return None,
        };
        let direction = match parts.next()? {
            "a" => Direction::After,
            "b" => Direction::Before,
            _ => return None,
        };
        let modified_after = match parts.next()? {
            "" => None,
            m => Some(m.parse().ok()?),
        };
        let ms = parts.next()?.parse().ok()?;
        let id = parts.next()?.to_owned();
        if id.is_empty() {
            return None;
        }
        Some(Cursor { list, direction, modified_after, key: (ms, id) })
    }
}

/// Keys of one page, and the cursors around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageKeys {
    pub keys: Vec<Key>,
    pub next: Option<Cursor>,
    pub previous: Option<Cursor>,
}

/// Keys in ascending order from a lower bound.
type Forward<'s> = dyn Fn(Bound<&Key>) -> Box<dyn Iterator<Item = Key> + 's> + 's;
/// Keys in descending order strictly below a key.
type Backward<'s> = dyn Fn(&Key) -> Box<dyn Iterator<Item = Key> + 's> + 's;

/// One page of an ordered list: the first page of the keys after
/// `modified_after` (ms, exclusive), or the page a cursor points at (its own
/// filter applies).
pub fn page(
    forward: &Forward<'_>,
    backward: &Backward<'_>,
    list: ListKind,
    modified_after: Option<i64>,
    cursor: Option<&Cursor>,
    size: usize,
) -> PageKeys {
    let filter = cursor.map_or(modified_after, |c| c.modified_after);
    // `modified_at > filter` is `modified_at >= filter + 1` in milliseconds.
    let floor: Option<Key> = filter.map(|f| (f.saturating_add(1), String::new()));
    let above_floor = |k: &Key| floor.as_ref().is_none_or(|f| k >= f);
    let size = size.max(1);
    let (keys, more_before, more_after) = match cursor {
        Some(c) if c.direction == Direction::Before => {
            let mut keys: Vec<Key> = backward(&c.key).take_while(|k| above_floor(k)).take(size + 1).collect();
            let more_before = keys.len() > size;
            keys.truncate(size);
            keys.reverse();
            let more_after = keys.last().is_some_and(|last| forward(Bound::Excluded(last)).next().is_some());
            (keys, more_before, more_after)
        }
        _ => {
            let lower = match (cursor, &floor) {
                (Some(c), _) if above_floor(&c.key) => Bound::Excluded(&c.key),
                (_, Some(f)) => Bound::Included(f),
                (_, None) => Bound::Unbounded,
            };
            let mut keys: Vec<Key> = forward(lower).take(size + 1).collect();
            let more_after = keys.len() > size;
            keys.truncate(size);
            let more_before = keys.first().is_some_and(|first| backward(first).next().is_some_and(|k| above_floor(&k)));
            (keys, more_before, more_after)
        }
    };
    let at =
        |direction, key: Option<&Key>| key.map(|k| Cursor { list, direction, modified_after: filter, key: k.clone() });
    PageKeys {
        next: if more_after { at(Direction::After, keys.last()) } else { None },
        previous: if more_before { at(Direction::Before, keys.first()) } else { None },
        keys,
    }
}

/// Two ordered key sequences as one (no key is in both).
struct Merge<A: Iterator<Item = Key>, B: Iterator<Item = Key>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
    descending: bool,
}

impl<A: Iterator<Item = Key>, B: Iterator<Item = Key>> Iterator for Merge<A, B> {
    type Item = Key;

    fn next(&mut self) -> Option<Key> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) => (x < y) != self.descending,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if take_a { self.a.next() } else { self.b.next() }
    }
}

// -------------------------------------------------------------------- store

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    NotFound,
    Invalid(String),
}

/// Every employee and group: the generated data set (compact, rendered on
/// demand) under the employees created or changed since (kept whole).
#[derive(Debug, Default)]
pub struct Store {
    base: Base,
    /// Employees created or changed: they hide the generated one of their id.
    overlay: HashMap<String, Employee>,
    /// Keys of the overlay.
    tail: BTreeSet<Key>,
    groups: BTreeMap<String, Group>,
    group_order: BTreeSet<Key>,
    /// The latest `modified_at` held or given (changes are stamped after it).
    last_stamp: i64,
    /// Ids generated so far for employees and groups given without one.
    minted: u64,
}

const KIND_MINTED: u64 = 0x4D49_4E54;

impl Store {
    /// A store over a generated data set and its groups.
    pub fn new(base: Base, groups: Vec<Group>) -> Store {
        let mut store = Store { last_stamp: base.max_modified_at().unwrap_or(i64::MIN), base, ..Store::default() };
        for g in groups {
            store.put_group(g);
        }
        store
    }

    /// A store holding these, each with its own `modified_at`.
    pub fn from_parts(employees: Vec<Employee>, groups: Vec<Group>) -> Store {
        let mut store = Store::new(Base::default(), groups);
        for e in employees {
            store.put_employee(e, true, 0);
        }
        store
    }

    pub fn employee_count(&self) -> usize {
        self.base.len() + self.overlay.keys().filter(|id| self.base.find(id).is_none()).count()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn employee(&self, id: &str) -> Option<Employee> {
        match self.overlay.get(id) {
            Some(e) => Some(e.clone()),
            None => self.base.find(id).and_then(|i| self.base.employee(i)),
        }
    }

    /// The latest `modified_at` held (None: no employee).
    pub fn max_modified_at(&self) -> Option<i64> {
        let tail = self.tail.last().map(|k| k.0);
        let base = self.base.order.iter().rev().find_map(|i| {
            let row = self.base.row(*i)?;
            (!self.overlay.contains_key(row.id_str())).then_some(row.modified_at)
        });
        tail.max(base)
    }

    /// The time of a change: `now_ms`, but strictly after every `modified_at`
    /// held or stamped before.
    fn stamp(&mut self, now_ms: i64) -> i64 {
        let t = now_ms.max(self.last_stamp.saturating_add(1));
        self.last_stamp = t;
        t
    }

    /// A fresh uuid-like id, not in use.
    pub fn mint_id(&mut self) -> String {
        loop {
            self.minted += 1;
            let id = uuid_like(&mut SplitMix64::for_entity(0, KIND_MINTED, self.minted));
            if !self.overlay.contains_key(&id) && self.base.find(&id).is_none() && !self.groups.contains_key(&id) {
                return id;
            }
        }
    }

    /// Adds or replaces an employee (by id). Without `explicit_modified_at`
    /// it is stamped with the clock (and moves to the end of the order).
    pub fn put_employee(&mut self, mut e: Employee, explicit_modified_at: bool, now_ms: i64) -> Employee {
        if explicit_modified_at {
            self.last_stamp = self.last_stamp.max(e.modified_at);
        } else {
            e.modified_at = self.stamp(now_ms);
        }
        if let Some(old) = self.overlay.get(&e.id) {
            self.tail.remove(&(old.modified_at, e.id.clone()));
        }
        self.tail.insert((e.modified_at, e.id.clone()));
        self.overlay.insert(e.id.clone(), e.clone());
        e
    }

    /// Merges `patch` (top-level fields) into employee `id`; restamps it
    /// unless the patch gives `modified_at`.
    pub fn patch_employee(
        &mut self,
        id: &str,
        patch: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<Employee, ChangeError> {
        let current = self.employee(id).ok_or(ChangeError::NotFound)?;
        if let Some(v) = patch.get("id")
            && v.as_str() != Some(id)
        {
            return Err(ChangeError::Invalid("id cannot be changed".to_owned()));
        }
        let Ok(Value::Object(mut merged)) = serde_json::to_value(&current) else {
            return Err(ChangeError::Invalid("the employee cannot be rendered".to_owned()));
        };
        for (k, v) in patch {
            merged.insert(k.clone(), v.clone());
        }
        let explicit = patch.contains_key("modified_at");
        let e: Employee = serde_json::from_value(Value::Object(merged))
            .map_err(|e| ChangeError::Invalid(format!("invalid employee: {e}")))?;
        e.validate().map_err(ChangeError::Invalid)?;
        Ok(self.put_employee(e, explicit, now_ms))
    }

    /// Marks employee `id` deleted in the source system and restamps it.
    pub fn delete_employee(&mut self, id: &str, now_ms: i64) -> Result<Employee, ChangeError> {
        let mut e = self.employee(id).ok_or(ChangeError::NotFound)?;
        e.remote_was_deleted = true;
        Ok(self.put_employee(e, false, now_ms))
    }

    /// Adds or replaces a group (by id).
    pub fn put_group(&mut self, g: Group) -> Group {
        self.group_order.insert((0, g.id.clone()));
        self.groups.insert(g.id.clone(), g.clone());
        g
    }

    /// Generated keys (not hidden by the overlay) from a lower bound, ascending.
    fn base_forward(&self, lower: Bound<&Key>) -> impl Iterator<Item = Key> + '_ {
        let b = &self.base;
        let start = match lower {
            Bound::Unbounded => 0,
            Bound::Included(k) => b.order.partition_point(|i| b.key(*i) < (k.0, k.1.as_bytes())),
            Bound::Excluded(k) => b.order.partition_point(|i| b.key(*i) <= (k.0, k.1.as_bytes())),
        };
        b.order.get(start..).unwrap_or_default().iter().filter_map(move |i| self.visible_base_key(*i))
    }

    /// Generated keys (not hidden) strictly below `upper`, descending.
    fn base_backward(&self, upper: &Key) -> impl Iterator<Item = Key> + '_ {
        let b = &self.base;
        let end = b.order.partition_point(|i| b.key(*i) < (upper.0, upper.1.as_bytes()));
        b.order.get(..end).unwrap_or_default().iter().rev().filter_map(move |i| self.visible_base_key(*i))
    }

    fn visible_base_key(&self, i: u32) -> Option<Key> {
        let row = self.base.row(i)?;
        let id = row.id_str();
        (!self.overlay.contains_key(id)).then(|| (row.modified_at, id.to_owned()))
    }

    /// One page of employees with its cursors.
    pub fn employees_page(
        &self,
        modified_after: Option<i64>,
        cursor: Option<&Cursor>,
        size: usize,
    ) -> (Vec<Employee>, PageKeys) {
        let forward = |lower: Bound<&Key>| -> Box<dyn Iterator<Item = Key> + '_> {
            Box::new(Merge {
                a: self.base_forward(lower).peekable(),
                b: self.tail.range((lower.cloned(), Bound::Unbounded)).cloned().peekable(),
                descending: false,
            })
        };
        let backward = |upper: &Key| -> Box<dyn Iterator<Item = Key> + '_> {
            Box::new(Merge {
                a: self.base_backward(upper).peekable(),
                b: self.tail.range((Bound::Unbounded, Bound::Excluded(upper.clone()))).rev().cloned().peekable(),
                descending: true,
            })
        };
        let keys = page(&forward, &backward, ListKind::Employees, modified_after, cursor, size);
        let items = keys.keys.iter().filter_map(|(_, id)| self.employee(id)).collect();
        (items, keys)
    }

    /// One page of groups (by id) with its cursors.
    pub fn groups_page(&self, cursor: Option<&Cursor>, size: usize) -> (Vec<&Group>, PageKeys) {
        let forward = |lower: Bound<&Key>| -> Box<dyn Iterator<Item = Key> + '_> {
            Box::new(self.group_order.range((lower.cloned(), Bound::Unbounded)).cloned())
        };
        let backward = |upper: &Key| -> Box<dyn Iterator<Item = Key> + '_> {
            Box::new(self.group_order.range((Bound::Unbounded, Bound::Excluded(upper.clone()))).rev().cloned())
        };
        let keys = page(&forward, &backward, ListKind::Groups, None, cursor, size);
        let items = keys.keys.iter().filter_map(|(_, id)| self.groups.get(id)).collect();
        (items, keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn employee(id: &str, ms: i64) -> Employee {
        serde_json::from_value(serde_json::json!({"id": id, "modified_at": rfc3339_ms(ms)})).unwrap()
    }

    fn ids(items: &[Employee]) -> Vec<String> {
        items.iter().map(|e| e.id.clone()).collect()
    }

    #[test]
    fn timestamps_round_trip() {
        let t = parse_rfc3339("2026-05-12T10:00:00.123Z").unwrap();
        assert_eq!(rfc3339_ms(t), "2026-05-12T10:00:00.123Z");
        assert_eq!(parse_rfc3339("2026-05-12T12:00:00.123+02:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-05-12T10:00:00.1239Z"), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            list: ListKind::Employees,
            direction: Direction::Before,
            modified_after: Some(-5),
            key: (1_767_225_600_000, "a|b c".to_owned()),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c.clone()));
        let g = Cursor { list: ListKind::Groups, direction: Direction::After, modified_after: None, ..c };
        assert_eq!(Cursor::decode(&g.encode()), Some(g));
        for bad in ["", "zz", "!!!", &URL_SAFE_NO_PAD.encode("h2|e|a||1|x"), &URL_SAFE_NO_PAD.encode("h1|e|a||1|")] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn pages_walk_forward_and_back_with_ties_broken_by_id() {
        let mut s = Store::from_parts(
            vec![employee("b", 10), employee("a", 10), employee("c", 5), employee("d", 20), employee("e", 30)],
            vec![],
        );
        let (p1, k1) = s.employees_page(None, None, 2);
        assert_eq!(ids(&p1), ["c", "a"]);
        assert!(k1.previous.is_none());
        let (p2, k2) = s.employees_page(None, k1.next.as_ref(), 2);
        assert_eq!(ids(&p2), ["b", "d"]);
        let (back, kb) = s.employees_page(None, k2.previous.as_ref(), 2);
        assert_eq!(ids(&back), ["c", "a"]);
        assert!(kb.previous.is_none() && kb.next.is_some());
        // Exclusive filter, carried by the cursor.
        let (f1, kf) = s.employees_page(Some(10), None, 1);
        assert_eq!(ids(&f1), ["d"]);
        assert!(kf.previous.is_none());
        s.put_employee(employee("c", 0), false, 0);
        let (f2, kf2) = s.employees_page(None, kf.next.as_ref(), 5);
        assert_eq!(ids(&f2), ["e", "c"]);
        assert!(kf2.next.is_none());
        assert_eq!(s.employee("c").unwrap().modified_at, 31);
    }
}
