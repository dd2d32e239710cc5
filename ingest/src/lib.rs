//! Ingest: decoders from wire formats to model events, and the durable pipeline that writes
//! them (WAL, then stores) and publishes them to subscribers.
//!
//! This crate knows wire formats and the stores; it does not know HTTP.

pub mod decode;
pub mod pipeline;
pub mod simulate;
pub mod stats;

pub use decode::{DecodeError, Decoded, Rejection};
pub use pipeline::{IngestError, Ingested, Observer, Pipeline, PipelineConfig, Stores};
pub use stats::IngestStats;
