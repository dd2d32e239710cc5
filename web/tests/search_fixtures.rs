//! Data-driven search tests: the corpus in `tests/fixtures/search/corpus.ndjson` goes through the
//! real pipeline, then every case of `tests/fixtures/search/queries.json` is asked of the HTTP
//! API and must return exactly the expected hits (by their `attributes.id`), in order.
//!
//! The same corpus also checks the histogram, the facets, the request view, stable paging while
//! ingesting, and the live tail.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fnlens_ingest::{Pipeline, PipelineConfig};
use fnlens_model::{Batch, Level, LogRecord, LogSource, parse_rfc3339_ms};
use fnlens_web::{AppState, WebConfig, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/search")
}

/// The corpus as log records; each carries its `id` as an attribute.
fn corpus() -> Vec<LogRecord> {
    let text = std::fs::read_to_string(fixtures().join("corpus.ndjson")).unwrap();
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let mut attributes = v["attributes"].as_object().cloned().unwrap_or_default();
            attributes.insert("id".into(), v["id"].clone());
            LogRecord {
                ts_ms: parse_rfc3339_ms(v["ts"].as_str().unwrap()).unwrap(),
                function: v["function"].as_str().unwrap().into(),
                version: v["version"].as_str().unwrap().into(),
                request_id: v["request_id"].as_str().map(Into::into),
                level: Level::parse(v["level"].as_str().unwrap()).unwrap(),
                source: match v["source"].as_str() {
                    Some("platform") => LogSource::Platform,
                    Some("extension") => LogSource::Extension,
                    _ => LogSource::Function,
                },
                message: v["message"].as_str().unwrap().into(),
                attributes,
            }
        })
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    pipeline: Arc<Pipeline>,
    app: Router,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = PipelineConfig::new(dir.path().to_path_buf());
        config.commit_interval = Duration::from_millis(20);
        config.indexer_threads = 1;
        config.indexer_memory_bytes = 15_000_000;
        config.retention = None;
        let pipeline = Arc::new(Pipeline::open(config).unwrap());
        let app = app(AppState::new(pipeline.clone(), WebConfig::default()).unwrap());
        Fixture {
            _dir: dir,
            pipeline,
            app,
        }
    }

    async fn ingest(&self, logs: Vec<LogRecord>) {
        self.pipeline
            .ingest(Batch {
                logs,
                ..Batch::default()
            })
            .await
            .unwrap();
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let res = self
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{uri}: {e}: {}", String::from_utf8_lossy(&body)));
        (status, value)
    }

    /// Waits until a search of everything counts `n` records.
    async fn wait_searchable(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, body) = self
                .get(&format!(
                    "/api/v1/logs/search?start=0&end={}&limit=0",
                    i64::MAX
                ))
                .await;
            if body["total"] == json!(n) {
                return;
            }
            assert!(Instant::now() < deadline, "never searchable: {body}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn shutdown(self) {
        let pipeline = self.pipeline;
        tokio::task::spawn_blocking(move || pipeline.shutdown())
            .await
            .unwrap();
    }
}

fn url(path: &str, params: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse("http://x").unwrap().join(path).unwrap();
    for (k, v) in params {
        u.query_pairs_mut().append_pair(k, v);
    }
    format!("{}?{}", u.path(), u.query().unwrap_or_default())
}

const ALL: [(&str, &str); 2] = [
    ("start", "2026-01-01T00:00:00Z"),
    ("end", "2027-01-01T00:00:00Z"),
];

fn ids(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {body}"))
        .iter()
        .map(|h| h["attributes"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_cases() {
    let fx = Fixture::new().await;
    fx.ingest(corpus()).await;
    fx.wait_searchable(12).await;

    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("queries.json")).unwrap())
            .unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut params: Vec<(&str, String)> = vec![("q", case["q"].as_str().unwrap().to_owned())];
        for key in ["start", "end", "order", "limit", "highlight"] {
            if let Some(v) = case.get(key) {
                params.push((key, v.as_str().map_or_else(|| v.to_string(), str::to_owned)));
            }
        }
        for (k, v) in ALL {
            if case.get(k).is_none() {
                params.push((k, v.to_owned()));
            }
        }
        let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = fx.get(&url("/api/v1/logs/search", &refs)).await;
        if let Some(error) = case.get("error") {
            let mut ok = status == StatusCode::BAD_REQUEST && body["error"] == *error;
            if let Some(pos) = case.get("position") {
                ok &= body["position"] == *pos;
            }
            if let Some(d) = case["detail"].as_str() {
                ok &= body["detail"].as_str().unwrap_or_default().contains(d);
            }
            if !ok {
                failures.push(format!(
                    "{name}: expected a 400 {case}, got {status} {body}"
                ));
            }
            continue;
        }
        if status != StatusCode::OK {
            failures.push(format!("{name}: {status} {body}"));
            continue;
        }
        let expected: Vec<String> = serde_json::from_value(case["expect"].clone()).unwrap();
        let got = ids(&body);
        if got != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
        let total = case.get("total").cloned().unwrap_or(json!(expected.len()));
        if body["total"] != total {
            failures.push(format!("{name}: total {} != {total}", body["total"]));
        }
        if let Some(highlights) = case["highlights"].as_object() {
            for hit in body["hits"].as_array().unwrap() {
                let id = hit["attributes"]["id"].as_str().unwrap();
                let html = hit["highlight"].as_str().unwrap_or_default();
                let marked: Vec<&str> = html
                    .split("<mark>")
                    .skip(1)
                    .filter_map(|s| s.split("</mark>").next())
                    .collect();
                if json!(marked) != highlights[id] {
                    failures.push(format!("{name}: {id} highlighted {marked:?} in {html:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_facets_and_partitions() {
    let fx = Fixture::new().await;
    fx.ingest(corpus()).await;
    fx.wait_searchable(12).await;

    let day = [
        ("start", "2026-03-01T00:00:00Z"),
        ("end", "2026-03-03T00:00:00Z"),
    ];
    let (status, body) = fx
        .get(&url(
            "/api/v1/logs/histogram",
            &[&day[..], &[("q", "level:ERROR"), ("interval", "1d")]].concat(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["interval_ms"], 86_400_000);
    let counts: Vec<&Value> = body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["count"])
        .collect();
    assert_eq!(counts, [&json!(2), &json!(1)]);
    assert_eq!(body["buckets"][1]["ts"], "2026-03-02T00:00:00.000Z");
    assert_eq!(body["total"], 3);

    // Split by level, automatic interval (48 h / 60 -> 1 h buckets).
    let (_, body) = fx
        .get(&url(
            "/api/v1/logs/histogram",
            &[&day[..], &[("split", "level")]].concat(),
        ))
        .await;
    assert_eq!(body["interval_ms"], 3_600_000);
    assert_eq!(body["buckets"].as_array().unwrap().len(), 48);
    let ten = &body["buckets"][10];
    assert_eq!(ten["ts"], "2026-03-01T10:00:00.000Z");
    assert_eq!(ten["by"], json!({"INFO": 1, "ERROR": 1, "WARN": 1}));
    assert_eq!(body["series"][0], json!({"value": "INFO", "total": 6}));

    // A too-fine interval is refused, not computed.
    let (status, body) = fx
        .get(&url(
            "/api/v1/logs/histogram",
            &[&day[..], &[("interval", "1ms")]].concat(),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = fx
        .get(&url("/api/v1/logs/histogram", &[("split", "color")]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = fx
        .get(&url(
            "/api/v1/logs/facets",
            &[&ALL[..], &[("q", "-level:DEBUG"), ("size", "2")]].concat(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 11);
    assert_eq!(
        body["facets"]["function"],
        json!([{"value": "checkout-api", "count": 5}, {"value": "auth-service", "count": 3}])
    );
    assert_eq!(
        body["facets"]["level"],
        json!([{"value": "INFO", "count": 6}, {"value": "ERROR", "count": 3}])
    );
    // Ties go alphabetically.
    assert_eq!(
        body["facets"]["version"][0],
        json!({"value": "1", "count": 3})
    );

    // Everything: counted from the term dictionaries; the same as a query matching everything
    // that is counted document by document.
    let (_, all) = fx
        .get(&url(
            "/api/v1/logs/facets",
            &[&ALL[..], &[("q", "*")]].concat(),
        ))
        .await;
    let (_, same) = fx
        .get(&url(
            "/api/v1/logs/facets",
            &[&ALL[..], &[("q", "-nosuchword")]].concat(),
        ))
        .await;
    assert_eq!(all["total"], 12);
    assert_eq!(all["facets"], same["facets"]);
    assert_eq!(
        all["facets"]["level"][0],
        json!({"value": "INFO", "count": 6})
    );
    assert_eq!(all["facets"]["function"].as_array().unwrap().len(), 4);

    // Only the partitions overlapping the range are searched.
    let (_, body) = fx
        .get(&url(
            "/api/v1/logs/search",
            &[
                ("start", "2026-03-02T08:00:00Z"),
                ("end", "2026-03-02T08:15:00Z"),
            ],
        ))
        .await;
    assert_eq!(body["partitions_searched"], 1);
    assert_eq!(body["total"], 0);
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_stable_while_ingesting() {
    let fx = Fixture::new().await;
    let base = parse_rfc3339_ms("2026-03-01T10:00:00Z").unwrap();
    let line = |function: &str, i: i64, tag: &str| LogRecord {
        // Several lines share each millisecond: the cursor must break ties.
        ts_ms: base + i / 3,
        function: function.into(),
        version: "1".into(),
        request_id: None,
        level: Level::Info,
        source: LogSource::Function,
        message: format!("paging line {tag}{i}"),
        attributes: Default::default(),
    };
    for (n, order) in ["desc", "asc"].into_iter().enumerate() {
        let function = format!("pager-{order}");
        fx.ingest((0..50).map(|i| line(&function, i, "old")).collect())
            .await;
        fx.wait_searchable(50 * (n as u64 + 1) + 24 * n as u64)
            .await;
        let q = format!("paging AND function:{function}");
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut params = vec![("q", q.as_str()), ("limit", "7"), ("order", order)];
            params.extend(ALL);
            if let Some(c) = &cursor {
                params.push(("cursor", c));
            }
            let (status, body) = fx.get(&url("/api/v1/logs/search", &params)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["total"], 50, "the total is the first page's snapshot");
            seen.extend(
                body["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h["message"].as_str().unwrap().to_owned()),
            );
            pages += 1;
            // Matching lines at the same, newer and older times arrive between pages.
            fx.ingest(vec![
                line(&function, pages * 3, "new"),
                line(&function, 60 + pages, "new"),
                line(&function, -5, "new"),
            ])
            .await;
            match body["cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let mut expected: Vec<String> = (0..50).map(|i| format!("paging line old{i}")).collect();
        if order == "desc" {
            expected.reverse();
        }
        assert_eq!(seen, expected, "order={order}");
        assert_eq!(pages, 8);
    }

    // A cursor of the other order, or of garbage, is a 400.
    let (_, body) = fx
        .get(&url(
            "/api/v1/logs/search",
            &[&ALL[..], &[("limit", "1")]].concat(),
        ))
        .await;
    let desc_cursor = body["cursor"].as_str().unwrap().to_owned();
    for (order, cursor) in [("asc", desc_cursor.as_str()), ("desc", "nonsense")] {
        let (status, body) = fx
            .get(&url(
                "/api/v1/logs/search",
                &[("order", order), ("cursor", cursor)],
            ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_view_returns_the_lines_in_order() {
    let fx = Fixture::new().await;
    fx.ingest(corpus()).await;
    fx.wait_searchable(12).await;
    let (status, body) = fx.get("/api/v1/invocations/r-200").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let messages: Vec<&str> = body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "payment declined: card_declined for order o-9",
            "Connection reset by peer"
        ]
    );
    assert_eq!(body["log_count"], 2);
    // The corpus has no invocation rows; those come from REPORT events (end-to-end tests).
    assert_eq!(body["invocation"], Value::Null);
    let (status, body) = fx.get("/api/v1/invocations/r-nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_streams_matching_lines_ingested_after_subscribing() {
    let fx = Fixture::new().await;
    fx.ingest(corpus()).await;
    let res = fx
        .app
        .clone()
        .oneshot(
            Request::get(url("/api/v1/logs/tail", &[("q", "level:ERROR")]))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let mut text = String::new();
    let mut next_event = async || -> String {
        loop {
            if let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                return event;
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("no event within 10 s")
                .unwrap()
                .unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    assert!(next_event().await.starts_with("event: subscribed"));
    let mut lines = corpus();
    lines[0].message = "fresh info".into();
    lines[1].message = "fresh error".into();
    fx.ingest(lines[..2].to_vec()).await;
    let event = next_event().await;
    assert!(event.starts_with("event: line\ndata: "), "{event}");
    let data: Value =
        serde_json::from_str(event.trim_end().split_once("data: ").unwrap().1).unwrap();
    assert_eq!(data["message"], "fresh error");
    assert_eq!(data["level"], "ERROR");

    let (status, body) = fx.get(&url("/api/v1/logs/tail", &[("q", "a AND (")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    fx.shutdown().await;
}
