//! `fnlens bench alerts`: the time from the acknowledgement of the batch that tips a rule to its
//! webhook arriving at a local receiver.
//!
//! It starts a receiver on an ephemeral port, adds a rule (error rate over 50% in 10 s, one
//! datapoint) pointed at it, and for each trial posts ten failed invocations of a function of
//! its own, so every trial is a fresh instance going to ALARM. The clock starts when the ingest
//! request is answered and stops when the receiver has the firing notification for that
//! function. The rule is deleted at the end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub(crate) struct AlertsArgs {
    /// The server, e.g. http://127.0.0.1:7070.
    #[arg(long)]
    target: String,
    #[arg(long, default_value_t = 60)]
    trials: usize,
}

/// When the receiver got the firing notification of each function.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

pub(crate) async fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let arrivals: Arrivals = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(arrivals): axum::extract::State<Arrivals>,
                 axum::Json(body): axum::Json<Value>| async move {
                    let at = Instant::now();
                    if body["status"] == "firing" {
                        for a in body["alerts"].as_array().into_iter().flatten() {
                            if let Some(f) = a["labels"]["function"].as_str() {
                                arrivals
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(f.to_owned(), at);
                            }
                        }
                    }
                    "ok"
                },
            ),
        )
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let base = args.target.trim_end_matches('/');
    let run_id = format!("{:x}", chrono::Utc::now().timestamp_millis());
    let rule_name = format!("bench-alert-latency-{run_id}");
    let res = client
        .post(format!("{base}/api/v1/alerts/rules"))
        .json(&json!({
            "name": rule_name, "function": format!("bench-alert-{run_id}-*"),
            "metric": "error_rate", "comparison": ">", "threshold": 50, "window": "10s",
            "min_invocations": 5, "notify": [{"type": "webhook", "url": hook, "secret": "bench"}]
        }))
        .send()
        .await
        .context("creating the rule")?;
    anyhow::ensure!(
        res.status().is_success(),
        "rule refused: {}",
        res.text().await?
    );

    let mut latencies = Vec::with_capacity(args.trials);
    for trial in 0..args.trials {
        let function = format!("bench-alert-{run_id}-{trial}");
        let now = chrono::Utc::now().timestamp_millis();
        let events: Vec<Value> = (0..10)
            .map(|i| {
                json!({"time": fnlens_model::format_ts_ms(now), "type": "platform.report",
                       "record": {"requestId": format!("{function}-{i}"), "status": "error",
                                  "metrics": {"durationMs": 20.0, "billedDurationMs": 20,
                                              "memorySizeMB": 128, "maxMemoryUsedMB": 40}}})
            })
            .collect();
        let res = client
            .post(format!("{base}/api/v1/ingest/lambda/{function}"))
            .json(&events)
            .send()
            .await?;
        anyhow::ensure!(
            res.status().is_success(),
            "ingest refused: {}",
            res.status()
        );
        let acked = Instant::now();
        loop {
            if let Some(at) = arrivals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&function)
            {
                latencies.push(at.saturating_duration_since(acked).as_secs_f64() * 1000.0);
                break;
            }
            anyhow::ensure!(
                acked.elapsed() < Duration::from_secs(30),
                "no webhook for {function} after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let _ = client
        .delete(format!("{base}/api/v1/alerts/rules/{rule_name}"))
        .send()
        .await;
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| super::bench::percentile(&latencies, q);
    println!(
        "ack -> webhook           trials={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        latencies.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
