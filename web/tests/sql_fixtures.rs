//! Data-driven SQL tests: the dataset in `tests/fixtures/sql/dataset.json` goes through the real
//! pipeline, then every `.slt` file there is run against `POST /api/v1/sql`, twice: with the rows
//! still in the Arrow buffers, and after a restart has written them to Parquet. The answers must
//! be identical and equal the expected ones in the files.
//!
//! `FNLENS_SLT_COMPLETE=1 cargo test --test sql_fixtures` rewrites the expected answers from the
//! current results (review the diff).
//!
//! The same dataset checks the Lambda metrics against values computed here from the raw events,
//! the answer formats, the limits, and the full-text pushdown against search.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, Float32Array, Float64Array, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fnlens_ingest::{Pipeline, PipelineConfig};
use fnlens_model::{Batch, Invocation};
use fnlens_query::SqlLimits;
use fnlens_web::{AppState, WebConfig, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sql")
}

fn dataset() -> Vec<Batch> {
    let text = std::fs::read_to_string(fixtures().join("dataset.json")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

struct Fixture {
    pipeline: Arc<Pipeline>,
    app: Router,
}

impl Fixture {
    /// Opens the data directory with the buffers flushed only at shutdown.
    fn open(dir: &Path, web: WebConfig) -> Fixture {
        let mut config = PipelineConfig::new(dir.to_path_buf());
        config.commit_interval = Duration::from_millis(20);
        config.flush_interval = Duration::from_secs(3600);
        config.indexer_threads = 1;
        config.indexer_memory_bytes = 15_000_000;
        config.retention = None;
        let pipeline = Arc::new(Pipeline::open(config).unwrap());
        let app = app(AppState::new(pipeline.clone(), web).unwrap());
        Fixture { pipeline, app }
    }

    async fn load(dir: &Path) -> Fixture {
        let f = Fixture::open(dir, WebConfig::default());
        for batch in dataset() {
            f.pipeline.ingest(batch).await.unwrap();
        }
        // Searchable: every log line is in a committed index.
        let logs: u64 = dataset().iter().map(|b| b.logs.len() as u64).sum();
        for _ in 0..500 {
            let (_, body) = f.sql("SELECT count(*) AS n FROM logs", "json").await;
            if body["rows"][0]["n"] == json!(logs) {
                return f;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the logs never became searchable");
    }

    async fn post(&self, body: Value) -> (StatusCode, axum::body::Bytes) {
        let res = self
            .app
            .clone()
            .oneshot(
                Request::post("/api/v1/sql")
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    }

    async fn sql(&self, sql: &str, format: &str) -> (StatusCode, Value) {
        let (status, body) = self.post(json!({"sql": sql, "format": format})).await;
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{sql}: {e}: {}", String::from_utf8_lossy(&body)));
        (status, value)
    }

    /// Runs a query through the Arrow format; Err is the API's error detail.
    async fn batches(&self, sql: &str) -> Result<Vec<RecordBatch>, String> {
        let (status, body) = self.post(json!({"sql": sql, "format": "arrow"})).await;
        if status != StatusCode::OK {
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert!(
                status.is_client_error(),
                "{sql}: a server error {status}: {v}"
            );
            return Err(format!(
                "{}: {}",
                v["error"],
                v["detail"].as_str().unwrap_or_default()
            ));
        }
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).unwrap();
        Ok(reader.map(|b| b.unwrap()).collect())
    }

    async fn shutdown(self) {
        let pipeline = self.pipeline;
        tokio::task::spawn_blocking(move || pipeline.shutdown())
            .await
            .unwrap();
    }
}

/// One record of an `.slt` file.
#[derive(Debug)]
enum Record {
    Query { sql: String, expected: Vec<String> },
    Error { sql: String, expected: String },
    Comment(String),
}

fn parse_slt(text: &str) -> Vec<Record> {
    let mut records = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            records.push(Record::Comment(line.to_owned()));
            continue;
        }
        let mut sql = Vec::new();
        if line == "query" {
            for l in lines.by_ref() {
                if l == "----" {
                    break;
                }
                sql.push(l);
            }
            let mut expected = Vec::new();
            while let Some(l) = lines.peek() {
                if l.trim().is_empty() {
                    break;
                }
                expected.push(l.to_string());
                lines.next();
            }
            records.push(Record::Query {
                sql: sql.join("\n"),
                expected,
            });
        } else if let Some(text) = line.strip_prefix("error ") {
            while let Some(l) = lines.peek() {
                if l.trim().is_empty() {
                    break;
                }
                sql.push(*l);
                lines.next();
            }
            records.push(Record::Error {
                sql: sql.join("\n"),
                expected: text.to_owned(),
            });
        } else {
            panic!("unexpected line in an .slt file: {line:?}");
        }
    }
    records
}

fn write_slt(records: &[Record]) -> String {
    let mut out = String::new();
    let mut after_comment = false;
    for (i, r) in records.iter().enumerate() {
        match r {
            Record::Comment(c) => {
                if i > 0 && !after_comment {
                    out.push('\n');
                }
                out.push_str(c);
                out.push('\n');
                after_comment = true;
                continue;
            }
            _ if i > 0 && !after_comment => out.push('\n'),
            _ => {}
        }
        after_comment = false;
        match r {
            Record::Query { sql, expected } => {
                out.push_str(&format!("query\n{sql}\n----\n"));
                for l in expected {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            Record::Error { sql, expected } => out.push_str(&format!("error {expected}\n{sql}\n")),
            Record::Comment(_) => unreachable!(),
        }
    }
    out
}

/// A header line, then one line per row; floats with at most 4 decimals.
fn render(batches: &[RecordBatch]) -> Vec<String> {
    let Some(first) = batches.first() else {
        return vec!["(no columns)".into()];
    };
    let schema = first.schema();
    let mut lines = vec![
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join("|"),
    ];
    let options = FormatOptions::default().with_null("NULL");
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(c, f)| {
                    if c.is_null(row) {
                        return "NULL".into();
                    }
                    let float = c
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .map(|a| a.value(row))
                        .or_else(|| {
                            c.as_any()
                                .downcast_ref::<Float32Array>()
                                .map(|a| f64::from(a.value(row)))
                        });
                    match float {
                        Some(v) => {
                            let s = format!("{v:.4}");
                            let s = s.trim_end_matches('0').trim_end_matches('.');
                            if s == "-0" { "0".into() } else { s.to_owned() }
                        }
                        None => f.value(row).to_string(),
                    }
                })
                .collect();
            lines.push(cells.join("|"));
        }
    }
    lines
}

/// Runs every `.slt` file; returns the failures. With `complete`, rewrites the files instead.
async fn run_files(f: &Fixture, phase: &str, complete: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 5, "the .slt files are missing");
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut records = parse_slt(&std::fs::read_to_string(&path).unwrap());
        for r in &mut records {
            match r {
                Record::Query { sql, expected } => match f.batches(sql).await {
                    Ok(batches) => {
                        let actual = render(&batches);
                        if complete {
                            *expected = actual;
                        } else if *expected != actual {
                            failures.push(format!(
                                "{phase} {name}: {sql}\n  expected:\n    {}\n  actual:\n    {}",
                                expected.join("\n    "),
                                actual.join("\n    ")
                            ));
                        }
                    }
                    Err(e) => failures.push(format!("{phase} {name}: {sql}\n  failed: {e}")),
                },
                Record::Error { sql, expected } => match f.batches(sql).await {
                    Ok(_) => failures.push(format!("{phase} {name}: {sql}\n  did not fail")),
                    Err(e) if !e.contains(expected.as_str()) => failures.push(format!(
                        "{phase} {name}: {sql}\n  failed with {e:?}, not {expected:?}"
                    )),
                    Err(_) => {}
                },
                Record::Comment(_) => {}
            }
        }
        if complete {
            std::fs::write(&path, write_slt(&records)).unwrap();
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_give_the_same_answers_from_the_buffers_and_from_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let complete = std::env::var_os("FNLENS_SLT_COMPLETE").is_some();
    let f = Fixture::load(dir.path()).await;
    assert_eq!(f.pipeline.stores().invocations.file_count(), 0);
    let mut failures = run_files(&f, "buffered", complete).await;
    f.shutdown().await;

    // The restart wrote the buffers to Parquet.
    let f = Fixture::open(dir.path(), WebConfig::default());
    assert_eq!(f.pipeline.stores().invocations.partition_count(), 2);
    assert!(!f.pipeline.stores().invocations.has_unflushed());
    assert!(f.pipeline.stores().metrics.file_count() > 0);
    failures.extend(run_files(&f, "parquet", false).await);
    f.shutdown().await;
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn invocations() -> Vec<Invocation> {
    dataset().into_iter().flat_map(|b| b.invocations).collect()
}

const MINUTE_MS: i64 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_metrics_match_values_computed_from_the_raw_events() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::load(dir.path()).await;
    let rows = |body: &Value| body["rows"].as_array().unwrap().clone();
    let (status, body) = f
        .sql(
            "SELECT to_unixtime(minute) * 1000 AS minute_ms, function, invocations, errors, timeouts, \
             error_rate, duration_avg_ms, duration_p50_ms, duration_p99_ms, duration_max_ms, \
             cold_starts, init_duration_max_ms, max_memory_used_mb, memory_utilization_max, \
             gb_seconds FROM lambda_metrics ORDER BY 1, 2",
            "json",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let all = invocations();
    let mut groups: std::collections::BTreeMap<(i64, String), Vec<&Invocation>> =
        Default::default();
    for i in &all {
        groups
            .entry((
                i.ts_ms.div_euclid(MINUTE_MS) * MINUTE_MS,
                i.function.clone(),
            ))
            .or_default()
            .push(i);
    }
    let minutes = rows(&body);
    assert_eq!(minutes.len(), groups.len());
    let close = |a: &Value, b: f64, what: &str| {
        let a = a.as_f64().unwrap_or_else(|| panic!("{what}: {a}"));
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            "{what}: {a} != {b}"
        );
    };
    for (row, ((minute, function), group)) in minutes.iter().zip(&groups) {
        assert_eq!(row["minute_ms"].as_i64(), Some(*minute));
        assert_eq!(row["function"], json!(function));
        let n = group.len() as f64;
        let errors = group
            .iter()
            .filter(|i| i.status.as_str() != "success")
            .count();
        let timeouts = group
            .iter()
            .filter(|i| i.status.as_str() == "timeout")
            .count();
        assert_eq!(row["invocations"], json!(group.len()));
        assert_eq!(row["errors"], json!(errors));
        assert_eq!(row["timeouts"], json!(timeouts));
        close(&row["error_rate"], errors as f64 / n, "error_rate");
        let durations: Vec<f64> = group.iter().map(|i| i.duration_ms).collect();
        close(
            &row["duration_avg_ms"],
            durations.iter().sum::<f64>() / n,
            "avg",
        );
        let max = durations.iter().cloned().fold(f64::MIN, f64::max);
        let min = durations.iter().cloned().fold(f64::MAX, f64::min);
        close(&row["duration_max_ms"], max, "max");
        let p50 = row["duration_p50_ms"].as_f64().unwrap();
        let p99 = row["duration_p99_ms"].as_f64().unwrap();
        assert!(
            min <= p50 && p50 <= p99 && p99 <= max,
            "{min} {p50} {p99} {max}"
        );
        let cold = group.iter().filter(|i| i.cold_start).count();
        assert_eq!(row["cold_starts"], json!(cold));
        match group
            .iter()
            .filter_map(|i| i.init_duration_ms)
            .reduce(f64::max)
        {
            Some(init) => close(&row["init_duration_max_ms"], init, "init"),
            None => assert!(row["init_duration_max_ms"].is_null()),
        }
        let mem = group.iter().map(|i| i.max_memory_used_mb).max().unwrap();
        assert_eq!(row["max_memory_used_mb"], json!(mem));
        let util = group
            .iter()
            .map(|i| i.max_memory_used_mb as f64 / i.memory_size_mb as f64)
            .fold(0.0, f64::max);
        close(&row["memory_utilization_max"], util, "memory utilisation");
        let gbs: f64 = group
            .iter()
            .map(|i| i.billed_duration_ms / 1000.0 * i.memory_size_mb as f64 / 1024.0)
            .sum();
        close(&row["gb_seconds"], gbs, "gb_seconds");
    }

    // Peak concurrency per function, by brute force: at each start, the calls running then.
    let (_, body) = f
        .sql(
            "SELECT function, max(concurrent_executions) AS peak FROM lambda_concurrency \
             GROUP BY function ORDER BY function",
            "json",
        )
        .await;
    for row in rows(&body) {
        let function = row["function"].as_str().unwrap();
        let calls: Vec<&Invocation> = all.iter().filter(|i| i.function == function).collect();
        let peak = calls
            .iter()
            .map(|c| {
                calls
                    .iter()
                    .filter(|o| o.ts_ms <= c.ts_ms && c.ts_ms < o.end_ts_ms)
                    .count()
            })
            .max()
            .unwrap();
        assert_eq!(row["peak"], json!(peak), "{function}");
    }
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_in_json_csv_and_arrow() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::load(dir.path()).await;
    let sql =
        "SELECT function, count(*) AS n, max(ts) AS last FROM invocations GROUP BY 1 ORDER BY 1";
    let (status, body) = f.sql(sql, "json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["columns"][0],
        json!({"name": "function", "type": "Utf8View"})
    );
    assert_eq!(body["columns"][1], json!({"name": "n", "type": "Int64"}));
    assert_eq!(body["columns"][2]["type"], json!("Timestamp(ms, \"UTC\")"));
    assert_eq!(body["row_count"], json!(3));
    assert_eq!(body["rows"][0]["function"], json!("checkout"));

    let (status, csv) = f.post(json!({"sql": sql, "format": "csv"})).await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(csv.to_vec()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "function,n,last");
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("checkout,"), "{csv}");

    let batches = f.batches(sql).await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);

    let (status, body) = f.sql(sql, "xml").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("xml"), "{body}");
    let (status, body) = f.sql("SELEC 1", "json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!("invalid_sql"));
    assert!(body["detail"].as_str().unwrap().contains("SELEC"), "{body}");
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_and_the_memory_limit_end_a_query_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    Fixture::load(dir.path()).await.shutdown().await;
    let web = WebConfig {
        sql: SqlLimits {
            memory_bytes: 2 << 20,
            timeout: Duration::from_millis(300),
            ..SqlLimits::default()
        },
        ..WebConfig::default()
    };
    let f = Fixture::open(dir.path(), web);
    // 214,369 groups of 18-byte keys do not fit in 2 MiB, and nothing spills to disk.
    let (status, body) = f
        .sql(
            "SELECT k, count(*) FROM (SELECT a.request_id || b.request_id AS k \
             FROM invocations a, invocations b) GROUP BY k ORDER BY 2 DESC LIMIT 1",
            "json",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], json!("resources_exhausted"));
    assert!(
        body["detail"].as_str().unwrap().contains("memory"),
        "{body}"
    );

    let started = std::time::Instant::now();
    let (status, body) = f
        .sql(
            "SELECT count(*) FROM invocations a, invocations b, invocations c, invocations d \
             WHERE a.duration_ms + b.duration_ms > c.duration_ms + d.duration_ms",
            "json",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], json!("query_timeout"));
    assert!(started.elapsed() < Duration::from_secs(10));

    // Still healthy, and an ordinary query still runs.
    let started = std::time::Instant::now();
    let (status, body) = f.sql("SELECT count(*) AS n FROM invocations", "json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["n"], json!(invocations().len()));
    eprintln!("a query after the timeout took {:?}", started.elapsed());
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_text_pushdown_finds_the_same_lines_as_search() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::load(dir.path()).await;
    let cases = [
        (
            "search('level:ERROR AND declined')",
            "level:ERROR AND declined",
        ),
        ("match(message, 'upstream timeout')", "upstream timeout"),
        (
            "search('function:thumbnail -level:ERROR')",
            "function:thumbnail -level:ERROR",
        ),
        ("search('attributes.minute:>=55')", "attributes.minute:>=55"),
    ];
    for (predicate, query) in cases {
        let (status, body) = f
            .sql(
                &format!(
                    "SELECT request_id, message FROM logs WHERE {predicate} ORDER BY request_id"
                ),
                "json",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut from_sql: Vec<String> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect();
        let uri = format!(
            "/api/v1/logs/search?start=2026-01-01T00:00:00Z&end=2026-01-03T00:00:00Z&limit=10000&q={}",
            url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        let res = f
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let search: Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let mut from_search: Vec<String> = search["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["request_id"].as_str().unwrap().to_owned())
            .collect();
        from_search.sort();
        from_sql.sort();
        assert!(!from_sql.is_empty(), "{predicate} matched nothing");
        assert_eq!(from_sql, from_search, "{predicate}");
    }
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powertools_emf_lines_become_metric_rows_and_stay_searchable() {
    // Powertools' real stdout, as a Lambda extension receives it: one `function` record per line.
    let stdout = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/powertools/stdout.ndjson"),
    )
    .unwrap();
    let events: Vec<Value> = stdout
        .lines()
        .map(|line| json!({"time": "2026-11-26T10:00:00.000Z", "type": "function", "record": line}))
        .collect();
    // What the EMF documents hold, counted here from the raw lines.
    let mut expected: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
    let mut emf_docs = 0;
    for line in stdout.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let Some(directives) = doc["_aws"]["CloudWatchMetrics"].as_array() else {
            continue;
        };
        emf_docs += 1;
        for d in directives {
            for m in d["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                let values: Vec<f64> = match &doc[name] {
                    Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap()).collect(),
                    v => vec![v.as_f64().unwrap()],
                };
                let e = expected.entry(name.to_owned()).or_default();
                e.0 += values.len();
                e.1 += values.iter().sum::<f64>();
            }
        }
    }
    assert!(emf_docs >= 5 && expected.len() >= 4, "{expected:?}");

    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::open(dir.path(), WebConfig::default());
    let res = f
        .app
        .clone()
        .oneshot(
            Request::post("/api/v1/ingest/lambda/checkout")
                .header("content-type", "application/json")
                .body(Body::from(Value::Array(events).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, body) = f
        .sql(
            "SELECT name, count(*) AS n, sum(value) AS total, min(namespace) AS ns, \
             min(function) AS function FROM metrics GROUP BY name ORDER BY name",
            "json",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "{body}");
    for (row, (name, (n, total))) in rows.iter().zip(&expected) {
        assert_eq!(row["name"], json!(name));
        assert_eq!(row["n"], json!(n), "{name}");
        assert!(
            (row["total"].as_f64().unwrap() - total).abs() < 1e-9,
            "{name}"
        );
        assert_eq!(row["ns"], json!("Shop"));
        assert_eq!(row["function"], json!("checkout"));
    }
    // Dimensions are queryable, and every EMF document is still a log line.
    let (_, body) = f
        .sql(
            "SELECT count(*) AS n FROM metrics WHERE dimensions['service'] = 'checkout'",
            "json",
        )
        .await;
    assert!(body["rows"][0]["n"].as_u64().unwrap() > 0, "{body}");
    for _ in 0..500 {
        let (_, body) = f
            .sql("SELECT count(*) AS n FROM logs WHERE search('attributes._aws.CloudWatchMetrics.Namespace:Shop')", "json")
            .await;
        if body["rows"][0]["n"] == json!(emf_docs) {
            f.shutdown().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the EMF lines are not all searchable");
}
