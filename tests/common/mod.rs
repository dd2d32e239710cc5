//! A real fnlens server for end-to-end tests: the built binary, a temp data dir, an ephemeral port.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts `fnlens serve` on `data_dir` with extra flags and waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fnlens"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--commit-interval-ms", "200"])
            // The fixtures are dated years back; retention is tested in the pipeline.
            .args(["--retention", "off"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fnlens binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let base = line
            .trim()
            .strip_prefix("fnlens listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            base,
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGTERM, then wait: the graceful path (requests finish, stores flush).
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "fnlens exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("fnlens did not stop within 30 s of SIGTERM");
    }

    /// SIGKILL: the crash path.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Runs SQL and returns the rows.
pub async fn sql(server: &Server, query: &str) -> Vec<Value> {
    let res = client()
        .post(server.url("/api/v1/sql"))
        .json(&json!({"sql": query}))
        .send()
        .await
        .expect("sql request");
    let status = res.status();
    let body: Value = res.json().await.expect("sql json");
    assert!(status.is_success(), "sql {query:?} failed: {body}");
    body["rows"].as_array().cloned().unwrap_or_default()
}

/// The single integer a `SELECT count(*) AS n ...` answers.
pub async fn sql_count(server: &Server, query: &str) -> u64 {
    let rows = sql(server, query).await;
    rows[0]["n"]
        .as_u64()
        .unwrap_or_else(|| panic!("no n in {rows:?}"))
}

/// Search over all time; returns (total, hits).
pub async fn search(server: &Server, q: &str, limit: usize) -> (u64, Vec<Value>) {
    let res = client()
        .get(server.url("/api/v1/logs/search"))
        .query(&[
            ("q", q),
            ("start", "0"),
            ("end", "now+1d"),
            ("limit", &limit.to_string()),
        ])
        .send()
        .await
        .expect("search request");
    let status = res.status();
    let body: Value = res.json().await.expect("search json");
    assert!(status.is_success(), "search {q:?} failed: {body}");
    (
        body["total"].as_u64().unwrap(),
        body["hits"].as_array().cloned().unwrap_or_default(),
    )
}

/// Polls until `f` returns true or 10 s pass (search visibility follows the commit tick).
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .expect("fixture")
}

/// Posts a Telemetry batch; returns (status, body).
pub async fn post_lambda(
    server: &Server,
    function: &str,
    query: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let res = client()
        .post(server.url(&format!("/api/v1/ingest/lambda/{function}{query}")))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("ingest request");
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body)
}
