//! End to end: the real server, simulated traffic, a restart, and the captured fixtures.

mod common;

use std::collections::BTreeMap;

use common::{Server, eventually, fixture, post_lambda, search, sql, sql_count};
use fnlens_ingest::decode::telemetry::{LambdaContext, decode};
use fnlens_ingest::simulate::{Fleet, FleetConfig};

/// Expected (invocations, log records) per function, from decoding what was acknowledged.
type Expected = BTreeMap<String, (u64, u64)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let now = chrono::Utc::now().timestamp_millis();
    let mut fleet = Fleet::new(&FleetConfig {
        functions: 6,
        seed: 11,
        start_ms: now - 600_000,
        rate: 300.0,
    });
    let mut expected = Expected::new();
    for _ in 0..3 {
        for b in fleet.tick(1000) {
            let ctx = LambdaContext {
                function: b.function.clone(),
                instance: Some(b.instance.clone()),
                ..LambdaContext::default()
            };
            let decoded = decode(&b.body, &ctx).unwrap();
            let query = format!(
                "?instance={}",
                b.instance
                    .replace('[', "%5B")
                    .replace(']', "%5D")
                    .replace('$', "%24")
            );
            let (status, body) = post_lambda(&server, &b.function, &query, b.body).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["rejected"], 0);
            let e = expected.entry(b.function).or_default();
            e.0 += decoded.batch.invocations.len() as u64;
            e.1 += decoded.batch.logs.len() as u64;
        }
    }
    let total_inv: u64 = expected.values().map(|e| e.0).sum();
    let total_logs: u64 = expected.values().map(|e| e.1).sum();
    assert_eq!(total_inv, 900);

    // Invocations are in SQL as soon as they are acknowledged.
    assert_eq!(
        sql_count(&server, "SELECT count(*) AS n FROM invocations").await,
        total_inv
    );
    // Logs are searchable after the next commit tick.
    eventually("all logs searchable", || async {
        search(&server, "", 0).await.0 == total_logs
    })
    .await;
    check_per_function(&server, &expected).await;

    server.stop();
    // The graceful stop flushed the invocation buffer to Parquet.
    let parquet_files = walk(&dir.path().join("invocations"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(parquet_files > 0, "no parquet written at shutdown");

    let server = Server::start(dir.path(), &[]);
    assert_eq!(
        sql_count(&server, "SELECT count(*) AS n FROM invocations").await,
        total_inv
    );
    assert_eq!(
        sql_count(
            &server,
            "SELECT count(DISTINCT request_id) AS n FROM invocations"
        )
        .await,
        total_inv
    );
    assert_eq!(search(&server, "", 0).await.0, total_logs);
    check_per_function(&server, &expected).await;
    server.stop();
}

async fn check_per_function(server: &Server, expected: &Expected) {
    let rows = sql(
        server,
        "SELECT function, count(*) AS n FROM invocations GROUP BY function",
    )
    .await;
    let got: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    for (f, (inv, logs)) in expected {
        assert_eq!(got.get(f).copied().unwrap_or(0), *inv, "invocations of {f}");
        assert_eq!(
            search(server, &format!("function:{f}"), 0).await.0,
            *logs,
            "logs of {f}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_is_findable_through_search_and_sql() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let fixtures_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/telemetry");
    let mut names: Vec<String> = std::fs::read_dir(&fixtures_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.contains(".bad-"))
        .collect();
    names.sort();
    let mut expected = Expected::new();
    let mut samples = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let function = format!("fx-{i}");
        let body = fixture(&format!("telemetry/{name}"));
        let decoded = decode(
            &body,
            &LambdaContext {
                function: function.clone(),
                ..LambdaContext::default()
            },
        )
        .unwrap();
        let (status, answer) = post_lambda(&server, &function, "", body).await;
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["rejected"], 0, "{name}: {answer}");
        expected.insert(
            function.clone(),
            (
                decoded.batch.invocations.len() as u64,
                decoded.batch.logs.len() as u64,
            ),
        );
        for inv in &decoded.batch.invocations {
            samples.push((function.clone(), inv.request_id.clone(), inv.duration_ms));
        }
    }
    eventually("fixture logs searchable", || async {
        let want: u64 = expected.values().map(|e| e.1).sum();
        search(&server, "", 0).await.0 == want
    })
    .await;
    check_per_function(&server, &expected).await;
    for (function, request_id, duration) in samples {
        let rows = sql(
            &server,
            &format!("SELECT duration_ms FROM invocations WHERE function = '{function}' AND request_id = '{request_id}'"),
        )
        .await;
        assert_eq!(rows.len(), 1, "{function} {request_id}");
        assert_eq!(rows[0]["duration_ms"].as_f64(), Some(duration));
    }
    // A phrase from the Python fixture, and a request id's lines, are found by search.
    let (total, hits) = search(&server, "\"could not render invoice\"", 10).await;
    assert_eq!(total, 1, "{hits:?}");
    assert_eq!(hits[0]["level"], "ERROR");
    let (total, _) = search(
        &server,
        "request_id:3b53690a-1464-4e57-a3b9-9c58cae64fa6",
        0,
    )
    .await;
    assert!(total >= 5, "lines of the failing invoice request: {total}");
    server.stop();
}
