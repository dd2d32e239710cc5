//! `fnlens bench formats`: ingest throughput per wire format, through HTTP.
//!
//! The simulated fleet's traffic (the same invocations and log lines for every format) is
//! rendered as each producer would send it: Telemetry API batches, OTLP/HTTP protobuf and JSON
//! log exports (one resource per function), and CloudWatch plain text (Lambda's own lines,
//! START/REPORT included). Each format's bodies are posted to a running server with N requests
//! in flight, and the acknowledged events per second and request megabytes per second printed.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use fnlens_ingest::decode::telemetry::{LambdaContext, decode};
use fnlens_ingest::simulate::{Fleet, FleetConfig};
use fnlens_model::{LogRecord, LogSource, format_ts_ms};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

#[derive(Debug, Args)]
pub(crate) struct FormatsArgs {
    /// A running fnlens.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    target: String,
    /// Seconds of simulated traffic per format.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Simulated invocations per second.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

/// One request: path, content type, body, and the events it carries.
struct Request {
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    events: usize,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn severity(level: fnlens_model::Level) -> i32 {
    use fnlens_model::Level::*;
    match level {
        Trace => 1,
        Debug => 5,
        Info => 9,
        Warn => 13,
        Error => 17,
        Fatal => 21,
    }
}

/// The OTLP log export of one function's records.
fn otlp_request(function: &str, version: &str, logs: &[LogRecord]) -> ExportLogsServiceRequest {
    let records = logs
        .iter()
        .map(|r| {
            let mut attributes: Vec<KeyValue> = r
                .attributes
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => kv(k, s),
                    other => kv(k, &other.to_string()),
                })
                .collect();
            if let Some(id) = &r.request_id {
                attributes.push(kv("faas.invocation_id", id));
            }
            OtlpRecord {
                time_unix_nano: r.ts_ms as u64 * 1_000_000,
                observed_time_unix_nano: r.ts_ms as u64 * 1_000_000,
                severity_number: severity(r.level),
                severity_text: r.level.as_str().to_owned(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(r.message.clone())),
                }),
                attributes,
                ..OtlpRecord::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", function),
                    kv("faas.name", function),
                    kv("faas.version", version),
                    kv("cloud.provider", "aws"),
                    kv("cloud.platform", "aws_lambda"),
                ],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// Lambda's log stream text of one function's records: runtime lines as Node writes them,
/// platform lines (START, REPORT, ...) as they are.
fn cloudwatch_text(logs: &[LogRecord]) -> Vec<u8> {
    let mut out = String::new();
    for r in logs {
        match r.source {
            LogSource::Platform => out.push_str(&r.message),
            _ => {
                out.push_str(&format_ts_ms(r.ts_ms));
                out.push('\t');
                out.push_str(r.request_id.as_deref().unwrap_or("undefined"));
                out.push('\t');
                out.push_str(r.level.as_str());
                out.push('\t');
                out.push_str(&r.message.replace('\n', "\r"));
            }
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn requests(args: &FormatsArgs) -> anyhow::Result<Vec<(&'static str, Vec<Request>)>> {
    let start_ms = chrono::Utc::now().timestamp_millis() - args.seconds as i64 * 1000;
    let mut fleet = Fleet::new(&FleetConfig {
        functions: 20,
        seed: 7,
        start_ms,
        rate: args.rate,
    });
    let (mut telemetry, mut pb, mut json, mut text) = (vec![], vec![], vec![], vec![]);
    for _ in 0..args.seconds {
        for b in fleet.tick(1000) {
            let ctx = LambdaContext {
                function: b.function.clone(),
                ..LambdaContext::default()
            };
            let decoded = decode(&b.body, &ctx).context("decoding a simulated batch")?;
            let batch = decoded.batch;
            let version = batch
                .logs
                .first()
                .map_or("$LATEST".to_owned(), |l| l.version.clone());
            let events = batch.logs.len() + batch.invocations.len();
            telemetry.push(Request {
                path: format!("/api/v1/ingest/lambda/{}", b.function),
                content_type: "application/json",
                body: b.body,
                events,
            });
            let request = otlp_request(&b.function, &version, &batch.logs);
            pb.push(Request {
                path: "/v1/logs".to_owned(),
                content_type: "application/x-protobuf",
                body: request.encode_to_vec(),
                events: batch.logs.len(),
            });
            json.push(Request {
                path: "/v1/logs".to_owned(),
                content_type: "application/json",
                body: serde_json::to_vec(&request)?,
                events: batch.logs.len(),
            });
            text.push(Request {
                path: format!("/api/v1/ingest/cloudwatch?function={}", b.function),
                content_type: "text/plain",
                body: cloudwatch_text(&batch.logs),
                events,
            });
        }
    }
    Ok(vec![
        ("Telemetry API JSON (reference)", telemetry),
        ("OTLP/HTTP protobuf", pb),
        ("OTLP/HTTP JSON", json),
        ("CloudWatch text", text),
    ])
}

pub(crate) async fn run(args: FormatsArgs) -> anyhow::Result<()> {
    let formats = requests(&args)?;
    let client = reqwest::Client::new();
    let base = args.target.trim_end_matches('/').to_owned();
    println!(
        "{:<32} {:>9} {:>10} {:>12} {:>9} {:>8}",
        "format", "requests", "events", "events/s", "MB/s", "secs"
    );
    for (name, requests) in formats {
        let requests = Arc::new(requests);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..args.concurrency {
            let (requests, next, client, base) =
                (requests.clone(), next.clone(), client.clone(), base.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(r) = requests.get(i) else {
                        return anyhow::Ok(());
                    };
                    let res = client
                        .post(format!("{base}{}", r.path))
                        .header("content-type", r.content_type)
                        .body(r.body.clone())
                        .send()
                        .await?;
                    let status = res.status();
                    let text = res.text().await?;
                    anyhow::ensure!(status.is_success(), "{} refused: {status} {text}", r.path);
                }
            }));
        }
        for w in workers {
            w.await??;
        }
        let secs = started.elapsed().as_secs_f64();
        let events: usize = requests.iter().map(|r| r.events).sum();
        let bytes: usize = requests.iter().map(|r| r.body.len()).sum();
        println!(
            "{name:<32} {:>9} {:>10} {:>12.0} {:>9.1} {:>8.2}",
            requests.len(),
            events,
            events as f64 / secs,
            bytes as f64 / secs / 1e6,
            secs
        );
    }
    Ok(())
}
