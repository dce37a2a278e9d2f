//! In-memory fake of the state table adapters, same semantics.

use async_trait::async_trait;
use learnlink_core::PortError;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{Claim, DedupeStore, TenantStore};
use learnlink_core::tenant::Tenant;
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
    tenants: Mutex<BTreeMap<TenantId, Tenant>>,
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

#[async_trait]
impl TenantStore for MemoryState {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError> {
        self.check()?;
        Ok(lock(&self.tenants).get(id).cloned())
    }
    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), PortError> {
        self.check()?;
        lock(&self.tenants).insert(tenant.id.clone(), tenant.clone());
        Ok(())
    }
    async fn list_tenants(&self) -> Result<Vec<Tenant>, PortError> {
        self.check()?;
        Ok(lock(&self.tenants).values().cloned().collect())
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
