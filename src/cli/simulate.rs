//! `fnlens simulate`: a fleet of function runners posting Telemetry API batches, or writing them
//! as NDJSON with `--out`, or posting a file written that way with `--from`.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use fnlens_ingest::simulate::{Fleet, FleetConfig, SimBatch};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

/// Simulated time covered by one round of batches: the Telemetry API's default buffering
/// timeout (`timeoutMs`: 1000), so each batch is what one extension receives per delivery.
const TICK_MS: i64 = 1000;

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The fnlens server to post to.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    target: String,
    /// Number of functions in the fleet.
    #[arg(long, default_value_t = 20)]
    functions: usize,
    /// Invocations per second across the fleet.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// How long to run (simulated time with --out), e.g. 60s, 10m.
    #[arg(long, default_value = "60s")]
    duration: String,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Start of the simulated clock (RFC 3339). Defaults to now when posting, and to
    /// 2026-01-01T00:00:00Z with --out so that the same seed gives the same bytes.
    #[arg(long)]
    start: Option<String>,
    /// Write the batches as NDJSON to this file instead of posting them.
    #[arg(long, conflicts_with = "from")]
    out: Option<PathBuf>,
    /// Post the batches of an NDJSON file written with --out, as fast as the server takes them.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Default)]
struct Totals {
    batches: AtomicU64,
    invocations: AtomicU64,
    log_lines: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
}

impl Totals {
    fn add(&self, b: &SimBatch) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.invocations.fetch_add(b.invocations, Ordering::Relaxed);
        self.log_lines.fetch_add(b.log_lines, Ordering::Relaxed);
        self.bytes.fetch_add(b.body.len() as u64, Ordering::Relaxed);
    }

    fn print(&self, verb: &str, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mb = get(&self.bytes) as f64 / 1e6;
        println!(
            "{verb} {} batches: {} invocations, {} log lines, {:.1} MB in {:.1}s ({:.0} invocations/s, {:.0} lines/s, {:.1} MB/s); {} failed",
            get(&self.batches),
            get(&self.invocations),
            get(&self.log_lines),
            mb,
            secs,
            get(&self.invocations) as f64 / secs,
            get(&self.log_lines) as f64 / secs,
            mb / secs,
            get(&self.failed),
        );
    }
}

fn progress(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub(crate) async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let duration_ms = fnlens_model::parse_duration_ms(&args.duration)
        .with_context(|| format!("--duration {:?}: expected e.g. 60s, 10m", args.duration))?;
    if let Some(path) = &args.from {
        return post_file(&args, path).await;
    }
    let start_ms = match &args.start {
        Some(s) => fnlens_model::parse_rfc3339_ms(s)
            .with_context(|| format!("--start {s:?} is not RFC 3339"))?,
        None if args.out.is_some() => {
            fnlens_model::parse_rfc3339_ms("2026-01-01T00:00:00Z").unwrap_or(0)
        }
        None => chrono::Utc::now().timestamp_millis(),
    };
    let mut fleet = Fleet::new(&FleetConfig {
        functions: args.functions,
        seed: args.seed,
        start_ms,
        rate: args.rate,
    });
    let ticks = (duration_ms / TICK_MS).max(1) as u64;
    let totals = Arc::new(Totals::default());
    let bar = progress(ticks, args.quiet);
    let started = Instant::now();

    if let Some(out) = &args.out {
        let mut w = BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
        );
        for _ in 0..ticks {
            for b in fleet.tick(TICK_MS) {
                write_envelope(&mut w, &b)?;
                totals.add(&b);
            }
            bar.inc(1);
        }
        w.flush()?;
        bar.finish_and_clear();
        totals.print(&format!("wrote to {}", out.display()), started.elapsed());
        return Ok(());
    }

    let client = reqwest::Client::new();
    let target = args.target.trim_end_matches('/').to_owned();
    let (tx, rx) = tokio::sync::mpsc::channel::<SimBatch>(args.concurrency * 4);
    let poster = tokio::spawn(post_all(
        client,
        target,
        rx,
        args.concurrency,
        totals.clone(),
    ));
    for i in 0..ticks {
        // Real time paces the fleet: tick i is due at i * TICK_MS.
        let due = started + Duration::from_millis(i * TICK_MS as u64);
        tokio::time::sleep_until(due.into()).await;
        for b in fleet.tick(TICK_MS) {
            if tx.send(b).await.is_err() {
                break;
            }
        }
        bar.inc(1);
        bar.set_message(format!(
            "{} invocations",
            totals.invocations.load(Ordering::Relaxed)
        ));
    }
    drop(tx);
    poster.await??;
    bar.finish_and_clear();
    totals.print(&format!("posted to {}", args.target), started.elapsed());
    Ok(())
}

fn write_envelope(w: &mut impl Write, b: &SimBatch) -> std::io::Result<()> {
    write!(
        w,
        "{{\"function\":{},\"instance\":{},\"events\":",
        serde_json::Value::from(b.function.as_str()),
        serde_json::Value::from(b.instance.as_str())
    )?;
    w.write_all(&b.body)?;
    w.write_all(b"}\n")
}

/// Posts batches with `concurrency` requests in flight; counts what was acknowledged.
async fn post_all(
    client: reqwest::Client,
    target: String,
    rx: tokio::sync::mpsc::Receiver<SimBatch>,
    concurrency: usize,
    totals: Arc<Totals>,
) -> anyhow::Result<()> {
    let stream = tokio_stream_from(rx);
    stream
        .for_each_concurrent(concurrency.max(1), |b| {
            let client = client.clone();
            let target = target.clone();
            let totals = totals.clone();
            async move {
                let url = format!("{target}/api/v1/ingest/lambda/{}", b.function);
                let res = client
                    .post(&url)
                    .query(&[("instance", b.instance.as_str())])
                    .header("content-type", "application/json")
                    .body(b.body.clone())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => totals.add(&b),
                    Ok(r) => {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(status = %r.status(), "batch refused");
                    }
                    Err(e) => {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "batch not delivered");
                    }
                }
            }
        })
        .await;
    Ok(())
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Posts every batch of an NDJSON file written with `--out`.
async fn post_file(args: &SimulateArgs, path: &PathBuf) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut batches = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).context("reading a batch line")?;
        let events = v["events"].as_array().cloned().unwrap_or_default();
        let count = |pred: &dyn Fn(&str) -> bool| {
            events
                .iter()
                .filter(|e| e["type"].as_str().is_some_and(pred))
                .count() as u64
        };
        batches.push(SimBatch {
            function: v["function"].as_str().unwrap_or("unknown").to_owned(),
            instance: v["instance"].as_str().unwrap_or("").to_owned(),
            invocations: count(&|t| t == "platform.report"),
            log_lines: count(&|t| t == "function" || t == "extension"),
            body: serde_json::to_vec(&events)?,
        });
    }
    let totals = Arc::new(Totals::default());
    let bar = progress(batches.len() as u64, args.quiet);
    let (tx, rx) = tokio::sync::mpsc::channel::<SimBatch>(args.concurrency * 4);
    let started = Instant::now();
    let poster = tokio::spawn(post_all(
        reqwest::Client::new(),
        args.target.trim_end_matches('/').to_owned(),
        rx,
        args.concurrency,
        totals.clone(),
    ));
    for b in batches {
        if tx.send(b).await.is_err() {
            break;
        }
        bar.inc(1);
    }
    drop(tx);
    poster.await??;
    bar.finish_and_clear();
    totals.print(&format!("posted to {}", args.target), started.elapsed());
    Ok(())
}

/// The alert rules `serve --demo` starts with when there are none, so that the Alerts page has
/// something to show: the demo fleet's payments-webhook fails a quarter of the time.
pub(crate) fn demo_rules() -> Vec<fnlens_alerts::Rule> {
    [
        serde_json::json!({
            "name": "error rate above 5%", "function": "*", "metric": "error_rate",
            "comparison": ">", "threshold": 5, "window": "1m", "evaluation_periods": 3,
            "datapoints_to_alarm": 2, "min_invocations": 10, "severity": "critical",
            "annotations": {"summary": "More than 5% of invocations fail"}
        }),
        serde_json::json!({
            "name": "p99 duration above 10 s", "function": "*", "metric": "duration",
            "statistic": "p99", "comparison": ">", "threshold": 10000, "window": "5m",
            "min_invocations": 10, "severity": "warning"
        }),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).expect("the demo rules are valid"))
    .collect()
}

/// The fleet of `fnlens serve --demo`: 20 functions at a gentle 50 invocations/s, forever,
/// posted to `target` as they happen. It starts `backfill_ms` in the past and posts that
/// stretch at once, so that the UI has a history to show from the first page load.
pub(crate) async fn demo(target: String, backfill_ms: i64) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut fleet = Fleet::new(&FleetConfig {
        functions: 20,
        seed: 7,
        start_ms: now - backfill_ms,
        rate: 50.0,
    });
    let client = reqwest::Client::new();
    let post = |b: SimBatch| {
        let request = client
            .post(format!("{target}/api/v1/ingest/lambda/{}", b.function))
            .query(&[("instance", b.instance.as_str())])
            .body(b.body);
        async move {
            if let Err(e) = request.send().await {
                tracing::debug!(error = %e, "demo batch not delivered");
            }
        }
    };
    for _ in 0..backfill_ms / TICK_MS {
        futures::future::join_all(fleet.tick(TICK_MS).into_iter().map(post)).await;
    }
    if backfill_ms > 0 {
        tracing::info!(
            minutes = backfill_ms / 60_000,
            "demo fleet posted its recent history"
        );
    }
    let mut interval = tokio::time::interval(Duration::from_millis(TICK_MS as u64));
    loop {
        interval.tick().await;
        for b in fleet.tick(TICK_MS) {
            post(b).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_rules_compile() {
        let rules = super::demo_rules();
        assert_eq!(rules.len(), 2);
        for rule in rules {
            rule.compile().expect("a valid rule");
        }
    }
}
