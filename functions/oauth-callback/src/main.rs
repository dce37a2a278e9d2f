//! oauth-callback Lambda: thin entry point over the library.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use learnlink_adapters::dynamo::DynamoState;
use learnlink_adapters::lambda::{FunctionConfig, init_tracing};
use learnlink_adapters::salesforce::SalesforceClient;
use learnlink_adapters::secrets::SecretsManagerStore;
use learnlink_adapters::sqs::SqsJobQueue;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let cfg = FunctionConfig::from_env()?;
    let aws = learnlink_adapters::aws::load().await;
    let state = Arc::new(DynamoState::new(aws_sdk_dynamodb::Client::new(&aws), &cfg.state_table));
    let deps = oauth_callback::Deps {
        configs: state.clone(),
        states: state.clone(),
        connections: state.clone(),
        parking: state,
        secrets: Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&aws))),
        salesforce: Arc::new(SalesforceClient::new()?),
        sync_queue: Arc::new(SqsJobQueue::new(aws_sdk_sqs::Client::new(&aws), &cfg.sync_queue_url)),
        names: cfg.secret_names.clone(),
        state_ttl: std::env::var("OAUTH_STATE_TTL_SECS")
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .map(time::Duration::seconds)
            .unwrap_or(oauth_callback::STATE_TTL),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<ApiGatewayV2httpRequest>| async move {
        Ok::<_, Error>(oauth_callback::handle(deps, &ev.payload, time::OffsetDateTime::now_utc()).await)
    }))
    .await
}
