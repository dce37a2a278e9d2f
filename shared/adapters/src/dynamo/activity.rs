//! The activity log and run summaries on the activity table.
//!
//! - entry: pk `ACT#<tenant>`, sk `<at, RFC 3339 ms UTC>#<id>`; gsi1 (`ACT#<tenant>#L#<learner>`, sk)
//!   for a learner's history; gsi2 (`ACT#<tenant>#O#<outcome>`, sk) by outcome; `expires_at` TTL 90 days
//! - run:   pk `RUN#<tenant>`, sk `<started_at>#<run id>`; TTL 30 days
//!
//! Cursors are the DynamoDB `LastEvaluatedKey`, opaque (base64 JSON) to callers.

use crate::aws::classify_sdk;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use base64::Engine;
use learnlink_core::PortError;
use learnlink_core::activity::{ACTIVITY_TTL, ActivityEntry, ActivityFilter, ActivityPage, RUN_TTL, RunSummary};
use learnlink_core::model::TenantId;
use learnlink_core::ports::ActivityLog;
use std::collections::HashMap;
use time::OffsetDateTime;

const PERMANENT: &[&str] = &["ValidationException", "ResourceNotFoundException", "AccessDeniedException"];

#[derive(Clone)]
pub struct DynamoActivity {
    client: Client,
    table: String,
}

impl DynamoActivity {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoActivity { client, table: table.into() }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// Sortable UTC timestamp with milliseconds.
fn sort_time(t: OffsetDateTime) -> String {
    learnlink_core::model::salesforce_datetime(t)
}

fn err<E, R>(what: &str, e: aws_sdk_dynamodb::error::SdkError<E, R>) -> PortError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    classify_sdk(what, e, &["ProvisionedThroughputExceededException", "ThrottlingException"], PERMANENT)
}

fn encode_cursor(key: &HashMap<String, AttributeValue>) -> String {
    let plain: HashMap<&str, &str> =
        key.iter().filter_map(|(k, v)| v.as_s().ok().map(|s| (k.as_str(), s.as_str()))).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&plain).unwrap_or_default())
}

fn decode_cursor(cursor: &str) -> Result<HashMap<String, AttributeValue>, PortError> {
    let bad = || PortError::permanent("the cursor is not one this API issued");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let plain: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if plain.is_empty() || plain.len() > 4 {
        return Err(bad());
    }
    Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
}

#[async_trait]
impl ActivityLog for DynamoActivity {
    async fn record(&self, tenant: &TenantId, entries: &[ActivityEntry]) -> Result<(), PortError> {
        for chunk in entries.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for e in chunk {
                let sk = format!("{}#{}", sort_time(e.at), uuid::Uuid::new_v4().simple());
                let doc = serde_json::to_string(e).map_err(|e| PortError::permanent(format!("serializing: {e}")))?;
                let mut put = PutRequest::builder()
                    .item("pk", s(format!("ACT#{tenant}")))
                    .item("sk", s(sk.clone()))
                    .item("gsi2pk", s(format!("ACT#{tenant}#O#{}", e.outcome.as_str())))
                    .item("gsi2sk", s(sk.clone()))
                    .item("expires_at", AttributeValue::N((e.at + ACTIVITY_TTL).unix_timestamp().to_string()))
                    .item("doc", s(doc));
                if let Some(l) = &e.learner_id {
                    put = put.item("gsi1pk", s(format!("ACT#{tenant}#L#{l}"))).item("gsi1sk", s(sk));
                }
                let put = put.build().map_err(|e| PortError::permanent(format!("building a write: {e}")))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            // BatchWriteItem may leave items unprocessed under load: retry them.
            let mut pending = Some(HashMap::from([(self.table.clone(), requests)]));
            for attempt in 0..8u32 {
                let Some(items) = pending.take().filter(|m| m.values().any(|v| !v.is_empty())) else { break };
                let out = self
                    .client
                    .batch_write_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .map_err(|e| err("writing the activity log", e))?;
                pending = out.unprocessed_items;
                if pending.as_ref().is_some_and(|m| m.values().any(|v| !v.is_empty())) {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5))).await;
                }
            }
            if pending.is_some_and(|m| m.values().any(|v| !v.is_empty())) {
                return Err(PortError::retryable("some activity entries could not be written"));
            }
        }
        Ok(())
    }

    async fn query(
        &self,
        tenant: &TenantId,
        filter: &ActivityFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ActivityPage, PortError> {
        let start = cursor.map(decode_cursor).transpose()?;
        let lo = filter.since.map(sort_time).unwrap_or_else(|| "0".into());
        // `~` sorts after every timestamp character: an inclusive upper bound.
        let hi = filter.until.map(|u| format!("{}~", sort_time(u))).unwrap_or_else(|| "~".into());
        let (index, pk_name, sk_name, pk) = match (&filter.learner, filter.outcome) {
            (Some(l), _) => (Some("gsi1"), "gsi1pk", "gsi1sk", format!("ACT#{tenant}#L#{l}")),
            (None, Some(o)) => (Some("gsi2"), "gsi2pk", "gsi2sk", format!("ACT#{tenant}#O#{}", o.as_str())),
            (None, None) => (None, "pk", "sk", format!("ACT#{tenant}")),
        };
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_string))
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#pk", pk_name)
            .expression_attribute_names("#sk", sk_name)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start);
        if filter.learner.is_some()
            && let Some(o) = filter.outcome
        {
            req = req
                .filter_expression("gsi2pk = :o")
                .expression_attribute_values(":o", s(format!("ACT#{tenant}#O#{}", o.as_str())));
        }
        let out = req.send().await.map_err(|e| err("reading the activity log", e))?;
        let mut entries = Vec::new();
        for item in out.items() {
            let doc = item.get("doc").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("");
            match serde_json::from_str::<ActivityEntry>(doc) {
                Ok(e) => entries.push(e),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable activity entry"),
            }
        }
        let next_cursor = out.last_evaluated_key.filter(|k| !k.is_empty()).map(|k| encode_cursor(&k));
        Ok(ActivityPage { entries, next_cursor })
    }

    async fn record_run(&self, tenant: &TenantId, run: &RunSummary) -> Result<(), PortError> {
        let doc = serde_json::to_string(run).map_err(|e| PortError::permanent(format!("serializing: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("RUN#{tenant}")))
            .item("sk", s(format!("{}#{}", sort_time(run.started_at), run.run_id)))
            .item("expires_at", AttributeValue::N((run.finished_at + RUN_TTL).unix_timestamp().to_string()))
            .item("doc", s(doc))
            .send()
            .await
            .map_err(|e| err("recording a run", e))?;
        Ok(())
    }

    async fn runs(&self, tenant: &TenantId, limit: usize) -> Result<Vec<RunSummary>, PortError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(format!("RUN#{tenant}")))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| err("reading runs", e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| i.get("doc").and_then(|v| v.as_s().ok()))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let key = HashMap::from([("pk".to_string(), s("ACT#acme")), ("sk".to_string(), s("2026#x"))]);
        let c = encode_cursor(&key);
        assert_eq!(decode_cursor(&c).unwrap(), key);
        for bad in ["", "!!!", "e30", "bm90IGpzb24"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
