//! Alerts end to end: a real fnlens, a local webhook receiver, error bursts sent through the
//! Telemetry endpoint, and the notifications checked as a receiver sees them.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{Server, client, post_lambda};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const SECRET: &str = "receiver-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    /// Whether the receiver answered 200 (it was up).
    accepted: bool,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap().to_str().unwrap()
    }
}

#[derive(Default)]
struct ReceiverState {
    up: AtomicBool,
    got: Mutex<Vec<Received>>,
}

/// A webhook receiver on an ephemeral port: answers 200 when up, 503 when down.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start() -> Receiver {
        async fn hook(
            State(state): State<Arc<ReceiverState>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            let accepted = state.up.load(Ordering::SeqCst);
            state.got.lock().unwrap().push(Received {
                headers,
                body,
                accepted,
            });
            if accepted {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
        let state = Arc::new(ReceiverState::default());
        state.up.store(true, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .route("/api/v2/alerts", axum::routing::post(hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, state }
    }

    fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
    }

    /// The notifications it accepted.
    fn accepted(&self) -> Vec<Received> {
        self.state
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.accepted)
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    async fn wait_accepted(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} notifications, wanted {n}: {:?}",
                got.len(),
                got.iter().map(Received::json).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn rules_file(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    rules_file_with(dir, url, "")
}

/// The rule of these tests, with `extra` targets appended to its `notify` list.
fn rules_file_with(dir: &std::path::Path, url: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("rules.yaml");
    std::fs::write(
        &path,
        format!(
            "rules:
  - name: checkout errors
    function: checkout-*
    metric: error_rate
    comparison: '>'
    threshold: 20
    window: 10s
    min_invocations: 5
    severity: critical
    labels: {{team: payments}}
    annotations: {{runbook: 'https://runbooks.example/checkout'}}
    notify:
      - type: webhook
        url: {url}
        secret: {SECRET}
{extra}"
        ),
    )
    .unwrap();
    path
}

/// Invocations of `function` ending now, `failed` of `n` with status error.
async fn invocations(server: &Server, function: &str, n: usize, failed: usize) {
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "time": fnlens_model::format_ts_ms(now - 50),
                "type": "platform.report",
                "record": {
                    "requestId": format!("{function}-{now}-{i}"),
                    "status": if i < failed { "error" } else { "success" },
                    "metrics": {"durationMs": 12.5, "billedDurationMs": 13,
                                "memorySizeMB": 128, "maxMemoryUsedMB": 60}
                }
            })
        })
        .collect();
    let (status, body) =
        post_lambda(server, function, "", serde_json::to_vec(&events).unwrap()).await;
    assert_eq!(status, 200, "{body}");
}

fn verify_signature(r: &Received) {
    let sig = r.header("x-fnlens-signature");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&r.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(sig, want, "the signature is the HMAC-SHA256 of the body");
    let ts: i64 = r.header("x-fnlens-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 120);
}

async fn get(server: &Server, path: &str) -> Value {
    let res = client().get(server.url(path)).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

async fn alert_state(server: &Server, function: &str) -> Option<Value> {
    get(server, &format!("/api/v1/alerts?function={function}")).await["alerts"]
        .as_array()
        .unwrap()
        .first()
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_burst_fires_a_signed_webhook_and_recovery_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let alertmanager = Receiver::start().await;
    let am_base = alertmanager.url.trim_end_matches("/hook");
    let rules = rules_file_with(
        dir.path(),
        &receiver.url,
        &format!("      - type: alertmanager\n        url: {am_base}\n"),
    );
    let server = Server::start(
        &dir.path().join("data"),
        &["--rules", rules.to_str().unwrap()],
    );

    // Healthy traffic: OK, nothing sent.
    invocations(&server, "checkout-api", 20, 1).await;
    common::eventually("the instance is OK", || async {
        alert_state(&server, "checkout-api")
            .await
            .is_some_and(|a| a["state"] == "OK")
    })
    .await;
    // A function the rule does not cover fails too: no alert for it.
    invocations(&server, "cart", 10, 10).await;

    // The burst: 12 of 20 fail, the window's rate goes from 5% to over 30%.
    let burst = Instant::now();
    invocations(&server, "checkout-api", 20, 12).await;
    let got = receiver.wait_accepted(1, Duration::from_secs(10)).await;
    eprintln!(
        "firing webhook {} ms after the acknowledgement",
        burst.elapsed().as_millis()
    );
    let firing = &got[0];
    verify_signature(firing);
    let body = firing.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["groupLabels"]["alertname"], "checkout errors");
    let alert = &body["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "checkout errors");
    assert_eq!(alert["labels"]["function"], "checkout-api");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["team"], "payments");
    assert_eq!(
        alert["annotations"]["runbook"],
        "https://runbooks.example/checkout"
    );
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with(&server.base)
    );
    chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap();
    let fnlens = &body["fnlens"];
    assert_eq!(fnlens["rule"], "checkout errors");
    assert_eq!(fnlens["function"], "checkout-api");
    assert_eq!(fnlens["threshold"], 20.0);
    assert_eq!(fnlens["window"], "10s");
    // 13 failures of 40 invocations in the window.
    assert!(
        (fnlens["value"].as_f64().unwrap() - 32.5).abs() < 1e-9,
        "{fnlens}"
    );
    assert_eq!(fnlens["delivery_id"], firing.header("x-fnlens-delivery"));

    let a = alert_state(&server, "checkout-api").await.unwrap();
    assert_eq!(a["state"], "ALARM");
    assert!(alert_state(&server, "cart").await.is_none());

    // Recovery: healthy traffic until the window no longer holds the burst.
    let deadline = Instant::now() + Duration::from_secs(40);
    while receiver.accepted().len() < 2 {
        assert!(Instant::now() < deadline, "no resolved notification");
        invocations(&server, "checkout-api", 10, 0).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let resolved = &receiver.accepted()[1];
    verify_signature(resolved);
    let body = resolved.json();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["alerts"][0]["fingerprint"], alert["fingerprint"]);
    assert_eq!(body["alerts"][0]["startsAt"], alert["startsAt"]);
    assert_ne!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_ne!(
        resolved.header("x-fnlens-delivery"),
        firing.header("x-fnlens-delivery")
    );

    // Alertmanager got the same two, in its own API's shape.
    let am = alertmanager.wait_accepted(2, Duration::from_secs(10)).await;
    let (fired, ended) = (am[0].json(), am[1].json());
    assert_eq!(fired[0]["labels"]["alertname"], "checkout errors");
    assert_eq!(fired[0]["labels"]["function"], "checkout-api");
    assert_eq!(fired[0]["startsAt"], alert["startsAt"]);
    assert!(fired[0].get("endsAt").is_none());
    assert_eq!(ended[0]["endsAt"], body["alerts"][0]["endsAt"]);

    // The history has the transitions and all four deliveries.
    let history = get(&server, "/api/v1/alerts/history?rule=checkout%20errors").await;
    let entries = history["entries"].as_array().unwrap();
    let transitions: Vec<String> = entries
        .iter()
        .rev()
        .filter(|e| e["kind"] == "transition")
        .map(|e| {
            format!(
                "{}>{}",
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        transitions,
        ["INSUFFICIENT_DATA>OK", "OK>ALARM", "ALARM>OK"]
    );
    let delivered = entries
        .iter()
        .filter(|e| e["kind"] == "notification" && e["outcome"] == "delivered")
        .count();
    assert_eq!(delivered, 4);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_wait_out_a_down_receiver_and_a_crash_and_are_not_repeated_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let receiver = Receiver::start().await;
    receiver.set_up(false);
    let rules = rules_file(dir.path(), &receiver.url);
    let args = [
        "--rules",
        rules.to_str().unwrap(),
        "--notify-retry-max",
        "1s",
    ];
    let server = Server::start(&data, &args);

    invocations(&server, "checkout-web", 20, 15).await;
    // The receiver is down: attempts fail and are retried.
    common::eventually("two failed attempts", || async {
        receiver.all().len() >= 2
    })
    .await;
    let history = get(&server, "/api/v1/alerts/history?kind=notification").await;
    let failed = &history["entries"][0];
    assert_eq!(failed["outcome"], "failed");
    assert_eq!(failed["http_status"], 503);
    assert!(failed["next_attempt_ms"].is_i64());
    assert_eq!(history["pending_deliveries"], 1);
    let attempts = receiver.all();
    assert_eq!(
        attempts[0].header("x-fnlens-delivery"),
        attempts[1].header("x-fnlens-delivery"),
        "a retry keeps its delivery id"
    );
    assert_eq!(attempts[0].body, attempts[1].body, "and its body");

    // fnlens dies with the notification still undelivered.
    server.kill();
    receiver.set_up(true);
    let server = Server::start(&data, &args);
    let got = receiver.wait_accepted(1, Duration::from_secs(15)).await;
    verify_signature(&got[0]);
    assert_eq!(got[0].json()["status"], "firing");
    assert_eq!(
        got[0].header("x-fnlens-delivery"),
        attempts[0].header("x-fnlens-delivery")
    );
    let before = alert_state(&server, "checkout-web").await.unwrap();
    assert_eq!(before["state"], "ALARM");

    // A restart while in ALARM keeps the state and sends no second firing.
    server.stop();
    let server = Server::start(&data, &args);
    let after = alert_state(&server, "checkout-web").await.unwrap();
    assert_eq!(after["state"], "ALARM");
    assert_eq!(after["since"], before["since"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = alert_state(&server, "checkout-web").await.unwrap();
    assert_eq!(
        after["state"], "ALARM",
        "the windows were reloaded: {after}"
    );
    assert_eq!(after["since"], before["since"]);
    assert_eq!(receiver.accepted().len(), 1, "no duplicate firing");
    server.stop();
}

async fn send(server: &Server, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let res = client()
        .request(method, server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn post_rule(server: &Server, rule: Value) -> (u16, Value) {
    send(server, reqwest::Method::POST, "/api/v1/alerts/rules", rule).await
}

/// `PUT /api/v1/alerts/rules/{name}`; `name` is already URL-encoded.
async fn put_rule(server: &Server, name: &str, rule: Value) -> (u16, Value) {
    let path = format!("/api/v1/alerts/rules/{name}");
    send(server, reqwest::Method::PUT, &path, rule).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_silences_are_managed_over_the_api_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let rule = json!({
        "name": "slow checkout", "function": "checkout", "metric": "duration",
        "statistic": "p95", "comparison": ">", "threshold": 800, "window": "5m",
        "period": "1m", "evaluation_periods": 3, "datapoints_to_alarm": 2,
        "missing_data": "notBreaching"
    });
    let (status, body) = post_rule(&server, rule.clone()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post_rule(&server, rule.clone()).await;
    assert_eq!(status, 409, "{body}");

    // Bad rules: 400 with the reason, nothing stored.
    let bad = [
        (
            json!({"name": "x", "metric": "latency", "comparison": ">", "threshold": 1}),
            "unknown variant `latency`",
        ),
        (
            json!({"name": "x", "metric": "errors", "comparison": ">", "threshold": 1, "window": "7s"}),
            "multiple of 5 s",
        ),
        (
            json!({"name": "x", "metric": "errors", "comparison": ">", "threshold": 1, "evaluation_periods": 2, "datapoints_to_alarm": 3}),
            "datapoints_to_alarm",
        ),
        (
            json!({"name": "x", "metric": {"logs": "level:(ERROR"}, "comparison": ">", "threshold": 1}),
            "the logs query",
        ),
        (
            json!({"name": "x", "metric": {"sql": "SELECT nope FROM invocations"}, "comparison": ">", "threshold": 1}),
            "the sql query",
        ),
        (
            json!({"name": "x", "metric": "errors", "comparison": ">"}),
            "missing field `threshold`",
        ),
    ];
    for (rule, reason) in bad {
        let (status, body) = post_rule(&server, rule).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_rule");
        assert!(
            body["detail"].as_str().unwrap().contains(reason),
            "{body} lacks {reason}"
        );
    }
    let fatal = json!({
        "name": "fatal lines", "metric": {"logs": "level:FATAL"},
        "comparison": ">=", "threshold": 1
    });
    let (status, body) = post_rule(&server, fatal).await;
    assert_eq!(status, 201, "{body}");

    // Webhook secrets are not echoed; a PUT that sends the placeholder back keeps them.
    let mut with_hook = rule.clone();
    with_hook["notify"] =
        json!([{"type": "webhook", "url": "http://127.0.0.1:9/h", "secret": "s3cret"}]);
    let (status, body) = put_rule(&server, "slow%20checkout", with_hook).await;
    assert_eq!(status, 200, "{body}");
    let shown = get(&server, "/api/v1/alerts/rules/slow%20checkout").await;
    assert_eq!(shown["notify"][0]["secret"], "<redacted>");
    assert!(
        !get(&server, "/api/v1/alerts/rules")
            .await
            .to_string()
            .contains("s3cret")
    );
    let (status, body) = put_rule(&server, "slow%20checkout", shown.clone()).await;
    assert_eq!(status, 200, "{body}");
    let stored = std::fs::read_to_string(data.join("alerts/rules.json")).unwrap();
    assert!(stored.contains("s3cret"), "the secret was kept");
    let mut moved = shown;
    moved["notify"][0]["url"] = json!("http://127.0.0.1:9/elsewhere");
    let (status, body) = put_rule(&server, "slow%20checkout", moved).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no stored secret"),
        "{body}"
    );

    let mut replaced = rule.clone();
    replaced["threshold"] = json!(900);
    let (status, body) = put_rule(&server, "slow%20checkout", replaced).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = put_rule(&server, "other", rule.clone()).await;
    assert_eq!(status, 400);

    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/alerts/silences",
        json!({"rule": "slow checkout", "duration": "2h", "comment": "load test"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let silence_id = body["id"].as_str().unwrap().to_owned();
    let (status, body) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/alerts/silences",
        json!({"rule": "no such rule", "duration": "2h"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = send(
        &server,
        reqwest::Method::POST,
        "/api/v1/alerts/silences",
        json!({"until": "yesterday"}),
    )
    .await;
    assert_eq!(status, 400);

    // Everything survives a restart.
    server.stop();
    let server = Server::start(&data, &[]);
    let rules = get(&server, "/api/v1/alerts/rules").await;
    let names: Vec<&str> = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fatal lines", "slow checkout"]);
    assert_eq!(
        get(&server, "/api/v1/alerts/rules/slow%20checkout").await["threshold"],
        900.0
    );
    let silences = get(&server, "/api/v1/alerts/silences").await;
    assert_eq!(silences["silences"][0]["id"], silence_id.as_str());

    let res = client()
        .delete(server.url("/api/v1/alerts/rules/slow%20checkout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let res = client()
        .delete(server.url("/api/v1/alerts/rules/slow%20checkout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let res = client()
        .delete(server.url(&format!("/api/v1/alerts/silences/{silence_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_query_rule_counts_matching_lines_per_function() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let server = Server::start(&dir.path().join("data"), &[]);
    let rule = json!({
        "name": "timeouts in logs", "metric": {"logs": "level:ERROR AND timeout"},
        "comparison": ">=", "threshold": 2, "window": "1m", "schedule": "1s",
        "missing_data": "notBreaching",
        "notify": [{"type": "webhook", "url": receiver.url}]
    });
    let (status, body) = post_rule(&server, rule).await;
    assert_eq!(status, 201, "{body}");
    let sql_rule = json!({
        "name": "busy functions",
        "metric": {"sql": "SELECT function, count(*) AS value FROM invocations WHERE ts >= $start AND ts < $end GROUP BY function"},
        "comparison": ">", "threshold": 2, "window": "1m", "schedule": "1s",
        "notify": [{"type": "webhook", "url": receiver.url}]
    });
    let (status, body) = post_rule(&server, sql_rule).await;
    assert_eq!(status, 201, "{body}");
    invocations(&server, "quiet", 2, 0).await;
    invocations(&server, "busy", 3, 0).await;
    let now = chrono::Utc::now().timestamp_millis();
    let line = |msg: &str, level: &str| {
        json!({"time": fnlens_model::format_ts_ms(now), "type": "function",
               "record": {"level": level, "message": msg, "requestId": "r1"}})
    };
    let events = json!([
        line("upstream timeout after 3000 ms", "ERROR"),
        line("upstream timeout after 3000 ms", "ERROR"),
        line("timeout budget is 3000 ms", "INFO"),
    ]);
    let (status, body) = post_lambda(&server, "orders", "", events.to_string().into_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let got = receiver.wait_accepted(2, Duration::from_secs(15)).await;
    let by_rule = |name: &str| {
        got.iter()
            .map(Received::json)
            .find(|b| b["fnlens"]["rule"] == name)
            .unwrap_or_else(|| panic!("no notification of {name}"))
    };
    let body = by_rule("timeouts in logs");
    assert_eq!(body["alerts"][0]["labels"]["function"], "orders");
    assert_eq!(body["fnlens"]["value"], 2.0);
    assert_eq!(body["fnlens"]["metric"], "logs");
    assert!(
        got[0].headers.get("x-fnlens-signature").is_none(),
        "no secret, no signature"
    );
    let body = by_rule("busy functions");
    assert_eq!(body["alerts"][0]["labels"]["function"], "busy");
    assert_eq!(body["fnlens"]["value"], 3.0);
    // The other functions have instances that are not in ALARM.
    let alerts = get(&server, "/api/v1/alerts?rule=busy%20functions").await;
    let quiet = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["function"] == "quiet")
        .cloned()
        .unwrap();
    assert_eq!(quiet["state"], "OK", "{quiet}");
    assert_eq!(quiet["value"], 2.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.accepted().len(), 2, "nothing else fired");
    server.stop();
}
