//! health-check Lambda: thin entry point over the library.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use learnlink_adapters::dynamo::DynamoState;
use learnlink_adapters::lambda::{FunctionConfig, init_tracing};
use learnlink_adapters::salesforce::SalesforceClient;
use learnlink_adapters::secrets::SecretsManagerStore;
use learnlink_adapters::sqs::{SqsJobQueue, SqsQueueStats};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = FunctionConfig::from_env()?;
    let keepalive_days: i64 = std::env::var("KEEPALIVE_DAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let aws = learnlink_adapters::aws::load().await;
    let state = Arc::new(DynamoState::new(aws_sdk_dynamodb::Client::new(&aws), &cfg.state_table));
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let deps = health_check::Deps {
        tenants: state.clone(),
        secrets: Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&aws))),
        queues: Arc::new(SqsQueueStats::new(sqs.clone())),
        connections: state.clone(),
        parking: state,
        salesforce: Arc::new(SalesforceClient::new()?),
        sync_queue: Arc::new(SqsJobQueue::new(sqs, &cfg.sync_queue_url)),
        names: cfg.secret_names.clone(),
        dead_letter_queues: vec![cfg.sync_dlq_url.clone(), cfg.backfill_dlq_url.clone()],
        sync_queue_url: Some(cfg.sync_queue_url.clone()),
        keepalive: time::Duration::days(keepalive_days),
        tokens: learnlink_core::connection::TokenProvider::new(uuid::Uuid::new_v4().simple().to_string()),
        auth: cfg.admin_auth.clone(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| async move {
        health_check::handle(deps, ev.payload).await.map_err(Error::from)
    }))
    .await
}
