//! The web UI in a real browser: Playwright (`tests/browser/ui.test.mjs`, run by Node's test
//! runner) drives headless Chromium against a real server filled with a simulated fleet. The
//! same run has the unit tests of the UI's pure functions (`tests/browser/units.test.mjs`).
//! `scripts/setup-browser-tests.sh` installs Chromium and playwright-core when they are missing.
//! Screenshots of every page land in `target/ui-screenshots/`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, eventually, post_lambda, search};
use serde_json::json;

const KNOWN_REQUEST_ID: &str = "b7e1c0de-5a1e-4c0f-9d2b-0000000b0b01";

fn setup() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash")
        .arg(root.join("scripts/setup-browser-tests.sh"))
        .status()
        .expect("bash runs");
    assert!(
        status.success(),
        "scripts/setup-browser-tests.sh failed: Chromium and playwright-core are needed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_in_a_real_browser() {
    setup();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    // Six minutes of an 8-function fleet, ending a minute ago: payments-webhook fails a quarter
    // of the time.
    // Written to a file first, then posted as fast as the server takes them.
    let start = chrono::Utc::now() - chrono::Duration::minutes(6);
    let batches = dir.path().join("fleet.ndjson");
    let simulate = |args: &[&str]| {
        let status = Command::new(env!("CARGO_BIN_EXE_fnlens"))
            .arg("simulate")
            .args(args)
            .arg("--quiet")
            .status()
            .expect("fnlens simulate runs");
        assert!(status.success(), "fnlens simulate {args:?}");
    };
    let start = start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let out = batches.to_str().unwrap();
    simulate(&[
        "--functions",
        "8",
        "--rate",
        "8",
        "--duration",
        "300s",
        "--seed",
        "11",
        "--start",
        &start,
        "--out",
        out,
    ]);
    simulate(&["--from", out, "--target", &server.base]);

    // One known cold invocation with a JSON log line carrying an attribute.
    let t = chrono::Utc::now() - chrono::Duration::minutes(2);
    let at = |ms: i64| {
        (t + chrono::Duration::milliseconds(ms))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let line = json!({"timestamp": at(100), "level": "ERROR", "requestId": KNOWN_REQUEST_ID,
        "message": "zanzibar parcel lost", "order_id": "o-991"})
    .to_string();
    let batch = json!([
        {"time": at(0), "type": "platform.initStart", "record": {"initializationType": "on-demand", "phase": "init",
            "runtimeVersion": "nodejs:20.v1", "functionName": "checkout", "functionVersion": "7"}},
        {"time": at(1), "type": "platform.initReport", "record": {"initializationType": "on-demand", "phase": "init",
            "status": "success", "metrics": {"durationMs": 549.04}}},
        {"time": at(2), "type": "platform.start", "record": {"requestId": KNOWN_REQUEST_ID, "version": "7"}},
        {"time": at(100), "type": "function", "record": line},
        {"time": at(2601), "type": "platform.report", "record": {"requestId": KNOWN_REQUEST_ID, "status": "success",
            "metrics": {"durationMs": 2599.4, "billedDurationMs": 2600, "memorySizeMB": 128, "maxMemoryUsedMB": 94,
                "initDurationMs": 549.04}}},
    ]);
    let (code, body) = post_lambda(&server, "checkout", "", body_bytes(&batch)).await;
    assert_eq!(code, 200, "{body}");
    eventually("the known line is searchable", || async {
        search(&server, "zanzibar", 10).await.0 == 1
    })
    .await;

    let shots = root.join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "--test-concurrency=1"])
        .arg(root.join("tests/browser/units.test.mjs"))
        .arg(root.join("tests/browser/ui.test.mjs"))
        .env("FNLENS_URL", &server.base)
        .env("SCREENSHOT_DIR", &shots)
        .env("KNOWN_REQUEST_ID", KNOWN_REQUEST_ID)
        .status()
        .expect("node runs");
    server.stop();
    assert!(
        out.success(),
        "browser tests failed (screenshots in {shots:?})"
    );
}

fn body_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}
