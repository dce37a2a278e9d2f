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
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let state = Arc::new(DynamoState::new(ddb.clone(), &cfg.state_table));
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let deps = backfill_fanout::Deps {
        tenants: state.clone(),
        imports: state.clone(),
        queue: Arc::new(learnlink_adapters::sqs::SqsJobQueue::new(sqs.clone(), &cfg.sync_queue_url)),
        backfills: state.clone(),
        lms_enrollments: Arc::new(learnlink_adapters::lms::LmsClient::new()?),
        salesforce: Arc::new(learnlink_adapters::salesforce::SalesforceClient::new()?),
        shards_queue: Arc::new(learnlink_adapters::sqs::SqsJobQueue::new(sqs, &cfg.backfill_queue_url)),
        activity: Arc::new(learnlink_adapters::dynamo::activity::DynamoActivity::new(ddb, &cfg.activity_table)),
        secrets: Arc::new(learnlink_adapters::secrets::SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(
            &aws,
        ))),
        connections: state,
        names: cfg.secret_names.clone(),
        tokens: learnlink_core::connection::TokenProvider::new(uuid::Uuid::new_v4().simple().to_string()),
        auth: cfg.admin_auth.clone(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<serde_json::Value>| async move {
        backfill_fanout::handle(deps, ev.payload).await.map_err(Error::from)
    }))
    .await
}
