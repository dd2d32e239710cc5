//! End to end: the request view over real Telemetry batches, and the `fnlens search` CLI
//! (past lines, `--json`, `--follow`) against a running server.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const CHECKOUT: &str = "telemetry/handbuilt.checkout-node-cold-warm-timeout.json";
const REQUEST: &str = "a26b7f62-b185-4f27-a3ef-f9c0cf44dd3f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_view_joins_the_invocation_and_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, body) = post_lambda(&server, "checkout", "?version=7", fixture(CHECKOUT)).await;
    assert_eq!(status, 200, "{body}");
    eventually("the request's lines are searchable", || async {
        search(&server, &format!("request_id:{REQUEST}"), 0).await.0 == 5
    })
    .await;

    let res = client()
        .get(server.url(&format!("/api/v1/invocations/{REQUEST}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let inv = &body["invocation"];
    assert_eq!(inv["function"], "checkout");
    assert_eq!(inv["duration_ms"], 409.07);
    assert_eq!(inv["billed_duration_ms"], 410.0);
    assert_eq!(inv["status"], "success");
    // Four function lines, then the platform's REPORT line.
    let lines: Vec<(&str, &str)> = body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["source"].as_str().unwrap(), l["level"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [
            ("function", "INFO"),
            ("function", "WARN"),
            ("function", "ERROR"),
            ("function", "INFO"),
            ("platform", "INFO")
        ],
        "{body}"
    );
    assert_eq!(body["log_count"], 5);
    assert!(
        body["logs"][2]["message"]
            .as_str()
            .unwrap()
            .starts_with("Error: inventory hold expired")
    );

    // Invalid queries name the problem and where it is.
    let res = client()
        .get(server.url("/api/v1/logs/search"))
        .query(&[("q", "\"unterminated")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_query");
    assert!(body["position"].is_u64(), "{body}");
    server.stop();
}

fn fnlens() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fnlens"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_cli_prints_past_and_live_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // Telemetry batches stamped now, so `--since` covers them.
    let now = chrono::Utc::now();
    let event = |offset_ms: i64, record: &str| {
        let t = (now + chrono::Duration::milliseconds(offset_ms))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        serde_json::json!({"time": t, "type": "function", "record": record})
    };
    let batch = serde_json::json!([
        event(-2000, "[INFO]\t2026-01-01T00:00:00Z\tr-1\tcart loaded\n"),
        event(
            -1000,
            "[ERROR]\t2026-01-01T00:00:00Z\tr-1\tcart checkout failed: gateway timeout\n"
        ),
    ]);
    let (status, body) =
        post_lambda(&server, "cart", "", serde_json::to_vec(&batch).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    eventually("searchable", || async {
        search(&server, "cart", 0).await.0 == 2
    })
    .await;
    let url = server.url("");

    let out = fnlens()
        .args(["search", "cart", "--since", "5m", "--server", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    // Oldest first, like a log file; no color when not on a terminal.
    assert!(lines[0].ends_with("INFO  cart r-1 cart loaded"), "{text}");
    assert!(
        lines[1].contains(" ERROR cart r-1 cart checkout failed"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'));

    let out = fnlens()
        .args(["search", "level:ERROR", "--json", "--server", &url])
        .output()
        .unwrap();
    let hit: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hit["level"], "ERROR");
    assert_eq!(hit["request_id"], "r-1");

    let out = fnlens()
        .args(["search", "a AND (", "--server", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_query"));

    // --follow: the past line, then a line posted after the command started.
    let mut child = fnlens()
        .args(["search", "gateway", "--follow", "--json", "--server", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("gateway timeout"), "{first}");
    let later = serde_json::json!([event(
        0,
        "[ERROR]\t2026-01-01T00:00:00Z\tr-2\tgateway refused\n"
    )]);
    let (status, _) = post_lambda(&server, "cart", "", serde_json::to_vec(&later).unwrap()).await;
    assert_eq!(status, 200);
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "no live line within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live: Value = serde_json::from_str(&reader.join().unwrap()).unwrap();
    assert_eq!(live["message"], "gateway refused");
    child.kill().unwrap();
    child.wait().unwrap();
    server.stop();
}
