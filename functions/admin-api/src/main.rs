//! admin-api Lambda: thin entry point over the library.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use learnlink_adapters::dynamo::DynamoState;
use learnlink_adapters::dynamo::activity::DynamoActivity;
use learnlink_adapters::lambda::{FunctionConfig, init_tracing};
use learnlink_adapters::secrets::SecretsManagerStore;
use learnlink_adapters::sqs::SqsQueueStats;
use learnlink_adapters::sqs::dlq::SqsDeadLetterQueue;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = FunctionConfig::from_env()?;
    let aws = learnlink_adapters::aws::load().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let state = Arc::new(DynamoState::new(ddb.clone(), &cfg.state_table));
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let lms = Arc::new(learnlink_adapters::lms::LmsClient::new()?);
    let keepalive_days: i64 = std::env::var("KEEPALIVE_DAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let deps = admin_api::Deps {
        configs: state.clone(),
        connections: state.clone(),
        parking: state.clone(),
        review: state.clone(),
        imports: state.clone(),
        backfills: state.clone(),
        links: state,
        salesforce: Arc::new(learnlink_adapters::salesforce::SalesforceClient::new()?),
        tokens: learnlink_core::connection::TokenProvider::new(uuid::Uuid::new_v4().simple().to_string()),
        lms_writer: lms.clone(),
        lms_enrollments: lms,
        hris: Arc::new(learnlink_adapters::hris::HrisClient::new()?),
        dlq: Arc::new(SqsDeadLetterQueue::new(sqs.clone(), &cfg.sync_dlq_url, &cfg.sync_queue_url)),
        sync_queue: Arc::new(learnlink_adapters::sqs::SqsJobQueue::new(sqs.clone(), &cfg.sync_queue_url)),
        keepalive: time::Duration::days(keepalive_days),
        secrets: Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&aws))),
        activity: Arc::new(DynamoActivity::new(ddb, &cfg.activity_table)),
        queues: Arc::new(SqsQueueStats::new(sqs)),
        dead_letter_queues: vec![cfg.sync_dlq_url.clone(), cfg.backfill_dlq_url.clone()],
        sync_queue_url: Some(cfg.sync_queue_url.clone()),
        names: cfg.secret_names.clone(),
        auth: cfg.admin_auth.clone(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<ApiGatewayV2httpRequest>| async move {
        Ok::<_, Error>(admin_api::handle(deps, &ev.payload, time::OffsetDateTime::now_utc()).await)
    }))
    .await
}
