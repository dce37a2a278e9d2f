//! oauth-callback Lambda: thin entry point over the library.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    learnlink_adapters::lambda::init_tracing();
    lambda_runtime::run(service_fn(|ev: LambdaEvent<ApiGatewayV2httpRequest>| async move {
        Ok::<_, Error>(oauth_callback::handle(&ev.payload))
    }))
    .await
}
