//! In-memory fake of the state table adapters, same semantics.

use async_trait::async_trait;
use learnlink_core::PortError;
use learnlink_core::activity::{ActivityEntry, ActivityFilter, ActivityPage, RunSummary};
use learnlink_core::backfill::coverage::Coverage;
use learnlink_core::backfill::{Backfill, Shard};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{
    ActivityLog, Claim, ConfigStore, ConnectionStore, DedupeStore, LearnerLink, LinkStore, OAuthStateStore, ParkStore,
    PendingAuth, PutConfigError, ReviewItem, ReviewStore, StoredConfig,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use time::OffsetDateTime;

/// A learner in the review queue: the item and its held jobs by key.
type Queued = (ReviewItem, BTreeMap<String, String>);
/// A backfill's key: tenant and id.
type BackfillKey = (TenantId, String);
/// A lease grant: holder, expiry, fencing counter.
type Grant = (String, OffsetDateTime, u64);
/// A shard's key: tenant, backfill id and index.
type ShardKey = (TenantId, String, u32);

#[derive(Default)]
pub struct MemoryState {
    connections: Mutex<HashMap<TenantId, learnlink_core::connection::ConnectionState>>,
    /// Tenant leases (holder, expiry, fence) by tenant and name (`refresh`, `write`).
    named_leases: Mutex<HashMap<(TenantId, String), Grant>>,
    /// Grants of named leases, in order: (tenant, name, holder, fence).
    lease_grants: Mutex<Vec<(TenantId, String, String, u64)>>,
    parked: Mutex<HashMap<TenantId, BTreeMap<String, String>>>,
    oauth: Mutex<HashMap<String, PendingAuth>>,
    /// Every version of every tenant's configuration, oldest first.
    configs: Mutex<BTreeMap<TenantId, Vec<StoredConfig>>>,
    /// Remembered event ids and when they expire.
    marks: Mutex<HashMap<String, OffsetDateTime>>,
    /// The review queue: per tenant, per learner, the item and its held jobs by key.
    review: Mutex<HashMap<TenantId, BTreeMap<String, Queued>>>,
    links: Mutex<HashMap<TenantId, HashMap<String, LearnerLink>>>,
    /// Import states and their versions.
    imports: Mutex<
        HashMap<(TenantId, learnlink_core::ports::ImportLane), (learnlink_core::import::engine::ImportState, u64)>,
    >,
    /// Backfills by tenant and id, and their versions.
    backfills: Mutex<BTreeMap<BackfillKey, (Backfill, u64)>>,
    /// Shards by tenant, backfill and index, and their versions.
    shards: Mutex<BTreeMap<ShardKey, (Shard, u64)>>,
    /// The open index: the backfills that are not final.
    open_backfills: Mutex<BTreeSet<BackfillKey>>,
    /// The active pointer (`None`: cleared) and its version.
    active_backfills: Mutex<HashMap<TenantId, (Option<String>, u64)>>,
    coverage: Mutex<HashMap<TenantId, (Coverage, u64)>>,
    /// When set, every call fails with this error (to test failure paths).
    pub fail_with: Mutex<Option<PortError>>,
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    fn check(&self) -> Result<(), PortError> {
        match &*lock(&self.fail_with) {
            Some(e) => Err(PortError::new(e.class, e.message.clone())),
            None => Ok(()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryState {
    /// A pending OAuth authorization, without taking it (tests).
    pub fn peek_state(&self, state: &str) -> Option<PendingAuth> {
        lock(&self.oauth).get(state).cloned()
    }

    /// Store a configuration document directly (test setup).
    pub fn seed_config(&self, tenant: &TenantId, doc: serde_json::Value, now: OffsetDateTime) {
        let mut g = lock(&self.configs);
        let versions = g.entry(tenant.clone()).or_default();
        let created_at = versions.first().map_or(now, |c| c.created_at);
        let version = versions.len() as u64 + 1;
        versions.push(StoredConfig { tenant: tenant.clone(), version, created_at, changed_at: now, doc });
    }
}

#[async_trait]
impl ConfigStore for MemoryState {
    async fn current_config(&self, id: &TenantId) -> Result<Option<StoredConfig>, PortError> {
        self.check()?;
        Ok(lock(&self.configs).get(id).and_then(|v| v.last().cloned()))
    }
    async fn config_version(&self, id: &TenantId, version: u64) -> Result<Option<StoredConfig>, PortError> {
        self.check()?;
        Ok(lock(&self.configs).get(id).and_then(|v| v.iter().find(|c| c.version == version).cloned()))
    }
    async fn config_versions(&self, id: &TenantId) -> Result<Vec<(u64, OffsetDateTime)>, PortError> {
        self.check()?;
        Ok(lock(&self.configs)
            .get(id)
            .map(|v| v.iter().rev().map(|c| (c.version, c.changed_at)).collect())
            .unwrap_or_default())
    }
    async fn put_config(
        &self,
        id: &TenantId,
        expected: Option<u64>,
        doc: &serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<StoredConfig, PutConfigError> {
        self.check()?;
        let mut g = lock(&self.configs);
        let current = g.get(id).and_then(|v| v.last()).map(|c| c.version);
        if current != expected {
            return Err(PutConfigError::Conflict { current });
        }
        let versions = g.entry(id.clone()).or_default();
        let created_at = versions.first().map_or(now, |c| c.created_at);
        let stored = StoredConfig {
            tenant: id.clone(),
            version: expected.unwrap_or(0) + 1,
            created_at,
            changed_at: now,
            doc: doc.clone(),
        };
        versions.push(stored.clone());
        Ok(stored)
    }
    async fn list_configs(&self) -> Result<Vec<StoredConfig>, PortError> {
        self.check()?;
        Ok(lock(&self.configs).values().filter_map(|v| v.last().cloned()).collect())
    }
}

#[async_trait]
impl ConnectionStore for MemoryState {
    async fn connection(&self, t: &TenantId) -> Result<Option<learnlink_core::connection::ConnectionState>, PortError> {
        self.check()?;
        Ok(lock(&self.connections).get(t).cloned())
    }
    async fn put_connection(
        &self,
        t: &TenantId,
        state: &learnlink_core::connection::ConnectionState,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        self.check()?;
        let mut g = lock(&self.connections);
        if g.get(t).map(|c| c.revision) != expected {
            return Ok(false);
        }
        g.insert(t.clone(), state.clone());
        Ok(true)
    }
}

#[async_trait]
impl learnlink_core::ports::TenantLease for MemoryState {
    async fn acquire(
        &self,
        t: &TenantId,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<Option<u64>, PortError> {
        self.check()?;
        let mut g = lock(&self.named_leases);
        let entry =
            g.entry((t.clone(), name.to_string())).or_insert_with(|| (String::new(), OffsetDateTime::UNIX_EPOCH, 0));
        if entry.1 < now || entry.0 == holder {
            entry.0 = holder.to_string();
            entry.1 = now + ttl;
            entry.2 += 1;
            lock(&self.lease_grants).push((t.clone(), name.to_string(), holder.to_string(), entry.2));
            Ok(Some(entry.2))
        } else {
            Ok(None)
        }
    }
    async fn release(&self, t: &TenantId, name: &str, holder: &str) -> Result<(), PortError> {
        let mut g = lock(&self.named_leases);
        if let Some(e) = g.get_mut(&(t.clone(), name.to_string())).filter(|e| e.0 == holder) {
            e.1 = OffsetDateTime::UNIX_EPOCH;
        }
        Ok(())
    }
}

impl MemoryState {
    /// Every grant of a named lease so far: (tenant, name, holder, fence).
    pub fn lease_grants(&self) -> Vec<(TenantId, String, String, u64)> {
        lock(&self.lease_grants).clone()
    }
    /// Who holds lease `name` of `t` at `now`, if anyone.
    pub fn lease_holder(&self, t: &TenantId, name: &str, now: OffsetDateTime) -> Option<String> {
        lock(&self.named_leases).get(&(t.clone(), name.to_string())).filter(|e| e.1 >= now).map(|e| e.0.clone())
    }
}

#[async_trait]
impl ParkStore for MemoryState {
    async fn park(&self, t: &TenantId, jobs: &[(String, String)]) -> Result<(), PortError> {
        self.check()?;
        let mut g = lock(&self.parked);
        let m = g.entry(t.clone()).or_default();
        for (k, v) in jobs {
            m.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    async fn parked(&self, t: &TenantId, limit: usize) -> Result<(Vec<(String, String)>, bool), PortError> {
        self.check()?;
        let g = lock(&self.parked);
        let all: Vec<(String, String)> =
            g.get(t).map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        let more = all.len() > limit;
        Ok((all.into_iter().take(limit).collect(), more))
    }
    async fn unpark(&self, t: &TenantId, keys: &[String]) -> Result<(), PortError> {
        self.check()?;
        if let Some(m) = lock(&self.parked).get_mut(t) {
            for k in keys {
                m.remove(k);
            }
        }
        Ok(())
    }
    async fn parked_count(&self, t: &TenantId) -> Result<u64, PortError> {
        self.check()?;
        Ok(lock(&self.parked).get(t).map_or(0, |m| m.len() as u64))
    }
}

#[async_trait]
impl ReviewStore for MemoryState {
    async fn hold(&self, t: &TenantId, item: &ReviewItem, jobs: &[(String, String)]) -> Result<(), PortError> {
        self.check()?;
        let mut g = lock(&self.review);
        let queue = g.entry(t.clone()).or_default();
        let (stored, held) = queue.entry(item.learner_id.clone()).or_insert_with(|| (item.clone(), BTreeMap::new()));
        let first_seen = stored.first_seen;
        *stored = ReviewItem { first_seen, ..item.clone() };
        for (k, v) in jobs {
            held.insert(k.clone(), v.clone());
        }
        Ok(())
    }
    async fn review_items(
        &self,
        t: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ReviewItem>, Option<String>), PortError> {
        self.check()?;
        let limit = limit.clamp(1, 1000);
        let g = lock(&self.review);
        let mut items: Vec<ReviewItem> = g
            .get(t)
            .into_iter()
            .flatten()
            .filter(|(id, _)| after.is_none_or(|a| id.as_str() > a))
            .take(limit + 1)
            .map(|(_, (item, held))| ReviewItem { held: held.len() as u64, ..item.clone() })
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| i.learner_id.clone())
        } else {
            None
        };
        Ok((items, next))
    }
    async fn review_item(&self, t: &TenantId, learner_id: &str) -> Result<Option<ReviewItem>, PortError> {
        self.check()?;
        Ok(lock(&self.review)
            .get(t)
            .and_then(|q| q.get(learner_id))
            .map(|(item, held)| ReviewItem { held: held.len() as u64, ..item.clone() }))
    }
    async fn held(
        &self,
        t: &TenantId,
        learner_id: &str,
        limit: usize,
    ) -> Result<(Vec<(String, String)>, bool), PortError> {
        self.check()?;
        let limit = limit.clamp(1, 1000);
        let g = lock(&self.review);
        let all: Vec<(String, String)> = g
            .get(t)
            .and_then(|q| q.get(learner_id))
            .map(|(_, held)| held.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let more = all.len() > limit;
        Ok((all.into_iter().take(limit).collect(), more))
    }
    async fn release(&self, t: &TenantId, learner_id: &str, keys: &[String]) -> Result<(), PortError> {
        self.check()?;
        if let Some((_, held)) = lock(&self.review).get_mut(t).and_then(|q| q.get_mut(learner_id)) {
            for k in keys {
                held.remove(k);
            }
        }
        Ok(())
    }
    async fn remove_item(&self, t: &TenantId, learner_id: &str) -> Result<(), PortError> {
        self.check()?;
        let mut g = lock(&self.review);
        let Some(queue) = g.get_mut(t) else { return Ok(()) };
        if queue.get(learner_id).is_some_and(|(_, held)| !held.is_empty()) {
            return Err(PortError::retryable(format!(
                "jobs are still held for learner {learner_id}: release them first"
            )));
        }
        queue.remove(learner_id);
        Ok(())
    }
}

#[async_trait]
impl LinkStore for MemoryState {
    async fn links(&self, t: &TenantId, learner_ids: &[String]) -> Result<HashMap<String, LearnerLink>, PortError> {
        self.check()?;
        let g = lock(&self.links);
        let Some(m) = g.get(t) else { return Ok(HashMap::new()) };
        Ok(learner_ids.iter().filter_map(|id| m.get(id).map(|l| (id.clone(), l.clone()))).collect())
    }
    async fn put_links(&self, t: &TenantId, links: &[LearnerLink]) -> Result<(), PortError> {
        self.check()?;
        let mut g = lock(&self.links);
        let m = g.entry(t.clone()).or_default();
        for l in links {
            m.insert(l.learner_id.clone(), l.clone());
        }
        Ok(())
    }
    async fn forget_links(&self, t: &TenantId, learner_ids: &[String]) -> Result<(), PortError> {
        self.check()?;
        if let Some(m) = lock(&self.links).get_mut(t) {
            for id in learner_ids {
                m.remove(id);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl OAuthStateStore for MemoryState {
    async fn save_state(&self, state: &str, p: &PendingAuth) -> Result<(), PortError> {
        self.check()?;
        lock(&self.oauth).insert(state.to_string(), p.clone());
        Ok(())
    }
    async fn take_state(&self, state: &str, now: OffsetDateTime) -> Result<Option<PendingAuth>, PortError> {
        self.check()?;
        Ok(lock(&self.oauth).remove(state).filter(|p| p.expires_at >= now))
    }
}

/// In-memory activity log: newest first, cursors are offsets.
#[derive(Default)]
pub struct MemoryActivity {
    entries: Mutex<HashMap<TenantId, Vec<ActivityEntry>>>,
    runs: Mutex<HashMap<TenantId, Vec<RunSummary>>>,
}

impl MemoryActivity {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn all(&self, tenant: &TenantId) -> Vec<ActivityEntry> {
        lock(&self.entries).get(tenant).cloned().unwrap_or_default()
    }
}

#[async_trait]
impl ActivityLog for MemoryActivity {
    async fn record(&self, tenant: &TenantId, entries: &[ActivityEntry]) -> Result<(), PortError> {
        lock(&self.entries).entry(tenant.clone()).or_default().extend(entries.iter().cloned());
        Ok(())
    }
    async fn query(
        &self,
        tenant: &TenantId,
        filter: &ActivityFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ActivityPage, PortError> {
        let skip = match cursor {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| PortError::permanent("the cursor is not one this API issued"))?,
        };
        let mut all: Vec<ActivityEntry> =
            lock(&self.entries).get(tenant).into_iter().flatten().filter(|e| filter.matches(e)).cloned().collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.at));
        let limit = limit.clamp(1, 1000);
        let entries: Vec<ActivityEntry> = all.iter().skip(skip).take(limit).cloned().collect();
        let next_cursor = (skip + entries.len() < all.len()).then(|| (skip + entries.len()).to_string());
        Ok(ActivityPage { entries, next_cursor })
    }
    async fn record_run(&self, tenant: &TenantId, run: &RunSummary) -> Result<(), PortError> {
        lock(&self.runs).entry(tenant.clone()).or_default().push(run.clone());
        Ok(())
    }
    async fn runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<RunSummary>, PortError> {
        let mut runs = lock(&self.runs).get(tenant).cloned().unwrap_or_default();
        runs.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        runs.truncate(limit);
        Ok(runs)
    }
}

#[async_trait]
impl DedupeStore for MemoryState {
    async fn seen_many(&self, keys: &[String], now: OffsetDateTime) -> Result<Vec<Claim>, PortError> {
        self.check()?;
        let marks = lock(&self.marks);
        let known = keys.iter().filter(|k| marks.get(*k).is_some_and(|until| *until > now)).cloned().collect();
        Ok(learnlink_core::ports::dedupe_answers(keys, &known))
    }
    async fn remember_many(&self, keys: &[String], now: OffsetDateTime, ttl: time::Duration) -> Result<(), PortError> {
        self.check()?;
        let mut marks = lock(&self.marks);
        for k in keys {
            marks.insert(k.clone(), now + ttl);
        }
        Ok(())
    }
}

#[async_trait]
impl learnlink_core::ports::ImportStore for MemoryState {
    async fn import_state(
        &self,
        tenant: &TenantId,
        lane: learnlink_core::ports::ImportLane,
    ) -> Result<Option<(learnlink_core::import::engine::ImportState, u64)>, PortError> {
        self.check()?;
        Ok(lock(&self.imports).get(&(tenant.clone(), lane)).cloned())
    }

    async fn put_import_state(
        &self,
        tenant: &TenantId,
        lane: learnlink_core::ports::ImportLane,
        state: &learnlink_core::import::engine::ImportState,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        self.check()?;
        let mut g = lock(&self.imports);
        let key = (tenant.clone(), lane);
        let current = g.get(&key).map(|(_, v)| *v);
        if current != expected {
            return Ok(false);
        }
        g.insert(key, (state.clone(), expected.map_or(1, |v| v + 1)));
        Ok(true)
    }
}

/// Whether a versioned write may go: the item's version is the one read
/// (`None`: the item must not exist).
fn version_matches(current: Option<u64>, expected: Option<u64>) -> bool {
    current == expected
}

#[async_trait]
impl learnlink_core::ports::BackfillStore for MemoryState {
    async fn backfill(&self, tenant: &TenantId, id: &str) -> Result<Option<(Backfill, u64)>, PortError> {
        self.check()?;
        Ok(lock(&self.backfills).get(&(tenant.clone(), id.to_string())).cloned())
    }

    async fn put_backfill(&self, backfill: &Backfill, expected: Option<u64>) -> Result<bool, PortError> {
        self.check()?;
        let key = (backfill.tenant.clone(), backfill.id.clone());
        let mut g = lock(&self.backfills);
        if !version_matches(g.get(&key).map(|(_, v)| *v), expected) {
            return Ok(false);
        }
        let mut open = lock(&self.open_backfills);
        if !backfill.is_open() {
            open.remove(&key);
        } else {
            open.insert(key.clone());
        }
        g.insert(key, (backfill.clone(), expected.map_or(1, |v| v + 1)));
        Ok(true)
    }

    async fn list_backfills(&self, tenant: &TenantId, limit: usize) -> Result<Vec<Backfill>, PortError> {
        self.check()?;
        let g = lock(&self.backfills);
        Ok(g.iter().rev().filter(|((t, _), _)| t == tenant).take(limit).map(|(_, (b, _))| b.clone()).collect())
    }

    async fn unfinished_backfills(&self) -> Result<Vec<Backfill>, PortError> {
        self.check()?;
        let open = lock(&self.open_backfills);
        let g = lock(&self.backfills);
        Ok(open.iter().filter_map(|k| g.get(k)).filter(|(b, _)| b.is_open()).map(|(b, _)| b.clone()).collect())
    }

    async fn shard(&self, tenant: &TenantId, backfill_id: &str, index: u32) -> Result<Option<(Shard, u64)>, PortError> {
        self.check()?;
        Ok(lock(&self.shards).get(&(tenant.clone(), backfill_id.to_string(), index)).cloned())
    }

    async fn put_shard(
        &self,
        tenant: &TenantId,
        backfill_id: &str,
        shard: &Shard,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        self.check()?;
        let key = (tenant.clone(), backfill_id.to_string(), shard.index);
        let mut g = lock(&self.shards);
        if !version_matches(g.get(&key).map(|(_, v)| *v), expected) {
            return Ok(false);
        }
        g.insert(key, (shard.clone(), expected.map_or(1, |v| v + 1)));
        Ok(true)
    }

    /// As DynamoDB's batch writes: unconditional, at version 1; an index
    /// given twice is refused.
    async fn put_new_shards(&self, tenant: &TenantId, backfill_id: &str, shards: &[Shard]) -> Result<(), PortError> {
        self.check()?;
        let mut seen = HashSet::new();
        if let Some(dup) = shards.iter().find(|sh| !seen.insert(sh.index)) {
            return Err(PortError::permanent(format!(
                "storing a backfill's shards: shard {} is given twice",
                dup.index
            )));
        }
        let mut g = lock(&self.shards);
        for sh in shards {
            g.insert((tenant.clone(), backfill_id.to_string(), sh.index), (sh.clone(), 1));
        }
        Ok(())
    }

    async fn shards(&self, tenant: &TenantId, backfill_id: &str) -> Result<Vec<Shard>, PortError> {
        self.check()?;
        let g = lock(&self.shards);
        let from = (tenant.clone(), backfill_id.to_string(), 0);
        Ok(g.range(from..)
            .take_while(|((t, id, _), _)| t == tenant && id == backfill_id)
            .map(|(_, (sh, _))| sh.clone())
            .collect())
    }

    async fn active_backfill(&self, tenant: &TenantId) -> Result<Option<(String, u64)>, PortError> {
        self.check()?;
        Ok(lock(&self.active_backfills).get(tenant).and_then(|(id, v)| id.clone().map(|id| (id, *v))))
    }

    /// `expected` None: there is no active backfill (never set, or cleared;
    /// a cleared pointer keeps its version, which only grows).
    async fn set_active_backfill(
        &self,
        tenant: &TenantId,
        id: Option<&str>,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        self.check()?;
        let mut g = lock(&self.active_backfills);
        let current = g.get(tenant);
        let ok = match expected {
            None => current.is_none_or(|(id, _)| id.is_none()),
            Some(v) => current.is_some_and(|(_, cv)| *cv == v),
        };
        if !ok {
            return Ok(false);
        }
        let next = current.map_or(1, |(_, v)| v + 1);
        g.insert(tenant.clone(), (id.map(str::to_string), next));
        Ok(true)
    }

    async fn coverage(&self, tenant: &TenantId) -> Result<(Coverage, Option<u64>), PortError> {
        self.check()?;
        Ok(match lock(&self.coverage).get(tenant) {
            Some((c, v)) => (c.clone(), Some(*v)),
            None => (Default::default(), None),
        })
    }

    async fn put_coverage(
        &self,
        tenant: &TenantId,
        coverage: &Coverage,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        self.check()?;
        let mut g = lock(&self.coverage);
        if !version_matches(g.get(tenant).map(|(_, v)| *v), expected) {
            return Ok(false);
        }
        g.insert(tenant.clone(), (coverage.clone(), expected.map_or(1, |v| v + 1)));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn remembered_ids_expire_with_their_ttl() {
        let m = MemoryState::new();
        let t0 = datetime!(2026-11-23 10:00 UTC);
        let ttl = time::Duration::days(7);
        let keys = vec!["k".to_string(), "j".to_string(), "k".to_string()];
        assert_eq!(m.seen_many(&keys, t0).await.unwrap(), vec![Claim::Fresh, Claim::Fresh, Claim::Duplicate]);
        m.remember_many(&keys[..1], t0, ttl).await.unwrap();
        assert_eq!(m.seen_many(&keys[..2], t0).await.unwrap(), vec![Claim::Duplicate, Claim::Fresh]);
        assert_eq!(m.seen_many(&keys[..1], t0 + ttl).await.unwrap(), vec![Claim::Fresh]);
    }
}
