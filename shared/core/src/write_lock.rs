//! One writer of a tenant's records at a time (SPEC §4.2).
//!
//! The applied-version check ("skip an event older than what was applied")
//! reads the markers, writes Salesforce, then marks. Two writers of one
//! tenant running that side by side can both read the markers before either
//! writes, and the older version can land last. So every writer of record
//! versions — a sync-worker event batch, a backfill's Composite page, a Bulk
//! group's marking — holds the tenant's `write` lease from reading the
//! markers until the markers are written: a DynamoDB conditional write with
//! an expiry and a fencing counter, renewed before each write phase.
//!
//! A holder that dies (a killed process) keeps the lease until it expires
//! ([`TTL`]); a waiter waits up to [`WAIT`], longer than the TTL, so a dead
//! holder delays the tenant's writes but never fails them.

use crate::PortError;
use crate::connection::Sleeper;
use crate::error::ErrorClass;
use crate::model::TenantId;
use crate::ports::TenantLease;
use std::time::Duration;
use time::OffsetDateTime;

/// The lease's name (DynamoDB sort key `LEASE#write`).
pub const NAME: &str = "write";
/// How long a grant lives without renewal.
pub const TTL: time::Duration = time::Duration::seconds(30);
/// How long a writer waits for the lease before its work goes back to the
/// queue (retryable). Longer than [`TTL`]: a dead holder's lease expires
/// first.
pub const WAIT: Duration = Duration::from_secs(45);
/// A holder renews once this much of its grant has passed.
const RENEW_AFTER: time::Duration = time::Duration::seconds(10);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another writer of tenant {0} held its write lease for longer than {1:?}")]
    Busy(String, Duration),
    #[error("the write lease of tenant {0} expired and was taken by another writer")]
    Lost(String),
    #[error("the write lease could not be taken: {0}")]
    Store(#[source] PortError),
}

impl LockError {
    pub fn class(&self) -> ErrorClass {
        match self {
            LockError::Busy(..) | LockError::Lost(_) => ErrorClass::Retryable,
            LockError::Store(e) => e.class,
        }
    }
}

/// A held write lease. Release it with [`WriteLock::release`]; one dropped
/// unreleased expires by itself.
pub struct WriteLock<'a> {
    port: &'a dyn TenantLease,
    tenant: TenantId,
    holder: String,
    granted: OffsetDateTime,
    fence: u64,
}

/// The first pause between attempts on a held lease; it doubles up to
/// [`MAX_BACKOFF`]. Batches hold the lease for a few hundred milliseconds, so
/// a waiter polls finely: a coarse step would add its overshoot to every
/// waiting record's latency (SPEC §4: seconds end to end).
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Wait (with backoff, up to `wait`) for the tenant's write lease.
pub async fn acquire<'a>(
    port: &'a dyn TenantLease,
    sleeper: &dyn Sleeper,
    tenant: &TenantId,
    holder: &str,
    now: &(dyn Fn() -> OffsetDateTime + Send + Sync),
    wait: Duration,
) -> Result<WriteLock<'a>, LockError> {
    let mut waited = Duration::ZERO;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let at = now();
        if let Some(fence) = port.acquire(tenant, NAME, holder, at, TTL).await.map_err(LockError::Store)? {
            if !waited.is_zero() {
                tracing::debug!(tenant = %tenant, waited_ms = waited.as_millis() as u64, "write lease taken after waiting");
            }
            return Ok(WriteLock { port, tenant: tenant.clone(), holder: holder.to_string(), granted: at, fence });
        }
        if waited >= wait {
            return Err(LockError::Busy(tenant.to_string(), wait));
        }
        sleeper.sleep(backoff).await;
        waited += backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

impl WriteLock<'_> {
    /// The fencing counter of the current grant.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Before a write phase: renew the grant once [`RENEW_AFTER`] of it has
    /// passed. `Lost` when another writer took it meanwhile (this holder
    /// stalled past the TTL): the caller must not write.
    pub async fn keep(&mut self, now: OffsetDateTime) -> Result<(), LockError> {
        if now - self.granted < RENEW_AFTER {
            return Ok(());
        }
        match self.port.acquire(&self.tenant, NAME, &self.holder, now, TTL).await.map_err(LockError::Store)? {
            Some(fence) => {
                self.granted = now;
                self.fence = fence;
                Ok(())
            }
            None => Err(LockError::Lost(self.tenant.to_string())),
        }
    }

    /// Give the lease up; a failure only logs (the grant expires by itself).
    pub async fn release(self) {
        if let Err(e) = self.port.release(&self.tenant, NAME, &self.holder).await {
            tracing::warn!(tenant = %self.tenant, error = %e.chain(), "could not release the write lease; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A lease table with a settable clock.
    #[derive(Default)]
    struct Table {
        rows: Mutex<HashMap<String, (String, OffsetDateTime, u64)>>,
    }

    #[async_trait]
    impl TenantLease for Table {
        async fn acquire(
            &self,
            tenant: &TenantId,
            name: &str,
            holder: &str,
            now: OffsetDateTime,
            ttl: time::Duration,
        ) -> Result<Option<u64>, PortError> {
            let mut g = self.rows.lock().unwrap();
            let e = g.entry(format!("{tenant}/{name}")).or_insert((String::new(), OffsetDateTime::UNIX_EPOCH, 0));
            if e.1 < now || e.0 == holder {
                *e = (holder.to_string(), now + ttl, e.2 + 1);
                Ok(Some(e.2))
            } else {
                Ok(None)
            }
        }
        async fn release(&self, tenant: &TenantId, name: &str, holder: &str) -> Result<(), PortError> {
            let mut g = self.rows.lock().unwrap();
            if let Some(e) = g.get_mut(&format!("{tenant}/{name}")).filter(|e| e.0 == holder) {
                e.1 = OffsetDateTime::UNIX_EPOCH;
            }
            Ok(())
        }
    }

    /// A sleeper that moves a shared clock instead of waiting.
    struct Clock(Mutex<OffsetDateTime>);
    #[async_trait]
    impl Sleeper for Clock {
        async fn sleep(&self, d: Duration) {
            let mut t = self.0.lock().unwrap();
            *t += d;
        }
    }

    fn t0() -> OffsetDateTime {
        time::macros::datetime!(2026-11-24 10:00 UTC)
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_release_lets_the_next_in() {
        let table = Table::default();
        let clock = Clock(Mutex::new(t0()));
        let now = || *clock.0.lock().unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let a = acquire(&table, &clock, &tenant, "a", &now, WAIT).await.unwrap();
        // b waits the whole WAIT while a holds (renewing) — here a does not
        // renew, so b gets it once a's grant expires, inside WAIT.
        let b = acquire(&table, &clock, &tenant, "b", &now, WAIT).await.unwrap();
        assert!(now() - t0() >= TTL, "b got in only after a's grant expired: {}", now() - t0());
        assert!(b.fence() > a.fence());
        // a stalled past its TTL: it must not write.
        let mut a = a;
        assert!(matches!(a.keep(now()).await, Err(LockError::Lost(_))));
        b.release().await;
        let c = acquire(&table, &clock, &tenant, "c", &now, Duration::ZERO).await.unwrap();
        assert!(c.fence() > 2);
        // Another tenant's lease is its own.
        let other = TenantId::parse("globex").unwrap();
        assert!(acquire(&table, &clock, &other, "d", &now, Duration::ZERO).await.is_ok());
    }

    #[tokio::test]
    async fn a_live_holder_makes_a_waiter_give_up_after_the_wait() {
        let table = Table::default();
        let clock = Clock(Mutex::new(t0()));
        let now = || *clock.0.lock().unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let _a = acquire(&table, &clock, &tenant, "a", &now, WAIT).await.unwrap();
        let e = acquire(&table, &clock, &tenant, "b", &now, Duration::from_secs(5)).await.err().unwrap();
        assert!(matches!(e, LockError::Busy(..)), "{e}");
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert!(now() - t0() < TTL, "gave up after its own wait, not the TTL");
    }

    #[tokio::test]
    async fn keep_renews_so_a_long_holder_keeps_the_lease() {
        let table = Table::default();
        let clock = Clock(Mutex::new(t0()));
        let now = || *clock.0.lock().unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let mut a = acquire(&table, &clock, &tenant, "a", &now, WAIT).await.unwrap();
        for _ in 0..6 {
            clock.sleep(Duration::from_secs(12)).await;
            a.keep(now()).await.unwrap();
            assert!(acquire(&table, &clock, &tenant, "b", &now, Duration::ZERO).await.is_err());
        }
        a.release().await;
        assert!(acquire(&table, &clock, &tenant, "b", &now, Duration::ZERO).await.is_ok());
    }
}
