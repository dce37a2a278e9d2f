//! In-memory fake of the state table adapters, same semantics.

use async_trait::async_trait;
use learnlink_core::PortError;
use learnlink_core::activity::{ActivityEntry, ActivityFilter, ActivityPage, RunSummary};
use learnlink_core::model::TenantId;
use learnlink_core::ports::{ActivityLog, Claim, ConfigStore, DedupeStore, PutConfigError, StoredConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkState {
    Pending { at: OffsetDateTime },
    Done,
}

#[derive(Default)]
pub struct MemoryState {
    /// Every version of every tenant's configuration, oldest first.
    configs: Mutex<BTreeMap<TenantId, Vec<StoredConfig>>>,
    marks: Mutex<HashMap<String, MarkState>>,
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

    pub fn mark(&self, key: &str) -> Option<MarkState> {
        lock(&self.marks).get(key).cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryState {
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
    async fn claim(
        &self,
        key: &str,
        now: OffsetDateTime,
        pending_grace: time::Duration,
        _ttl: time::Duration,
    ) -> Result<Claim, PortError> {
        self.check()?;
        let mut marks = lock(&self.marks);
        let free = match marks.get(key) {
            None => true,
            Some(MarkState::Pending { at }) => *at < now - pending_grace,
            Some(MarkState::Done) => false,
        };
        if free {
            marks.insert(key.to_string(), MarkState::Pending { at: now });
            Ok(Claim::Fresh)
        } else {
            Ok(Claim::Duplicate)
        }
    }
    async fn confirm(&self, key: &str) -> Result<(), PortError> {
        self.check()?;
        lock(&self.marks).insert(key.to_string(), MarkState::Done);
        Ok(())
    }
    async fn release(&self, key: &str) -> Result<(), PortError> {
        self.check()?;
        lock(&self.marks).remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test]
    async fn claims_expire_only_while_pending() {
        let m = MemoryState::new();
        let t0 = datetime!(2026-11-23 10:00 UTC);
        let grace = time::Duration::seconds(60);
        let ttl = time::Duration::days(7);
        assert_eq!(m.claim("k", t0, grace, ttl).await.unwrap(), Claim::Fresh);
        assert_eq!(m.claim("k", t0, grace, ttl).await.unwrap(), Claim::Duplicate);
        // abandoned pending claim can be retaken after the grace period
        let later = t0 + time::Duration::seconds(61);
        assert_eq!(m.claim("k", later, grace, ttl).await.unwrap(), Claim::Fresh);
        m.confirm("k").await.unwrap();
        let much_later = t0 + time::Duration::hours(1);
        assert_eq!(m.claim("k", much_later, grace, ttl).await.unwrap(), Claim::Duplicate);
        m.release("k").await.unwrap();
        assert_eq!(m.claim("k", much_later, grace, ttl).await.unwrap(), Claim::Fresh);
    }
}
