//! Alerts: rules over the ingest stream, their evaluation and the delivery of notifications.
//!
//! So far this crate holds the mergeable quantile sketch that duration rules evaluate
//! incrementally (`sketch`); rules, state and delivery come with the alert engine.

pub mod sketch;

pub use sketch::QuantileSketch;
