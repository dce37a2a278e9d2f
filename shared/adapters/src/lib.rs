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
