//! DynamoDB adapters on the state table (single-table design).
//!
//! Keys: `pk` / `sk` strings; `gsi1pk` / `gsi1sk` for listings; `expires_at`
//! (epoch seconds) is the table's TTL attribute.
//! - tenant:      pk `TENANT#<id>`, sk `TENANT`, gsi1pk `TENANTS`, gsi1sk `<id>`, `doc` = JSON
//! - dedupe mark: pk `DEDUPE#<key>`, sk `DEDUPE`, `state` pending|done, `at`, `expires_at`

pub mod memory;

use crate::aws::classify_sdk;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use learnlink_core::PortError;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{Claim, DedupeStore, TenantStore};
use learnlink_core::tenant::Tenant;
use time::OffsetDateTime;

const PERMANENT: &[&str] = &["ValidationException", "ResourceNotFoundException", "AccessDeniedException"];
const THROTTLING: &[&str] = &["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"];

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

#[derive(Clone)]
pub struct DynamoState {
    client: Client,
    table: String,
}

impl DynamoState {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoState { client, table: table.into() }
    }

    fn err<E, R>(what: &str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> PortError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        classify_sdk(what, e, THROTTLING, PERMANENT)
    }
}

fn tenant_from_item(item: &std::collections::HashMap<String, AttributeValue>) -> Result<Tenant, PortError> {
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| PortError::permanent("a tenant item has no `doc` attribute"))?;
    serde_json::from_str(doc).map_err(|e| PortError::permanent(format!("a stored tenant document is invalid: {e}")))
}

#[async_trait]
impl TenantStore for DynamoState {
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, PortError> {
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
        out.item.as_ref().map(tenant_from_item).transpose()
    }

    async fn put_tenant(&self, tenant: &Tenant) -> Result<(), PortError> {
        let doc =
            serde_json::to_string(tenant).map_err(|e| PortError::permanent(format!("serializing tenant: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("TENANT#{}", tenant.id)))
            .item("sk", s("TENANT"))
            .item("gsi1pk", s("TENANTS"))
            .item("gsi1sk", s(tenant.id.as_str()))
            .item("doc", s(doc))
            .send()
            .await
            .map_err(|e| Self::err("storing tenant", e))?;
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, PortError> {
        let mut out = Vec::new();
        let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
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
                out.push(tenant_from_item(item)?);
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
    async fn claim(
        &self,
        key: &str,
        now: OffsetDateTime,
        pending_grace: time::Duration,
        ttl: time::Duration,
    ) -> Result<Claim, PortError> {
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("DEDUPE#{key}")))
            .item("sk", s("DEDUPE"))
            .item("state", s("pending"))
            .item("at", AttributeValue::N(now.unix_timestamp().to_string()))
            .item("expires_at", AttributeValue::N((now + ttl).unix_timestamp().to_string()))
            .condition_expression("attribute_not_exists(pk) OR (#st = :pending AND #at < :stale)")
            .expression_attribute_names("#st", "state")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(
                ":stale",
                AttributeValue::N((now - pending_grace).unix_timestamp().to_string()),
            )
            .send()
            .await;
        match res {
            Ok(_) => Ok(Claim::Fresh),
            Err(e) => {
                let conditional =
                    e.as_service_error().map(|se| se.is_conditional_check_failed_exception()).unwrap_or(false);
                if conditional { Ok(Claim::Duplicate) } else { Err(Self::err("claiming event id", e)) }
            }
        }
    }

    async fn confirm(&self, key: &str) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("DEDUPE#{key}")))
            .key("sk", s("DEDUPE"))
            .update_expression("SET #st = :done")
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":done", s("done"))
            .send()
            .await
            .map_err(|e| Self::err("confirming event id", e))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), PortError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("DEDUPE#{key}")))
            .key("sk", s("DEDUPE"))
            .send()
            .await
            .map_err(|e| Self::err("releasing event id", e))?;
        Ok(())
    }
}
