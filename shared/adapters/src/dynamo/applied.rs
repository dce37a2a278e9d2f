//! What version of each LMS record learnlink last wrote (SPEC §4.2), so a
//! reordered or redelivered older event never overwrites a newer one.
//!
//! The markers live in a table of their own (`APPLIED_TABLE`, key `pk`
//! only): one item per record ever written, so a 1M-record backfill adds 1M
//! items, and they are only ever read and written by key. Kept out of the
//! state table, they never weigh on its queries and listings.
//!
//! Item: pk `<tenant>#<record key>`; `updated_at` (epoch ms), `event_id`,
//! `expires_at` (TTL: a year — far beyond any redelivery or reordering
//! window). Reads are consistent BatchGetItem (≤100 keys, unprocessed keys
//! retried); writes are BatchWriteItem (≤25, unprocessed items retried);
//! up to [`IN_FLIGHT`] calls at once.
//! Writers of one tenant's records hold its write lease
//! (`learnlink_core::write_lock`) from reading the markers to writing them,
//! so a marker only moves forward.

use super::DynamoState;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::StreamExt;
use learnlink_core::PortError;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{Applied, AppliedStore};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use time::OffsetDateTime;

const KEEP: time::Duration = time::Duration::days(365);

/// Batch calls in flight at once: a Bulk group of ten shards reads and marks
/// 100,000 records (1,000 BatchGetItem and 4,000 BatchWriteItem calls), all
/// while it holds the tenant's write lease; one call after another, their
/// round trips add up.
const IN_FLIGHT: usize = 8;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn pk(tenant: &TenantId, key: &str) -> String {
    format!("{tenant}#{key}")
}

/// [`AppliedStore`] on the applied-versions table.
#[derive(Clone)]
pub struct DynamoApplied {
    table: DynamoState,
}

impl DynamoApplied {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoApplied { table: DynamoState::new(client, table) }
    }
}

/// The newest of several marks of one key (one call writes each key once).
fn newest_per_key(marks: &[(String, Applied)]) -> HashMap<&str, &Applied> {
    let mut newest: HashMap<&str, &Applied> = HashMap::new();
    for (k, a) in marks {
        let slot = newest.entry(k.as_str()).or_insert(a);
        if slot.updated_at < a.updated_at {
            *slot = a;
        }
    }
    newest
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[async_trait]
impl AppliedStore for DynamoApplied {
    async fn applied(&self, tenant: &TenantId, keys: &[String]) -> Result<HashMap<String, Applied>, PortError> {
        let mut seen = HashSet::new();
        let unique: Vec<&str> = keys.iter().map(String::as_str).filter(|k| seen.insert(*k)).collect();
        // Each call's keys and items are built and read within its own
        // future, so at most IN_FLIGHT calls' worth is held at once.
        // (Futures do nothing until polled: collecting them first holds only their borrows.)
        let calls: Vec<_> = unique.chunks(100).map(|chunk| self.read_chunk(tenant, chunk)).collect();
        let mut reads = futures::stream::iter(calls).buffer_unordered(IN_FLIGHT);
        let mut found = HashMap::with_capacity(unique.len());
        while let Some(read) = reads.next().await {
            found.extend(read?);
        }
        Ok(found)
    }

    async fn mark_applied(&self, tenant: &TenantId, marks: &[(String, Applied)]) -> Result<(), PortError> {
        // BatchWriteItem refuses a key twice in one call.
        let newest = newest_per_key(marks);
        let expires = (OffsetDateTime::now_utc() + KEEP).unix_timestamp();
        let mut keys: Vec<(&str, &Applied)> = newest.into_iter().collect();
        keys.sort_unstable_by_key(|(k, _)| *k);
        // Each key is in one batch only, so batches in flight together never
        // race on a marker. On the first error the rest are dropped; the
        // caller sends the records back, and they are written and marked again.
        let calls: Vec<_> = keys.chunks(25).map(|chunk| self.write_chunk(tenant, chunk, expires)).collect();
        let mut writes = futures::stream::iter(calls).buffer_unordered(IN_FLIGHT);
        while let Some(written) = writes.next().await {
            written?;
        }
        Ok(())
    }
}

impl DynamoApplied {
    /// One BatchGetItem (≤100 keys): the markers found.
    async fn read_chunk(&self, tenant: &TenantId, keys: &[&str]) -> Result<Vec<(String, Applied)>, PortError> {
        let ks = keys.iter().map(|k| HashMap::from([("pk".to_string(), s(pk(tenant, k)))])).collect();
        let prefix = pk(tenant, "");
        let items = super::links::read_batch(&self.table, ks, "reading applied versions").await?;
        let mut found = Vec::with_capacity(items.len());
        for item in items {
            let key = item.get("pk").and_then(|v| v.as_s().ok()).and_then(|p| p.strip_prefix(&prefix));
            let at = item.get("updated_at").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
            let event = item.get("event_id").and_then(|v| v.as_s().ok());
            let (Some(key), Some(at), Some(event)) = (key, at, event) else {
                return Err(PortError::permanent("a stored applied-version item is incomplete"));
            };
            let updated_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
                .map_err(|e| PortError::permanent(format!("a stored applied version is out of range: {e}")))?;
            found.push((key.to_string(), Applied { updated_at, event_id: event.clone() }));
        }
        Ok(found)
    }

    /// One BatchWriteItem (≤25 markers).
    async fn write_chunk(&self, tenant: &TenantId, marks: &[(&str, &Applied)], expires: i64) -> Result<(), PortError> {
        let mut requests = Vec::with_capacity(marks.len());
        for (k, a) in marks {
            let put = PutRequest::builder()
                .item("pk", s(pk(tenant, k)))
                .item("updated_at", AttributeValue::N(ms(a.updated_at).to_string()))
                .item("event_id", s(a.event_id.clone()))
                .item("expires_at", AttributeValue::N(expires.to_string()))
                .build()
                .map_err(|e| PortError::permanent(format!("building a write: {e}")))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        super::links::write_batch(&self.table, requests, "recording applied versions").await
    }
}

/// In-memory [`AppliedStore`] for unit tests.
#[derive(Default)]
pub struct MemoryApplied {
    marks: Mutex<HashMap<(TenantId, String), Applied>>,
    refuse: std::sync::atomic::AtomicBool,
}

impl MemoryApplied {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, String), Applied>> {
        self.marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// From now on, marking fails (retryable), as a DynamoDB outage would.
    pub fn refuse_marks(&self, on: bool) {
        self.refuse.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// The marker of one record key.
    pub fn get(&self, tenant: &TenantId, key: &str) -> Option<Applied> {
        self.lock().get(&(tenant.clone(), key.to_string())).cloned()
    }
}

#[async_trait]
impl AppliedStore for MemoryApplied {
    async fn applied(&self, tenant: &TenantId, keys: &[String]) -> Result<HashMap<String, Applied>, PortError> {
        let g = self.lock();
        Ok(keys.iter().filter_map(|k| g.get(&(tenant.clone(), k.clone())).map(|a| (k.clone(), a.clone()))).collect())
    }

    async fn mark_applied(&self, tenant: &TenantId, marks: &[(String, Applied)]) -> Result<(), PortError> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::retryable("recording applied versions: the table is unavailable"));
        }
        // As DynamoDB: the newest of one call's marks per key, written over what was there.
        let newest = newest_per_key(marks);
        let mut g = self.lock();
        for (k, a) in newest {
            g.insert((tenant.clone(), k.to_string()), a.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> OffsetDateTime {
        time::macros::datetime!(2026-11-23 10:00 UTC) + time::Duration::minutes(min)
    }

    async fn forward_only(store: &dyn AppliedStore) {
        let tenant = TenantId::parse("acme").unwrap();
        let a = |m: i64, e: &str| Applied { updated_at: t(m), event_id: e.into() };
        // Several marks for one record in one call: the newest is kept.
        store
            .mark_applied(&tenant, &[("enrollment#E1".into(), a(5, "e5")), ("enrollment#E1".into(), a(3, "e3"))])
            .await
            .unwrap();
        let got = store.applied(&tenant, &["enrollment#E1".into(), "enrollment#E2".into()]).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got["enrollment#E1"], a(5, "e5"));
        store.mark_applied(&tenant, &[("enrollment#E1".into(), a(9, "e9"))]).await.unwrap();
        let got = store.applied(&tenant, &["enrollment#E1".into()]).await.unwrap();
        assert_eq!(got["enrollment#E1"], a(9, "e9"));
        let other = TenantId::parse("other").unwrap();
        assert!(store.applied(&other, &["enrollment#E1".into()]).await.unwrap().is_empty(), "tenants are apart");
    }

    #[tokio::test]
    async fn memory_markers_keep_the_newest() {
        forward_only(&MemoryApplied::new()).await;
    }

    #[tokio::test]
    async fn dynamo_markers_keep_the_newest_and_read_in_chunks() {
        let moto = crate::motokit::Moto::start().await;
        let state = DynamoApplied::new(moto.applied_table("applied").await, "applied");
        forward_only(&state).await;
        let tenant = TenantId::parse("bulk").unwrap();
        let marks: Vec<(String, Applied)> = (0..250)
            .map(|i| (format!("enrollment#E{i}"), Applied { updated_at: t(i), event_id: format!("e{i}") }))
            .collect();
        state.mark_applied(&tenant, &marks).await.unwrap();
        let keys: Vec<String> = marks.iter().map(|(k, _)| k.clone()).collect();
        let got = state.applied(&tenant, &keys).await.unwrap();
        assert_eq!(got.len(), 250);
        assert_eq!(got["enrollment#E249"].event_id, "e249");
    }
}
