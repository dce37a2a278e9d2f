//! In-memory fake of the LMS API with the client's semantics: learners by id
//! (unknown ids absent, each at most once, in the order asked), every
//! department; counts calls, and plays outages and a wrong API key.
//!
//! It is also an [`LmsWriter`] over the same learners, with the LMS
//! emulator's semantics: an upsert matches `fields.external_id`, else the
//! email (case-insensitive, among learners without an external id; taken by
//! others only: `failed` with code `conflict`), else creates the learner
//! (ids `L000000`, … not in use); `unchanged` when nothing differs; fields
//! are merged, a `None` department is left as it is; groups are created by
//! name (case-insensitive) and with `remove_missing_groups` the groups not
//! listed are left. Bad items (empty external id or name, an email that is
//! not one, a department not among [`MemoryLms::set_departments`]'s when any
//! were set) fail alone with `invalid_field`.
//!
//! And an [`LmsEnrollments`] over enrollments loaded with
//! [`MemoryLms::add_enrollments`], in `(updated_at, id)` order, with the
//! client's semantics: counts and pages of a window `[since, until)`, `limit`
//! clamped to 1..=1000, an opaque keyset cursor (a page's last `(updated_at,
//! id)`) so enrollments added between pages are neither skipped before the
//! cursor nor repeated; [`MemoryLms::fail_enrollment_reads`] scripts failures.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use learnlink_core::backfill::Window;
use learnlink_core::model::{Department, Enrollment, Learner};
use learnlink_core::ports::{
    DeactivateOutcome, EnrollmentPage, LearnerBatch, LearnerUpsert, LmsApi, LmsConnection, LmsEnrollments, LmsWriter,
    MAX_LEARNERS_PER_BATCH, UpsertOutcome,
};
use learnlink_core::{ErrorClass, PortError};
use secrecy::ExposeSecret;
use time::OffsetDateTime;

use super::MAX_ENROLLMENTS_PER_PAGE;

/// The custom field an import's external id is kept in.
const EXTERNAL_ID: &str = "external_id";

#[derive(Default)]
struct Inner {
    learners: BTreeMap<String, Learner>,
    departments: Vec<Department>,
    /// When set, only this API key is accepted (others: permanent, as a 401).
    api_key: Option<String>,
    /// When set, every call fails with this class.
    outage: Option<ErrorClass>,
    learner_calls: usize,
    department_calls: usize,
    requested_ids: Vec<String>,
    /// When set, every [`LmsWriter`] call fails with this class.
    write_outage: Option<ErrorClass>,
    /// Scripted per-item failures by external id: (code, message).
    item_failures: HashMap<String, (String, String)>,
    /// Lowercase group name → the name as first written.
    groups: BTreeMap<String, String>,
    /// Learner id → lowercase names of its groups.
    memberships: BTreeMap<String, BTreeSet<String>>,
    welcome_emails: Vec<String>,
    upsert_calls: usize,
    upsert_requests: usize,
    deactivate_calls: usize,
    find_calls: usize,
    /// Sorted by `(updated_at, id)`, ids unique.
    enrollments: Vec<Enrollment>,
    /// The next this many [`LmsEnrollments`] calls fail with this class.
    enrollment_failures: Option<(usize, ErrorClass)>,
    enrollment_reads: usize,
}

#[derive(Default)]
pub struct MemoryLms {
    inner: Mutex<Inner>,
}

impl MemoryLms {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces every learner.
    pub fn set_learners(&self, learners: impl IntoIterator<Item = Learner>) {
        self.lock().learners = learners.into_iter().map(|l| (l.id.clone(), l)).collect();
    }

    /// Adds or replaces one learner (by id).
    pub fn put_learner(&self, learner: Learner) {
        self.lock().learners.insert(learner.id.clone(), learner);
    }

    pub fn remove_learner(&self, id: &str) -> Option<Learner> {
        self.lock().learners.remove(id)
    }

    pub fn learner(&self, id: &str) -> Option<Learner> {
        self.lock().learners.get(id).cloned()
    }

    /// Replaces the department tree.
    pub fn set_departments(&self, departments: impl IntoIterator<Item = Department>) {
        self.lock().departments = departments.into_iter().collect();
    }

    /// Accept only this API key (`None`: any key).
    pub fn require_api_key(&self, key: Option<&str>) {
        self.lock().api_key = key.map(str::to_string);
    }

    /// Every call fails with this class (`None`: the outage is over).
    pub fn set_outage(&self, class: Option<ErrorClass>) {
        self.lock().outage = class;
    }

    /// Calls of [`LmsApi::learners`] (failed ones included).
    pub fn learner_calls(&self) -> usize {
        self.lock().learner_calls
    }

    /// Calls of [`LmsApi::departments`] (failed ones included).
    pub fn department_calls(&self) -> usize {
        self.lock().department_calls
    }

    /// Every id asked for, call after call, as asked.
    pub fn requested_ids(&self) -> Vec<String> {
        self.lock().requested_ids.clone()
    }

    /// Every [`LmsWriter`] call fails with this class (`None`: the outage is
    /// over); reads go on working.
    pub fn set_write_outage(&self, class: Option<ErrorClass>) {
        self.lock().write_outage = class;
    }

    /// Upserts of this external id fail with this code and message (as the
    /// LMS refusing the item); the rest of the batch still applies.
    pub fn fail_learner(&self, external_id: &str, code: &str, message: &str) {
        self.lock().item_failures.insert(external_id.to_string(), (code.to_string(), message.to_string()));
    }

    /// Calls of [`LmsWriter::upsert_learners`] (failed ones included).
    pub fn upsert_calls(&self) -> usize {
        self.lock().upsert_calls
    }

    /// Requests those calls would have made (one per
    /// [`MAX_LEARNERS_PER_BATCH`] learners, as the client sends them).
    pub fn upsert_requests(&self) -> usize {
        self.lock().upsert_requests
    }

    /// Calls of [`LmsWriter::deactivate_learners`] (failed ones included).
    pub fn deactivate_calls(&self) -> usize {
        self.lock().deactivate_calls
    }

    /// Calls of [`LmsWriter::find_learners`] (failed ones included).
    pub fn find_calls(&self) -> usize {
        self.lock().find_calls
    }

    /// The learner with this external id (the first by id if several).
    pub fn learner_by_external_id(&self, external_id: &str) -> Option<Learner> {
        self.lock().learners.values().find(|l| has_external_id(l, external_id)).cloned()
    }

    /// The names of the learner's groups, sorted.
    pub fn groups_of(&self, learner_id: &str) -> Vec<String> {
        let g = self.lock();
        let mut names: Vec<String> = g
            .memberships
            .get(learner_id)
            .map(|keys| keys.iter().filter_map(|k| g.groups.get(k).cloned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Every group's name, in lowercase-name order.
    pub fn group_names(&self) -> Vec<String> {
        self.lock().groups.values().cloned().collect()
    }

    /// The learners sent a welcome email (created with
    /// `send_welcome_email`), in order.
    pub fn welcome_emails(&self) -> Vec<String> {
        self.lock().welcome_emails.clone()
    }

    /// Adds enrollments (one with the id of a known one replaces it), kept
    /// in `(updated_at, id)` order.
    pub fn add_enrollments(&self, enrollments: impl IntoIterator<Item = Enrollment>) {
        let mut g = self.lock();
        let by_id: BTreeMap<String, Enrollment> =
            std::mem::take(&mut g.enrollments).into_iter().chain(enrollments).map(|e| (e.id.clone(), e)).collect();
        let mut all: Vec<Enrollment> = by_id.into_values().collect();
        all.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
        g.enrollments = all;
    }

    /// Every enrollment, in `(updated_at, id)` order.
    pub fn enrollments(&self) -> Vec<Enrollment> {
        self.lock().enrollments.clone()
    }

    /// The next `n` [`LmsEnrollments`] calls (counts and pages) fail with
    /// this class (`ErrorClass::Retryable`: as a 5xx); `n = 0` clears it.
    pub fn fail_enrollment_reads(&self, n: usize, class: ErrorClass) {
        self.lock().enrollment_failures = (n > 0).then_some((n, class));
    }

    /// Calls of [`LmsEnrollments`] (counts and pages, failed ones included).
    pub fn enrollment_reads(&self) -> usize {
        self.lock().enrollment_reads
    }

    /// One enrollment read: counted, then the scripted failures, the outage
    /// and the key.
    fn check_enrollment_read(inner: &mut Inner, lms: &LmsConnection) -> Result<(), PortError> {
        inner.enrollment_reads += 1;
        if let Some((n, class)) = inner.enrollment_failures {
            inner.enrollment_failures = (n > 1).then_some((n - 1, class));
            return Err(PortError::new(
                class,
                format!("LMS {}: scripted enrollment read failure ({class})", lms.base_url),
            ));
        }
        Self::check(inner, lms)
    }

    fn check_write(inner: &Inner, lms: &LmsConnection) -> Result<(), PortError> {
        Self::check(inner, lms)?;
        match inner.write_outage {
            Some(class) => Err(PortError::new(class, format!("LMS {}: scripted write outage ({class})", lms.base_url))),
            None => Ok(()),
        }
    }

    fn check(inner: &Inner, lms: &LmsConnection) -> Result<(), PortError> {
        if let Some(class) = inner.outage {
            return Err(PortError::new(class, format!("LMS {}: scripted outage ({class})", lms.base_url)));
        }
        match &inner.api_key {
            Some(key) if key != lms.api_key.expose_secret() => Err(PortError::permanent(format!(
                "LMS {}: answered 401 Unauthorized (check the LMS API key configured for this tenant)",
                lms.base_url
            ))),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl LmsApi for MemoryLms {
    async fn learners(&self, lms: &LmsConnection, ids: &[String]) -> Result<Vec<Learner>, PortError> {
        let mut g = self.lock();
        g.learner_calls += 1;
        g.requested_ids.extend(ids.iter().cloned());
        Self::check(&g, lms)?;
        let mut seen = HashSet::new();
        Ok(ids.iter().filter(|id| seen.insert(id.as_str())).filter_map(|id| g.learners.get(id).cloned()).collect())
    }

    async fn departments(&self, lms: &LmsConnection) -> Result<Vec<Department>, PortError> {
        let mut g = self.lock();
        g.department_calls += 1;
        Self::check(&g, lms)?;
        Ok(g.departments.clone())
    }
}

/// The opaque cursor after `e`: its `(updated_at, id)`.
fn enrollment_cursor(e: &Enrollment) -> String {
    format!("m1:{}:{}", e.updated_at.unix_timestamp_nanos(), e.id)
}

fn parse_enrollment_cursor(s: &str) -> Option<(OffsetDateTime, &str)> {
    let (nanos, id) = s.strip_prefix("m1:")?.split_once(':')?;
    Some((OffsetDateTime::from_unix_timestamp_nanos(nanos.parse().ok()?).ok()?, id))
}

#[async_trait]
impl LmsEnrollments for MemoryLms {
    async fn count_enrollments(&self, lms: &LmsConnection, window: &Window) -> Result<u64, PortError> {
        let mut g = self.lock();
        Self::check_enrollment_read(&mut g, lms)?;
        let n = g.enrollments.iter().filter(|e| window.contains(e.updated_at)).count();
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    async fn enrollments_page(
        &self,
        lms: &LmsConnection,
        window: &Window,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<EnrollmentPage, PortError> {
        let mut g = self.lock();
        Self::check_enrollment_read(&mut g, lms)?;
        let all = &g.enrollments;
        let mut start = all.partition_point(|e| e.updated_at < window.since);
        if let Some(c) = cursor.filter(|c| !c.is_empty()) {
            let (at, id) = parse_enrollment_cursor(c).ok_or_else(|| {
                PortError::permanent(format!(
                    "LMS {}: GET /api/v1/enrollments answered 400 Bad Request: cursor is not a cursor this API returned",
                    lms.base_url
                ))
            })?;
            start = start.max(all.partition_point(|e| (e.updated_at, e.id.as_str()) <= (at, id)));
        }
        let stop = all.partition_point(|e| e.updated_at < window.until).max(start);
        let limit = usize::try_from(limit.clamp(1, MAX_ENROLLMENTS_PER_PAGE)).unwrap_or(1);
        let end = start.saturating_add(limit).min(stop);
        let enrollments = all.get(start..end).unwrap_or_default().to_vec();
        let next_cursor = match enrollments.last() {
            Some(last) if end < stop => Some(enrollment_cursor(last)),
            _ => None,
        };
        Ok(EnrollmentPage { enrollments, next_cursor })
    }
}

fn has_external_id(l: &Learner, external_id: &str) -> bool {
    l.fields.get(EXTERNAL_ID).is_some_and(|x| x == external_id)
}

fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
}

/// Why the LMS would refuse the item: (field, message).
fn refusal(inner: &Inner, u: &LearnerUpsert) -> Option<(&'static str, String)> {
    let blank = |v: &str| v.trim().is_empty();
    if blank(&u.external_id) {
        return Some(("external_id", "external_id must not be empty".into()));
    }
    if !plausible_email(u.email.trim()) {
        return Some(("email", "email must be an address like ada@example.com".into()));
    }
    if blank(&u.first_name) {
        return Some(("first_name", "first_name must not be empty".into()));
    }
    if blank(&u.last_name) {
        return Some(("last_name", "last_name must not be empty".into()));
    }
    if let Some(d) = &u.department_id {
        if !inner.departments.is_empty() && !inner.departments.iter().any(|x| &x.id == d) {
            return Some(("department_id", format!("department_id {d:?} is not a department of this LMS")));
        }
    }
    if u.fields.get(EXTERNAL_ID).is_some_and(|x| *x != u.external_id) {
        return Some(("fields.external_id", "fields.external_id is set by the LMS from external_id".into()));
    }
    if u.groups.iter().flatten().any(|g| blank(g)) {
        return Some(("groups", "groups must not be empty".into()));
    }
    None
}

/// The matching indexes of one call, kept in step as it writes.
struct Index {
    by_external_id: HashMap<String, BTreeSet<String>>,
    by_email: HashMap<String, BTreeSet<String>>,
}

impl Index {
    fn of(learners: &BTreeMap<String, Learner>) -> Self {
        let mut index = Index { by_external_id: HashMap::new(), by_email: HashMap::new() };
        for l in learners.values() {
            index.add(l);
        }
        index
    }

    fn add(&mut self, l: &Learner) {
        self.by_email.entry(l.email.to_lowercase()).or_default().insert(l.id.clone());
        if let Some(x) = l.fields.get(EXTERNAL_ID) {
            self.by_external_id.entry(x.clone()).or_default().insert(l.id.clone());
        }
    }

    fn remove(&mut self, l: &Learner) {
        if let Some(ids) = self.by_email.get_mut(&l.email.to_lowercase()) {
            ids.remove(&l.id);
        }
        if let Some(ids) = l.fields.get(EXTERNAL_ID).and_then(|x| self.by_external_id.get_mut(x)) {
            ids.remove(&l.id);
        }
    }

    fn with_external_id(&self, x: &str) -> Option<&String> {
        self.by_external_id.get(x).and_then(|ids| ids.first())
    }
}

impl Inner {
    fn upsert_one(
        &mut self,
        index: &mut Index,
        u: &LearnerUpsert,
        batch: &LearnerBatch,
        now: time::OffsetDateTime,
    ) -> UpsertOutcome {
        if let Some((code, message)) = self.item_failures.get(&u.external_id) {
            return UpsertOutcome::Failed { code: code.clone(), message: message.clone() };
        }
        if let Some((field, message)) = refusal(self, u) {
            return UpsertOutcome::Failed { code: "invalid_field".into(), message: format!("{field}: {message}") };
        }
        let email = u.email.trim().to_string();
        let found = match index.with_external_id(&u.external_id) {
            Some(id) => Some(id.clone()),
            None => {
                let candidates = index.by_email.get(&email.to_lowercase()).cloned().unwrap_or_default();
                let free = candidates
                    .iter()
                    .find(|id| self.learners.get(*id).is_some_and(|l| !l.fields.contains_key(EXTERNAL_ID)));
                match (free, candidates.first()) {
                    (Some(id), _) => Some(id.clone()),
                    (None, Some(taken)) => {
                        return UpsertOutcome::Failed {
                            code: "conflict".into(),
                            message: format!("email {email:?} belongs to learner {taken} with another external_id"),
                        };
                    }
                    (None, None) => None,
                }
            }
        };
        let current = found.and_then(|id| self.learners.get(&id).cloned());
        let created = current.is_none();
        let mut next = current.clone().unwrap_or_else(|| Learner {
            id: self.new_id(),
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            department_id: None,
            fields: BTreeMap::new(),
            active: true,
            updated_at: now,
        });
        next.email = email;
        next.first_name = u.first_name.trim().to_string();
        next.last_name = u.last_name.trim().to_string();
        if let Some(d) = &u.department_id {
            next.department_id = Some(d.clone());
        }
        next.fields.extend(u.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        next.fields.insert(EXTERNAL_ID.to_string(), u.external_id.clone());
        next.active = u.active;
        let memberships_changed = self.set_groups(&next.id, u.groups.as_deref(), batch.remove_missing_groups);
        let id = next.id.clone();
        if let Some(current) = current {
            if current == next && !memberships_changed {
                return UpsertOutcome::Unchanged { id };
            }
            index.remove(&current);
        }
        next.updated_at = now;
        index.add(&next);
        self.learners.insert(id.clone(), next);
        if created {
            if batch.send_welcome_email {
                self.welcome_emails.push(id.clone());
            }
            UpsertOutcome::Created { id }
        } else {
            UpsertOutcome::Updated { id }
        }
    }

    /// An id no learner has.
    fn new_id(&self) -> String {
        (self.learners.len()..)
            .map(|n| format!("L{n:06}"))
            .find(|id| !self.learners.contains_key(id))
            .unwrap_or_default()
    }

    /// Sets the learner's groups (creating them by name): whether any
    /// membership changed.
    fn set_groups(&mut self, learner_id: &str, groups: Option<&[String]>, remove_missing: bool) -> bool {
        let Some(names) = groups else { return false };
        let mut wanted = BTreeSet::new();
        for name in names {
            let name = name.trim();
            let key = name.to_lowercase();
            self.groups.entry(key.clone()).or_insert_with(|| name.to_string());
            wanted.insert(key);
        }
        let current = self.memberships.entry(learner_id.to_string()).or_default();
        let before = current.clone();
        if remove_missing {
            current.retain(|k| wanted.contains(k));
        }
        current.extend(wanted);
        let changed = *current != before;
        if current.is_empty() {
            self.memberships.remove(learner_id);
        }
        changed
    }
}

#[async_trait]
impl LmsWriter for MemoryLms {
    async fn upsert_learners(
        &self,
        lms: &LmsConnection,
        batch: &LearnerBatch,
    ) -> Result<Vec<UpsertOutcome>, PortError> {
        let mut g = self.lock();
        g.upsert_calls += 1;
        Self::check_write(&g, lms)?;
        g.upsert_requests += batch.learners.len().div_ceil(MAX_LEARNERS_PER_BATCH);
        let mut index = Index::of(&g.learners);
        let now = time::OffsetDateTime::now_utc();
        Ok(batch.learners.iter().map(|u| g.upsert_one(&mut index, u, batch, now)).collect())
    }

    async fn deactivate_learners(
        &self,
        lms: &LmsConnection,
        external_ids: &[String],
    ) -> Result<Vec<DeactivateOutcome>, PortError> {
        let mut g = self.lock();
        g.deactivate_calls += 1;
        Self::check_write(&g, lms)?;
        let index = Index::of(&g.learners);
        let now = time::OffsetDateTime::now_utc();
        Ok(external_ids
            .iter()
            .map(|x| match index.with_external_id(x).and_then(|id| g.learners.get_mut(id)) {
                None => DeactivateOutcome::NotFound,
                Some(l) if !l.active => DeactivateOutcome::AlreadyInactive { id: l.id.clone() },
                Some(l) => {
                    l.active = false;
                    l.updated_at = now;
                    DeactivateOutcome::Deactivated { id: l.id.clone() }
                }
            })
            .collect())
    }

    async fn find_learners(
        &self,
        lms: &LmsConnection,
        external_ids: &[String],
        emails: &[String],
    ) -> Result<Vec<Learner>, PortError> {
        let mut g = self.lock();
        g.find_calls += 1;
        Self::check_write(&g, lms)?;
        let index = Index::of(&g.learners);
        let mut seen = HashSet::new();
        let by_id = external_ids.iter().filter_map(|x| index.by_external_id.get(x));
        let by_email = emails.iter().filter_map(|e| index.by_email.get(&e.trim().to_lowercase()));
        Ok(by_id
            .chain(by_email)
            .flatten()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| g.learners.get(id).cloned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn learner(id: &str) -> Learner {
        Learner {
            id: id.into(),
            email: format!("{id}@example.com"),
            first_name: "A".into(),
            last_name: "B".into(),
            department_id: None,
            fields: BTreeMap::new(),
            active: true,
            updated_at: time::macros::datetime!(2026-05-12 10:00 UTC),
        }
    }

    fn conn(key: &str) -> LmsConnection {
        LmsConnection { base_url: "http://lms.test".into(), api_key: SecretString::from(key) }
    }

    #[tokio::test]
    async fn answers_like_the_client() {
        let lms = MemoryLms::new();
        lms.set_learners([learner("L1"), learner("L2"), learner("L3")]);
        lms.set_departments([Department { id: "D1".into(), name: "Sales".into(), parent_id: None }]);
        let ids: Vec<String> = ["L3", "nope", "L1", "L3"].map(String::from).to_vec();
        let got = lms.learners(&conn("k"), &ids).await.unwrap();
        assert_eq!(got.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["L3", "L1"]);
        assert_eq!(lms.departments(&conn("k")).await.unwrap().len(), 1);
        assert_eq!((lms.learner_calls(), lms.department_calls()), (1, 1));
        assert_eq!(lms.requested_ids(), ids);
        lms.put_learner(Learner { active: false, ..learner("L1") });
        assert!(!lms.learner("L1").unwrap().active);
        assert!(lms.remove_learner("L2").is_some());
    }

    #[tokio::test]
    async fn outages_and_a_wrong_key_fail_in_the_taxonomy() {
        let lms = MemoryLms::new();
        lms.require_api_key(Some("right"));
        let e = lms.departments(&conn("wrong")).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(!e.message.contains("wrong"));
        assert!(lms.departments(&conn("right")).await.is_ok());
        lms.set_outage(Some(ErrorClass::Throttled));
        assert_eq!(lms.learners(&conn("right"), &[]).await.unwrap_err().class, ErrorClass::Throttled);
        lms.set_outage(None);
        assert!(lms.learners(&conn("right"), &[]).await.unwrap().is_empty());
        assert_eq!(lms.learner_calls(), 2);
    }
}
