//! Shared AWS SDK configuration: rustls with the ring provider, endpoint and
//! region from the environment (`AWS_ENDPOINT_URL` points every client at
//! moto on the local stack).

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;
use learnlink_core::{ErrorClass, PortError};

pub async fn load() -> SdkConfig {
    crate::install_crypto_provider();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await
}

/// Map an SDK error onto the taxonomy. `throttling` lists the service's
/// throttling error codes; `permanent` the codes retrying cannot fix.
pub(crate) fn classify_sdk<E, R>(
    what: &str,
    err: aws_sdk_dynamodb::error::SdkError<E, R>,
    throttling: &[&str],
    permanent: &[&str],
) -> PortError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_dynamodb::error::SdkError;
    let class = match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            if throttling.contains(&code) || code.contains("Throttl") {
                ErrorClass::Throttled
            } else if permanent.contains(&code) {
                ErrorClass::Permanent
            } else {
                ErrorClass::Retryable
            }
        }
        SdkError::ConstructionFailure(_) => ErrorClass::Permanent,
        _ => ErrorClass::Retryable,
    };
    let detail = match &err {
        SdkError::ServiceError(se) => {
            let m = se.err();
            format!("{}: {}", m.code().unwrap_or("unknown"), m.message().unwrap_or(""))
        }
        other => aws_sdk_dynamodb::error::DisplayErrorContext(other).to_string(),
    };
    PortError::new(class, format!("{what} failed ({detail})")).with_source(err)
}

/// SDK configuration for an explicit endpoint with static test credentials
/// (the local stack's tools: provisioning, demo, tests).
pub async fn load_local(endpoint: &str, region: &str) -> SdkConfig {
    crate::install_crypto_provider();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "learnlink-local"))
        .load()
        .await
}
