//! `fnlens serve`: flags, env vars and an optional TOML file, merged in that order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use fnlens_ingest::{Pipeline, PipelineConfig};
use fnlens_web::{AppState, WebConfig};
use serde::Deserialize;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, env = "FNLENS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where the data lives [default: ./fnlens-data].
    #[arg(long, env = "FNLENS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML file with any of: listen, data_dir, max_body_bytes, commit_interval_ms,
    /// flush_interval_secs, retention, sql_memory_limit, sql_timeout, firehose_access_key, rules,
    /// external_url, notify_retry_max.
    /// Flags and env vars take precedence.
    #[arg(long, env = "FNLENS_CONFIG")]
    config: Option<PathBuf>,
    /// Largest request body, in bytes [default: 16 MiB].
    #[arg(long, env = "FNLENS_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// How often new logs become searchable, in ms [default: 500].
    #[arg(long, env = "FNLENS_COMMIT_INTERVAL_MS")]
    commit_interval_ms: Option<u64>,
    /// How often buffered invocations are written to Parquet, in seconds [default: 30].
    #[arg(long, env = "FNLENS_FLUSH_INTERVAL_SECS")]
    flush_interval_secs: Option<u64>,
    /// Drop time partitions older than this (e.g. 7d, 36h); `off` keeps everything [default: 7d].
    #[arg(long, env = "FNLENS_RETENTION")]
    retention: Option<String>,
    /// Memory one SQL query may use (e.g. 512MiB, 2GiB); past it the query fails [default: 1GiB].
    #[arg(long, env = "FNLENS_SQL_MEMORY_LIMIT")]
    sql_memory_limit: Option<String>,
    /// Time one SQL query may run (e.g. 30s, 2m) before it is cancelled [default: 30s].
    #[arg(long, env = "FNLENS_SQL_TIMEOUT")]
    sql_timeout: Option<String>,
    /// The shared secret Kinesis Firehose sends in X-Amz-Firehose-Access-Key; when set,
    /// /api/v1/ingest/firehose refuses requests without it [default: none, not checked].
    #[arg(long, env = "FNLENS_FIREHOSE_ACCESS_KEY", hide_env_values = true)]
    firehose_access_key: Option<String>,
    /// Alert rules to load at start, TOML (`[[rule]]` tables) or YAML (a `rules:` list). They
    /// replace stored rules of the same names.
    #[arg(long, env = "FNLENS_RULES")]
    rules: Option<PathBuf>,
    /// The address users reach fnlens at, for links in notifications
    /// [default: http://<listen address>].
    #[arg(long, env = "FNLENS_EXTERNAL_URL")]
    external_url: Option<String>,
    /// The longest wait between two attempts to deliver a notification (e.g. 1m, 10s)
    /// [default: 1m].
    #[arg(long, env = "FNLENS_NOTIFY_RETRY_MAX")]
    notify_retry_max: Option<String>,
    /// Also run a small simulated fleet posting to this server, so there is data to look at.
    #[arg(long)]
    demo: bool,
}

/// The TOML config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    commit_interval_ms: Option<u64>,
    flush_interval_secs: Option<u64>,
    retention: Option<String>,
    sql_memory_limit: Option<String>,
    sql_timeout: Option<String>,
    firehose_access_key: Option<String>,
    rules: Option<PathBuf>,
    external_url: Option<String>,
    notify_retry_max: Option<String>,
}

/// The settings the server runs with, after merging.
#[derive(Debug)]
struct Settings {
    listen: SocketAddr,
    pipeline: PipelineConfig,
    web: WebConfig,
    rules: Option<PathBuf>,
    external_url: Option<String>,
    notify_retry_max: Duration,
}

fn settings(args: &ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070)));
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("fnlens-data"));
    let mut pipeline = PipelineConfig::new(data_dir);
    if let Some(ms) = args.commit_interval_ms.or(file.commit_interval_ms) {
        anyhow::ensure!(ms > 0, "commit_interval_ms must be positive");
        pipeline.commit_interval = Duration::from_millis(ms);
    }
    if let Some(s) = args.flush_interval_secs.or(file.flush_interval_secs) {
        anyhow::ensure!(s > 0, "flush_interval_secs must be positive");
        pipeline.flush_interval = Duration::from_secs(s);
    }
    if let Some(r) = args.retention.clone().or(file.retention) {
        pipeline.retention = if r == "off" {
            None
        } else {
            let ms = fnlens_model::parse_duration_ms(&r)
                .filter(|ms| *ms > 0)
                .with_context(|| {
                    format!("retention {r:?}: expected a duration like 7d or 36h, or off")
                })?;
            Some(Duration::from_millis(ms as u64))
        };
    }
    let mut web = WebConfig::default();
    if let Some(b) = args.max_body_bytes.or(file.max_body_bytes) {
        anyhow::ensure!(b > 0, "max_body_bytes must be positive");
        web.max_body_bytes = b;
    }
    if let Some(m) = args.sql_memory_limit.clone().or(file.sql_memory_limit) {
        web.sql.memory_bytes = parse_bytes(&m).filter(|b| *b > 0).with_context(|| {
            format!("sql_memory_limit {m:?}: expected a size like 512MiB or 1GiB")
        })?;
    }
    if let Some(t) = args.sql_timeout.clone().or(file.sql_timeout) {
        let ms = fnlens_model::parse_duration_ms(&t)
            .filter(|ms| *ms > 0)
            .with_context(|| format!("sql_timeout {t:?}: expected a duration like 30s or 2m"))?;
        web.sql.timeout = Duration::from_millis(ms as u64);
    }
    web.firehose_access_key = args
        .firehose_access_key
        .clone()
        .or(file.firehose_access_key)
        .filter(|k| !k.is_empty());
    let notify_retry_max = match args.notify_retry_max.clone().or(file.notify_retry_max) {
        Some(d) => {
            let ms = fnlens_model::parse_duration_ms(&d)
                .filter(|ms| *ms > 0)
                .with_context(|| {
                    format!("notify_retry_max {d:?}: expected a duration like 1m or 10s")
                })?;
            Duration::from_millis(ms as u64)
        }
        None => Duration::from_secs(60),
    };
    Ok(Settings {
        listen,
        pipeline,
        web,
        rules: args.rules.clone().or(file.rules),
        external_url: args.external_url.clone().or(file.external_url),
        notify_retry_max,
    })
}

/// Parses a size: a number of bytes, or a number with KiB, MiB, GiB (or KB, MB, GB, as powers of
/// 1024 too: memory sizes).
fn parse_bytes(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight, then flushing");
}

/// How much recent history the demo fleet posts at start: the last 15 minutes, or the gap since
/// the newest stored invocation when a previous run left some.
async fn demo_backfill_ms(sql: &fnlens_query::SqlEngine) -> i64 {
    const WINDOW_MS: i64 = 15 * 60_000;
    let newest = sql
        .execute(
            "SELECT CAST(max(ts) AS BIGINT) AS newest FROM invocations \
             WHERE ts >= now() - INTERVAL '15 minutes'",
        )
        .await
        .ok()
        .and_then(|r| {
            let batch = r.batches.first()?;
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()?;
            (!column.is_empty() && arrow::array::Array::is_valid(column, 0))
                .then(|| column.value(0))
        });
    let now = chrono::Utc::now().timestamp_millis();
    newest.map_or(WINDOW_MS, |t| (now - t).clamp(0, WINDOW_MS))
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = settings(&args)?;
    // A bad rules file stops the start, before anything else happens.
    let file_rules = match &settings.rules {
        Some(path) => fnlens_alerts::load_rules_file(path).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let started = std::time::Instant::now();
    let data_dir = settings.pipeline.data_dir.clone();
    let pipeline_config = settings.pipeline;
    let pipeline = tokio::task::spawn_blocking(move || Pipeline::open(pipeline_config))
        .await?
        .with_context(|| format!("opening data directory {}", data_dir.display()))?;
    let pipeline = Arc::new(pipeline);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        listen = %addr,
        data_dir = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "fnlens is ready"
    );
    // Tests and scripts read the address from this line.
    println!("fnlens listening on http://{addr}");

    let mut alerts_config = fnlens_alerts::AlertsConfig::new(
        data_dir.join("alerts"),
        settings
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}")),
    );
    alerts_config.retry.max = settings.notify_retry_max;
    let rules = file_rules.len();
    let engine =
        tokio::task::spawn_blocking(move || fnlens_alerts::Engine::open(alerts_config, file_rules))
            .await?
            .context("opening the alerts directory")?;
    let state = AppState::new(pipeline.clone(), settings.web)
        .context("starting the live tail")?
        .with_alerts(engine.clone());
    fnlens_web::start_alerts(&state)
        .await
        .map_err(anyhow::Error::msg)
        .context("starting the alert engine")?;
    if rules > 0 {
        tracing::info!(rules, "loaded the rules file");
    }
    if args.demo && engine.rules().is_empty() {
        for rule in super::simulate::demo_rules() {
            engine.put_rule(rule, false)?;
        }
        tracing::info!("added the demo's alert rules");
    }
    if args.demo {
        let backfill_ms = demo_backfill_ms(&state.sql).await;
        let target = format!("http://{addr}");
        tokio::spawn(async move {
            if let Err(e) = super::simulate::demo(target, backfill_ms).await {
                tracing::warn!(error = %e, "demo fleet stopped");
            }
        });
        tracing::info!("demo fleet is posting simulated traffic");
    }
    tracing::info!("the web UI is at http://{addr}/");
    fnlens_web::serve(listener, state, shutdown_signal()).await?;
    tokio::task::spawn_blocking(move || {
        engine.shutdown();
        pipeline.shutdown()
    })
    .await?;
    tracing::info!("fnlens stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn parse(argv: &[&str]) -> ServeArgs {
        Wrapper::parse_from(std::iter::once("serve").chain(argv.iter().copied())).args
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fnlens.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from/file\"\nmax_body_bytes = 1024\nretention = \"36h\"\nsql_memory_limit = \"256MiB\"\nsql_timeout = \"5s\"\nfirehose_access_key = \"from-file\"\n",
        )
        .unwrap();
        let file = file.to_string_lossy().into_owned();
        let s = settings(&parse(&["--config", &file, "--data-dir", "/from/flag"])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.pipeline.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(s.web.max_body_bytes, 1024);
        assert_eq!(s.pipeline.retention, Some(Duration::from_secs(36 * 3600)));
        assert_eq!(s.web.sql.memory_bytes, 256 << 20);
        assert_eq!(s.web.sql.timeout, Duration::from_secs(5));
        assert_eq!(s.web.firehose_access_key.as_deref(), Some("from-file"));
        let s = settings(&parse(&[
            "--config",
            &file,
            "--sql-memory-limit",
            "2GiB",
            "--firehose-access-key",
            "from-flag",
        ]))
        .unwrap();
        assert_eq!(s.web.sql.memory_bytes, 2 << 30);
        assert_eq!(s.web.firehose_access_key.as_deref(), Some("from-flag"));

        let s = settings(&parse(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(s.pipeline.data_dir, PathBuf::from("fnlens-data"));
        assert_eq!(s.pipeline.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            settings(&parse(&["--retention", "off"]))
                .unwrap()
                .pipeline
                .retention,
            None
        );
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fnlens.toml");
        std::fs::write(&file, "listen_addr = \"x\"\n").unwrap();
        let file = file.to_string_lossy().into_owned();
        let err = format!("{:#}", settings(&parse(&["--config", &file])).unwrap_err());
        assert!(err.contains("listen_addr"), "{err}");
        let err = format!(
            "{:#}",
            settings(&parse(&["--retention", "soon"])).unwrap_err()
        );
        assert!(err.contains("retention"), "{err}");
        let err = format!(
            "{:#}",
            settings(&parse(&["--sql-memory-limit", "lots"])).unwrap_err()
        );
        assert!(err.contains("sql_memory_limit"), "{err}");
    }
}
