//! The local stack of learnlink (SPEC §9): moto for DynamoDB, SQS and
//! Secrets Manager; the Salesforce and LMS emulators; and a local Lambda
//! runtime that runs the real function binaries behind a Lambda Runtime
//! API, with every route, queue mapping and schedule read from
//! `infra/template.yaml`.

pub mod aws_router;
pub mod commands;
pub mod events;
pub mod gateway;
pub mod lambda;
pub mod pollers;
pub mod process;
pub mod provision;
pub use learnlink_core::schedule;
pub mod scheduler;
pub mod serve;
pub mod stack;
pub mod template;
pub mod wiring;
