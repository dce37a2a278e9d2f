//! The sync queue's dead-letter queue (SPEC §4.5): list without losing or
//! deleting anything, and replay (send to the sync queue first, then delete).
//!
//! SQS has no "peek": listing receives the messages with a short visibility
//! timeout, collects unique message ids until a receive yields nothing new
//! (bounded), and then makes every one of them visible again at once
//! (`ChangeMessageVisibility 0`). A listing is a receive, so SQS's
//! `ApproximateReceiveCount` grows with every listing; the count reported is
//! SQS's minus the listing's own receive.

use crate::aws::classify_sdk;
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};
use learnlink_core::PortError;
use learnlink_core::ports::{DeadLetter, DeadLetterQueue};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

const PERMANENT: &[&str] = &[
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidMessageContents",
    "AccessDenied",
    "BatchRequestTooLong",
];

/// Seconds a listed message stays hidden if making it visible again fails.
const LIST_VISIBILITY: i32 = 30;
/// Seconds a message stays hidden while it is being replayed.
const REPLAY_VISIBILITY: i32 = 60;
/// The most messages a replay looks through for the ones asked for.
const REPLAY_SCAN_MAX: usize = 10_000;
/// Receives that may yield nothing new in a row before a scan ends.
const QUIET_RECEIVES: u32 = 1;

#[derive(Clone)]
pub struct SqsDeadLetterQueue {
    client: Client,
    dlq_url: String,
    sync_queue_url: String,
}

/// A message as a scan received it.
struct Received {
    receipt: String,
    letter: DeadLetter,
}

impl SqsDeadLetterQueue {
    pub fn new(client: Client, dlq_url: impl Into<String>, sync_queue_url: impl Into<String>) -> Self {
        SqsDeadLetterQueue { client, dlq_url: dlq_url.into(), sync_queue_url: sync_queue_url.into() }
    }

    fn err<E, R>(what: &str, e: aws_sdk_sqs::error::SdkError<E, R>) -> PortError
    where
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        classify_sdk(what, e, &[], PERMANENT)
    }

    /// Receive until a receive yields no message not seen yet, `max` are
    /// held, or `done` says every wanted one was found. Every message stays
    /// hidden for `visibility` seconds: the caller makes them visible again.
    async fn scan(
        &self,
        max: usize,
        visibility: i32,
        done: impl Fn(&HashMap<String, Received>) -> bool,
    ) -> Result<HashMap<String, Received>, PortError> {
        let mut got: HashMap<String, Received> = HashMap::new();
        let mut quiet = 0;
        // Bounded: each round either adds a message or counts as quiet.
        let rounds = max / 10 + 50;
        for _ in 0..rounds {
            if got.len() >= max || done(&got) {
                break;
            }
            let res = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages((max - got.len()).clamp(1, 10) as i32)
                .visibility_timeout(visibility)
                // A short long-poll: every SQS server is asked, not a sample.
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await;
            let out = match res {
                Ok(o) => o,
                Err(e) => {
                    // Give back what this scan hid before failing.
                    self.make_visible(got.values().map(|r| r.receipt.clone()).collect()).await;
                    return Err(Self::err("reading the dead-letter queue", e));
                }
            };
            let mut new = 0;
            for m in out.messages.unwrap_or_default() {
                let (Some(id), Some(receipt)) = (m.message_id.clone(), m.receipt_handle.clone()) else { continue };
                let attr = |k: MessageSystemAttributeName| {
                    m.attributes.as_ref().and_then(|a| a.get(&k)).and_then(|v| v.parse::<i64>().ok())
                };
                let count = attr(MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(1);
                let sent_at = attr(MessageSystemAttributeName::SentTimestamp)
                    .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                let letter = DeadLetter {
                    message_id: id.clone(),
                    body: m.body.clone().unwrap_or_default(),
                    receive_count: u32::try_from(count - 1).unwrap_or(0),
                    sent_at,
                };
                if got.insert(id, Received { receipt, letter }).is_none() {
                    new += 1;
                }
            }
            if new == 0 {
                quiet += 1;
                if quiet >= QUIET_RECEIVES {
                    break;
                }
            } else {
                quiet = 0;
            }
        }
        Ok(got)
    }

    /// Make messages visible again at once. A failure is logged: they
    /// reappear by themselves when their visibility timeout ends.
    async fn make_visible(&self, receipts: Vec<String>) {
        for chunk in receipts.chunks(10) {
            let entries: Result<Vec<_>, _> = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                })
                .collect();
            let Ok(entries) = entries else { continue };
            match self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) if out.failed().is_empty() => {}
                Ok(out) => tracing::warn!(
                    failed = out.failed().len(),
                    "some dead-lettered messages stay hidden until their visibility timeout ends"
                ),
                Err(e) => tracing::warn!(
                    error = %Self::err("making dead-lettered messages visible", e).chain(),
                    "dead-lettered messages stay hidden until their visibility timeout ends"
                ),
            }
        }
    }

    /// Send bodies to the sync queue; the ids whose send succeeded.
    async fn send_to_sync_queue(&self, letters: &[&Received]) -> Vec<String> {
        let mut sent = Vec::new();
        for chunk in letters.chunks(10) {
            let entries: Result<Vec<_>, _> = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    SendMessageBatchRequestEntry::builder().id(format!("m{i}")).message_body(&r.letter.body).build()
                })
                .collect();
            let Ok(entries) = entries else { continue };
            match self
                .client
                .send_message_batch()
                .queue_url(&self.sync_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    let failed: HashSet<&str> = out.failed().iter().map(|f| f.id()).collect();
                    for (i, r) in chunk.iter().enumerate() {
                        if failed.contains(format!("m{i}").as_str()) {
                            tracing::warn!(message_id = %r.letter.message_id, "the sync queue refused a replayed message");
                        } else {
                            sent.push(r.letter.message_id.clone());
                        }
                    }
                }
                Err(e) => tracing::error!(
                    error = %Self::err("replaying to the sync queue", e).chain(),
                    "replaying dead-lettered messages failed"
                ),
            }
        }
        sent
    }

    /// Delete messages from the DLQ; the ids deleted.
    async fn delete(&self, letters: &[&Received]) -> Vec<String> {
        let mut deleted = Vec::new();
        for chunk in letters.chunks(10) {
            let entries: Result<Vec<_>, _> = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder().id(format!("m{i}")).receipt_handle(&r.receipt).build()
                })
                .collect();
            let Ok(entries) = entries else { continue };
            match self.client.delete_message_batch().queue_url(&self.dlq_url).set_entries(Some(entries)).send().await {
                Ok(out) => {
                    let failed: HashSet<&str> = out.failed().iter().map(|f| f.id()).collect();
                    for (i, r) in chunk.iter().enumerate() {
                        if !failed.contains(format!("m{i}").as_str()) {
                            deleted.push(r.letter.message_id.clone());
                        }
                    }
                }
                Err(e) => tracing::error!(
                    error = %Self::err("deleting replayed messages", e).chain(),
                    "replayed messages stay in the dead-letter queue (a second replay is harmless)"
                ),
            }
        }
        deleted
    }
}

#[async_trait]
impl DeadLetterQueue for SqsDeadLetterQueue {
    async fn list(&self, max: usize) -> Result<Vec<DeadLetter>, PortError> {
        let got = self.scan(max.max(1), LIST_VISIBILITY, |_| false).await?;
        self.make_visible(got.values().map(|r| r.receipt.clone()).collect()).await;
        let mut letters: Vec<DeadLetter> = got.into_values().map(|r| r.letter).collect();
        letters.sort_by(|a, b| a.sent_at.cmp(&b.sent_at).then_with(|| a.message_id.cmp(&b.message_id)));
        Ok(letters)
    }

    async fn replay(&self, message_ids: &[String]) -> Result<Vec<String>, PortError> {
        let wanted: HashSet<&str> = message_ids.iter().map(String::as_str).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let got =
            self.scan(REPLAY_SCAN_MAX, REPLAY_VISIBILITY, |got| wanted.iter().all(|w| got.contains_key(*w))).await?;
        let (chosen, others): (Vec<&Received>, Vec<&Received>) =
            got.values().partition(|r| wanted.contains(r.letter.message_id.as_str()));
        // Everything not replayed is given back first.
        self.make_visible(others.iter().map(|r| r.receipt.clone()).collect()).await;
        let sent: HashSet<String> = self.send_to_sync_queue(&chosen).await.into_iter().collect();
        let (to_delete, unsent): (Vec<&Received>, Vec<&Received>) =
            chosen.into_iter().partition(|r| sent.contains(&r.letter.message_id));
        self.make_visible(unsent.iter().map(|r| r.receipt.clone()).collect()).await;
        let deleted: HashSet<String> = self.delete(&to_delete).await.into_iter().collect();
        let kept: Vec<String> =
            to_delete.iter().filter(|r| !deleted.contains(&r.letter.message_id)).map(|r| r.receipt.clone()).collect();
        self.make_visible(kept).await;
        // In the order asked for.
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for id in message_ids {
            if deleted.contains(id) && seen.insert(id.as_str()) {
                out.push(id.clone());
            }
        }
        if out.is_empty() && !unsent.is_empty() {
            return Err(PortError::retryable(format!(
                "{} message(s) could not be sent back to the sync queue; they stay in the dead-letter queue",
                unsent.len()
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motokit::Moto;
    use crate::sqs::memory::MemoryDeadLetterQueue;

    async fn received_bodies(client: &Client, url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        for _ in 0..20 {
            let out = client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .send()
                .await
                .unwrap();
            let msgs = out.messages.unwrap_or_default();
            if msgs.is_empty() {
                break;
            }
            bodies.extend(msgs.into_iter().filter_map(|m| m.body));
        }
        bodies.sort();
        bodies
    }

    #[tokio::test]
    async fn listing_loses_nothing_and_replay_sends_before_it_deletes() {
        let moto = Moto::start().await;
        let (client, dlq) = moto.queue("dlq").await;
        let (_, sync) = moto.queue("sync").await;
        for i in 0..25 {
            client.send_message().queue_url(&dlq).message_body(format!("body {i:02}")).send().await.unwrap();
        }
        let q = SqsDeadLetterQueue::new(client.clone(), &dlq, &sync);

        let first = q.list(1000).await.unwrap();
        assert_eq!(first.len(), 25);
        let ids: HashSet<&str> = first.iter().map(|l| l.message_id.as_str()).collect();
        assert_eq!(ids.len(), 25, "unique ids");
        assert!(first.iter().all(|l| l.receive_count == 0 && l.sent_at > OffsetDateTime::UNIX_EPOCH));
        // Listed messages are visible again at once, nothing was deleted.
        let again = q.list(1000).await.unwrap();
        assert_eq!(again.len(), 25);
        assert!(again.iter().all(|l| l.receive_count == 1), "SQS counts the first listing");
        assert_eq!(q.list(10).await.unwrap().len(), 10, "at most max");

        // Replay three (and an id the DLQ does not have).
        let pick: Vec<String> = first.iter().take(3).map(|l| l.message_id.clone()).collect();
        let mut asked = pick.clone();
        asked.push("no-such-message".into());
        let replayed = q.replay(&asked).await.unwrap();
        assert_eq!(replayed, pick);
        let mut expected: Vec<String> = first.iter().take(3).map(|l| l.body.clone()).collect();
        expected.sort();
        assert_eq!(received_bodies(&client, &sync).await, expected, "the bodies reached the sync queue as they were");
        let left = q.list(1000).await.unwrap();
        assert_eq!(left.len(), 22);
        assert!(left.iter().all(|l| !pick.contains(&l.message_id)));
        assert!(q.replay(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_empty_dlq_lists_nothing() {
        let moto = Moto::start().await;
        let (client, dlq) = moto.queue("dlq").await;
        let q = SqsDeadLetterQueue::new(client, &dlq, "http://unused");
        assert!(q.list(100).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_fake_replays_to_its_sync_queue() {
        let q = MemoryDeadLetterQueue::new();
        for i in 0..3 {
            q.push(DeadLetter {
                message_id: format!("m{i}"),
                body: format!("b{i}"),
                receive_count: 5,
                sent_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i),
            });
        }
        assert_eq!(q.list(10).await.unwrap().len(), 3);
        assert_eq!(q.replay(&["m2".into(), "x".into()]).await.unwrap(), ["m2"]);
        assert_eq!(q.replayed(), ["b2"]);
        assert_eq!(q.list(10).await.unwrap().len(), 2);
    }
}
