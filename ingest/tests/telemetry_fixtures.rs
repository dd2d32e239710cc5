//! Data-driven decoder tests over the captured Telemetry API batches in `tests/fixtures/telemetry`.
//!
//! Every good file must decode with nothing rejected, to exactly the events in
//! `tests/fixtures/telemetry/expected/<file>`. Every `*.bad-*` file must have each of its events
//! rejected with the reason listed here. Run with `FNLENS_BLESS=1` to rewrite the expectations
//! after a deliberate change, then review the diff.

use std::path::{Path, PathBuf};

use fnlens_ingest::decode::telemetry::{LambdaContext, decode};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/telemetry")
}

fn ctx() -> LambdaContext {
    LambdaContext {
        function: "fixture-fn".into(),
        region: Some("us-east-1".into()),
        ..LambdaContext::default()
    }
}

fn files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    assert!(v.len() >= 30, "fixtures missing: {}", v.len());
    v
}

#[test]
fn good_fixtures_decode_to_the_expected_events() {
    let bless = std::env::var_os("FNLENS_BLESS").is_some();
    let expected_dir = fixtures().join("expected");
    let mut failures = Vec::new();
    for path in files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains(".bad-") {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        let decoded = decode(&body, &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            decoded.rejected.is_empty(),
            "{name}: rejected {:?}",
            decoded.rejected
        );
        assert!(
            !decoded.batch.logs.is_empty() || !decoded.batch.invocations.is_empty(),
            "{name}: nothing decoded"
        );
        let got = serde_json::to_string_pretty(&json!(decoded.batch)).unwrap() + "\n";
        let expected_path = expected_dir.join(&name);
        if bless {
            std::fs::create_dir_all(&expected_dir).unwrap();
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{name}: no expectation; run with FNLENS_BLESS=1"));
        if expected != got {
            failures.push(format!("{name}:\n--- expected\n{expected}\n--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_fixtures_reject_each_event_with_its_reason() {
    let cases = [
        ("otel-lambda.bad-invalid-time.json", "invalid_time", "time"),
        (
            "otel-lambda.bad-report-missing-metrics.json",
            "missing_field",
            "record.metrics",
        ),
        (
            "otel-lambda.bad-report-missing-requestid.json",
            "missing_field",
            "record.requestId",
        ),
        (
            "otel-lambda.bad-report-record-string.json",
            "invalid_record",
            "platform.report",
        ),
        (
            "otel-lambda.bad-report-string-duration.json",
            "invalid_field",
            "durationMs",
        ),
        (
            "otel-lambda.bad-report-string-init-duration.json",
            "invalid_field",
            "initDurationMs",
        ),
    ];
    let bad_files: Vec<_> = files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".bad-"))
        .collect();
    assert_eq!(
        bad_files.len(),
        cases.len(),
        "every bad fixture has a case here"
    );
    for (file, reason, names) in cases {
        let body = std::fs::read(fixtures().join(file)).unwrap();
        let decoded = decode(&body, &ctx()).unwrap();
        assert!(
            decoded.batch.is_empty(),
            "{file}: something was kept: {:?}",
            decoded.batch
        );
        assert_eq!(decoded.rejected.len(), 1, "{file}");
        let r = &decoded.rejected[0];
        assert_eq!(r.index, 0);
        assert_eq!(r.reason, reason, "{file}: {}", r.detail);
        assert!(
            r.detail.contains(names),
            "{file}: {:?} does not name {names}",
            r.detail
        );
    }
}

#[test]
fn a_bad_event_among_good_ones_is_rejected_alone() {
    let good = std::fs::read_to_string(fixtures().join("otel-lambda.report-valid.json")).unwrap();
    let bad =
        std::fs::read_to_string(fixtures().join("otel-lambda.bad-report-missing-metrics.json"))
            .unwrap();
    let good: Vec<serde_json::Value> = serde_json::from_str(&good).unwrap();
    let bad: Vec<serde_json::Value> = serde_json::from_str(&bad).unwrap();
    let mixed = serde_json::to_vec(&[good[0].clone(), bad[0].clone(), good[0].clone()]).unwrap();
    let decoded = decode(&mixed, &ctx()).unwrap();
    assert_eq!(decoded.batch.invocations.len(), 2);
    assert_eq!(decoded.rejected.len(), 1);
    assert_eq!(decoded.rejected[0].index, 1);
    assert_eq!(
        decoded.rejected[0].event_type.as_deref(),
        Some("platform.report")
    );
}
