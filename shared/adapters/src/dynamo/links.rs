//! Learner → Contact links (SPEC §4.3) on the state table: one item per
//! learner, read in batches so a batch of records needs one round trip.
//!
//! - link: pk `LINK#<tenant>#<learner>`, sk `LINK`; `learner_id`, `contact_id`, `account_id`?, `state`
//!   (linked|chosen|unlinked), `at` (epoch ms)
//!
//! Reads are BatchGetItem (≤100 keys, consistent, `UnprocessedKeys` retried with
//! backoff); writes are BatchWriteItem (≤25, `UnprocessedItems` retried).

use super::DynamoState;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest};
use learnlink_core::PortError;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{LearnerLink, LinkState, LinkStore};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

/// Rounds of retrying what DynamoDB left unprocessed before the call fails (retryable).
const ROUNDS: u32 = 8;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn pk(tenant: &TenantId, learner: &str) -> String {
    format!("LINK#{tenant}#{learner}")
}

fn state_str(s: LinkState) -> &'static str {
    match s {
        LinkState::Linked => "linked",
        LinkState::Chosen => "chosen",
        LinkState::Unlinked => "unlinked",
    }
}

fn parse_state(v: &str) -> Option<LinkState> {
    match v {
        "linked" => Some(LinkState::Linked),
        "chosen" => Some(LinkState::Chosen),
        "unlinked" => Some(LinkState::Unlinked),
        _ => None,
    }
}

fn link_from(item: &HashMap<String, AttributeValue>) -> Result<LearnerLink, PortError> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let bad = |what: &str| PortError::permanent(format!("a stored learner link has no valid `{what}`"));
    let at = item
        .get("at")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|v| OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000).ok())
        .ok_or_else(|| bad("at"))?;
    Ok(LearnerLink {
        learner_id: text("learner_id").ok_or_else(|| bad("learner_id"))?,
        contact_id: text("contact_id").ok_or_else(|| bad("contact_id"))?,
        account_id: text("account_id"),
        state: text("state").as_deref().and_then(parse_state).ok_or_else(|| bad("state"))?,
        at,
    })
}

async fn backoff(round: u32) {
    tokio::time::sleep(std::time::Duration::from_millis(50 << round.min(5))).await;
}

/// BatchGetItem (consistent) of any number of keys, 100 a call, retrying
/// `UnprocessedKeys`; the items found, in no particular order.
pub(crate) async fn read_batch(
    state: &DynamoState,
    keys: Vec<HashMap<String, AttributeValue>>,
    what: &str,
) -> Result<Vec<HashMap<String, AttributeValue>>, PortError> {
    let mut found = Vec::new();
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let chunk: Vec<_> = keys.by_ref().take(100).collect();
        let request = KeysAndAttributes::builder()
            .set_keys(Some(chunk))
            .consistent_read(true)
            .build()
            .map_err(|e| PortError::permanent(format!("building a read: {e}")))?;
        let mut pending = HashMap::from([(state.table.clone(), request)]);
        let mut round = 0;
        while !pending.is_empty() {
            if round == ROUNDS {
                return Err(PortError::retryable(format!("{what}: some keys stayed unprocessed")));
            }
            if round > 0 {
                backoff(round).await;
            }
            round += 1;
            let out = state
                .client
                .batch_get_item()
                .set_request_items(Some(std::mem::take(&mut pending)))
                .send()
                .await
                .map_err(|e| DynamoState::err(what, e))?;
            found.extend(out.responses.unwrap_or_default().into_values().flatten());
            pending = out.unprocessed_keys.unwrap_or_default();
            pending.retain(|_, k| !k.keys().is_empty());
        }
    }
    Ok(found)
}

/// BatchWriteItem of up to 25 requests, retrying `UnprocessedItems`.
pub(crate) async fn write_batch(state: &DynamoState, requests: Vec<WriteRequest>, what: &str) -> Result<(), PortError> {
    let mut pending = HashMap::from([(state.table.clone(), requests)]);
    for round in 0..ROUNDS {
        if pending.values().all(Vec::is_empty) {
            return Ok(());
        }
        if round > 0 {
            backoff(round).await;
        }
        let out = state
            .client
            .batch_write_item()
            .set_request_items(Some(std::mem::take(&mut pending)))
            .send()
            .await
            .map_err(|e| DynamoState::err(what, e))?;
        pending = out.unprocessed_items.unwrap_or_default();
    }
    if pending.values().all(Vec::is_empty) {
        Ok(())
    } else {
        Err(PortError::retryable(format!("{what}: some writes stayed unprocessed")))
    }
}

#[async_trait]
impl LinkStore for DynamoState {
    async fn links(
        &self,
        tenant: &TenantId,
        learner_ids: &[String],
    ) -> Result<HashMap<String, LearnerLink>, PortError> {
        let mut seen = HashSet::new();
        let keys: Vec<HashMap<String, AttributeValue>> = learner_ids
            .iter()
            .filter(|l| seen.insert(l.as_str()))
            .map(|l| HashMap::from([("pk".to_string(), s(pk(tenant, l))), ("sk".to_string(), s("LINK"))]))
            .collect();
        let mut found = HashMap::new();
        for item in read_batch(self, keys, "reading learner links").await? {
            let link = link_from(&item)?;
            found.insert(link.learner_id.clone(), link);
        }
        Ok(found)
    }

    async fn put_links(&self, tenant: &TenantId, links: &[LearnerLink]) -> Result<(), PortError> {
        // One write per learner (BatchWriteItem refuses a key twice): the last one given.
        let mut last: HashMap<&str, &LearnerLink> = HashMap::new();
        let mut order = Vec::new();
        for l in links {
            if last.insert(l.learner_id.as_str(), l).is_none() {
                order.push(l.learner_id.as_str());
            }
        }
        for chunk in order.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for id in chunk {
                let l = last[id];
                let mut put = PutRequest::builder()
                    .item("pk", s(pk(tenant, &l.learner_id)))
                    .item("sk", s("LINK"))
                    .item("learner_id", s(l.learner_id.clone()))
                    .item("contact_id", s(l.contact_id.clone()))
                    .item("state", s(state_str(l.state)))
                    .item("at", AttributeValue::N(((l.at.unix_timestamp_nanos() / 1_000_000) as i64).to_string()));
                if let Some(a) = &l.account_id {
                    put = put.item("account_id", s(a.clone()));
                }
                let put = put.build().map_err(|e| PortError::permanent(format!("building a write: {e}")))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            write_batch(self, requests, "storing learner links").await?;
        }
        Ok(())
    }

    async fn forget_links(&self, tenant: &TenantId, learner_ids: &[String]) -> Result<(), PortError> {
        let mut seen = HashSet::new();
        let unique: Vec<&String> = learner_ids.iter().filter(|l| seen.insert(l.as_str())).collect();
        for chunk in unique.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for l in chunk {
                let del = DeleteRequest::builder()
                    .key("pk", s(pk(tenant, l)))
                    .key("sk", s("LINK"))
                    .build()
                    .map_err(|e| PortError::permanent(format!("building a delete: {e}")))?;
                requests.push(WriteRequest::builder().delete_request(del).build());
            }
            write_batch(self, requests, "forgetting learner links").await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::memory::MemoryState;
    use crate::motokit::Moto;
    use time::macros::datetime;

    fn link(i: usize, state: LinkState) -> LearnerLink {
        LearnerLink {
            learner_id: format!("L{i:04}"),
            contact_id: format!("003{i:012}"),
            account_id: (i % 2 == 0).then(|| format!("001{i:012}")),
            state,
            at: datetime!(2026-11-23 10:00 UTC) + time::Duration::seconds(i as i64),
        }
    }

    async fn exercise(store: &dyn LinkStore) {
        let t = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("beta").unwrap();
        // More than one batch of reads (100) and of writes (25).
        let links: Vec<LearnerLink> = (0..250).map(|i| link(i, LinkState::Linked)).collect();
        store.put_links(&t, &links).await.unwrap();
        let mut ids: Vec<String> = (0..230).map(|i| format!("L{i:04}")).collect();
        ids.extend((900..930).map(|i| format!("L{i:04}")));
        ids.push("L0001".into()); // asked twice
        let got = store.links(&t, &ids).await.unwrap();
        assert_eq!(got.len(), 230);
        assert_eq!(got["L0002"], links[2]);
        assert_eq!(got["L0003"].account_id, None);
        assert!(store.links(&other, &ids).await.unwrap().is_empty(), "tenants are apart");

        // The last write of a learner wins, also within one call.
        let chosen = link(7, LinkState::Chosen);
        store.put_links(&t, &[link(7, LinkState::Unlinked), chosen.clone()]).await.unwrap();
        assert_eq!(store.links(&t, &["L0007".to_string()]).await.unwrap()["L0007"], chosen);

        let forget: Vec<String> = (0..120).map(|i| format!("L{i:04}")).chain(["L0000".to_string()]).collect();
        store.forget_links(&t, &forget).await.unwrap();
        let got = store.links(&t, &ids).await.unwrap();
        assert_eq!(got.len(), 110);
        assert!(!got.contains_key("L0007"));
        assert!(store.links(&t, &[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_fake_keeps_links() {
        exercise(&MemoryState::new()).await;
    }

    #[tokio::test]
    async fn dynamodb_keeps_links_in_batches() {
        let moto = Moto::start().await;
        let client = moto.state_table("state").await;
        exercise(&DynamoState::new(client, "state")).await;
    }
}
