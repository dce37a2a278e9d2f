//! Backfill shards (SPEC §6.2) from the backfill queue. The work itself is
//! [`learnlink_core::backfill::engine::run_shards`]; this module groups a
//! batch's shard messages by backfill, finds what the work needs (the
//! tenant, a Salesforce session, the LMS connection) and turns each shard's
//! result into its message's outcome.

use crate::{Deps, MessageOutcome};
use learnlink_core::backfill::engine::{self, ShardInput, ShardOutcome, ShardPorts};
use learnlink_core::credentials;
use learnlink_core::model::TenantId;
use learnlink_core::{Classify, ErrorClass};

/// One shard message: its index in the batch and its delivery count.
pub struct ShardMessage {
    pub message: usize,
    pub shard: u32,
    pub receive_count: u32,
}

fn failed(class: ErrorClass, reason: impl Into<String>) -> MessageOutcome {
    MessageOutcome::Failed { class, reason: reason.into() }
}

/// Runs the shards of one backfill; one outcome per message.
pub async fn handle_shards(
    deps: &Deps,
    tenant_id: &TenantId,
    backfill_id: &str,
    msgs: &[ShardMessage],
) -> Vec<(usize, MessageOutcome)> {
    let all = |o: MessageOutcome| msgs.iter().map(|m| (m.message, o.clone())).collect::<Vec<_>>();
    let tenant = match deps.tenants.get_tenant(tenant_id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return all(MessageOutcome::Rejected {
                code: "unknown_tenant".into(),
                message: format!("unknown tenant {tenant_id}"),
            });
        }
        Err(e) => return all(failed(e.class, e.chain())),
    };
    let lms = match credentials::lms_connection(deps.secrets.as_ref(), &deps.names, &tenant).await {
        Ok(c) => c,
        Err(e) => return all(crate::import::credential_outcome(e)),
    };
    let links = deps.connection_links();
    let tokens = match deps.tokens.session(&links, &tenant).await {
        Ok(t) => t,
        // Disconnected or paused: the shard waits in the queue (and, past
        // maxReceiveCount, in the DLQ); the backfill resumes on relink.
        Err(e) => return all(failed(e.class(), learnlink_core::error::error_chain(&e))),
    };
    let session = tokens.session();
    let ports = ShardPorts {
        store: deps.backfills.as_ref(),
        lms: deps.lms_enrollments.as_ref(),
        salesforce: deps.salesforce.as_ref(),
        activity: deps.activity.as_ref(),
        sync_queue: deps.queue.as_ref(),
        applied: deps.applied.as_ref(),
        lease: deps.connections.as_ref(),
        sleeper: &learnlink_adapters::TokioSleeper,
        clock: &time::OffsetDateTime::now_utc,
    };
    let shards: Vec<u32> = msgs.iter().map(|m| m.shard).collect();
    let last_attempt = msgs.iter().all(|m| m.receive_count >= deps.max_receive_count);
    let input = ShardInput {
        tenant: &tenant.id,
        backfill_id,
        shards: &shards,
        lms: &lms,
        session: &session,
        org_id: tokens.org_id.as_deref(),
        budget_policy: tenant.api_budget.policy(),
        now: time::OffsetDateTime::now_utc(),
        last_attempt,
    };
    let results = engine::run_shards(&ports, &input).await;
    let mut out = Vec::with_capacity(msgs.len());
    for m in msgs {
        let o = results.iter().find(|(i, _)| *i == m.shard).map(|(_, o)| o.clone());
        let outcome = match o {
            Some(ShardOutcome::Done) => {
                tracing::info!(tenant = %tenant.id, backfill = backfill_id, shard = m.shard, "backfill shard done");
                MessageOutcome::Done
            }
            Some(ShardOutcome::Ignored(why)) => {
                tracing::info!(tenant = %tenant.id, backfill = backfill_id, shard = m.shard, %why, "backfill shard skipped");
                MessageOutcome::Done
            }
            Some(ShardOutcome::Paused) => MessageOutcome::Done,
            Some(ShardOutcome::Retry { class, reason }) => {
                if m.receive_count >= deps.max_receive_count {
                    // The last delivery: the shard (and the backfill) fail,
                    // the kill switch is restored, the message goes to the DLQ.
                    engine::fail_shard(&ports, &input, m.shard, &reason).await;
                    tracing::error!(tenant = %tenant.id, backfill = backfill_id, shard = m.shard, %reason,
                        "last delivery of a backfill shard failed: the backfill fails");
                }
                failed(class, reason)
            }
            Some(ShardOutcome::Failed { reason }) => {
                tracing::error!(tenant = %tenant.id, backfill = backfill_id, shard = m.shard, %reason, "backfill shard failed");
                MessageOutcome::Rejected { code: "backfill_shard_failed".into(), message: reason }
            }
            None => failed(ErrorClass::Retryable, "the shard had no outcome"),
        };
        out.push((m.message, outcome));
    }
    out
}
