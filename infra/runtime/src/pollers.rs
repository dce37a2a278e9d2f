//! SQS event source mappings: poll a queue, gather a batch up to BatchSize
//! within MaximumBatchingWindowInSeconds, invoke the function, delete what
//! succeeded. Failed items are left alone: they become visible again after
//! the queue's visibility timeout, and moto moves them to the dead-letter
//! queue after maxReceiveCount receives — as in AWS.

use crate::events::{SqsIn, failed_items, sqs_event};
use crate::lambda::{FunctionHost, MAX_PAYLOAD};
use crate::wiring::SqsSource;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a poller has done, for the control API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStats {
    pub function: String,
    pub event: String,
    pub queue: String,
    pub batches: u64,
    pub messages: u64,
    pub deleted: u64,
    pub failed_items: u64,
    pub failed_batches: u64,
    pub max_batch: u64,
    /// Sizes of the last 1,000 batches.
    pub recent_batch_sizes: Vec<u64>,
}

pub struct Poller {
    pub src: SqsSource,
    pub host: Arc<FunctionHost>,
    pub sqs: aws_sdk_sqs::Client,
    pub region: String,
    pub stats: Arc<Mutex<SourceStats>>,
}

fn message_attributes(m: &aws_sdk_sqs::types::Message) -> Value {
    let mut out = Map::new();
    for (k, v) in m.message_attributes().into_iter().flatten() {
        use base64::Engine;
        let b64 = |b: &aws_sdk_sqs::primitives::Blob| base64::engine::general_purpose::STANDARD.encode(b.as_ref());
        out.insert(
            k.clone(),
            json!({
                "stringValue": v.string_value(),
                "binaryValue": v.binary_value().map(b64),
                "stringListValues": v.string_list_values(),
                "binaryListValues": v.binary_list_values().iter().map(b64).collect::<Vec<_>>(),
                "dataType": v.data_type(),
            }),
        );
    }
    Value::Object(out)
}

impl Poller {
    async fn receive(&self, max: i32, wait: i32) -> Vec<SqsIn> {
        let res = self
            .sqs
            .receive_message()
            .queue_url(&self.src.queue_url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait.clamp(0, 20))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        match res {
            Ok(out) => out
                .messages
                .unwrap_or_default()
                .into_iter()
                .map(|m| SqsIn {
                    message_attributes: message_attributes(&m),
                    attributes: m
                        .attributes()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect::<BTreeMap<_, _>>(),
                    message_id: m.message_id.unwrap_or_default(),
                    receipt_handle: m.receipt_handle.unwrap_or_default(),
                    md5_of_body: m.md5_of_body.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                })
                .collect(),
            Err(e) => {
                tracing::warn!(queue = %self.src.queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "receive failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                Vec::new()
            }
        }
    }

    /// Gather one batch as Lambda's poller does.
    async fn gather(&self, carry: &mut Vec<SqsIn>) -> Vec<SqsIn> {
        let max = self.src.batch_size as usize;
        let window = Duration::from_secs(u64::from(self.src.window_secs));
        let mut batch: Vec<SqsIn> = std::mem::take(carry);
        let mut bytes: usize = batch.iter().map(|m| m.body.len() + 512).sum();
        let mut first: Option<Instant> = if batch.is_empty() { None } else { Some(Instant::now()) };
        loop {
            if batch.len() >= max {
                break;
            }
            let wait = match first {
                None => 5,
                Some(t) => {
                    let left = window.saturating_sub(t.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    left.as_secs_f64().ceil() as i32
                }
            };
            let want = (max - batch.len()).min(10) as i32;
            let got = self.receive(want, if first.is_some() && window.is_zero() { 0 } else { wait }).await;
            if got.is_empty() && first.is_some() && window.is_zero() {
                break;
            }
            for m in got {
                if bytes + m.body.len() + 512 > MAX_PAYLOAD && !batch.is_empty() {
                    carry.push(m);
                    continue;
                }
                bytes += m.body.len() + 512;
                first.get_or_insert_with(Instant::now);
                batch.push(m);
            }
            if !carry.is_empty() {
                break;
            }
            if first.is_some() && window.is_zero() {
                break;
            }
        }
        batch
    }

    async fn delete(&self, msgs: &[&SqsIn]) -> u64 {
        let mut deleted = 0;
        for chunk in msgs.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("d{i}"))
                        .receipt_handle(&m.receipt_handle)
                        .build()
                        .ok()
                })
                .collect();
            match self.sqs.delete_message_batch().queue_url(&self.src.queue_url).set_entries(Some(entries)).send().await
            {
                Ok(out) => deleted += out.successful().len() as u64,
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "delete failed; the messages will be redelivered")
                }
            }
        }
        deleted
    }

    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut carry = Vec::new();
        loop {
            if *stop.borrow() {
                return;
            }
            let batch = tokio::select! {
                b = self.gather(&mut carry) => b,
                _ = stop.changed() => return,
            };
            if batch.is_empty() {
                continue;
            }
            let event = sqs_event(&self.src, &self.region, &batch);
            let payload = Bytes::from(event.to_string());
            let result = self.host.invoke(payload).await;
            let (to_delete, failed): (Vec<&SqsIn>, u64) = match &result {
                Ok(resp) => {
                    let failed = failed_items(&self.src, resp, &batch);
                    (batch.iter().filter(|m| !failed.contains(&m.message_id)).collect(), failed.len() as u64)
                }
                Err(e) => {
                    tracing::warn!(function = %self.host.spec.name, error = %e, messages = batch.len(), "batch invocation failed; every message stays for redelivery");
                    (Vec::new(), batch.len() as u64)
                }
            };
            let deleted = self.delete(&to_delete).await;
            let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            s.batches += 1;
            s.messages += batch.len() as u64;
            s.deleted += deleted;
            s.failed_items += failed;
            if result.is_err() {
                s.failed_batches += 1;
            }
            s.max_batch = s.max_batch.max(batch.len() as u64);
            s.recent_batch_sizes.push(batch.len() as u64);
            if s.recent_batch_sizes.len() > 1000 {
                s.recent_batch_sizes.remove(0);
            }
        }
    }
}
