//! sync-worker Lambda: thin entry point over the library.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use learnlink_adapters::dynamo::DynamoState;
use learnlink_adapters::lambda::{FunctionConfig, init_tracing};
use learnlink_adapters::salesforce::SalesforceClient;
use learnlink_adapters::secrets::SecretsManagerStore;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = FunctionConfig::from_env()?;
    let aws = learnlink_adapters::aws::load().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let state = Arc::new(DynamoState::new(ddb.clone(), &cfg.state_table));
    let deps = sync_worker::Deps {
        tenants: state.clone(),
        connections: state.clone(),
        parking: state.clone(),
        links: state.clone(),
        applied: Arc::new(learnlink_adapters::dynamo::applied::DynamoApplied::new(ddb.clone(), &cfg.applied_table)),
        review: state.clone(),
        lms: Arc::new(learnlink_adapters::lms::LmsClient::new()?),
        lms_writer: Arc::new(learnlink_adapters::lms::LmsClient::new()?),
        hris: Arc::new(learnlink_adapters::hris::HrisClient::new()?),
        imports: state.clone(),
        backfills: state.clone(),
        lms_enrollments: Arc::new(learnlink_adapters::lms::LmsClient::new()?),
        queue: Arc::new(learnlink_adapters::sqs::SqsJobQueue::new(aws_sdk_sqs::Client::new(&aws), &cfg.sync_queue_url)),
        caches: Default::default(),
        max_receive_count: std::env::var("MAX_RECEIVE_COUNT").ok().and_then(|v| v.parse().ok()).unwrap_or(5),
        tokens: learnlink_core::connection::TokenProvider::new(uuid::Uuid::new_v4().simple().to_string()),
        activity: Arc::new(learnlink_adapters::dynamo::activity::DynamoActivity::new(ddb, &cfg.activity_table)),
        secrets: Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&aws))),
        salesforce: Arc::new(SalesforceClient::new()?),
        names: cfg.secret_names.clone(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(sync_worker::handle(deps, ev.payload).await)
    }))
    .await
}
