//! In-memory fake of the unified HRIS API with the client's semantics (and the
//! HRIS emulator's): employees in pages ordered by `(modified_at, id)`,
//! `modified_after` exclusive, an opaque cursor carrying the position and the
//! filter, so paging never skips nor repeats while employees change (a change
//! stamps `modified_at` after every other: the employee moves to the end);
//! `page_size` clamped to 1..=100 as the client does. Counts calls, records
//! what was asked, and plays outages and wrong credentials.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use learnlink_core::ports::{EmployeePage, HrisApi, HrisConnection};
use learnlink_core::{ErrorClass, PortError};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use super::{MAX_PAGE_SIZE, Throttled};

/// One call of [`HrisApi::employees_page`], as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployeeRequest {
    pub modified_after: Option<String>,
    pub cursor: Option<String>,
    pub page_size: u32,
}

type Key = (i64, String);

#[derive(Default)]
struct Inner {
    /// id → (modified_at ms, the employee as stored).
    employees: HashMap<String, (i64, Map<String, Value>)>,
    order: BTreeSet<Key>,
    groups: BTreeMap<String, String>,
    /// The latest `modified_at` held or stamped.
    last_stamp: Option<i64>,
    /// When set, only this API key and account token are accepted.
    credentials: Option<(String, String)>,
    /// When set, every call fails with this class.
    outage: Option<ErrorClass>,
    /// The next calls fail with these classes, one each.
    fail_next: VecDeque<ErrorClass>,
    employee_calls: usize,
    group_calls: usize,
    requests: Vec<EmployeeRequest>,
}

/// The fake HRIS.
#[derive(Default)]
pub struct MemoryHris {
    inner: Mutex<Inner>,
}

const EMPLOYEES: &str = "GET /api/hris/v1/employees";
const GROUPS: &str = "GET /api/hris/v1/groups";
const CURSOR_VERSION: &str = "mem1";

fn invalid(message: impl Into<String>) -> PortError {
    PortError::permanent(message)
}

fn parse_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// `2026-05-12T10:00:00.000Z`.
fn render_ms(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn encode_cursor(filter: Option<i64>, key: &Key) -> String {
    let filter = filter.map(|f| f.to_string()).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}|{filter}|{}|{}", key.0, key.1))
}

fn decode_cursor(s: &str) -> Option<(Option<i64>, Key)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let mut parts = raw.splitn(4, '|');
    if parts.next()? != CURSOR_VERSION {
        return None;
    }
    let filter = match parts.next()? {
        "" => None,
        f => Some(f.parse().ok()?),
    };
    let ms = parts.next()?.parse().ok()?;
    let id = parts.next()?.to_string();
    Some((filter, (ms, id)))
}

impl Inner {
    /// `now`, but strictly after every `modified_at` held or stamped.
    fn stamp(&mut self) -> i64 {
        let now = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let t = self.last_stamp.map_or(now, |l| now.max(l.saturating_add(1)));
        self.last_stamp = Some(t);
        t
    }

    /// Stores `e` (an object with a string `id`, else one is made): its
    /// `modified_at` when `explicit`, else a fresh stamp.
    fn put(&mut self, mut e: Map<String, Value>, explicit: bool) -> Result<Map<String, Value>, PortError> {
        let id = match e.get("id") {
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                e.insert("id".into(), Value::String(id.clone()));
                id
            }
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(_) => return Err(invalid("an HRIS employee's id must be a non-empty string")),
        };
        let ms = if explicit {
            let ms = e
                .get("modified_at")
                .and_then(Value::as_str)
                .and_then(parse_ms)
                .ok_or_else(|| invalid(format!("employee {id}: modified_at must be an RFC 3339 timestamp")))?;
            self.last_stamp = Some(self.last_stamp.map_or(ms, |l| l.max(ms)));
            ms
        } else {
            let ms = self.stamp();
            e.insert("modified_at".into(), Value::String(render_ms(ms)));
            ms
        };
        if let Some((old, _)) = self.employees.get(&id) {
            self.order.remove(&(*old, id.clone()));
        }
        self.order.insert((ms, id.clone()));
        self.employees.insert(id, (ms, e.clone()));
        Ok(e)
    }

    fn check(&mut self, hris: &HrisConnection, what: &str) -> Result<(), PortError> {
        let class = match self.fail_next.pop_front() {
            Some(c) => Some(c),
            None => self.outage,
        };
        if let Some(class) = class {
            let mut e = PortError::new(class, format!("HRIS {}: {what}: scripted outage ({class})", hris.base_url));
            if class == ErrorClass::Throttled {
                e = e.with_source(Throttled { retry_after: Some(Duration::from_secs(1)) });
            }
            return Err(e);
        }
        match &self.credentials {
            Some((key, token))
                if key != hris.api_key.expose_secret() || token != hris.account_token.expose_secret() =>
            {
                Err(PortError::permanent(format!(
                    "HRIS {}: {what} answered 401 Unauthorized (check the HRIS API key and account token \
                     configured for this tenant)",
                    hris.base_url
                )))
            }
            _ => Ok(()),
        }
    }

    fn page(
        &self,
        hris: &HrisConnection,
        modified_after: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<EmployeePage, PortError> {
        let bad = |param: &str, why: &str| {
            PortError::permanent(format!("HRIS {}: {EMPLOYEES} answered 400 Bad Request: {param} {why}", hris.base_url))
        };
        let (filter, after) = match cursor {
            Some(c) => {
                let (filter, key) =
                    decode_cursor(c).ok_or_else(|| bad("cursor", "is not a cursor this list returned"))?;
                (filter, Some(key))
            }
            None => match modified_after {
                Some(m) => {
                    (Some(parse_ms(m).ok_or_else(|| bad("modified_after", "must be an RFC 3339 timestamp"))?), None)
                }
                None => (None, None),
            },
        };
        let floor: Option<Key> = filter.map(|f| (f.saturating_add(1), String::new()));
        let lower = match (after, floor) {
            (Some(a), Some(f)) if a < f => Bound::Included(f),
            (Some(a), _) => Bound::Excluded(a),
            (None, Some(f)) => Bound::Included(f),
            (None, None) => Bound::Unbounded,
        };
        let size = page_size.clamp(1, MAX_PAGE_SIZE) as usize;
        let mut range = self.order.range((lower, Bound::Unbounded));
        let keys: Vec<&Key> = range.by_ref().take(size).collect();
        let more = range.next().is_some();
        let results = keys.iter().filter_map(|(_, id)| self.employees.get(id).map(|(_, e)| e.clone())).collect();
        let next = match keys.last() {
            Some(last) if more => Some(encode_cursor(filter, last)),
            _ => None,
        };
        Ok(EmployeePage { results, next })
    }
}

impl MemoryHris {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces an employee (by `id`; none: a uuid is made). Without
    /// `modified_at` it is stamped now, after every other (it moves to the end
    /// of the order). Returns it as stored.
    pub fn put_employee(&self, employee: Value) -> Result<Map<String, Value>, PortError> {
        let Value::Object(e) = employee else {
            return Err(invalid("an HRIS employee must be a JSON object"));
        };
        let explicit = e.contains_key("modified_at");
        self.lock().put(e, explicit)
    }

    /// [`MemoryHris::put_employee`] for each, in order.
    pub fn put_employees(
        &self,
        employees: impl IntoIterator<Item = Value>,
    ) -> Result<Vec<Map<String, Value>>, PortError> {
        employees.into_iter().map(|e| self.put_employee(e)).collect()
    }

    /// Merges `fields` into employee `id` and restamps it (unless `fields`
    /// gives `modified_at`). Returns it as stored.
    pub fn update_employee(&self, id: &str, fields: Value) -> Result<Map<String, Value>, PortError> {
        let Value::Object(fields) = fields else {
            return Err(invalid("the fields must be a JSON object"));
        };
        if fields.get("id").is_some_and(|v| v.as_str() != Some(id)) {
            return Err(invalid("an HRIS employee's id cannot change"));
        }
        let mut g = self.lock();
        let (_, current) = g.employees.get(id).ok_or_else(|| invalid(format!("no HRIS employee {id}")))?;
        let mut merged = current.clone();
        let explicit = fields.contains_key("modified_at");
        merged.extend(fields);
        g.put(merged, explicit)
    }

    /// Marks employee `id` `remote_was_deleted: true` and restamps it.
    pub fn delete_employee(&self, id: &str) -> Result<Map<String, Value>, PortError> {
        self.update_employee(id, serde_json::json!({ "remote_was_deleted": true }))
    }

    pub fn employee(&self, id: &str) -> Option<Map<String, Value>> {
        self.lock().employees.get(id).map(|(_, e)| e.clone())
    }

    /// Every employee in `(modified_at, id)` order.
    pub fn employees(&self) -> Vec<Map<String, Value>> {
        let g = self.lock();
        g.order.iter().filter_map(|(_, id)| g.employees.get(id).map(|(_, e)| e.clone())).collect()
    }

    /// Replaces every group: (id, name).
    pub fn set_groups<I: Into<String>, N: Into<String>>(&self, groups: impl IntoIterator<Item = (I, N)>) {
        self.lock().groups = groups.into_iter().map(|(i, n)| (i.into(), n.into())).collect();
    }

    /// Accept only this API key and account token (`None`: any).
    pub fn require_credentials(&self, credentials: Option<(&str, &str)>) {
        self.lock().credentials = credentials.map(|(k, t)| (k.to_string(), t.to_string()));
    }

    /// Every call fails with this class (`None`: the outage is over). A
    /// throttled failure carries `Retry-After: 1 s` as the client's does.
    pub fn set_outage(&self, class: Option<ErrorClass>) {
        self.lock().outage = class;
    }

    /// The next `n` calls fail with `class` (before any outage applies).
    pub fn fail_next(&self, n: usize, class: ErrorClass) {
        self.lock().fail_next.extend(std::iter::repeat_n(class, n));
    }

    /// Calls of [`HrisApi::employees_page`] (failed ones included).
    pub fn employee_calls(&self) -> usize {
        self.lock().employee_calls
    }

    /// Calls of [`HrisApi::groups`] (failed ones included).
    pub fn group_calls(&self) -> usize {
        self.lock().group_calls
    }

    /// Every [`HrisApi::employees_page`] call, as asked.
    pub fn employee_requests(&self) -> Vec<EmployeeRequest> {
        self.lock().requests.clone()
    }
}

#[async_trait]
impl HrisApi for MemoryHris {
    async fn employees_page(
        &self,
        hris: &HrisConnection,
        modified_after: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<EmployeePage, PortError> {
        let mut g = self.lock();
        g.employee_calls += 1;
        g.requests.push(EmployeeRequest {
            modified_after: modified_after.map(str::to_string),
            cursor: cursor.map(str::to_string),
            page_size,
        });
        g.check(hris, EMPLOYEES)?;
        g.page(hris, modified_after, cursor, page_size)
    }

    async fn groups(&self, hris: &HrisConnection) -> Result<BTreeMap<String, String>, PortError> {
        let mut g = self.lock();
        g.group_calls += 1;
        g.check(hris, GROUPS)?;
        Ok(g.groups.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hris::retry_after;
    use secrecy::SecretString;
    use serde_json::json;

    fn conn(key: &str, token: &str) -> HrisConnection {
        HrisConnection {
            base_url: "http://hris.test".into(),
            api_key: SecretString::from(key),
            account_token: SecretString::from(token),
        }
    }

    fn ids(page: &EmployeePage) -> Vec<&str> {
        page.results.iter().map(|e| e["id"].as_str().unwrap()).collect()
    }

    #[tokio::test]
    async fn hris_fake_pages_in_order_without_skips_while_employees_change() {
        let hris = MemoryHris::new();
        hris.put_employees([
            json!({"id": "b", "modified_at": "2026-01-01T00:00:00Z"}),
            json!({"id": "a", "modified_at": "2026-01-01T00:00:00Z"}),
            json!({"id": "c", "modified_at": "2025-12-31T00:00:00Z"}),
            json!({"id": "d", "modified_at": "2026-01-02T00:00:00Z"}),
        ])
        .unwrap();
        let c = conn("k", "t");
        let p1 = hris.employees_page(&c, None, None, 2).await.unwrap();
        assert_eq!(ids(&p1), ["c", "a"]);
        // Served "a" changes, unserved "d" changes, "e" is new: all come later.
        hris.update_employee("a", json!({"first_name": "Ada"})).unwrap();
        hris.update_employee("d", json!({"first_name": "Dee"})).unwrap();
        let e = hris.put_employee(json!({"id": "e"})).unwrap();
        assert!(e["modified_at"].as_str().unwrap().ends_with('Z'));
        let mut got = ids(&p1).into_iter().map(str::to_string).collect::<Vec<_>>();
        let mut cursor = p1.next.clone();
        while let Some(cur) = cursor {
            // modified_after is ignored beside a cursor (the cursor has it).
            let p = hris.employees_page(&c, Some("garbage"), Some(&cur), 2).await.unwrap();
            got.extend(ids(&p).into_iter().map(str::to_string));
            cursor = p.next;
        }
        assert_eq!(got, ["c", "a", "b", "a", "d", "e"]);
        assert_eq!(hris.employee("a").unwrap()["first_name"], "Ada");

        // Exclusive filter, carried by the cursor; page_size clamped.
        let p = hris.employees_page(&c, Some("2026-01-01T00:00:00Z"), None, 0).await.unwrap();
        assert_eq!(ids(&p), ["a"]);
        let p = hris.employees_page(&c, None, p.next.as_deref(), 500).await.unwrap();
        assert_eq!(ids(&p), ["d", "e"]);
        assert!(p.next.is_none());
        hris.delete_employee("b").unwrap();
        let all = hris.employees();
        assert_eq!(all.last().unwrap()["remote_was_deleted"], true);
        assert_eq!(hris.employee_calls(), 5);
        assert_eq!(hris.employee_requests()[3].page_size, 0);

        for (after, cursor) in [(Some("yesterday"), None), (None, Some("nope"))] {
            let e = hris.employees_page(&c, after, cursor, 10).await.unwrap_err();
            assert_eq!(e.class, ErrorClass::Permanent);
        }
        assert!(hris.put_employee(json!({"id": 7})).is_err());
        assert!(hris.update_employee("zz", json!({})).is_err());
    }

    #[tokio::test]
    async fn hris_fake_outages_and_wrong_credentials_fail_in_the_taxonomy() {
        let hris = MemoryHris::new();
        hris.set_groups([("g1", "Sales"), ("g2", "Team A")]);
        hris.require_credentials(Some(("key", "tok")));
        for c in [conn("key", "wrong"), conn("wrong", "tok")] {
            let e = hris.groups(&c).await.unwrap_err();
            assert_eq!(e.class, ErrorClass::Permanent);
            assert!(!e.message.contains("wrong"));
        }
        let ok = conn("key", "tok");
        assert_eq!(hris.groups(&ok).await.unwrap().len(), 2);
        hris.fail_next(1, ErrorClass::Throttled);
        let e = hris.employees_page(&ok, None, None, 10).await.unwrap_err();
        assert_eq!((e.class, retry_after(&e)), (ErrorClass::Throttled, Some(Duration::from_secs(1))));
        assert!(hris.employees_page(&ok, None, None, 10).await.unwrap().results.is_empty());
        hris.set_outage(Some(ErrorClass::Retryable));
        assert_eq!(hris.groups(&ok).await.unwrap_err().class, ErrorClass::Retryable);
        hris.set_outage(None);
        assert!(hris.groups(&ok).await.is_ok());
        assert_eq!((hris.group_calls(), hris.employee_calls()), (5, 2));
    }
}
