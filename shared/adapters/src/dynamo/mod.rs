//! DynamoDB adapters on the state table (single-table design).
//!
//! Keys: `pk` / `sk` strings; `gsi1pk` / `gsi1sk` for listings; `expires_at`
//! (epoch seconds) is the table's TTL attribute.
//! - tenant:      pk `TENANT#<id>`, sk `TENANT` (the current configuration), gsi1pk `TENANTS`,
//!   gsi1sk `<id>`; `doc` (JSON), `version`, `created_at`, `changed_at` (epoch ms)
//! - version:     pk `TENANT#<id>`, sk `CONFIG#<version, 12 digits>` — every version ever stored;
//!   written in one transaction with the current item (optimistic on `version`)
//! - dedupe mark (an event id enqueued): pk `DEDUPE#<key>`, sk `DEDUPE`, `at`, `expires_at` (TTL)
//! - review queue and held jobs: see [`review`]; learner links: see [`links`]
//! - applied record versions: see [`applied`]
//! - backfills, their shards, the active pointer, coverage and the open index: see [`backfills`]

pub mod activity;
pub mod applied;
pub mod backfills;
pub mod connection;
pub mod imports;
pub mod links;
pub mod memory;
pub mod review;

use crate::aws::classify_sdk;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use learnlink_core::PortError;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{Claim, ConfigStore, DedupeStore, PutConfigError, StoredConfig};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

const PERMANENT: &[&str] = &["ValidationException", "ResourceNotFoundException", "AccessDeniedException"];
const THROTTLING: &[&str] = &["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"];

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[derive(Clone)]
pub struct DynamoState {
    pub(crate) client: Client,
    pub(crate) table: String,
}

impl DynamoState {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoState { client, table: table.into() }
    }

    pub(crate) fn err<E, R>(what: &str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> PortError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        classify_sdk(what, e, THROTTLING, PERMANENT)
    }
}

/// A put of a versioned item (JSON documents: import state, backfills,
/// shards): stored as version `expected + 1` (1 when new), on condition that
/// the item is absent (`expected` None) or still at `expected`.
fn versioned_put(
    put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    expected: Option<u64>,
) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
    let put = put.item("version", n(expected.map_or(1, |v| v + 1)));
    match expected {
        None => put.condition_expression("attribute_not_exists(pk)"),
        Some(v) => put
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", n(v)),
    }
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Result<&'a str, PortError> {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| PortError::permanent(format!("a stored item has no `{k}`")))
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Result<i64, PortError> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| PortError::permanent(format!("a stored item has no numeric `{k}`")))
}

fn ts(secs_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(secs_ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn stored_from_item(item: &HashMap<String, AttributeValue>) -> Result<StoredConfig, PortError> {
    let id = get_s(item, "tenant")?;
    let tenant = TenantId::parse(id).map_err(|e| PortError::permanent(e.to_string()))?;
    let doc = serde_json::from_str(get_s(item, "doc")?)
        .map_err(|e| PortError::permanent(format!("the stored configuration of {id} is not JSON: {e}")))?;
    Ok(StoredConfig {
        tenant,
        version: get_n(item, "version")? as u64,
        created_at: ts(get_n(item, "created_at")?),
        changed_at: ts(get_n(item, "changed_at")?),
        doc,
    })
}

fn version_sk(v: u64) -> String {
    format!("CONFIG#{v:012}")
}

#[async_trait]
impl ConfigStore for DynamoState {
    async fn current_config(&self, id: &TenantId) -> Result<Option<StoredConfig>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("TENANT#{id}")))
            .key("sk", s("TENANT"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::err("reading tenant", e))?;
        out.item.as_ref().map(stored_from_item).transpose()
    }

    async fn config_version(&self, id: &TenantId, version: u64) -> Result<Option<StoredConfig>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("TENANT#{id}")))
            .key("sk", s(version_sk(version)))
            .send()
            .await
            .map_err(|e| Self::err("reading a configuration version", e))?;
        out.item.as_ref().map(stored_from_item).transpose()
    }

    async fn config_versions(&self, id: &TenantId) -> Result<Vec<(u64, OffsetDateTime)>, PortError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p AND begins_with(sk, :c)")
                .expression_attribute_values(":p", s(format!("TENANT#{id}")))
                .expression_attribute_values(":c", s("CONFIG#"))
                .projection_expression("version, changed_at")
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Self::err("listing configuration versions", e))?;
            for item in resp.items() {
                out.push((get_n(item, "version")? as u64, ts(get_n(item, "changed_at")?)));
            }
            match resp.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn put_config(
        &self,
        id: &TenantId,
        expected: Option<u64>,
        doc: &serde_json::Value,
        now: OffsetDateTime,
    ) -> Result<StoredConfig, PutConfigError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let created_at = match expected {
            None => now,
            Some(_) => match self.current_config(id).await? {
                Some(c) => c.created_at,
                None => return Err(PutConfigError::Conflict { current: None }),
            },
        };
        let version = expected.unwrap_or(0) + 1;
        let text = serde_json::to_string(doc).map_err(|e| PortError::permanent(format!("serializing: {e}")))?;
        let item = |sk: String| {
            Put::builder()
                .table_name(&self.table)
                .item("pk", s(format!("TENANT#{id}")))
                .item("sk", s(sk))
                .item("tenant", s(id.as_str()))
                .item("version", n(version))
                .item("created_at", n(ms(created_at)))
                .item("changed_at", n(ms(now)))
                .item("doc", s(text.clone()))
        };
        let current = match expected {
            None => item("TENANT".into()).condition_expression("attribute_not_exists(pk)"),
            Some(v) => item("TENANT".into())
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", n(v)),
        }
        .item("gsi1pk", s("TENANTS"))
        .item("gsi1sk", s(id.as_str()));
        let history = item(version_sk(version)).condition_expression("attribute_not_exists(pk)");
        let build = |p: aws_sdk_dynamodb::types::builders::PutBuilder| {
            p.build().map_err(|e| PutConfigError::Port(PortError::permanent(format!("building a write: {e}"))))
        };
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(build(current)?).build())
            .transact_items(TransactWriteItem::builder().put(build(history)?).build())
            .send()
            .await;
        match res {
            Ok(_) => Ok(StoredConfig { tenant: id.clone(), version, created_at, changed_at: now, doc: doc.clone() }),
            Err(e) => {
                let cancelled = e.as_service_error().is_some_and(|se| se.is_transaction_canceled_exception());
                if cancelled {
                    let current = self.current_config(id).await.ok().flatten().map(|c| c.version);
                    Err(PutConfigError::Conflict { current })
                } else {
                    Err(PutConfigError::Port(Self::err("storing the configuration", e)))
                }
            }
        }
    }

    async fn list_configs(&self) -> Result<Vec<StoredConfig>, PortError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :p")
                .expression_attribute_values(":p", s("TENANTS"))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Self::err("listing tenants", e))?;
            for item in resp.items() {
                out.push(stored_from_item(item)?);
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
impl DedupeStore for DynamoState {
    async fn seen_many(&self, keys: &[String], now: OffsetDateTime) -> Result<Vec<Claim>, PortError> {
        // One consistent BatchGetItem per 100 ids. An item past its TTL that
        // DynamoDB has not deleted yet counts as forgotten.
        let mut seen: HashSet<&str> = HashSet::new();
        let unique: Vec<&str> = keys.iter().map(String::as_str).filter(|k| seen.insert(k)).collect();
        let item_key =
            |k: &str| HashMap::from([("pk".to_string(), s(format!("DEDUPE#{k}"))), ("sk".to_string(), s("DEDUPE"))]);
        let found = links::read_batch(self, unique.iter().map(|k| item_key(k)).collect(), "reading event ids").await?;
        let now = now.unix_timestamp();
        let mut known: HashSet<String> = HashSet::new();
        for item in &found {
            let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) else { continue };
            let expires: i64 =
                item.get("expires_at").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(i64::MAX);
            if expires > now {
                known.insert(pk.trim_start_matches("DEDUPE#").to_string());
            }
        }
        Ok(learnlink_core::ports::dedupe_answers(keys, &known))
    }

    async fn remember_many(&self, keys: &[String], now: OffsetDateTime, ttl: time::Duration) -> Result<(), PortError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let mut seen = HashSet::new();
        let unique: Vec<&str> = keys.iter().map(String::as_str).filter(|k| seen.insert(*k)).collect();
        let what = "remembering event ids";
        for chunk in unique.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for k in chunk {
                let put = PutRequest::builder()
                    .item("pk", s(format!("DEDUPE#{k}")))
                    .item("sk", s("DEDUPE"))
                    .item("at", AttributeValue::N(now.unix_timestamp().to_string()))
                    .item("expires_at", AttributeValue::N((now + ttl).unix_timestamp().to_string()))
                    .build()
                    .map_err(|e| PortError::permanent(format!("{what}: building a write: {e}")))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            links::write_batch(self, requests, what).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod dedupe_tests {
    use super::*;

    /// Ids are duplicates once remembered, until their TTL; a repeat within
    /// a delivery is a duplicate after its first; more than one batch of
    /// reads and writes (100 / 25) is covered.
    #[tokio::test]
    async fn remembered_ids_are_duplicates_until_their_ttl() {
        let moto = crate::motokit::Moto::start().await;
        let state = DynamoState::new(moto.state_table("state").await, "state");
        let t0 = time::macros::datetime!(2026-11-23 10:00 UTC);
        let ttl = time::Duration::days(7);
        let mut keys: Vec<String> = (0..230).map(|i| format!("k{i}")).collect();
        keys.push("k7".into()); // repeated within the delivery
        let answers = state.seen_many(&keys, t0).await.unwrap();
        assert!(answers[..230].iter().all(|a| *a == Claim::Fresh));
        assert_eq!(answers[230], Claim::Duplicate);
        // Read only: nothing is remembered until told.
        assert_eq!(state.seen_many(&keys[..1], t0).await.unwrap(), vec![Claim::Fresh]);
        state.remember_many(&keys[..200], t0, ttl).await.unwrap();
        let later = t0 + time::Duration::hours(1);
        let again = state.seen_many(&keys, later).await.unwrap();
        assert!(again[..200].iter().all(|a| *a == Claim::Duplicate));
        assert!(again[200..230].iter().all(|a| *a == Claim::Fresh));
        // Past the TTL (DynamoDB deletes lazily) an id is forgotten.
        let expired = t0 + ttl + time::Duration::seconds(1);
        assert_eq!(state.seen_many(&keys[..2], expired).await.unwrap(), vec![Claim::Fresh; 2]);
    }
}
