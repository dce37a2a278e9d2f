//! backfill-fanout Lambda: thin entry point over the library.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use learnlink_adapters::dynamo::DynamoState;
use learnlink_adapters::lambda::FunctionConfig;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    learnlink_adapters::lambda::init_tracing();
    let cfg = FunctionConfig::from_env()?;
    let aws = learnlink_adapters::aws::load().await;
    let state = Arc::new(DynamoState::new(aws_sdk_dynamodb::Client::new(&aws), &cfg.state_table));
    let deps = backfill_fanout::Deps {
        tenants: state.clone(),
        imports: state,
        queue: Arc::new(learnlink_adapters::sqs::SqsJobQueue::new(aws_sdk_sqs::Client::new(&aws), &cfg.sync_queue_url)),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| async move {
        backfill_fanout::handle(deps, ev.payload).await.map_err(Error::from)
    }))
    .await
}
