//! In-memory fake queue: keeps the jobs sent, in order.

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
    /// Receipt handles released (made visible again), in order.
    released: Mutex<Vec<String>>,
    /// When set, every release fails (retryable).
    refuse_release: std::sync::atomic::AtomicBool,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sent(&self) -> Vec<SyncJob> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The events of every job sent, in order.
    pub fn events(&self) -> Vec<learnlink_core::webhook::LmsEvent> {
        self.sent().iter().flat_map(|j| j.events().to_vec()).collect()
    }

    /// The receipt handles released so far.
    pub fn released(&self) -> Vec<String> {
        self.released.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Make every later release fail.
    pub fn refuse_releases(&self) {
        self.refuse_release.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Make the n-th message ever sent (0-based) fail with a retryable error.
    pub fn fail_nth(&self, n: usize) {
        self.fail_at.lock().unwrap_or_else(|p| p.into_inner()).push(n);
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send_encoded(&self, bodies: &[String]) -> Vec<Result<(), PortError>> {
        let fail_at = self.fail_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        bodies
            .iter()
            .map(|b| {
                let n = *count;
                *count += 1;
                if fail_at.contains(&n) {
                    return Err(PortError::retryable("injected queue failure"));
                }
                // Like SQS, the fake takes any body; it keeps the jobs it can read.
                let job = learnlink_core::job::decode(b)
                    .map_err(|e| PortError::permanent(format!("the fake queue got a body that is not a job: {e}")))?;
                sent.push(job);
                Ok(())
            })
            .collect()
    }

    async fn release(&self, receipt_handles: &[String]) -> Vec<Result<(), PortError>> {
        if self.refuse_release.load(std::sync::atomic::Ordering::SeqCst) {
            return receipt_handles.iter().map(|_| Err(PortError::retryable("injected release failure"))).collect();
        }
        self.released.lock().unwrap_or_else(|p| p.into_inner()).extend(receipt_handles.iter().cloned());
        receipt_handles.iter().map(|_| Ok(())).collect()
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

/// In-memory dead-letter queue: listing changes nothing; a replay moves the
/// bodies to `replayed` (what the sync queue received), oldest first.
#[derive(Default)]
pub struct MemoryDeadLetterQueue {
    letters: Mutex<Vec<learnlink_core::ports::DeadLetter>>,
    replayed: Mutex<Vec<String>>,
    /// When set, every call fails with this error.
    pub fail_with: Mutex<Option<PortError>>,
}

impl MemoryDeadLetterQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// A message SQS gave up on.
    pub fn push(&self, letter: learnlink_core::ports::DeadLetter) {
        self.letters.lock().unwrap_or_else(|p| p.into_inner()).push(letter);
    }

    /// The bodies replayed to the sync queue, in order.
    pub fn replayed(&self) -> Vec<String> {
        self.replayed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn check(&self) -> Result<(), PortError> {
        match &*self.fail_with.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(PortError::new(e.class, e.message.clone())),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl learnlink_core::ports::DeadLetterQueue for MemoryDeadLetterQueue {
    async fn list(&self, max: usize) -> Result<Vec<learnlink_core::ports::DeadLetter>, PortError> {
        self.check()?;
        let mut all = self.letters.lock().unwrap_or_else(|p| p.into_inner()).clone();
        all.sort_by(|a, b| a.sent_at.cmp(&b.sent_at).then_with(|| a.message_id.cmp(&b.message_id)));
        all.truncate(max);
        Ok(all)
    }

    async fn replay(&self, message_ids: &[String]) -> Result<Vec<String>, PortError> {
        self.check()?;
        let mut letters = self.letters.lock().unwrap_or_else(|p| p.into_inner());
        let mut replayed = self.replayed.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for id in message_ids {
            if let Some(i) = letters.iter().position(|l| &l.message_id == id) {
                let l = letters.remove(i);
                replayed.push(l.body);
                out.push(l.message_id);
            }
        }
        Ok(out)
    }
}
