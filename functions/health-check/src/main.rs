//! health-check Lambda: thin entry point over the library.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use learnlink_adapters::dynamo::DynamoState;
use learnlink_adapters::lambda::{FunctionConfig, init_tracing};
use learnlink_adapters::secrets::SecretsManagerStore;
use learnlink_adapters::sqs::SqsQueueStats;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = FunctionConfig::from_env()?;
    let aws = learnlink_adapters::aws::load().await;
    let deps = health_check::Deps {
        tenants: Arc::new(DynamoState::new(aws_sdk_dynamodb::Client::new(&aws), &cfg.state_table)),
        secrets: Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&aws))),
        queues: Arc::new(SqsQueueStats::new(aws_sdk_sqs::Client::new(&aws))),
        names: cfg.secret_names.clone(),
        dead_letter_queues: vec![cfg.sync_dlq_url.clone(), cfg.backfill_dlq_url.clone()],
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| async move {
        health_check::handle(deps, ev.payload).await.map_err(Error::from)
    }))
    .await
}
