//! Import state (SPEC §5.2) on the state table: one item per tenant and
//! lane, pk `IMPORT#<tenant>`, sk `LIVE`, `DRYRUN` or `SCHEDULE`; `state` (JSON: the
//! checkpoint, the current run, the scheduler's high-water mark) and
//! `version`. Every write is conditional on the version read, so two
//! deliveries of one page cannot both move the checkpoint.

use super::DynamoState;
use super::connection::conditional as is_conditional_failure;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use learnlink_core::PortError;
use learnlink_core::import::engine::ImportState;
use learnlink_core::model::TenantId;
use learnlink_core::ports::{ImportLane, ImportStore};

fn key(tenant: &TenantId, lane: ImportLane) -> (AttributeValue, AttributeValue) {
    let sk = match lane {
        ImportLane::Live => "LIVE",
        ImportLane::DryRun => "DRYRUN",
        ImportLane::Schedule => "SCHEDULE",
    };
    (AttributeValue::S(format!("IMPORT#{tenant}")), AttributeValue::S(sk.into()))
}

#[async_trait]
impl ImportStore for DynamoState {
    async fn import_state(&self, tenant: &TenantId, lane: ImportLane) -> Result<Option<(ImportState, u64)>, PortError> {
        let (pk, sk) = key(tenant, lane);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", pk)
            .key("sk", sk)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Self::err("reading the import state", e))?;
        let Some(item) = out.item else { return Ok(None) };
        let version = super::get_n(&item, "version")? as u64;
        let state = serde_json::from_str(super::get_s(&item, "state")?)
            .map_err(|e| PortError::permanent(format!("the stored import state of {tenant} is unreadable: {e}")))?;
        Ok(Some((state, version)))
    }

    async fn put_import_state(
        &self,
        tenant: &TenantId,
        lane: ImportLane,
        state: &ImportState,
        expected: Option<u64>,
    ) -> Result<bool, PortError> {
        let (pk, sk) = key(tenant, lane);
        let body = serde_json::to_string(state).map_err(|e| PortError::permanent(format!("import state: {e}")))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk)
            .item("sk", sk)
            .item("state", AttributeValue::S(body));
        match super::versioned_put(put, expected).send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(Self::err("storing the import state", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::memory::MemoryState;
    use crate::motokit::Moto;
    use learnlink_core::import::Checkpoint;

    async fn exercise(store: &dyn ImportStore) {
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(store.import_state(&t, ImportLane::Live).await.unwrap(), None);
        let at = time::macros::datetime!(2026-11-20 10:00 UTC);
        let s1 = ImportState { checkpoint: Some(Checkpoint { at, id: "005A".into() }), ..Default::default() };
        assert!(store.put_import_state(&t, ImportLane::Live, &s1, None).await.unwrap());
        assert!(!store.put_import_state(&t, ImportLane::Live, &s1, None).await.unwrap(), "the item exists");
        let (got, v) = store.import_state(&t, ImportLane::Live).await.unwrap().unwrap();
        assert_eq!((got, v), (s1.clone(), 1));
        let s2 = ImportState { checkpoint: Some(Checkpoint { at, id: "005B".into() }), ..Default::default() };
        assert!(store.put_import_state(&t, ImportLane::Live, &s2, Some(1)).await.unwrap());
        assert!(!store.put_import_state(&t, ImportLane::Live, &s1, Some(1)).await.unwrap(), "a stale write loses");
        assert_eq!(store.import_state(&t, ImportLane::Live).await.unwrap().unwrap(), (s2, 2));
        assert_eq!(store.import_state(&t, ImportLane::DryRun).await.unwrap(), None, "lanes are apart");
    }

    #[tokio::test]
    async fn the_fake_keeps_import_state_conditionally() {
        exercise(&MemoryState::new()).await;
    }

    #[tokio::test]
    async fn dynamodb_keeps_import_state_conditionally() {
        let moto = Moto::start().await;
        let client = moto.state_table("state").await;
        exercise(&DynamoState::new(client, "state")).await;
    }
}
