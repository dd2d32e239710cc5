//! The event types every fnlens crate shares: what a decoder produces, what the WAL carries,
//! what the stores keep and what queries return.
//!
//! Time is UTC epoch milliseconds everywhere (`ts_ms`); durations carry their unit in their name.

mod event;
mod schema;
mod time;

pub use event::{
    Batch, Invocation, Level, LogRecord, LogSource, MetricKind, MetricPoint, Status,
    function_name_problem,
};
pub use schema::{
    invocations_schema, invocations_to_record_batch, logs_schema, metrics_schema,
    metrics_to_record_batch,
};
pub use time::{
    PartitionKey, TimeRange, TimeRangeError, format_ts_ms, parse_duration_ms, parse_rfc3339_ms,
    parse_time_param,
};
