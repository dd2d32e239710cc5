//! Data-driven decoder tests over the CloudWatch and OTLP payloads in `tests/fixtures/`.
//!
//! Each fixture must decode with nothing rejected, to exactly the events in
//! `tests/fixtures/<format>/expected/<file>.json`; the renderings of the same content (a stream
//! as text, subscription and Firehose delivery; OTLP as protobuf, gzip and JSON) must decode to
//! the same events. Run with `FNLENS_BLESS=1` to rewrite the expectations after a deliberate
//! change, then review the diff.

use std::path::{Path, PathBuf};

use fnlens_ingest::Decoded;
use fnlens_ingest::decode::cloudwatch::{self, StreamParams};
use fnlens_ingest::decode::otlp::{self, Encoding};
use fnlens_ingest::decode::telemetry::LambdaContext;
use serde_json::Value;

const LIMIT: usize = 16 << 20;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The decoded events as JSON, after checking nothing was rejected.
fn events(name: &str, d: Decoded) -> Value {
    assert!(d.rejected.is_empty(), "{name}: rejected {:?}", d.rejected);
    serde_json::to_value(&d.batch).unwrap()
}

/// Compares with (or, blessing, writes) `expected/<file>.json` next to the fixture.
fn check(name: &str, got: &Value) {
    let path = fixtures().join(
        Path::new(name)
            .parent()
            .unwrap()
            .join("expected")
            .join(format!(
                "{}.json",
                Path::new(name).file_name().unwrap().to_string_lossy()
            )),
    );
    if std::env::var_os("FNLENS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with FNLENS_BLESS=1 to write it)",
            path.display()
        )
    }))
    .unwrap();
    // Through text as the expectation went (serde_json parses some floats to a neighbour).
    let got: Value = serde_json::from_str(&serde_json::to_string_pretty(got).unwrap()).unwrap();
    assert_eq!(got, want, "{name} differs from {}", path.display());
}

#[test]
fn cloudwatch_stream_subscription_and_firehose() {
    let ctx = LambdaContext {
        function: "checkout".into(),
        ..LambdaContext::default()
    };
    let text = events(
        "stream.log",
        cloudwatch::decode_text(&read("cloudwatch/stream.log"), &ctx, 0).unwrap(),
    );
    check("cloudwatch/stream.log", &text);
    assert_eq!(text["invocations"].as_array().unwrap().len(), 6);

    let params = StreamParams::default();
    let sub = events(
        "subscription.json",
        cloudwatch::decode_body(&read("cloudwatch/subscription.json"), &params, LIMIT, 0).unwrap(),
    );
    check("cloudwatch/subscription.json", &sub);
    let firehose =
        cloudwatch::decode_firehose(&read("cloudwatch/firehose.json"), &params, LIMIT, 0).unwrap();
    assert_eq!(firehose.request_id, "221c4e00-3f99-41ee-baf2-7f802dc5fd3d");
    // The delivery holds the subscription's events (and a control message, ignored).
    assert_eq!(events("firehose.json", firehose.decoded), sub);

    // Plain text has no times for platform lines; everything else is the same.
    let strip = |v: &Value, keys: &[&str]| {
        let mut v = v.clone();
        for kind in ["invocations", "logs"] {
            for e in v[kind].as_array_mut().unwrap() {
                for k in keys {
                    e.as_object_mut().unwrap().remove(*k);
                }
            }
        }
        v
    };
    let untimed = ["ts_ms", "end_ts_ms", "instance"];
    assert_eq!(strip(&text, &untimed), strip(&sub, &untimed));
}

#[test]
fn otlp_logs_in_every_encoding() {
    let pb = events(
        "logs.pb",
        otlp::decode_logs(&read("otlp/logs.pb"), Encoding::Protobuf, 0).unwrap(),
    );
    check("otlp/logs.pb", &pb);
    assert_eq!(pb["logs"].as_array().unwrap().len(), 25);
    let unzipped =
        fnlens_ingest::decode::gunzip(&read("otlp/logs.pb.gz"), LIMIT, "logs.pb.gz").unwrap();
    assert_eq!(unzipped, read("otlp/logs.pb"));
    let json = events(
        "logs.json",
        otlp::decode_logs(&read("otlp/logs.json"), Encoding::Json, 0).unwrap(),
    );
    assert_eq!(json, pb);
}

#[test]
fn otlp_metrics_in_every_encoding() {
    let pb = events(
        "metrics.pb",
        otlp::decode_metrics(&read("otlp/metrics.pb"), Encoding::Protobuf, 0).unwrap(),
    );
    check("otlp/metrics.pb", &pb);
    let json = events(
        "metrics.json",
        otlp::decode_metrics(&read("otlp/metrics.json"), Encoding::Json, 0).unwrap(),
    );
    assert_eq!(json, pb);
}
