//! Connection state, tenant leases (refresh, write), parked work and OAuth states on the
//! state table.
//!
//! - connection: pk `TENANT#<id>`, sk `CONNECTION`; `doc` (JSON), `revision` (optimistic)
//! - leases:     pk `TENANT#<id>`, sk `LEASE#<name>` (`refresh`: token refresh; `write`: the tenant's record
//!   writes); `holder`, `expires_ms`, `fence` (grows on every grant)
//! - parked job: pk `PARK#<id>`, sk `<parked_at ms, 15 digits>#<key>`... keyed by job key for idempotency:
//!   sk `JOB#<key>`; `job` (the queue message), `parked_at`
//! - oauth:      pk `OAUTH#<state>`, sk `STATE`; `tenant`, `verifier`, `redirect_uri`, `expires_at` (TTL)

use super::DynamoState;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, ReturnValue, Select, WriteRequest};
use learnlink_core::PortError;
use learnlink_core::connection::ConnectionState;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{ConnectionStore, OAuthStateStore, ParkStore, PendingAuth, TenantLease};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use time::OffsetDateTime;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn conditional<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|se| se.code()).is_some_and(|c| c == "ConditionalCheckFailedException")
}

#[async_trait]
impl ConnectionStore for DynamoState {
    async fn connection(&self, tenant: &TenantId) -> Result<Option<ConnectionState>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("TENANT#{tenant}")))
            .key("sk", s("CONNECTION"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::err("reading the connection state", e))?;
        let Some(item) = out.item else { return Ok(None) };
        let doc = item.get("doc").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("");
        serde_json::from_str(doc)
            .map(Some)
            .map_err(|e| PortError::permanent(format!("the connection state of {tenant} is unreadable: {e}")))
    }

    async fn put_connection(
        &self,
        tenant: &TenantId,
        state: &ConnectionState,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        let doc = serde_json::to_string(state).map_err(|e| PortError::permanent(format!("serializing: {e}")))?;
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("TENANT#{tenant}")))
            .item("sk", s("CONNECTION"))
            .item("revision", n(state.revision))
            .item("doc", s(doc));
        req = match expected {
            None => req.condition_expression("attribute_not_exists(pk)"),
            Some(r) => req.condition_expression("revision = :r").expression_attribute_values(":r", n(r)),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if conditional(&e) => Ok(false),
            Err(e) => Err(Self::err("storing the connection state", e)),
        }
    }
}

#[async_trait]
impl TenantLease for DynamoState {
    async fn acquire(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<Option<u64>, PortError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("TENANT#{tenant}")))
            .key("sk", s(format!("LEASE#{name}")))
            .update_expression("SET holder = :h, expires_ms = :e ADD fence :one")
            .condition_expression("attribute_not_exists(pk) OR expires_ms < :now OR holder = :h")
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":e", n(ms(now + ttl)))
            .expression_attribute_values(":now", n(ms(now)))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => Ok(Some(
                out.attributes
                    .as_ref()
                    .and_then(|a| a.get("fence"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            Err(e) if conditional(&e) => Ok(None),
            Err(e) => Err(Self::err(&format!("taking the {name} lease"), e)),
        }
    }

    async fn release(&self, tenant: &TenantId, name: &str, holder: &str) -> Result<(), PortError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("TENANT#{tenant}")))
            .key("sk", s(format!("LEASE#{name}")))
            .update_expression("SET expires_ms = :zero")
            .condition_expression("holder = :h")
            .expression_attribute_values(":h", s(holder))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if conditional(&e) => Ok(()), // someone else holds it now
            Err(e) => Err(Self::err(&format!("releasing the {name} lease"), e)),
        }
    }
}

#[async_trait]
impl ParkStore for DynamoState {
    async fn park(&self, tenant: &TenantId, jobs: &[(String, String)]) -> Result<(), PortError> {
        let now = ms(OffsetDateTime::now_utc());
        for chunk in jobs.chunks(25) {
            // Deduplicate keys within a batch (BatchWriteItem refuses duplicates).
            let mut seen = std::collections::HashSet::new();
            let mut requests = Vec::new();
            for (key, job) in chunk {
                if !seen.insert(key) {
                    continue;
                }
                let put = PutRequest::builder()
                    .item("pk", s(format!("PARK#{tenant}")))
                    .item("sk", s(format!("JOB#{key}")))
                    .item("job", s(job.clone()))
                    .item("parked_at", n(now))
                    .build()
                    .map_err(|e| PortError::permanent(format!("building a write: {e}")))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            self.batch_write(requests, "parking work").await?;
        }
        Ok(())
    }

    async fn parked(&self, tenant: &TenantId, limit: usize) -> Result<(Vec<(String, String)>, bool), PortError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(format!("PARK#{tenant}")))
            .limit(limit.clamp(1, 1000) as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::err("reading parked work", e))?;
        let jobs = out
            .items()
            .iter()
            .filter_map(|i| {
                let key = i.get("sk")?.as_s().ok()?.strip_prefix("JOB#")?.to_string();
                let job = i.get("job")?.as_s().ok()?.clone();
                Some((key, job))
            })
            .collect();
        Ok((jobs, out.last_evaluated_key.is_some_and(|k| !k.is_empty())))
    }

    async fn unpark(&self, tenant: &TenantId, keys: &[String]) -> Result<(), PortError> {
        for chunk in keys.chunks(25) {
            let mut seen = std::collections::HashSet::new();
            let mut requests = Vec::new();
            for key in chunk {
                if !seen.insert(key) {
                    continue;
                }
                let del = DeleteRequest::builder()
                    .key("pk", s(format!("PARK#{tenant}")))
                    .key("sk", s(format!("JOB#{key}")))
                    .build()
                    .map_err(|e| PortError::permanent(format!("building a delete: {e}")))?;
                requests.push(WriteRequest::builder().delete_request(del).build());
            }
            self.batch_write(requests, "releasing parked work").await?;
        }
        Ok(())
    }

    async fn parked_count(&self, tenant: &TenantId) -> Result<u64, PortError> {
        let mut total = 0u64;
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        for _ in 0..10_000 {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(format!("PARK#{tenant}")))
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Self::err("counting parked work", e))?;
            total += out.count.max(0) as u64;
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(total)
    }
}

impl DynamoState {
    async fn batch_write(&self, requests: Vec<WriteRequest>, what: &str) -> Result<(), PortError> {
        if requests.is_empty() {
            return Ok(());
        }
        let mut pending = Some(HashMap::from([(self.table.clone(), requests)]));
        for attempt in 0..8u32 {
            let Some(items) = pending.take().filter(|m| m.values().any(|v| !v.is_empty())) else { return Ok(()) };
            let out = self
                .client
                .batch_write_item()
                .set_request_items(Some(items))
                .send()
                .await
                .map_err(|e| Self::err(what, e))?;
            pending = out.unprocessed_items;
            if pending.as_ref().is_some_and(|m| m.values().any(|v| !v.is_empty())) {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5))).await;
            }
        }
        if pending.is_some_and(|m| m.values().any(|v| !v.is_empty())) {
            return Err(PortError::retryable(format!("{what}: some writes stayed unprocessed")));
        }
        Ok(())
    }
}

#[async_trait]
impl OAuthStateStore for DynamoState {
    async fn save_state(&self, state: &str, p: &PendingAuth) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("OAUTH#{state}")))
            .item("sk", s("STATE"))
            .item("tenant", s(p.tenant.as_str()))
            .item("verifier", s(p.code_verifier.expose_secret()))
            .item("redirect_uri", s(p.redirect_uri.clone()))
            .item("expires_at", n(p.expires_at.unix_timestamp()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| Self::err("saving the OAuth state", e))?;
        Ok(())
    }

    async fn take_state(&self, state: &str, now: OffsetDateTime) -> Result<Option<PendingAuth>, PortError> {
        // Delete-and-return is atomic: a state can be taken exactly once.
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("OAUTH#{state}")))
            .key("sk", s("STATE"))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let item = match res {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) if conditional(&e) => return Ok(None),
            Err(e) => return Err(Self::err("taking the OAuth state", e)),
        };
        let get = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let expires = item
            .get("expires_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
        let (Some(tenant), Some(verifier), Some(redirect_uri), Some(expires_at)) =
            (get("tenant"), get("verifier"), get("redirect_uri"), expires)
        else {
            return Ok(None);
        };
        if expires_at < now {
            return Ok(None);
        }
        let tenant = TenantId::parse(&tenant).map_err(|e| PortError::permanent(e.to_string()))?;
        Ok(Some(PendingAuth { tenant, code_verifier: SecretString::from(verifier), redirect_uri, expires_at }))
    }
}
