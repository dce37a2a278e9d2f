//! Adapters behind the ports of `learnlink-core`.
//!
//! Each module holds the real adapter and, beside it, an in-memory fake with
//! the same semantics for unit tests (`memory`). Every adapter maps its
//! failures onto the one error taxonomy (retryable / throttled / permanent).

pub mod aws;
pub mod dynamo;
pub mod hris;
pub mod http;
pub mod lambda;
pub mod lms;
#[cfg(test)]
pub(crate) mod motokit;
pub mod salesforce;
pub mod secrets;
pub mod sqs;

/// Install rustls' ring provider as the process default (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The core's `Sleeper` on tokio's timer.
pub struct TokioSleeper;

#[async_trait::async_trait]
impl learnlink_core::connection::Sleeper for TokioSleeper {
    async fn sleep(&self, d: std::time::Duration) {
        tokio::time::sleep(d).await;
    }
}

/// What the token provider reads and writes, waiting on tokio's timer: the
/// one way every function builds its connection `Links`.
pub fn links<'a>(
    secrets: &'a dyn learnlink_core::ports::SecretStore,
    salesforce: &'a dyn learnlink_core::ports::SalesforceApi,
    connections: &'a dyn learnlink_core::ports::ConnectionStore,
    names: &'a learnlink_core::tenant::SecretNames,
) -> learnlink_core::connection::Links<'a> {
    learnlink_core::connection::Links { secrets, salesforce, connections, names, sleeper: &TokioSleeper }
}
