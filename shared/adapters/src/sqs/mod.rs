//! SQS adapter: sends sync jobs to a queue in batches of 10; the dead-letter
//! queue ([`dlq`]).

pub mod dlq;
pub mod memory;

use crate::aws::classify_sdk;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, SendMessageBatchRequestEntry};
use learnlink_core::ports::JobQueue;
use learnlink_core::{ErrorClass, PortError};

const PERMANENT: &[&str] = &[
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidMessageContents",
    "AccessDenied",
    "BatchRequestTooLong",
];

#[derive(Clone)]
pub struct SqsJobQueue {
    client: Client,
    queue_url: String,
}

impl SqsJobQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsJobQueue { client, queue_url: queue_url.into() }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn send_encoded(&self, bodies: &[String]) -> Vec<Result<(), PortError>> {
        let mut results: Vec<Result<(), PortError>> = Vec::with_capacity(bodies.len());
        for range in batches(bodies) {
            let start = range.start;
            let chunk = &bodies[range];
            let entries: Result<Vec<_>, _> = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder().id(format!("m{}", start + i)).message_body(body).build()
                })
                .collect();
            let entries = match entries {
                Ok(e) => e,
                Err(e) => {
                    for _ in chunk {
                        results.push(Err(PortError::permanent(format!("building an SQS batch: {e}"))));
                    }
                    continue;
                }
            };
            match self.client.send_message_batch().queue_url(&self.queue_url).set_entries(Some(entries)).send().await {
                Ok(out) => {
                    results.extend(entry_results(chunk.len(), 'm', start, out.failed(), "SQS refused a message"))
                }
                Err(e) => {
                    let e = classify_sdk("sending to the queue", e, &[], PERMANENT);
                    for _ in chunk {
                        results.push(Err(PortError::new(e.class, e.message.clone())));
                    }
                }
            }
        }
        results
    }

    async fn release(&self, receipt_handles: &[String]) -> Vec<Result<(), PortError>> {
        let mut results = Vec::with_capacity(receipt_handles.len());
        for chunk in receipt_handles.chunks(BATCH_MAX_MESSAGES) {
            let entries: Result<Vec<_>, _> = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("r{i}"))
                        .receipt_handle(h)
                        .visibility_timeout(0)
                        .build()
                })
                .collect();
            let entries = match entries {
                Ok(e) => e,
                Err(e) => {
                    results.extend(chunk.iter().map(|_| Err(PortError::permanent(format!("building a release: {e}")))));
                    continue;
                }
            };
            let sent = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match sent {
                Ok(out) => {
                    results.extend(entry_results(chunk.len(), 'r', 0, out.failed(), "SQS kept a message hidden"))
                }
                Err(e) => {
                    let e = classify_sdk("releasing messages", e, &[], PERMANENT);
                    results.extend(chunk.iter().map(|_| Err(PortError::new(e.class, e.message.clone()))));
                }
            }
        }
        results
    }
}

/// One result per entry of a batch call (SendMessageBatch,
/// ChangeMessageVisibilityBatch) from the entries SQS reported failed; entry
/// ids are `<prefix><start + i>`. A sender fault is permanent, the rest
/// retryable.
fn entry_results(
    len: usize,
    prefix: char,
    start: usize,
    failed: &[aws_sdk_sqs::types::BatchResultErrorEntry],
    what: &str,
) -> Vec<Result<(), PortError>> {
    let mut out: Vec<Result<(), PortError>> = (0..len).map(|_| Ok(())).collect();
    for f in failed {
        let idx = f.id().trim_start_matches(prefix).parse::<usize>().ok().and_then(|n| n.checked_sub(start));
        let class = if f.sender_fault() { ErrorClass::Permanent } else { ErrorClass::Retryable };
        let err = PortError::new(class, format!("{what} ({}: {})", f.code(), f.message().unwrap_or("")));
        match idx.and_then(|i| out.get_mut(i)) {
            Some(slot) => *slot = Err(err),
            None => tracing::error!(id = f.id(), "SQS reported a failure for an unknown batch entry"),
        }
    }
    out
}

/// SendMessageBatch takes at most 10 messages and 256 KiB in all.
const BATCH_MAX_MESSAGES: usize = 10;
const BATCH_MAX_BYTES: usize = 256 * 1024;

/// Consecutive ranges of `bodies` that each fit one SendMessageBatch call
/// (a body too large on its own gets a call of its own, which SQS refuses
/// for that message only).
fn batches(bodies: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, b) in bodies.iter().enumerate() {
        if i > start && (i - start == BATCH_MAX_MESSAGES || bytes + b.len() > BATCH_MAX_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += b.len();
    }
    if start < bodies.len() {
        out.push(start..bodies.len());
    }
    out
}

#[derive(Clone)]
pub struct SqsQueueStats {
    client: Client,
}

impl SqsQueueStats {
    pub fn new(client: Client) -> Self {
        SqsQueueStats { client }
    }
}

#[async_trait]
impl learnlink_core::ports::QueueStats for SqsQueueStats {
    async fn depth(&self, queue_url: &str) -> Result<u64, PortError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| classify_sdk("reading queue attributes", e, &[], PERMANENT))?;
        let attrs = out.attributes.unwrap_or_default();
        let n = |k: A| attrs.get(&k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_bytes() {
        let small: Vec<String> = (0..23).map(|_| "x".repeat(100)).collect();
        assert_eq!(batches(&small), vec![0..10, 10..20, 20..23]);
        let big: Vec<String> = (0..5).map(|_| "x".repeat(100 * 1024)).collect();
        assert_eq!(batches(&big), vec![0..2, 2..4, 4..5]);
        let huge = vec!["x".repeat(10), "x".repeat(300 * 1024), "x".repeat(10)];
        assert_eq!(batches(&huge), vec![0..1, 1..2, 2..3]);
        assert!(batches(&[]).is_empty());
    }
}
