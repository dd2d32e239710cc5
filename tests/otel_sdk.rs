//! The real OpenTelemetry Python SDK's OTLP/HTTP exporters pointed at a running fnlens, plain and
//! gzip: its logs are then searchable and its metrics in SQL. `tests/otel/setup.sh` installs the
//! SDK (PyPI `opentelemetry-sdk`, `opentelemetry-exporter-otlp-proto-http`) into
//! `target/otel-venv` the first time.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, eventually, search, sql};

fn venv_python() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/otel-venv");
    let status = Command::new("bash")
        .arg(root.join("tests/otel/setup.sh"))
        .arg(&venv)
        .status()
        .expect("bash runs the setup script");
    assert!(status.success(), "tests/otel/setup.sh failed: {status}");
    venv.join("bin/python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exports_are_searchable_and_queryable() {
    let python = venv_python();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otel/export.py");
    for (marker, compression) in [("sdkplainmarker", "none"), ("sdkgzipmarker", "gzip")] {
        let out = Command::new(&python)
            .arg(&script)
            .args([server.base.as_str(), marker, compression])
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "export.py failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The exporter logs a failed export instead of raising.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("Failed to export"), "{stderr}");

        eventually("the SDK's 10 records searchable", || async {
            search(&server, marker, 0).await.0 == 10
        })
        .await;
        let (total, hits) = search(
            &server,
            &format!("{marker} AND level:ERROR AND function:otel-sdk AND version:3"),
            5,
        )
        .await;
        assert_eq!(total, 1, "{hits:?}");
        let hit = &hits[0];
        assert_eq!(hit["request_id"], "sdk-req-9");
        assert!(
            hit["attributes"]["exception.stacktrace"]
                .as_str()
                .unwrap()
                .contains("ValueError"),
            "{hit}"
        );
        let (total, _) = search(&server, &format!("{marker} AND level:WARN"), 0).await;
        assert_eq!(total, 1);
    }

    // Metrics: the counter's cumulative value, the histogram's count and buckets, the gauge.
    let rows = sql(
        &server,
        "SELECT name, kind, max(value) AS value, max(count) AS count, \
         max(cardinality(bucket_counts)) AS buckets, count(*) AS n \
         FROM metrics WHERE function = 'otel-sdk' GROUP BY name, kind ORDER BY name",
    )
    .await;
    let by_name = |n: &str| {
        rows.iter()
            .find(|r| r["name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {rows:?}"))
            .clone()
    };
    let invocations = by_name("faas.invocations");
    assert_eq!(
        (invocations["kind"].as_str(), invocations["value"].as_f64()),
        (Some("sum"), Some(10.0))
    );
    assert_eq!(invocations["n"], 2, "one point per export run");
    let duration = by_name("faas.invoke_duration");
    assert_eq!(duration["kind"], "histogram");
    assert_eq!(duration["count"], 10);
    assert!(duration["buckets"].as_u64().unwrap() > 1, "{duration}");
    assert_eq!(
        by_name("faas.mem_usage")["value"].as_f64(),
        Some(67108864.0)
    );
    server.stop();
}
