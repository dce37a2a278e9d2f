//! learnlink's pure core: domain models, webhook dialects, sync planning,
//! the error taxonomy, and the ports adapters implement. No I/O lives here:
//! everything is a function of its inputs (time included), so it is tested
//! exhaustively and cheaply.

pub mod activity;
pub mod backfill;
pub mod budget;
pub mod config;
pub mod connection;
pub mod credentials;
pub mod csv;
pub mod error;
pub mod fill;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_checks;
pub mod health;
pub mod import;
pub mod job;
pub mod matching;
pub mod model;
pub mod ports;
pub mod salesforce;
pub mod schedule;
pub mod soql;
pub mod sync;
pub mod tenant;
pub mod webhook;
pub mod write_lock;

pub use error::{Classify, ErrorClass, PortError};
