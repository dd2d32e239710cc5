//! `fnlens bench latency`: how long after its 200 a batch is searchable and visible in SQL.
//!
//! Each trial posts one small Telemetry batch with a fresh request id, then polls search
//! (`request_id:<id>`) and SQL (`... WHERE request_id = '<id>'`) every few milliseconds until each
//! finds it. Run it alone, or beside a load (bench/ingest.sh does both).

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Time from the 200 to searchable and to visible in SQL.
    Latency(LatencyArgs),
    /// Decode a `simulate --out` corpus into one JSON log line per row, exactly the records
    /// fnlens indexes, for the peers of the search benchmark (ripgrep, SQLite FTS5).
    Flatten(FlattenArgs),
    /// Write the SQL benchmark's dataset (10M invocations by default) into a new data directory.
    SqlData(super::bench_sql::SqlDataArgs),
    /// Ingest throughput per wire format (Telemetry, OTLP protobuf and JSON, CloudWatch text)
    /// against a running server.
    Formats(super::bench_formats::FormatsArgs),
    /// Time from the acknowledgement of a batch that tips an alert rule to its webhook.
    Alerts(super::bench_alerts::AlertsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct FlattenArgs {
    /// A corpus written by `fnlens simulate --out`.
    #[arg(long)]
    from: std::path::PathBuf,
    /// Where to write the lines.
    #[arg(long)]
    out: std::path::PathBuf,
}

/// One log record per line, fields in this order (the peers' scripts rely on it).
#[derive(serde::Serialize)]
struct FlatLine<'a> {
    ts_ms: i64,
    function: &'a str,
    version: &'a str,
    level: &'a str,
    request_id: Option<&'a str>,
    source: &'a str,
    message: &'a str,
}

fn flatten(args: FlattenArgs) -> anyhow::Result<()> {
    use fnlens_ingest::decode::telemetry::{LambdaContext, decode};
    use std::io::{BufRead, Write};

    let input = std::io::BufReader::new(
        std::fs::File::open(&args.from)
            .with_context(|| format!("opening {}", args.from.display()))?,
    );
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args.out)?);
    let (mut batches, mut lines) = (0u64, 0u64);
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).context("reading a batch line")?;
        let ctx = LambdaContext {
            function: v["function"].as_str().unwrap_or("unknown").to_owned(),
            instance: v["instance"].as_str().map(str::to_owned),
            ..LambdaContext::default()
        };
        let body = serde_json::to_vec(&v["events"])?;
        let decoded = decode(&body, &ctx).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for r in &decoded.batch.logs {
            serde_json::to_writer(
                &mut out,
                &FlatLine {
                    ts_ms: r.ts_ms,
                    function: &r.function,
                    version: &r.version,
                    level: r.level.as_str(),
                    request_id: r.request_id.as_deref(),
                    source: r.source.as_str(),
                    message: &r.message,
                },
            )?;
            out.write_all(b"\n")?;
            lines += 1;
        }
        batches += 1;
    }
    out.flush()?;
    eprintln!(
        "{batches} batches -> {lines} log lines in {}",
        args.out.display()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    target: String,
    #[arg(long, default_value_t = 200)]
    trials: usize,
    /// Polling interval while waiting, in ms.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
}

pub(crate) async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Latency(args) => latency(args).await,
        BenchCommand::Flatten(args) => flatten(args),
        BenchCommand::SqlData(args) => super::bench_sql::run(args),
        BenchCommand::Formats(args) => super::bench_formats::run(args).await,
        BenchCommand::Alerts(args) => super::bench_alerts::run(args).await,
    }
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn latency(args: LatencyArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let base = args.target.trim_end_matches('/');
    let mut to_search = Vec::with_capacity(args.trials);
    let mut to_sql = Vec::with_capacity(args.trials);
    let poll = Duration::from_millis(args.poll_ms);
    for trial in 0..args.trials {
        let request_id = format!("probe-{}-{trial}", std::process::id());
        let now = chrono::Utc::now();
        let t = |ms: i64| fnlens_model::format_ts_ms(now.timestamp_millis() + ms);
        let body = json!([
            {"time": t(0), "type": "platform.start", "record": {"requestId": request_id, "version": "1"}},
            {"time": t(1), "type": "function", "record": format!("{}\t{request_id}\tINFO\tlatency probe {trial}\n", t(1))},
            {"time": t(3), "type": "platform.report", "record": {"requestId": request_id, "status": "success",
                "metrics": {"durationMs": 2.5, "billedDurationMs": 3, "memorySizeMB": 128, "maxMemoryUsedMB": 40}}}
        ]);
        let res = client
            .post(format!("{base}/api/v1/ingest/lambda/latency-probe"))
            .json(&body)
            .send()
            .await
            .context("posting a probe")?;
        anyhow::ensure!(res.status().is_success(), "probe refused: {}", res.status());
        let acked = Instant::now();
        let (mut searchable, mut in_sql) = (None, None);
        while searchable.is_none() || in_sql.is_none() {
            if acked.elapsed() > Duration::from_secs(30) {
                anyhow::bail!("probe {request_id} not visible after 30 s");
            }
            if searchable.is_none() {
                let r: Value = client
                    .get(format!("{base}/api/v1/logs/search"))
                    .query(&[
                        (
                            "q",
                            format!("request_id:\"{request_id}\" AND probe").as_str(),
                        ),
                        ("start", "now-1h"),
                        ("limit", "1"),
                    ])
                    .send()
                    .await?
                    .json()
                    .await?;
                if r["total"].as_u64().unwrap_or(0) > 0 {
                    searchable = Some(acked.elapsed());
                }
            }
            if in_sql.is_none() {
                let r: Value = client
                    .post(format!("{base}/api/v1/sql"))
                    .json(&json!({"sql": format!("SELECT count(*) AS n FROM invocations WHERE request_id = '{request_id}'")}))
                    .send()
                    .await?
                    .json()
                    .await?;
                if r["rows"][0]["n"].as_u64().unwrap_or(0) > 0 {
                    in_sql = Some(acked.elapsed());
                }
            }
            if searchable.is_none() || in_sql.is_none() {
                tokio::time::sleep(poll).await;
            }
        }
        to_search.push(searchable.unwrap_or_default().as_secs_f64() * 1000.0);
        to_sql.push(in_sql.unwrap_or_default().as_secs_f64() * 1000.0);
    }
    for (name, v) in [
        ("ack -> searchable", &mut to_search),
        ("ack -> visible in SQL", &mut to_sql),
    ] {
        v.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{name:<24} trials={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
