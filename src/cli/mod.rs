//! One module per subcommand.

pub(crate) mod bench;
pub(crate) mod bench_alerts;
pub(crate) mod bench_formats;
pub(crate) mod bench_sql;
pub(crate) mod search;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod sql;
