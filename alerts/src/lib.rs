//! Alerts: rules over the ingest stream, their evaluation and the delivery of notifications.
//!
//! - [`rule`]: rules as users write them, checked and compiled;
//! - [`window`]: rolling windows of counts and duration sketches per function, fed by the ingest
//!   stream; [`sketch`]: the mergeable quantile sketch they hold;
//! - [`state`]: the CloudWatch-style state machine (M of N, missing data);
//! - [`engine`]: instances, evaluation, silences and persistence;
//! - [`notify`]: webhook and Alertmanager bodies, signatures, the outbox and its retries;
//! - [`history`]: the log of transitions and delivery attempts.
//!
//! **Architecture invariant:** this crate knows neither HTTP servers nor the query engines. Log
//! and SQL rules read their data through the [`Sources`] trait, which the web layer implements.

pub mod engine;
pub mod history;
pub mod notify;
mod persist;
pub mod rule;
pub mod sketch;
pub mod state;
pub mod window;

pub use engine::{AlertError, AlertsConfig, Engine, Instance, RuleStatus, Silence, Sources};
pub use history::Entry;
pub use notify::{RetryPolicy, signature};
pub use rule::{Rule, load_rules_file};
pub use sketch::QuantileSketch;
pub use state::AlarmState;
pub use window::Sample;
