//! admin-api Lambda: thin entry point over the library.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use learnlink_adapters::dynamo::DynamoState;
use learnlink_adapters::dynamo::activity::DynamoActivity;
use learnlink_adapters::lambda::{FunctionConfig, init_tracing};
use learnlink_adapters::secrets::SecretsManagerStore;
use learnlink_adapters::sqs::SqsQueueStats;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = FunctionConfig::from_env()?;
    let aws = learnlink_adapters::aws::load().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let deps = admin_api::Deps {
        configs: Arc::new(DynamoState::new(ddb.clone(), &cfg.state_table)),
        secrets: Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&aws))),
        activity: Arc::new(DynamoActivity::new(ddb, &cfg.activity_table)),
        queues: Arc::new(SqsQueueStats::new(aws_sdk_sqs::Client::new(&aws))),
        dead_letter_queues: vec![cfg.sync_dlq_url.clone(), cfg.backfill_dlq_url.clone()],
        names: cfg.secret_names.clone(),
        auth: cfg.admin_auth.clone(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<ApiGatewayV2httpRequest>| async move {
        Ok::<_, Error>(admin_api::handle(deps, &ev.payload, time::OffsetDateTime::now_utc()).await)
    }))
    .await
}
