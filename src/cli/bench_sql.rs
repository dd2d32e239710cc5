//! `fnlens bench sql-data`: the deterministic dataset of the SQL benchmark, written through the
//! store layer (Parquet tables and the tantivy log index) into a data directory that
//! `fnlens serve` opens as it is. The log lines are also written to one Parquet file for the
//! peers (DuckDB), which have no tantivy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use fnlens_model::{Invocation, Level, LogRecord, LogSource, Status, invocations_to_record_batch};
use fnlens_store::{DataDir, LogStore, LogStoreConfig, TableSpec, TableStore};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Args)]
pub(crate) struct SqlDataArgs {
    /// The data directory to create (must not exist).
    #[arg(long)]
    data_dir: PathBuf,
    /// Where to write the log lines as Parquet, for the peers.
    #[arg(long)]
    logs_parquet: PathBuf,
    /// Invocations to write.
    #[arg(long, default_value_t = 10_000_000)]
    invocations: usize,
    /// One log line per this many invocations (error lines for every failed one come on top).
    #[arg(long, default_value_t = 2)]
    invocations_per_log: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// The dataset ends here: 2026-01-03T00:00:00Z, and spans the 48 hours before.
pub(crate) const END_MS: i64 = 1_767_398_400_000;
const SPAN_MS: i64 = 48 * 3_600_000;
const ROWS_PER_FLUSH: usize = 1 << 20;

struct Function {
    name: String,
    memory_size_mb: i64,
    base_duration_ms: f64,
    error_share: f64,
    /// Cumulative popularity weight.
    weight: f64,
}

fn functions() -> Vec<Function> {
    let areas = [
        "orders", "payments", "users", "images", "search", "email", "billing", "auth",
    ];
    let kinds = ["api", "worker", "cron", "stream", "webhook"];
    let memory = [128, 256, 512, 1024, 1769, 2048, 3008];
    let mut total = 0.0;
    (0..40)
        .map(|k| {
            // Zipf-like popularity: a few functions get most calls.
            total += 1.0 / (k as f64 + 1.0);
            Function {
                name: format!("{}-{}", areas[k % 8], kinds[k / 8]),
                memory_size_mb: memory[k % 7],
                base_duration_ms: 15.0 * (1.0 + (k * 37 % 60) as f64),
                error_share: 0.002 + (k * 13 % 40) as f64 / 1000.0,
                weight: total,
            }
        })
        .collect()
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let a: u128 = rng.random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

pub(crate) fn run(args: SqlDataArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.data_dir.exists(),
        "{} exists; sql-data writes a fresh data directory",
        args.data_dir.display()
    );
    let started = Instant::now();
    let dir = DataDir::open(&args.data_dir)?;
    let stats = Arc::default();
    let invocations = TableStore::open(
        TableSpec::invocations(),
        dir.invocations_dir(),
        Arc::clone(&stats),
    )?;
    let logs = LogStore::open(
        LogStoreConfig {
            dir: dir.logs_dir(),
            writer_threads: 2,
            writer_memory_bytes: 256 << 20,
            writer_idle: Duration::from_secs(3600),
        },
        stats,
    )?;
    let functions = functions();
    let total_weight = functions.last().map_or(1.0, |f| f.weight);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let start_ms = END_MS - SPAN_MS;
    let logs_file = std::fs::File::create(&args.logs_parquet)
        .with_context(|| format!("creating {}", args.logs_parquet.display()))?;
    let mut logs_writer = parquet::arrow::ArrowWriter::try_new(
        logs_file,
        fnlens_model::logs_schema(),
        Some(
            parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .set_max_row_group_row_count(Some(128 * 1024))
                .build(),
        ),
    )?;
    let bar = indicatif::ProgressBar::new(args.invocations as u64);
    let (mut written, mut lsn, mut log_lines) = (0usize, 0u64, 0usize);
    while written < args.invocations {
        let n = ROWS_PER_FLUSH.min(args.invocations - written);
        let mut rows = Vec::with_capacity(n);
        let mut lines = Vec::with_capacity(n / args.invocations_per_log + n / 20);
        for i in written..written + n {
            let ts_ms = start_ms
                + (i as i64 * SPAN_MS) / args.invocations as i64
                + rng.random_range(0..1000);
            let pick = rng.random::<f64>() * total_weight;
            let f = functions
                .iter()
                .find(|f| f.weight >= pick)
                .unwrap_or(&functions[0]);
            // Three deploys over the span, at a different hour for each function.
            let offset = (f.name.len() as i64 * 3_600_000) % (SPAN_MS / 3);
            let version =
                (1 + (ts_ms - start_ms + offset) * 3 / (SPAN_MS + SPAN_MS / 3)).to_string();
            let r: f64 = rng.random();
            let (status, error_type) = if r < f.error_share / 10.0 {
                (Status::Timeout, Some("Sandbox.Timedout".to_owned()))
            } else if r < f.error_share {
                (Status::Error, Some("Runtime.HandlerError".to_owned()))
            } else {
                (Status::Success, None)
            };
            let spread: f64 = rng.random();
            let duration_ms =
                (f.base_duration_ms * (0.4 + 4.0 * spread.powi(4)) * 100.0).round() / 100.0;
            let cold_start = rng.random::<f64>() < 0.03;
            let request_id = uuid(&mut rng);
            let used = (f.memory_size_mb as f64 * rng.random_range(0.1..0.9)) as i64;
            if i % args.invocations_per_log == 0 || status != Status::Success {
                let (level, message) = match status {
                    Status::Success => (
                        Level::Info,
                        format!("handled {} in {duration_ms} ms", f.name),
                    ),
                    Status::Timeout => (
                        Level::Error,
                        "Task timed out waiting for upstream".to_owned(),
                    ),
                    _ => (
                        Level::Error,
                        format!("Error: payment provider returned 502 for {request_id}"),
                    ),
                };
                lines.push(LogRecord {
                    ts_ms: ts_ms + 1,
                    function: f.name.clone(),
                    version: version.clone(),
                    request_id: Some(request_id.clone()),
                    level,
                    source: LogSource::Function,
                    message,
                    attributes: Default::default(),
                });
            }
            rows.push(Invocation {
                ts_ms,
                end_ts_ms: ts_ms + duration_ms.ceil() as i64,
                function: f.name.clone(),
                version,
                request_id,
                status,
                error_type,
                duration_ms,
                billed_duration_ms: duration_ms.ceil(),
                memory_size_mb: f.memory_size_mb,
                max_memory_used_mb: used.max(1),
                init_duration_ms: cold_start.then(|| rng.random_range(100.0..1500.0_f64).round()),
                cold_start,
                init_status: cold_start.then(|| "success".to_owned()),
                instance: None,
                region: Some("us-east-1".into()),
            });
        }
        lsn += 1;
        invocations.bulk_load(lsn, vec![invocations_to_record_batch(&rows)?])?;
        logs.add(lsn, &lines, false)?;
        logs.commit(lsn)?;
        logs_writer.write(&log_batch(&lines)?)?;
        log_lines += lines.len();
        written += n;
        bar.inc(n as u64);
    }
    logs.close(lsn)?;
    logs_writer.close()?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {written} invocations ({} files) and {log_lines} log lines in {:.0?}",
        invocations.file_count(),
        started.elapsed()
    );
    Ok(())
}

fn log_batch(lines: &[LogRecord]) -> anyhow::Result<arrow::array::RecordBatch> {
    use arrow::array::{StringArray, TimestampMillisecondArray};
    let s = |f: &dyn Fn(&LogRecord) -> Option<String>| -> Arc<StringArray> {
        Arc::new(lines.iter().map(f).collect::<StringArray>())
    };
    Ok(arrow::array::RecordBatch::try_new(
        fnlens_model::logs_schema(),
        vec![
            Arc::new(
                TimestampMillisecondArray::from(lines.iter().map(|l| l.ts_ms).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            s(&|l| Some(l.function.clone())),
            s(&|l| Some(l.version.clone())),
            s(&|l| l.request_id.clone()),
            s(&|l| Some(l.level.as_str().to_owned())),
            s(&|l| Some(l.source.as_str().to_owned())),
            s(&|l| Some(l.message.clone())),
            s(&|_| Some("{}".to_owned())),
        ],
    )?)
}
