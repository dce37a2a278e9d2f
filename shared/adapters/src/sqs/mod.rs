//! SQS adapter: sends sync jobs to a queue in batches of 10; the dead-letter
//! queue ([`dlq`]).

pub mod dlq;
pub mod memory;

use crate::aws::classify_sdk;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use learnlink_core::job::{SyncJob, encode};
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
    async fn send(&self, jobs: &[SyncJob]) -> Vec<Result<(), PortError>> {
        let mut results: Vec<Result<(), PortError>> = Vec::with_capacity(jobs.len());
        for (chunk_no, chunk) in jobs.chunks(10).enumerate() {
            let entries: Result<Vec<_>, _> = chunk
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{}", chunk_no * 10 + i))
                        .message_body(encode(job))
                        .build()
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
                    let mut chunk_results: Vec<Result<(), PortError>> = (0..chunk.len()).map(|_| Ok(())).collect();
                    for f in out.failed() {
                        let idx = f.id().trim_start_matches('m').parse::<usize>().ok().map(|n| n - chunk_no * 10);
                        let class = if f.sender_fault() { ErrorClass::Permanent } else { ErrorClass::Retryable };
                        let err = PortError::new(
                            class,
                            format!("SQS refused a message ({}: {})", f.code(), f.message().unwrap_or("")),
                        );
                        match idx.and_then(|i| chunk_results.get_mut(i)) {
                            Some(slot) => *slot = Err(err),
                            None => tracing::error!(id = f.id(), "SQS reported a failure for an unknown batch entry"),
                        }
                    }
                    results.extend(chunk_results);
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
