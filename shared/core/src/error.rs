//! The one error taxonomy of learnlink.
//!
//! Every failure anywhere in the product is classified into exactly one
//! [`ErrorClass`]. The class — not the error's type — decides what happens
//! next: whether a queue message is returned for redelivery, whether a job
//! pauses, and what the activity log says.

use std::fmt;

/// What the product does about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Transient: the same request may succeed later (5xx, network, lock
    /// contention). Retried with backoff; a queue message is redelivered and,
    /// after `maxReceiveCount` deliveries, lands in the DLQ.
    Retryable,
    /// The remote side refuses because of volume (API limit, 429). Stop
    /// sending, keep the work, resume in a later window.
    Throttled,
    /// Retrying cannot help (invalid data, missing configuration, a bug in the
    /// request). Recorded with the cause for an admin; never retried blindly.
    Permanent,
}

impl ErrorClass {
    /// Whether a queue message that met this error should be redelivered.
    pub fn redeliver(self) -> bool {
        matches!(self, ErrorClass::Retryable | ErrorClass::Throttled)
    }

    /// The worse of two classes, for aggregating several outcomes:
    /// throttled > retryable > permanent (throttling must stop the batch,
    /// retryable work must not be dropped).
    pub fn worst(self, other: ErrorClass) -> ErrorClass {
        fn rank(c: ErrorClass) -> u8 {
            match c {
                ErrorClass::Permanent => 0,
                ErrorClass::Retryable => 1,
                ErrorClass::Throttled => 2,
            }
        }
        if rank(other) > rank(self) { other } else { self }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every error type of the product.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// The error a port (store, queue, remote API) returns: a class, a sentence,
/// and the underlying cause kept for the chain.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    pub class: ErrorClass,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl PortError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        PortError { class, message: message.into(), source: None }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retryable, message)
    }

    pub fn throttled(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Throttled, message)
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The message followed by every cause in the chain, `: `-separated.
    pub fn chain(&self) -> String {
        error_chain(self)
    }
}

impl Classify for PortError {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

/// Render an error and its `source()` chain on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_prefers_throttled_then_retryable() {
        use ErrorClass::*;
        assert_eq!(Permanent.worst(Retryable), Retryable);
        assert_eq!(Retryable.worst(Permanent), Retryable);
        assert_eq!(Retryable.worst(Throttled), Throttled);
        assert_eq!(Throttled.worst(Permanent), Throttled);
        assert_eq!(Permanent.worst(Permanent), Permanent);
    }

    #[test]
    fn only_permanent_is_not_redelivered() {
        assert!(ErrorClass::Retryable.redeliver());
        assert!(ErrorClass::Throttled.redeliver());
        assert!(!ErrorClass::Permanent.redeliver());
    }

    #[test]
    fn chain_keeps_causes() {
        let io = std::io::Error::other("connection reset");
        let e = PortError::retryable("sending to the sync queue failed").with_source(io);
        assert_eq!(e.chain(), "sending to the sync queue failed: connection reset");
        assert_eq!(e.class(), ErrorClass::Retryable);
    }
}
