//! In-memory fake queue.

use async_trait::async_trait;
use learnlink_core::PortError;
use learnlink_core::job::SyncJob;
use learnlink_core::ports::JobQueue;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<SyncJob>>,
    /// Indexes (in send order, counted over the queue's lifetime) that fail.
    fail_at: Mutex<Vec<usize>>,
    count: Mutex<usize>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sent(&self) -> Vec<SyncJob> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Make the n-th job ever sent (0-based) fail with a retryable error.
    pub fn fail_nth(&self, n: usize) {
        self.fail_at.lock().unwrap_or_else(|p| p.into_inner()).push(n);
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send(&self, jobs: &[SyncJob]) -> Vec<Result<(), PortError>> {
        let fail_at = self.fail_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter()
            .map(|j| {
                let n = *count;
                *count += 1;
                if fail_at.contains(&n) {
                    Err(PortError::retryable("injected queue failure"))
                } else {
                    sent.push(j.clone());
                    Ok(())
                }
            })
            .collect()
    }
}

/// Fake queue depths by URL.
#[derive(Default)]
pub struct MemoryQueueStats {
    pub depths: Mutex<std::collections::HashMap<String, u64>>,
}

#[async_trait]
impl learnlink_core::ports::QueueStats for MemoryQueueStats {
    async fn depth(&self, queue_url: &str) -> Result<u64, PortError> {
        Ok(*self.depths.lock().unwrap_or_else(|p| p.into_inner()).get(queue_url).unwrap_or(&0))
    }
}
