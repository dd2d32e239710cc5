//! End to end, through HTTP: every CloudWatch and OTLP fixture captured from real producers is
//! accepted unchanged, and what it holds is then findable through search and SQL. Malformed
//! bodies of each endpoint get a 4xx naming the problem and store nothing.

mod common;

use std::io::Write;

use common::{Server, client, eventually, fixture, search, sql, sql_count};
use serde_json::{Value, json};

const FIREHOSE_KEY: &str = "fixture-shared-secret";

fn start(dir: &std::path::Path) -> Server {
    Server::start(dir, &["--firehose-access-key", FIREHOSE_KEY])
}

async fn post(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Vec<u8>, String) {
    let mut req = client().post(server.url(path)).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, res.bytes().await.unwrap().to_vec(), content_type)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}", String::from_utf8_lossy(body));
    })
}

/// The Firehose fixture's headers, as captured.
fn firehose_headers() -> Vec<(String, String)> {
    String::from_utf8(fixture("cloudwatch/firehose.headers.txt"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// The invocation rows of one function, in request order, without what differs by source
/// (the function name; times, which plain text lacks for platform lines).
async fn invocations_of(server: &Server, function: &str) -> Vec<Value> {
    sql(
        server,
        &format!(
            "SELECT request_id, status, error_type, duration_ms, billed_duration_ms, \
             memory_size_mb, max_memory_used_mb, init_duration_ms, cold_start, version \
             FROM invocations WHERE function = '{function}' ORDER BY end_ts, request_id"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudwatch_text_subscription_and_firehose_store_the_same_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());

    // The same 36 events three ways, each under its own function name.
    let (status, body, _) = post(
        &server,
        "/api/v1/ingest/cloudwatch?function=cw-text",
        &[("content-type", "text/plain")],
        fixture("cloudwatch/stream.log"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text_answer = json_of(&body);
    assert_eq!(text_answer["invocations"], 6, "{text_answer}");
    assert_eq!(text_answer["rejected"], 0, "{text_answer}");

    let (status, body, _) = post(
        &server,
        "/api/v1/ingest/cloudwatch?function=cw-sub",
        &[("content-type", "application/json")],
        fixture("cloudwatch/subscription.json"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let sub_answer = json_of(&body);
    assert_eq!(sub_answer, text_answer);

    let headers = firehose_headers();
    let request_id = headers
        .iter()
        .find(|(k, _)| k == "X-Amz-Firehose-Request-Id")
        .unwrap()
        .1
        .clone();
    let hdrs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let path = "/api/v1/ingest/firehose?function=cw-firehose";
    let (status, body, _) = post(&server, path, &hdrs, fixture("cloudwatch/firehose.json")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer = json_of(&body);
    assert_eq!(answer["requestId"], request_id.as_str());
    assert!(answer["timestamp"].as_i64().unwrap() > 0);
    assert!(answer.get("errorMessage").is_none());

    // A retry of the same delivery is answered alike and stored once.
    let (status, body, _) = post(&server, path, &hdrs, fixture("cloudwatch/firehose.json")).await;
    assert_eq!(status, 200);
    assert_eq!(json_of(&body)["requestId"], request_id.as_str());

    // The wrong access key: 401 in Firehose's shape, nothing stored.
    let mut bad_key = hdrs.clone();
    bad_key.retain(|(k, _)| *k != "X-Amz-Firehose-Access-Key");
    bad_key.push(("X-Amz-Firehose-Access-Key", "wrong"));
    bad_key.retain(|(k, _)| *k != "X-Amz-Firehose-Request-Id");
    bad_key.push(("X-Amz-Firehose-Request-Id", "another-id"));
    let (status, body, _) = post(
        &server,
        "/api/v1/ingest/firehose?function=cw-denied",
        &bad_key,
        fixture("cloudwatch/firehose.json"),
    )
    .await;
    assert_eq!(status, 401);
    let answer = json_of(&body);
    assert_eq!(answer["requestId"], "another-id");
    assert!(
        answer["errorMessage"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Firehose-Access-Key"),
        "{answer}"
    );

    // Each way yields the same invocations, as the Telemetry API's platform.report would.
    let text = invocations_of(&server, "cw-text").await;
    assert_eq!(text.len(), 6);
    assert_eq!(invocations_of(&server, "cw-sub").await, text);
    assert_eq!(invocations_of(&server, "cw-firehose").await, text);
    assert_eq!(
        invocations_of(&server, "cw-denied").await,
        Vec::<Value>::new()
    );
    let by_id = |id: &str| text.iter().find(|r| r["request_id"] == id).unwrap().clone();
    let first = by_id("21bade02-6a6a-4768-b2ed-66ffdcc99396");
    assert_eq!(
        (
            &first["duration_ms"],
            &first["billed_duration_ms"],
            &first["memory_size_mb"],
            &first["max_memory_used_mb"],
            &first["init_duration_ms"],
            &first["cold_start"],
            &first["status"],
        ),
        (
            &json!(46.84),
            &json!(47.0),
            &json!(192),
            &json!(72),
            &json!(116.67),
            &json!(true),
            &json!("success")
        )
    );
    let failed = by_id("6102dd70-63e8-440e-9dd8-904f07489671");
    assert_eq!(
        (&failed["status"], &failed["error_type"]),
        (&json!("failure"), &json!("Error"))
    );
    let old_timeout = by_id("781b9a43-d04c-450b-8620-f0877e5fe381");
    assert_eq!(
        (&old_timeout["status"], &old_timeout["billed_duration_ms"]),
        (&json!("timeout"), &json!(3000.0))
    );
    assert_eq!(
        by_id("06e7df8e-1eb1-466e-b9f7-4d60ac03031e")["status"],
        "timeout"
    );
    let second_cold = by_id("c35d7d3b-92e4-416e-a7e4-7ffc284a2d4f");
    assert_eq!(second_cold["init_duration_ms"], json!(121.04));
    assert_eq!(
        text.iter().filter(|r| r["cold_start"] == true).count(),
        2,
        "{text:?}"
    );
    // The subscription's log stream names the version and instance.
    assert_eq!(
        sql_count(
            &server,
            "SELECT count(*) AS n FROM invocations WHERE function = 'cw-sub' \
             AND instance = '2025/11/26/[$LATEST]f3a1c0d9b8e74a5f9c2d1e0f7a6b5c4d'"
        )
        .await,
        6
    );

    // The EMF line yields its metric points, under each function.
    let emf = |f: &str| {
        format!(
            "SELECT count(*) AS n, sum(value) AS total FROM metrics \
             WHERE function = '{f}' AND namespace = 'Shop' AND name = 'GatewayLatency'"
        )
    };
    for f in ["cw-text", "cw-sub", "cw-firehose"] {
        let rows = sql(&server, &emf(f)).await;
        assert_eq!(rows[0]["n"], 2, "{f}: {rows:?}");
        assert!((rows[0]["total"].as_f64().unwrap() - 2503.5).abs() < 1e-9);
    }

    // Every line is searchable: runtime lines of both runtimes, the Powertools line's keys,
    // the old timeout line, XRAY.
    let logs_per_function = text_answer["logs"].as_u64().unwrap();
    eventually("the three streams are searchable", || async {
        search(&server, "function:cw-*", 0).await.0 == 3 * logs_per_function
    })
    .await;
    for (q, want) in [
        ("\"inventory hold expired\"", 3),
        ("\"Task timed out after\" AND level:ERROR", 3),
        (
            "\"Found credentials in environment variables\" AND level:INFO",
            3,
        ),
        (
            "attributes.service:checkout AND attributes.cold_start:false",
            3,
        ),
        (
            "attributes.function_request_id:83faac57-2f56-4652-866d-e486522c4f8d",
            3,
        ),
        ("\"1-6926c4da-b044d527dd1775a93cdba284\"", 3),
        (
            "Traceback AND level:ERROR AND request_id:83faac57-2f56-4652-866d-e486522c4f8d",
            3,
        ),
        ("\"Loading function\"", 6),
    ] {
        let (total, hits) = search(&server, q, 3).await;
        assert_eq!(total, want, "{q}: {hits:?}");
    }
    let (_, hits) = search(
        &server,
        "\"charge failed for order\" AND function:cw-sub",
        1,
    )
    .await;
    let message = hits[0]["message"].as_str().unwrap();
    assert!(
        message.contains("\nTraceback (most recent call last):\n"),
        "{message:?}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_fixtures_in_every_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let pb = [("content-type", "application/x-protobuf")];
    let pb_gz = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "gzip"),
    ];
    let js = [("content-type", "application/json")];

    // Logs: protobuf, gzipped protobuf, JSON. Each adds the same 25 records.
    for (headers, file) in [
        (&pb[..], "otlp/logs.pb"),
        (&pb_gz[..], "otlp/logs.pb.gz"),
        (&js[..], "otlp/logs.json"),
    ] {
        let (status, body, content_type) = post(&server, "/v1/logs", headers, fixture(file)).await;
        assert_eq!(status, 200, "{file}: {}", String::from_utf8_lossy(&body));
        // The answer is in the request's content type: an empty ExportLogsServiceResponse.
        assert_eq!(content_type, headers[0].1, "{file}");
        if headers[0].1 == "application/json" {
            assert_eq!(json_of(&body), json!({}));
        } else {
            assert!(body.is_empty(), "{file}: {body:?}");
        }
    }
    eventually("75 OTLP log records searchable", || async {
        search(&server, "function:checkout", 0).await.0 == 75
    })
    .await;
    for (q, want) in [
        ("level:ERROR AND attributes.exception.type:*", 3),
        ("level:WARN", 3),
        ("level:DEBUG", 27),
        ("attributes.faas.trigger:http", 69),
        ("café", 9),
        ("version:$LATEST AND attributes.scope:checkout.payments", 15),
    ] {
        let (total, hits) = search(&server, q, 1).await;
        assert_eq!(total, want, "{q}: {hits:?}");
    }
    // Protobuf and JSON give identical records: request ids, levels, trace ids and messages.
    let rows = sql(
        &server,
        "SELECT request_id, level, message, count(*) AS n FROM logs \
         WHERE function = 'checkout' GROUP BY request_id, level, message \
         HAVING count(*) <> 3",
    )
    .await;
    assert!(
        rows.is_empty(),
        "records differ between encodings: {rows:?}"
    );
    let (_, hits) = search(&server, "level:ERROR", 3).await;
    for hit in &hits {
        let attrs = &hit["attributes"];
        assert_eq!(attrs["trace_id"].as_str().unwrap().len(), 32, "{hit}");
        assert!(
            attrs["exception.stacktrace"]
                .as_str()
                .unwrap()
                .contains("Traceback"),
            "{hit}"
        );
        assert!(hit["request_id"].as_str().is_some(), "{hit}");
    }

    // Metrics: protobuf then JSON.
    for (headers, file) in [(&pb[..], "otlp/metrics.pb"), (&js[..], "otlp/metrics.json")] {
        let (status, body, _) = post(&server, "/v1/metrics", headers, fixture(file)).await;
        assert_eq!(status, 200, "{file}: {}", String::from_utf8_lossy(&body));
    }
    let rows = sql(
        &server,
        "SELECT name, kind, count(*) AS n, max(value) AS value, max(count) AS count, \
         max(cardinality(bucket_counts)) AS buckets FROM metrics WHERE function = 'checkout' \
         GROUP BY name, kind ORDER BY name",
    )
    .await;
    let by_name = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {rows:?}"))
            .clone()
    };
    assert_eq!(rows.len(), 8, "{rows:?}");
    assert_eq!(by_name("faas.invocations")["kind"], "sum");
    assert_eq!(by_name("faas.mem_usage")["kind"], "gauge");
    let hist = by_name("faas.invoke_duration");
    assert_eq!(hist["kind"], "histogram");
    assert!(hist["buckets"].as_u64().unwrap() > 1, "{hist}");
    let exp = by_name("checkout.cart_value");
    assert_eq!(exp["kind"], "histogram");
    assert!(exp["buckets"].as_u64().unwrap() > 1, "{exp}");
    assert_eq!(by_name("checkout.pending_orders")["n"], 6);
    // Both encodings stored the same points (some points differ only by their dimensions).
    let rows = sql(
        &server,
        "SELECT name, ts, value, count, sum, count(*) AS n FROM metrics \
         WHERE function = 'checkout' GROUP BY name, ts, value, count, sum \
         HAVING count(*) % 2 <> 0",
    )
    .await;
    assert!(rows.is_empty(), "points differ between encodings: {rows:?}");
    server.stop();
}

/// Counts of everything stored, to prove a rejected request stored nothing.
async fn stored(server: &Server) -> (u64, u64, u64) {
    (
        sql_count(server, "SELECT count(*) AS n FROM invocations").await,
        sql_count(server, "SELECT count(*) AS n FROM metrics").await,
        search(server, "", 0).await.0,
    )
}

/// A malformed request: path, headers, body, the status expected and a word of its answer.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_a_4xx_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let pb = fixture("otlp/logs.pb");
    let truncated = pb[..pb.len() - 7].to_vec();
    let report_garbled = b"REPORT RequestId: r1\tDuration: 4x.84 ms\tBilled Duration: 47 ms\tMemory Size: 192 MB\tMax Memory Used: 72 MB\t\n".to_vec();
    let emf_missing_target = br#"{"_aws":{"Timestamp":1764148470126,"CloudWatchMetrics":[{"Namespace":"Shop","Dimensions":[["service"]],"Metrics":[{"Name":"Latency","Unit":"Milliseconds"}]}]},"service":"checkout"}"#.to_vec();
    let firehose_headers = [
        ("content-type", "application/json"),
        ("X-Amz-Firehose-Protocol-Version", "1.0"),
        ("X-Amz-Firehose-Request-Id", "bad-1"),
        ("X-Amz-Firehose-Access-Key", FIREHOSE_KEY),
    ];
    let bomb = gzip(&vec![b'a'; 17 << 20]);
    let cases: Vec<Case> = vec![
        (
            "/v1/logs",
            vec![("content-type", "application/x-protobuf")],
            truncated.clone(),
            400,
            "ExportLogsServiceRequest",
        ),
        (
            "/v1/metrics",
            vec![("content-type", "application/x-protobuf")],
            fixture("otlp/metrics.pb")[..100].to_vec(),
            400,
            "ExportMetricsServiceRequest",
        ),
        (
            "/v1/logs",
            vec![("content-type", "application/json")],
            b"{\"resourceLogs\": [".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "/v1/logs",
            vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            b"\x1f\x8b\x08\x00garbage".to_vec(),
            400,
            "not valid gzip",
        ),
        (
            "/v1/logs",
            vec![("content-type", "text/plain")],
            pb.clone(),
            415,
            "application/x-protobuf",
        ),
        (
            "/v1/logs",
            vec![
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            bomb.clone(),
            413,
            "over the limit",
        ),
        (
            "/api/v1/ingest/cloudwatch",
            vec![("content-type", "application/json")],
            br#"{"awslogs":{"data":"not*base64"}}"#.to_vec(),
            400,
            "awslogs.data is not valid base64",
        ),
        (
            "/api/v1/ingest/cloudwatch",
            vec![("content-type", "application/json")],
            br#"{"awslogs":{"data":"aGVsbG8gd29ybGQ="}}"#.to_vec(),
            400,
            "awslogs.data is not valid gzip",
        ),
        (
            "/api/v1/ingest/cloudwatch?function=f",
            vec![("content-type", "text/plain")],
            report_garbled,
            400,
            "Duration \\\"4x.84\\\" is not a number",
        ),
        (
            "/api/v1/ingest/cloudwatch?function=f",
            vec![("content-type", "text/plain")],
            emf_missing_target.clone(),
            400,
            "Latency",
        ),
        (
            "/api/v1/ingest/cloudwatch",
            vec![("content-type", "text/plain")],
            b"hello\n".to_vec(),
            400,
            "function query parameter",
        ),
        (
            "/api/v1/ingest/firehose",
            firehose_headers.to_vec(),
            br#"{"requestId":"bad-1","timestamp":1,"records":[{"data":"%%%"}]}"#.to_vec(),
            400,
            "records[0]: data is not valid base64",
        ),
        (
            "/api/v1/ingest/firehose",
            firehose_headers.to_vec(),
            b"{\"requestId\":".to_vec(),
            400,
            "invalid_json",
        ),
    ];
    for (path, headers, body, want, needle) in cases {
        let (status, answer, content_type) = post(&server, path, &headers, body).await;
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status, want, "{path} {headers:?}: {text}");
        assert!(text.contains(needle), "{path}: {needle:?} not in {text}");
        if path.starts_with("/v1/") && content_type == "application/x-protobuf" {
            // google.rpc.Status: field 1 (code), field 2 (message).
            assert_eq!(answer[0], 0x08, "{path}: {answer:?}");
        }
    }
    assert_eq!(stored(&server).await, (0, 0, 0));

    // A partly bad OTLP request keeps its good records and says how many it rejected.
    let body = json!({"resourceLogs": [
        {"resource": {"attributes": [{"key": "faas.name", "value": {"stringValue": "good-fn"}}]},
         "scopeLogs": [{"logRecords": [{"timeUnixNano": "1764148470126000000", "body": {"stringValue": "kept line"}}]}]},
        {"resource": {"attributes": []},
         "scopeLogs": [{"logRecords": [{"body": {"stringValue": "orphan"}}]}]}
    ]});
    let (status, answer, _) = post(
        &server,
        "/v1/logs",
        &[("content-type", "application/json")],
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let answer = json_of(&answer);
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("faas.name"),
        "{answer}"
    );
    eventually("the kept line", || async {
        search(&server, "", 0).await.0 == 1
    })
    .await;
    let (_, hits) = search(&server, "kept", 1).await;
    assert_eq!(hits[0]["function"], "good-fn");
    server.stop();
}

/// An OTLP/JSON metrics export of one resource: `(name, kind, temporality, ts_ms, value)`
/// points, where a histogram's value is `(count, sum in seconds)`.
fn metrics_export(
    function: &str,
    instance: &str,
    points: &[(&str, i32, i64, f64, f64)],
) -> Vec<u8> {
    let metrics: Vec<Value> = points
        .iter()
        .map(|&(name, temporality, ts_ms, a, b)| {
            let ts = (ts_ms as u64 * 1_000_000).to_string();
            if name == "faas.invoke_duration" {
                json!({"name": name, "unit": "s", "histogram": {"aggregationTemporality": temporality,
                    "dataPoints": [{"timeUnixNano": ts, "count": (a as u64).to_string(), "sum": b,
                        "bucketCounts": [(a as u64).to_string(), "0"], "explicitBounds": [10.0]}]}})
            } else {
                json!({"name": name, "sum": {"aggregationTemporality": temporality, "isMonotonic": true,
                    "dataPoints": [{"timeUnixNano": ts, "asInt": (a as i64).to_string()}]}})
            }
        })
        .collect();
    json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "faas.name", "value": {"stringValue": function}},
            {"key": "faas.instance", "value": {"stringValue": instance}}]},
        "scopeMetrics": [{"scope": {"name": "test"}, "metrics": metrics}]}]})
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faas_metrics_feed_lambda_metrics_where_invocation_rows_are_absent() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let t0: i64 = 1_764_000_000_000; // a minute boundary
    assert_eq!(t0 % 60_000, 0);
    let (cum, delta) = (2, 1);
    let exports = [
        // Instance a: cumulative, over two minutes.
        metrics_export(
            "otel-only",
            "a",
            &[
                ("faas.invocations", cum, t0 + 10_000, 3.0, 0.0),
                ("faas.errors", cum, t0 + 10_000, 1.0, 0.0),
                ("faas.invoke_duration", cum, t0 + 10_000, 3.0, 0.3),
            ],
        ),
        metrics_export(
            "otel-only",
            "a",
            &[
                ("faas.invocations", cum, t0 + 70_000, 7.0, 0.0),
                ("faas.errors", cum, t0 + 70_000, 1.0, 0.0),
                ("faas.invoke_duration", cum, t0 + 70_000, 7.0, 1.1),
            ],
        ),
        // A new execution environment (a new instance) starts its series from zero.
        metrics_export(
            "otel-only",
            "a2",
            &[
                ("faas.invocations", cum, t0 + 130_000, 2.0, 0.0),
                ("faas.errors", cum, t0 + 130_000, 1.0, 0.0),
            ],
        ),
        // Instance b: its own cumulative series.
        metrics_export(
            "otel-only",
            "b",
            &[("faas.invocations", cum, t0 + 80_000, 5.0, 0.0)],
        ),
        // Delta temporality: each point is a count of its own.
        metrics_export(
            "otel-delta",
            "c",
            &[
                ("faas.invocations", delta, t0 + 5_000, 2.0, 0.0),
                ("faas.invocations", delta, t0 + 35_000, 3.0, 0.0),
            ],
        ),
        // A function that also sends invocation rows: those win.
        metrics_export(
            "both",
            "d",
            &[("faas.invocations", cum, t0 + 5_000, 40.0, 0.0)],
        ),
    ];
    for body in exports {
        let (status, answer, _) = post(
            &server,
            "/v1/metrics",
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
    let t = |ms: i64| fnlens_model::format_ts_ms(ms);
    let report = json!([{"time": t(t0 + 5_000), "type": "platform.report", "record": {"requestId": "both-1",
        "metrics": {"durationMs": 10.0, "billedDurationMs": 10, "memorySizeMB": 128, "maxMemoryUsedMB": 50}}}]);
    let (status, body) =
        common::post_lambda(&server, "both", "", report.to_string().into_bytes()).await;
    assert_eq!(status, 200, "{body}");

    let rows = sql(
        &server,
        "SELECT function, CAST(date_part('epoch', minute) AS BIGINT) AS minute_s, invocations, errors, \
         round(error_rate, 3) AS error_rate, round(duration_avg_ms, 3) AS duration_avg_ms \
         FROM lambda_metrics ORDER BY function, minute_s",
    )
    .await;
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} +{}m inv={} err={} rate={} avg={}",
                r["function"],
                (r["minute_s"].as_i64().unwrap() * 1000 - t0) / 60_000,
                r["invocations"],
                r["errors"],
                r["error_rate"],
                r["duration_avg_ms"]
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "\"both\" +0m inv=1 err=0 rate=0.0 avg=10.0",
            "\"otel-delta\" +0m inv=5 err=0 rate=0.0 avg=null",
            "\"otel-only\" +0m inv=3 err=1 rate=0.333 avg=100.0",
            "\"otel-only\" +1m inv=9 err=0 rate=0.0 avg=200.0",
            "\"otel-only\" +2m inv=2 err=1 rate=0.5 avg=null",
        ],
        "{rows:?}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powertools_stdout_through_cloudwatch_keeps_its_keys_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let body = fixture("powertools/stdout.ndjson");
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    let (status, answer, _) = post(
        &server,
        "/api/v1/ingest/cloudwatch?function=pt",
        &[("content-type", "text/plain")],
        body,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer = json_of(&answer);
    assert_eq!(answer["rejected"], 0, "{answer}");
    assert_eq!(answer["logs"], lines, "{answer}");
    assert!(
        answer["metrics"].as_u64().unwrap() > 0,
        "the EMF lines: {answer}"
    );
    eventually("Powertools lines searchable", || async {
        search(&server, "function:pt", 0).await.0 == lines
    })
    .await;
    for (q, want) in [
        ("attributes.cold_start:true", 4),
        (
            "attributes.xray_trace_id:\"1-6b087675-9fcb59a57b69539aaab9f6fa\"",
            4,
        ),
        (
            "attributes.function_request_id:\"364401cd-eec7-4181-938d-d9cc550d7d6b\" AND level:ERROR",
            1,
        ),
        ("attributes.exception_name:InventoryUnavailable", 1),
        ("attributes.exception:\"inventory service returned 503\"", 1),
        ("attributes.service:checkout", lines),
    ] {
        let (total, hits) = search(&server, q, 1).await;
        assert_eq!(total, want, "{q}: {hits:?}");
    }
    // Powertools' request id is the line's request id too.
    let (_, hits) = search(&server, "\"stock reservation failed\"", 1).await;
    assert_eq!(
        hits[0]["request_id"],
        "364401cd-eec7-4181-938d-d9cc550d7d6b"
    );
    server.stop();
}
