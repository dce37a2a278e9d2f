//! The review queue (SPEC §4.3: learners whose Contact is ambiguous) on the
//! state table. Each held job is an item of its own, never one growing item.
//!
//! - review item: pk `REVIEW#<tenant>`, sk `LEARNER#<learner>`; `learner_id`, `email`, `matching_field`,
//!   `match_value`, `candidates` (list), `first_seen` / `last_seen` (epoch ms), `held` (how many jobs
//!   are held: every hold and release of a job is one transaction with this count, so it stays exact)
//! - held job:    pk `HELD#<tenant>#<learner>`, sk `JOB#<key>`; `job` (the queue message), `held_at`
//!
//! Items are listed in learner-id order (`sk > LEARNER#<after>`); a learner id is the cursor.

use super::DynamoState;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use learnlink_core::PortError;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{ReviewItem, ReviewStore};
use std::collections::HashMap;
use time::OffsetDateTime;

/// Attempts at one job's transaction before the call fails (retryable).
const ATTEMPTS: u32 = 5;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(v: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn item_pk(tenant: &TenantId) -> String {
    format!("REVIEW#{tenant}")
}

fn item_sk(learner: &str) -> String {
    format!("LEARNER#{learner}")
}

/// Tenant ids have no `#`: the first one after the prefix ends the tenant.
fn held_pk(tenant: &TenantId, learner: &str) -> String {
    format!("HELD#{tenant}#{learner}")
}

fn job_sk(key: &str) -> String {
    format!("JOB#{key}")
}

fn build<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, PortError> {
    r.map_err(|e| PortError::permanent(format!("building a request: {e}")))
}

fn item_from(attrs: &HashMap<String, AttributeValue>) -> Result<ReviewItem, PortError> {
    let text = |k: &str| -> Result<String, PortError> {
        attrs
            .get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| PortError::permanent(format!("a stored review item has no `{k}`")))
    };
    let num = |k: &str| -> i64 { attrs.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let candidates = attrs
        .get("candidates")
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|c| c.as_s().ok().cloned()).collect())
        .unwrap_or_default();
    Ok(ReviewItem {
        learner_id: text("learner_id")?,
        email: text("email")?,
        matching_field: text("matching_field")?,
        match_value: text("match_value")?,
        candidates,
        first_seen: from_ms(num("first_seen")),
        last_seen: from_ms(num("last_seen")),
        held: num("held").max(0) as u64,
    })
}

/// The `(key, job)` pairs with each key once (the last job given for it).
fn unique_jobs(jobs: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut order: Vec<&str> = Vec::new();
    let mut last: HashMap<&str, &str> = HashMap::new();
    for (k, j) in jobs {
        if last.insert(k.as_str(), j.as_str()).is_none() {
            order.push(k.as_str());
        }
    }
    order.into_iter().map(|k| (k, last[k])).collect()
}

fn cancelled<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|se| se.code()).is_some_and(|c| {
        c == "TransactionCanceledException"
            || c == "TransactionConflictException"
            || c == "ConditionalCheckFailedException"
    })
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt.min(5))).await;
}

impl DynamoState {
    async fn held_job_exists(&self, tenant: &TenantId, learner: &str, key: &str) -> Result<bool, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(held_pk(tenant, learner)))
            .key("sk", s(job_sk(key)))
            .projection_expression("pk")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::err("reading a held job", e))?;
        Ok(out.item.is_some_and(|i| !i.is_empty()))
    }

    /// Hold one job: the job item and `held + 1` in one transaction; a key
    /// held already keeps one job (the newest body) and the count.
    async fn hold_one(&self, tenant: &TenantId, learner: &str, key: &str, job: &str) -> Result<(), PortError> {
        let now = ms(OffsetDateTime::now_utc());
        for attempt in 0..ATTEMPTS {
            let put = build(
                Put::builder()
                    .table_name(&self.table)
                    .item("pk", s(held_pk(tenant, learner)))
                    .item("sk", s(job_sk(key)))
                    .item("job", s(job))
                    .item("held_at", n(now))
                    .condition_expression("attribute_not_exists(pk)")
                    .build(),
            )?;
            let count = build(
                Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(item_pk(tenant)))
                    .key("sk", s(item_sk(learner)))
                    .update_expression("ADD held :one")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":one", n(1))
                    .build(),
            )?;
            let res = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().update(count).build())
                .send()
                .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) if cancelled(&e) => {
                    if !self.held_job_exists(tenant, learner, key).await? {
                        if self.review_item(tenant, learner).await?.is_none() {
                            // Resolved meanwhile: the caller's retry finds the admin's choice.
                            return Err(PortError::retryable(format!(
                                "learner {learner} left the review queue while a job was being held"
                            )));
                        }
                        backoff(attempt).await; // a conflict: try again
                        continue;
                    }
                    // Held already: replace the body, only while it is still held.
                    let res = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .key("pk", s(held_pk(tenant, learner)))
                        .key("sk", s(job_sk(key)))
                        .update_expression("SET job = :j")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":j", s(job))
                        .send()
                        .await;
                    match res {
                        Ok(_) => return Ok(()),
                        Err(e) if cancelled(&e) => backoff(attempt).await, // released meanwhile
                        Err(e) => return Err(Self::err("holding a job", e)),
                    }
                }
                Err(e) => return Err(Self::err("holding a job", e)),
            }
        }
        Err(PortError::retryable(format!("holding a job for learner {learner}: too many concurrent changes")))
    }

    /// Release one job: delete it and `held - 1` in one transaction; a key
    /// not held is already released.
    async fn release_one(&self, tenant: &TenantId, learner: &str, key: &str) -> Result<(), PortError> {
        for attempt in 0..ATTEMPTS {
            let del = build(
                Delete::builder()
                    .table_name(&self.table)
                    .key("pk", s(held_pk(tenant, learner)))
                    .key("sk", s(job_sk(key)))
                    .condition_expression("attribute_exists(pk)")
                    .build(),
            )?;
            let count = build(
                Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(item_pk(tenant)))
                    .key("sk", s(item_sk(learner)))
                    .update_expression("ADD held :minus")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":minus", n(-1))
                    .build(),
            )?;
            let res = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().delete(del).build())
                .transact_items(TransactWriteItem::builder().update(count).build())
                .send()
                .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) if cancelled(&e) => {
                    if !self.held_job_exists(tenant, learner, key).await? {
                        return Ok(()); // released already
                    }
                    if self.review_item(tenant, learner).await?.is_none() {
                        // A job without its item (cannot happen through this
                        // adapter): nothing to count, just delete it.
                        self.client
                            .delete_item()
                            .table_name(&self.table)
                            .key("pk", s(held_pk(tenant, learner)))
                            .key("sk", s(job_sk(key)))
                            .send()
                            .await
                            .map_err(|e| Self::err("releasing a held job", e))?;
                        return Ok(());
                    }
                    backoff(attempt).await;
                }
                Err(e) => return Err(Self::err("releasing a held job", e)),
            }
        }
        Err(PortError::retryable(format!("releasing a job of learner {learner}: too many concurrent changes")))
    }
}

#[async_trait]
impl ReviewStore for DynamoState {
    async fn hold(&self, tenant: &TenantId, item: &ReviewItem, jobs: &[(String, String)]) -> Result<(), PortError> {
        let learner = item.learner_id.as_str();
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(item_pk(tenant)))
            .key("sk", s(item_sk(learner)))
            .update_expression(
                "SET learner_id = :l, email = :e, matching_field = :f, match_value = :v, candidates = :c, \
                 last_seen = :ls, first_seen = if_not_exists(first_seen, :fs), held = if_not_exists(held, :zero)",
            )
            .expression_attribute_values(":l", s(learner))
            .expression_attribute_values(":e", s(item.email.clone()))
            .expression_attribute_values(":f", s(item.matching_field.clone()))
            .expression_attribute_values(":v", s(item.match_value.clone()))
            .expression_attribute_values(":c", AttributeValue::L(item.candidates.iter().map(s).collect()))
            .expression_attribute_values(":ls", n(ms(item.last_seen)))
            .expression_attribute_values(":fs", n(ms(item.first_seen)))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(|e| Self::err("putting a learner in the review queue", e))?;
        for (key, job) in unique_jobs(jobs) {
            self.hold_one(tenant, learner, key, job).await?;
        }
        Ok(())
    }

    async fn review_items(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ReviewItem>, Option<String>), PortError> {
        let limit = limit.clamp(1, 1000);
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        // One more than asked: whether a next page exists, without an empty last page.
        for _ in 0..1000 {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":p", s(item_pk(tenant)))
                .limit((limit + 1 - items.len()) as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            q = match after {
                Some(a) => q
                    .key_condition_expression("pk = :p AND sk > :after")
                    .expression_attribute_values(":after", s(item_sk(a))),
                None => q
                    .key_condition_expression("pk = :p AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s("LEARNER#")),
            };
            let out = q.send().await.map_err(|e| Self::err("listing the review queue", e))?;
            for i in out.items() {
                items.push(item_from(i)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && items.len() <= limit => start = Some(k),
                _ => break,
            }
        }
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|i| i.learner_id.clone())
        } else {
            None
        };
        Ok((items, next))
    }

    async fn review_item(&self, tenant: &TenantId, learner_id: &str) -> Result<Option<ReviewItem>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(item_pk(tenant)))
            .key("sk", s(item_sk(learner_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::err("reading a review item", e))?;
        out.item.filter(|i| !i.is_empty()).as_ref().map(item_from).transpose()
    }

    async fn held(
        &self,
        tenant: &TenantId,
        learner_id: &str,
        limit: usize,
    ) -> Result<(Vec<(String, String)>, bool), PortError> {
        let limit = limit.clamp(1, 1000);
        let mut jobs = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        for _ in 0..1000 {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s(held_pk(tenant, learner_id)))
                .limit((limit + 1 - jobs.len()) as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Self::err("reading held jobs", e))?;
            for i in out.items() {
                let key = i.get("sk").and_then(|v| v.as_s().ok()).and_then(|v| v.strip_prefix("JOB#"));
                let job = i.get("job").and_then(|v| v.as_s().ok());
                if let (Some(k), Some(j)) = (key, job) {
                    jobs.push((k.to_string(), j.clone()));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && jobs.len() <= limit => start = Some(k),
                _ => break,
            }
        }
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        Ok((jobs, more))
    }

    async fn release(&self, tenant: &TenantId, learner_id: &str, keys: &[String]) -> Result<(), PortError> {
        let mut seen = std::collections::HashSet::new();
        for key in keys.iter().filter(|k| seen.insert(k.as_str())) {
            self.release_one(tenant, learner_id, key).await?;
        }
        Ok(())
    }

    async fn remove_item(&self, tenant: &TenantId, learner_id: &str) -> Result<(), PortError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(item_pk(tenant)))
            .key("sk", s(item_sk(learner_id)))
            .condition_expression("attribute_not_exists(held) OR held <= :zero")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if cancelled(&e) => {
                Err(PortError::retryable(format!("jobs are still held for learner {learner_id}: release them first")))
            }
            Err(e) => Err(Self::err("removing a review item", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::memory::MemoryState;
    use crate::motokit::Moto;
    use time::macros::datetime;

    fn item(learner: &str, candidates: &[&str], seen: OffsetDateTime) -> ReviewItem {
        ReviewItem {
            learner_id: learner.into(),
            email: format!("{learner}@example.com"),
            matching_field: "Email".into(),
            match_value: format!("{learner}@example.com"),
            candidates: candidates.iter().map(|c| c.to_string()).collect(),
            first_seen: seen,
            last_seen: seen,
            held: 0,
        }
    }

    fn jobs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, j)| (k.to_string(), j.to_string())).collect()
    }

    /// The semantics every ReviewStore has (the DynamoDB adapter and the fake).
    async fn exercise(store: &dyn ReviewStore) {
        let t = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("beta").unwrap();
        let t0 = datetime!(2026-11-23 10:00 UTC);
        let t1 = datetime!(2026-11-23 11:00 UTC);
        assert_eq!(store.review_item(&t, "L1").await.unwrap(), None);

        // A key held twice in one call and across calls is one job (the newest body).
        store
            .hold(
                &t,
                &item("L1", &["003A", "003B"], t0),
                &jobs(&[("enrollment#E1", "j1"), ("enrollment#E2", "j2"), ("enrollment#E1", "j1b")]),
            )
            .await
            .unwrap();
        store
            .hold(
                &t,
                &item("L1", &["003A", "003B", "003C"], t1),
                &jobs(&[("enrollment#E2", "j2b"), ("certification#C1", "j3")]),
            )
            .await
            .unwrap();
        let got = store.review_item(&t, "L1").await.unwrap().unwrap();
        assert_eq!(got.held, 3);
        assert_eq!(got.candidates, ["003A", "003B", "003C"], "candidates are refreshed");
        assert_eq!((got.first_seen, got.last_seen), (t0, t1), "first_seen stays");
        let (held, more) = store.held(&t, "L1", 10).await.unwrap();
        assert!(!more);
        assert_eq!(
            held,
            jobs(&[("certification#C1", "j3"), ("enrollment#E1", "j1b"), ("enrollment#E2", "j2b")]),
            "in key order"
        );
        let (page, more) = store.held(&t, "L1", 2).await.unwrap();
        assert_eq!((page.len(), more), (2, true));
        assert_eq!(store.review_item(&other, "L1").await.unwrap(), None, "tenants are apart");

        // Pages in learner-id order; the cursor is the last learner id.
        for l in ["L5", "L3", "L2", "L4"] {
            store.hold(&t, &item(l, &["003X", "003Y"], t0), &jobs(&[("enrollment#E9", "j9")])).await.unwrap();
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..10 {
            let (items, next) = store.review_items(&t, after.as_deref(), 2).await.unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|i| (i.learner_id.clone(), i.held)));
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let expected: Vec<(String, u64)> =
            [("L1", 3), ("L2", 1), ("L3", 1), ("L4", 1), ("L5", 1)].iter().map(|(l, h)| (l.to_string(), *h)).collect();
        assert_eq!(seen, expected);
        let (items, next) = store.review_items(&t, Some("L4"), 2).await.unwrap();
        assert_eq!((items.len(), next), (1, None), "an exact last page has no cursor");
        assert!(store.review_items(&other, None, 10).await.unwrap().0.is_empty());

        // The item stays while anything is held; releasing twice is harmless.
        assert!(store.remove_item(&t, "L1").await.is_err());
        let keys: Vec<String> = vec!["enrollment#E1".into(), "enrollment#E2".into(), "nope#1".into()];
        store.release(&t, "L1", &keys).await.unwrap();
        store.release(&t, "L1", &keys).await.unwrap();
        assert_eq!(store.review_item(&t, "L1").await.unwrap().unwrap().held, 1);
        assert!(store.remove_item(&t, "L1").await.is_err());
        store.release(&t, "L1", &["certification#C1".to_string()]).await.unwrap();
        assert_eq!(store.held(&t, "L1", 10).await.unwrap(), (Vec::new(), false));
        store.remove_item(&t, "L1").await.unwrap();
        assert_eq!(store.review_item(&t, "L1").await.unwrap(), None);
        store.remove_item(&t, "L1").await.unwrap();
        store.remove_item(&t, "nobody").await.unwrap();
    }

    #[tokio::test]
    async fn the_fake_keeps_the_review_queue() {
        exercise(&MemoryState::new()).await;
    }

    #[tokio::test]
    async fn dynamodb_keeps_the_review_queue_with_each_held_job_an_item() {
        let moto = Moto::start().await;
        let client = moto.state_table("state").await;
        let store = DynamoState::new(client.clone(), "state");
        exercise(&store).await;

        // Many jobs: one item each, counted exactly, paged.
        let t = TenantId::parse("acme").unwrap();
        let many: Vec<(String, String)> =
            (0..60).map(|i| (format!("enrollment#E{i:03}"), format!("job {i}"))).collect();
        store.hold(&t, &item("L9", &["003A", "003B"], datetime!(2026-11-23 10:00 UTC)), &many).await.unwrap();
        assert_eq!(store.review_item(&t, "L9").await.unwrap().unwrap().held, 60);
        let raw = client
            .query()
            .table_name("state")
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("HELD#acme#L9"))
            .send()
            .await
            .unwrap();
        assert_eq!(raw.count, 60, "every held job is an item of its own");
        let (page, more) = store.held(&t, "L9", 25).await.unwrap();
        assert_eq!((page.len(), more), (25, true));
        let keys: Vec<String> = many.iter().map(|(k, _)| k.clone()).collect();
        store.release(&t, "L9", &keys).await.unwrap();
        store.remove_item(&t, "L9").await.unwrap();
        assert_eq!(store.review_item(&t, "L9").await.unwrap(), None);
    }
}
