//! Backfills and their shards (SPEC §6.2) on the state table. Every item
//! holds `doc` (JSON) and `version`; every write is conditional on the
//! version read (`attribute_not_exists(pk)` when `expected` is None), a lost
//! race is `Ok(false)`.
//!
//! - backfill:  pk `BACKFILL#<tenant>`, sk `RUN#<id>` (ids are time-ordered, so
//!   a reverse query lists the newest first)
//! - shard:     pk `BACKFILL#<tenant>#<id>`, sk `SHARD#<index, 6 digits>`
//! - active:    pk `BACKFILL#<tenant>`, sk `ACTIVE`; `backfill_id` (removed when cleared;
//!   the item and its version stay, so versions only grow) and `version`
//! - coverage:  pk `BACKFILL#<tenant>`, sk `COVERAGE`
//! - open index: pk `BACKFILLS#OPEN`, sk `<tenant>#<id>`; `tenant`, `backfill_id` — one
//!   item per backfill that is not final, written in the same transaction as
//!   the backfill item, so the scheduler's sweep reads exactly the open ones.

use super::DynamoState;
use super::connection::conditional as is_conditional_failure;
use super::links::{read_batch, write_batch};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, PutRequest, TransactWriteItem, WriteRequest};
use learnlink_core::PortError;
use learnlink_core::backfill::coverage::Coverage;
use learnlink_core::backfill::{Backfill, Shard};
use learnlink_core::model::TenantId;
use learnlink_core::ports::BackfillStore;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};

const OPEN_PK: &str = "BACKFILLS#OPEN";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn tenant_pk(tenant: &TenantId) -> String {
    format!("BACKFILL#{tenant}")
}

fn run_sk(id: &str) -> String {
    format!("RUN#{id}")
}

fn shards_pk(tenant: &TenantId, id: &str) -> String {
    format!("BACKFILL#{tenant}#{id}")
}

fn shard_sk(index: u32) -> String {
    format!("SHARD#{index:06}")
}

fn open_sk(tenant: &TenantId, id: &str) -> String {
    format!("{tenant}#{id}")
}

fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn to_json<T: Serialize>(what: &str, v: &T) -> Result<String, PortError> {
    serde_json::to_string(v).map_err(|e| PortError::permanent(format!("serializing {what}: {e}")))
}

/// The item's document and version.
fn doc_of<T: DeserializeOwned>(what: &str, item: &HashMap<String, AttributeValue>) -> Result<(T, u64), PortError> {
    let version = super::get_n(item, "version")? as u64;
    let doc = serde_json::from_str(super::get_s(item, "doc")?)
        .map_err(|e| PortError::permanent(format!("a stored {what} is unreadable: {e}")))?;
    Ok((doc, version))
}

/// The condition of a versioned write.
fn versioned(
    put: aws_sdk_dynamodb::types::builders::PutBuilder,
    expected: Option<u64>,
) -> aws_sdk_dynamodb::types::builders::PutBuilder {
    match expected {
        None => put.condition_expression("attribute_not_exists(pk)"),
        Some(v) => put
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", super::n(v)),
    }
}

/// Whether a cancelled transaction was cancelled by its first item's
/// condition (`None`: DynamoDB gave no reasons).
fn first_condition_failed<R>(e: &SdkError<TransactWriteItemsError, R>) -> Option<bool> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
            let reasons = tc.cancellation_reasons();
            reasons.first().map(|r| r.code() == Some("ConditionalCheckFailed"))
        }
        _ => Some(false),
    }
}

impl DynamoState {
    async fn get_doc<T: DeserializeOwned>(
        &self,
        what: &str,
        pk: String,
        sk: String,
    ) -> Result<Option<(T, u64)>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::err(&format!("reading a {what}"), e))?;
        match out.item {
            Some(item) if !item.is_empty() => doc_of(what, &item).map(Some),
            _ => Ok(None),
        }
    }

    async fn put_doc(
        &self,
        what: &str,
        pk: String,
        sk: String,
        doc: String,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        let put =
            self.client.put_item().table_name(&self.table).item("pk", s(pk)).item("sk", s(sk)).item("doc", s(doc));
        match super::versioned_put(put, expected).send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(Self::err(&format!("storing a {what}"), e)),
        }
    }

    /// Every item of a query `pk = :p` (and `begins_with(sk, :b)` with a
    /// prefix), consistent, in key order or reversed, at most `limit`.
    async fn query_all(
        &self,
        what: &str,
        pk: String,
        prefix: Option<&str>,
        forward: bool,
        limit: Option<usize>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, PortError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let remaining = limit.map(|l| l - out.len());
            let query = self.client.query().table_name(&self.table).expression_attribute_values(":p", s(pk.clone()));
            let query = match prefix {
                Some(b) => query
                    .key_condition_expression("pk = :p AND begins_with(sk, :b)")
                    .expression_attribute_values(":b", s(b)),
                None => query.key_condition_expression("pk = :p"),
            };
            let resp = query
                .scan_index_forward(forward)
                .consistent_read(true)
                .set_limit(remaining.map(|r| i32::try_from(r).unwrap_or(i32::MAX)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Self::err(what, e))?;
            out.extend(resp.items.unwrap_or_default());
            if let Some(l) = limit {
                out.truncate(l);
                if out.len() >= l {
                    break;
                }
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl BackfillStore for DynamoState {
    async fn backfill(&self, tenant: &TenantId, id: &str) -> Result<Option<(Backfill, u64)>, PortError> {
        self.get_doc("backfill", tenant_pk(tenant), run_sk(id)).await
    }

    async fn put_backfill(&self, backfill: &Backfill, expected: Option<u64>) -> Result<bool, PortError> {
        let what = "storing a backfill";
        let (tenant, id) = (&backfill.tenant, backfill.id.as_str());
        let build =
            |e: aws_sdk_dynamodb::error::BuildError| PortError::permanent(format!("{what}: building a write: {e}"));
        let item = Put::builder()
            .table_name(&self.table)
            .item("pk", s(tenant_pk(tenant)))
            .item("sk", s(run_sk(id)))
            .item("doc", s(to_json("a backfill", backfill)?))
            .item("version", super::n(expected.map_or(1, |v| v + 1)));
        let item = versioned(item, expected).build().map_err(build)?;
        let index = if !backfill.is_open() {
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(OPEN_PK.into(), open_sk(tenant, id))))
                        .build()
                        .map_err(build)?,
                )
                .build()
        } else {
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .item("pk", s(OPEN_PK))
                        .item("sk", s(open_sk(tenant, id)))
                        .item("tenant", s(tenant.as_str()))
                        .item("backfill_id", s(id))
                        .build()
                        .map_err(build)?,
                )
                .build()
        };
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(item).build())
            .transact_items(index)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) => match first_condition_failed(&e) {
                Some(true) => Ok(false),
                Some(false) => Err(Self::err(what, e)),
                None => {
                    // No reasons given: the backfill item's version tells.
                    let current = self.backfill(tenant, id).await?.map(|(_, v)| v);
                    if current != expected { Ok(false) } else { Err(Self::err(what, e)) }
                }
            },
        }
    }

    async fn list_backfills(&self, tenant: &TenantId, limit: usize) -> Result<Vec<Backfill>, PortError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let items = self.query_all("listing backfills", tenant_pk(tenant), Some("RUN#"), false, Some(limit)).await?;
        items.iter().map(|i| doc_of("backfill", i).map(|(b, _)| b)).collect()
    }

    async fn unfinished_backfills(&self) -> Result<Vec<Backfill>, PortError> {
        let what = "listing unfinished backfills";
        let open = self.query_all(what, OPEN_PK.into(), None, true, None).await?;
        let mut keys = Vec::with_capacity(open.len());
        for item in &open {
            let tenant =
                TenantId::parse(super::get_s(item, "tenant")?).map_err(|e| PortError::permanent(e.to_string()))?;
            keys.push(key(tenant_pk(&tenant), run_sk(super::get_s(item, "backfill_id")?)));
        }
        let mut out = Vec::with_capacity(keys.len());
        for item in read_batch(self, keys, what).await? {
            let (b, _): (Backfill, u64) = doc_of("backfill", &item)?;
            if b.is_open() {
                out.push(b);
            }
        }
        out.sort_by(|a, b| (a.tenant.as_str(), a.id.as_str()).cmp(&(b.tenant.as_str(), b.id.as_str())));
        Ok(out)
    }

    async fn shard(&self, tenant: &TenantId, backfill_id: &str, index: u32) -> Result<Option<(Shard, u64)>, PortError> {
        self.get_doc("shard", shards_pk(tenant, backfill_id), shard_sk(index)).await
    }

    async fn put_shard(
        &self,
        tenant: &TenantId,
        backfill_id: &str,
        shard: &Shard,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        let doc = to_json("a shard", shard)?;
        self.put_doc("shard", shards_pk(tenant, backfill_id), shard_sk(shard.index), doc, expected).await
    }

    async fn put_new_shards(&self, tenant: &TenantId, backfill_id: &str, shards: &[Shard]) -> Result<(), PortError> {
        let what = "storing a backfill's shards";
        let mut seen = HashSet::new();
        if let Some(dup) = shards.iter().find(|sh| !seen.insert(sh.index)) {
            return Err(PortError::permanent(format!("{what}: shard {} is given twice", dup.index)));
        }
        for chunk in shards.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for shard in chunk {
                let put = PutRequest::builder()
                    .item("pk", s(shards_pk(tenant, backfill_id)))
                    .item("sk", s(shard_sk(shard.index)))
                    .item("doc", s(to_json("a shard", shard)?))
                    .item("version", super::n(1))
                    .build()
                    .map_err(|e| PortError::permanent(format!("{what}: building a write: {e}")))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            write_batch(self, requests, what).await?;
        }
        Ok(())
    }

    async fn shards(&self, tenant: &TenantId, backfill_id: &str) -> Result<Vec<Shard>, PortError> {
        let items = self
            .query_all("reading a backfill's shards", shards_pk(tenant, backfill_id), Some("SHARD#"), true, None)
            .await?;
        let mut out = items.iter().map(|i| doc_of("shard", i).map(|(sh, _)| sh)).collect::<Result<Vec<Shard>, _>>()?;
        // Indexes past 6 digits would not sort as text.
        out.sort_by_key(|sh| sh.index);
        Ok(out)
    }

    async fn active_backfill(&self, tenant: &TenantId) -> Result<Option<(String, u64)>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant_pk(tenant), "ACTIVE".into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::err("reading the active backfill", e))?;
        let Some(item) = out.item.filter(|i| !i.is_empty()) else { return Ok(None) };
        match item.get("backfill_id").and_then(|v| v.as_s().ok()).filter(|id| !id.is_empty()) {
            Some(id) => Ok(Some((id.clone(), super::get_n(&item, "version")? as u64))),
            None => Ok(None),
        }
    }

    /// `expected` None: there is no active backfill (the item is absent, or
    /// cleared — a cleared item keeps its version, which only grows, so a
    /// version read once can never match again after a clear and a set).
    async fn set_active_backfill(
        &self,
        tenant: &TenantId,
        id: Option<&str>,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(tenant_pk(tenant), "ACTIVE".into())))
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#id", "backfill_id")
            .expression_attribute_values(":one", super::n(1));
        let update = match id {
            Some(id) => update.update_expression("SET #id = :id ADD #v :one").expression_attribute_values(":id", s(id)),
            None => update.update_expression("REMOVE #id ADD #v :one"),
        };
        let update = match expected {
            None => update.condition_expression("attribute_not_exists(#id)"),
            Some(v) => {
                update.condition_expression("#v = :expected").expression_attribute_values(":expected", super::n(v))
            }
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(Self::err("storing the active backfill", e)),
        }
    }

    async fn coverage(&self, tenant: &TenantId) -> Result<(Coverage, Option<u64>), PortError> {
        Ok(match self.get_doc("backfill coverage", tenant_pk(tenant), "COVERAGE".into()).await? {
            Some((c, v)) => (c, Some(v)),
            None => (Coverage::default(), None),
        })
    }

    async fn put_coverage(
        &self,
        tenant: &TenantId,
        coverage: &Coverage,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        let doc = to_json("the backfill coverage", coverage)?;
        self.put_doc("backfill coverage", tenant_pk(tenant), "COVERAGE".into(), doc, expected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::memory::MemoryState;
    use crate::motokit::Moto;
    use learnlink_core::backfill::{BackfillOptions, BackfillStatus, KillSwitch, Origin, ShardStatus, Window};
    use time::OffsetDateTime;
    use time::macros::datetime;

    fn window(since: OffsetDateTime, hours: i64) -> Window {
        Window::new(since, since + time::Duration::hours(hours)).unwrap()
    }

    fn backfill(tenant: &str, id: &str, status: BackfillStatus) -> Backfill {
        let at = datetime!(2026-01-01 00:00 UTC);
        Backfill {
            id: id.into(),
            tenant: TenantId::parse(tenant).unwrap(),
            window: window(at, 24),
            origin: Origin::Admin,
            options: BackfillOptions { only_changed: false, bulk_threshold: 10_000, shard_size: 5_000 },
            status,
            kill_switch: KillSwitch::Off,
            expected: 12,
            shards: 3,
            skipped: Vec::new(),
            budget: None,
            created_at: at,
            updated_at: at,
            finished_at: None,
            paused_at: None,
            reason: None,
        }
    }

    fn tenant(t: &str) -> TenantId {
        TenantId::parse(t).unwrap()
    }

    async fn conditional_writes(store: &dyn BackfillStore) {
        let t = tenant("acme");
        let id = "bf-20260101T000000-abcd1234";
        assert_eq!(store.backfill(&t, id).await.unwrap(), None);
        let mut b = backfill("acme", id, BackfillStatus::Planning);
        assert!(store.put_backfill(&b, None).await.unwrap());
        assert!(!store.put_backfill(&b, None).await.unwrap(), "the item exists");
        assert!(!store.put_backfill(&b, Some(7)).await.unwrap(), "a version it never had");
        assert_eq!(store.backfill(&t, id).await.unwrap(), Some((b.clone(), 1)));
        b.status = BackfillStatus::Running;
        assert!(store.put_backfill(&b, Some(1)).await.unwrap());
        let stale = backfill("acme", id, BackfillStatus::Cancelled);
        assert!(!store.put_backfill(&stale, Some(1)).await.unwrap(), "a stale write loses");
        assert_eq!(store.backfill(&t, id).await.unwrap(), Some((b.clone(), 2)));
        assert_eq!(store.unfinished_backfills().await.unwrap(), vec![b.clone()], "the lost write did not close it");
        assert_eq!(store.backfill(&tenant("other"), id).await.unwrap(), None, "tenants are apart");

        // Shards, the same way.
        let mut sh = Shard::new(0, b.window, 12);
        assert_eq!(store.shard(&t, id, 0).await.unwrap(), None);
        assert!(store.put_shard(&t, id, &sh, None).await.unwrap());
        assert!(!store.put_shard(&t, id, &sh, None).await.unwrap(), "the shard exists");
        sh.status = ShardStatus::Done;
        sh.counts.created = 12;
        sh.cursor = Some("c1".into());
        assert!(store.put_shard(&t, id, &sh, Some(1)).await.unwrap());
        assert!(!store.put_shard(&t, id, &Shard::new(0, b.window, 12), Some(1)).await.unwrap(), "stale");
        assert_eq!(store.shard(&t, id, 0).await.unwrap(), Some((sh.clone(), 2)));
        assert_eq!(store.shard(&t, id, 1).await.unwrap(), None);
        assert_eq!(store.shard(&t, "bf-other", 0).await.unwrap(), None, "backfills are apart");
    }

    async fn listing(store: &dyn BackfillStore) {
        let t = tenant("listco");
        assert!(store.list_backfills(&t, 10).await.unwrap().is_empty());
        let ids: Vec<String> = (0..7).map(|i| format!("bf-2026010{i}T000000-abcd1234")).collect();
        // Stored out of order: the listing orders by id (time).
        for i in [3, 0, 6, 1, 5, 2, 4] {
            assert!(store.put_backfill(&backfill("listco", &ids[i], BackfillStatus::Completed), None).await.unwrap());
        }
        // Another tenant's, and a tenant whose id extends this one's.
        store.put_backfill(&backfill("listco-2", "bf-20270101T000000-x", BackfillStatus::Running), None).await.unwrap();
        // Shards and the tenant's other items are not backfills.
        store
            .put_new_shards(&t, &ids[0], &[Shard::new(0, window(datetime!(2026-01-01 00:00 UTC), 1), 1)])
            .await
            .unwrap();
        assert!(store.set_active_backfill(&t, Some(&ids[6]), None).await.unwrap());
        assert!(store.put_coverage(&t, &Coverage::default(), None).await.unwrap());

        let listed = |v: Vec<Backfill>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
        let newest: Vec<String> = ids.iter().rev().cloned().collect();
        assert_eq!(listed(store.list_backfills(&t, 3).await.unwrap()), newest[..3].to_vec());
        assert_eq!(listed(store.list_backfills(&t, 7).await.unwrap()), newest);
        assert_eq!(listed(store.list_backfills(&t, 100).await.unwrap()), newest);
        assert!(store.list_backfills(&t, 0).await.unwrap().is_empty());
        assert_eq!(listed(store.list_backfills(&tenant("listco-2"), 5).await.unwrap()), vec!["bf-20270101T000000-x"]);
    }

    async fn many_shards(store: &dyn BackfillStore) {
        let t = tenant("shardco");
        let id = "bf-20260101T000000-abcd1234";
        let start = datetime!(2026-01-01 00:00 UTC);
        let shards: Vec<Shard> = (0..1_200u32)
            .map(|i| {
                let mut sh = Shard::new(i, window(start + time::Duration::hours(i64::from(i)), 1), u64::from(i) * 3);
                sh.cursor = Some(format!("cursor-{i}"));
                sh
            })
            .collect();
        // Stored in any order; read back by index.
        let mut shuffled = shards.clone();
        shuffled.reverse();
        shuffled[..600].rotate_left(17);
        store.put_new_shards(&t, id, &shuffled).await.unwrap();
        assert_eq!(store.shards(&t, id).await.unwrap(), shards);
        assert_eq!(store.shard(&t, id, 1_199).await.unwrap(), Some((shards[1_199].clone(), 1)));
        assert!(store.put_shard(&t, id, &shards[5], Some(1)).await.unwrap(), "new shards are at version 1");
        assert!(store.shards(&t, "bf-none").await.unwrap().is_empty());
        let dup = [shards[0].clone(), shards[0].clone()];
        assert!(store.put_new_shards(&t, "bf-dup", &dup).await.is_err(), "an index twice");
    }

    async fn open_index(store: &dyn BackfillStore) {
        let a = "bf-20260101T000000-aaaaaaaa";
        let b = "bf-20260102T000000-bbbbbbbb";
        let c = "bf-20260103T000000-cccccccc";
        let running = backfill("open-a", a, BackfillStatus::Running);
        let paused = backfill("open-b", b, BackfillStatus::Paused);
        let done = backfill("open-b", c, BackfillStatus::Completed);
        assert!(store.put_backfill(&running, None).await.unwrap());
        assert!(store.put_backfill(&paused, None).await.unwrap());
        assert!(store.put_backfill(&done, None).await.unwrap());
        let open = |v: Vec<Backfill>| v.into_iter().map(|b| (b.tenant.to_string(), b.id)).collect::<Vec<_>>();
        assert_eq!(
            open(store.unfinished_backfills().await.unwrap()),
            vec![("open-a".to_string(), a.to_string()), ("open-b".to_string(), b.to_string())]
        );
        // Completed: it leaves the index; a lost write changes nothing.
        let mut finished = running.clone();
        finished.status = BackfillStatus::Completed;
        assert!(!store.put_backfill(&finished, Some(5)).await.unwrap());
        assert_eq!(store.unfinished_backfills().await.unwrap().len(), 2);
        assert!(store.put_backfill(&finished, Some(1)).await.unwrap());
        assert_eq!(store.unfinished_backfills().await.unwrap(), vec![paused.clone()]);
        // Paused → Running stays in, with its new state.
        let mut resumed = paused.clone();
        resumed.status = BackfillStatus::Running;
        assert!(store.put_backfill(&resumed, Some(1)).await.unwrap());
        assert_eq!(store.unfinished_backfills().await.unwrap(), vec![resumed.clone()]);
        // A new Running one appears.
        let d = backfill("open-c", "bf-20260104T000000-dddddddd", BackfillStatus::Running);
        assert!(store.put_backfill(&d, None).await.unwrap());
        assert_eq!(store.unfinished_backfills().await.unwrap(), vec![resumed.clone(), d.clone()]);
        // Cancelled and failed ones leave too.
        let mut cancelled = resumed.clone();
        cancelled.status = BackfillStatus::Cancelled;
        assert!(store.put_backfill(&cancelled, Some(2)).await.unwrap());
        let mut failed = d.clone();
        failed.status = BackfillStatus::Failed;
        assert!(store.put_backfill(&failed, Some(1)).await.unwrap());
        assert!(store.unfinished_backfills().await.unwrap().is_empty());
    }

    /// More open backfills than one BatchGetItem reads (100).
    async fn many_open(store: &dyn BackfillStore) {
        let mut want = Vec::new();
        for i in 0..130 {
            let b = backfill(&format!("many-{i:03}"), "bf-20260101T000000-abcd1234", BackfillStatus::Running);
            assert!(store.put_backfill(&b, None).await.unwrap());
            want.push(b);
        }
        assert_eq!(store.unfinished_backfills().await.unwrap(), want);
    }

    async fn active_pointer(store: &dyn BackfillStore) {
        let t = tenant("activeco");
        let (a, b) = ("bf-20260101T000000-aaaaaaaa", "bf-20260102T000000-bbbbbbbb");
        assert_eq!(store.active_backfill(&t).await.unwrap(), None);
        assert!(!store.set_active_backfill(&t, Some(a), Some(1)).await.unwrap(), "no item has version 1");
        assert!(store.set_active_backfill(&t, Some(a), None).await.unwrap());
        assert!(!store.set_active_backfill(&t, Some(b), None).await.unwrap(), "one is active");
        assert_eq!(store.active_backfill(&t).await.unwrap(), Some((a.to_string(), 1)));
        assert!(store.set_active_backfill(&t, None, Some(1)).await.unwrap());
        assert!(!store.set_active_backfill(&t, None, Some(1)).await.unwrap(), "stale");
        assert_eq!(store.active_backfill(&t).await.unwrap(), None);
        // After a clear, the next one takes it without a version; versions
        // only grow, so a version read before the clear never matches again.
        assert!(store.set_active_backfill(&t, Some(b), None).await.unwrap());
        assert_eq!(store.active_backfill(&t).await.unwrap(), Some((b.to_string(), 3)));
        assert!(!store.set_active_backfill(&t, None, Some(1)).await.unwrap(), "stale after a clear and a set");
        assert!(store.set_active_backfill(&t, None, Some(3)).await.unwrap());
        assert_eq!(store.active_backfill(&t).await.unwrap(), None);
        assert_eq!(store.active_backfill(&tenant("other")).await.unwrap(), None, "tenants are apart");
    }

    async fn coverage_round_trip(store: &dyn BackfillStore) {
        let t = tenant("covco");
        assert_eq!(store.coverage(&t).await.unwrap(), (Coverage::default(), None));
        let mut c = Coverage::default();
        c.add(window(datetime!(2026-01-01 00:00 UTC), 24));
        c.add(window(datetime!(2026-02-01 00:00 UTC), 48));
        assert!(!store.put_coverage(&t, &c, Some(1)).await.unwrap(), "absent");
        assert!(store.put_coverage(&t, &c, None).await.unwrap());
        assert!(!store.put_coverage(&t, &c, None).await.unwrap(), "present");
        assert_eq!(store.coverage(&t).await.unwrap(), (c.clone(), Some(1)));
        let mut c2 = c.clone();
        c2.add(window(datetime!(2026-01-02 00:00 UTC), 24));
        assert!(store.put_coverage(&t, &c2, Some(1)).await.unwrap());
        assert!(!store.put_coverage(&t, &c, Some(1)).await.unwrap(), "stale");
        assert_eq!(store.coverage(&t).await.unwrap(), (c2, Some(2)));
        assert_eq!(store.coverage(&tenant("other")).await.unwrap(), (Coverage::default(), None));
    }

    async fn exercise(store: &dyn BackfillStore) {
        conditional_writes(store).await;
        listing(store).await;
        many_shards(store).await;
        active_pointer(store).await;
        coverage_round_trip(store).await;
    }

    async fn exercise_open(store: &dyn BackfillStore) {
        open_index(store).await;
        many_open(store).await;
    }

    #[tokio::test]
    async fn the_fake_keeps_backfills_conditionally() {
        exercise(&MemoryState::new()).await;
    }

    #[tokio::test]
    async fn the_fake_keeps_the_open_index_exact() {
        exercise_open(&MemoryState::new()).await;
    }

    #[tokio::test]
    async fn dynamodb_keeps_backfills_conditionally() {
        let moto = Moto::start().await;
        let client = moto.state_table("state").await;
        exercise(&DynamoState::new(client, "state")).await;
    }

    #[tokio::test]
    async fn dynamodb_keeps_the_open_index_exact() {
        let moto = Moto::start().await;
        let client = moto.state_table("state").await;
        exercise_open(&DynamoState::new(client, "state")).await;
    }
}
