//! Notifications: their bodies (Alertmanager's webhook shape, or its `/api/v2/alerts` shape),
//! their signature, and the outbox that delivers them at least once.
//!
//! A notification is written to `outbox/<delivery id>.json` (fsynced) before the instance's
//! state records it as sent, and the file is removed only once a receiver answered 2xx. The
//! delivery task retries failures with exponential backoff and full jitter; deliveries to one
//! URL go out in the order they were made, so a receiver never hears "resolved" before the
//! "firing" it resolves.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::history::{Entry, History};
use crate::rule::Target;

/// The signature header: `sha256=<hex HMAC-SHA256 of the body, keyed with the secret>`.
pub const SIGNATURE_HEADER: &str = "X-Fnlens-Signature";
/// Unix seconds when this attempt was sent.
pub const TIMESTAMP_HEADER: &str = "X-Fnlens-Timestamp";
/// The delivery id, the same on every retry of one notification.
pub const DELIVERY_HEADER: &str = "X-Fnlens-Delivery";

/// `sha256=<hex>` of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// How failed deliveries are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The first retry waits up to this long...
    pub initial: Duration,
    /// ...doubling on each failure, up to this.
    pub max: Duration,
    /// A notification not delivered by this age is given up (and the history says so).
    pub give_up_after: Duration,
    /// One attempt's time limit.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `attempt` (1 after the first failure): a random time up to
    /// `min(max, initial * 2^(attempt - 1))`, and at least a tenth of it ("full jitter", so that
    /// many alerts failing together do not retry together).
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max);
        cap.mul_f64(0.1 + 0.9 * random.clamp(0.0, 1.0))
    }
}

/// One notification to one target, as the outbox stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub created_ms: i64,
    pub target: Target,
    pub rule: String,
    pub function: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// The exact bytes sent (and signed) on every attempt.
    pub body: String,
    pub attempts: u32,
    pub next_attempt_ms: i64,
}

/// The durable queue of deliveries.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    /// Ordered by creation, so each URL's deliveries go out in order.
    pending: Mutex<BTreeMap<(i64, String), Delivery>>,
    wake: tokio::sync::Notify,
}

impl Outbox {
    pub fn open(dir: &Path) -> std::io::Result<Outbox> {
        let dir = dir.join("outbox");
        std::fs::create_dir_all(&dir)?;
        let mut pending = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                match std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Delivery>(&b).ok())
                {
                    Some(d) => {
                        pending.insert((d.created_ms, d.id.clone()), d);
                    }
                    None => {
                        tracing::warn!(path = %path.display(), "skipping an unreadable delivery")
                    }
                }
            } else if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(Outbox {
            dir,
            pending: Mutex::new(pending),
            wake: tokio::sync::Notify::new(),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn write(&self, d: &Delivery) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(d).map_err(std::io::Error::other)?;
        crate::persist::write_atomic(&self.path(&d.id), &bytes)
    }

    /// Stores deliveries durably, then wakes the delivery task.
    pub fn enqueue(&self, deliveries: Vec<Delivery>) -> std::io::Result<()> {
        for d in &deliveries {
            self.write(d)?;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for d in deliveries {
            pending.insert((d.created_ms, d.id.clone()), d);
        }
        drop(pending);
        self.wake.notify_one();
        Ok(())
    }

    pub fn pending(&self) -> Vec<Delivery> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.values().cloned().collect()
    }

    /// The deliveries due now: for each URL not `busy`, its oldest pending one, if due; and
    /// when the next one of those URLs falls due.
    fn due(&self, now_ms: i64, busy: &HashSet<String>) -> (Vec<Delivery>, Option<i64>) {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = busy.clone();
        let mut due = Vec::new();
        let mut next: Option<i64> = None;
        for d in pending.values() {
            if !seen.insert(d.target.url().to_owned()) {
                continue;
            }
            if d.next_attempt_ms <= now_ms {
                due.push(d.clone());
            } else {
                next = Some(next.map_or(d.next_attempt_ms, |n| n.min(d.next_attempt_ms)));
            }
        }
        (due, next)
    }

    fn finish(&self, d: &Delivery) {
        if let Err(e) = std::fs::remove_file(self.path(&d.id)) {
            tracing::warn!(error = %e, id = d.id, "could not remove a finished delivery");
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.remove(&(d.created_ms, d.id.clone()));
    }

    fn reschedule(&self, d: Delivery) {
        if let Err(e) = self.write(&d) {
            tracing::warn!(error = %e, id = d.id, "could not persist a retry");
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.insert((d.created_ms, d.id.clone()), d);
    }
}

/// What one attempt came to.
enum Outcome {
    Delivered(u16),
    Failed(Option<u16>, String),
}

async fn attempt(client: &reqwest::Client, d: &Delivery, timeout: Duration) -> Outcome {
    let (url, secret) = match &d.target {
        Target::Webhook { url, secret } => (url.clone(), secret.clone()),
        Target::Alertmanager { url } => {
            (format!("{}/api/v2/alerts", url.trim_end_matches('/')), None)
        }
    };
    let mut req = client
        .post(&url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, &d.id)
        .header(
            TIMESTAMP_HEADER,
            (chrono::Utc::now().timestamp()).to_string(),
        );
    if let Some(secret) = secret {
        req = req.header(SIGNATURE_HEADER, signature(&secret, d.body.as_bytes()));
    }
    match req.body(d.body.clone()).send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered(resp.status().as_u16()),
        Ok(resp) => {
            let status = resp.status();
            Outcome::Failed(
                Some(status.as_u16()),
                format!("the receiver answered {status}"),
            )
        }
        Err(e) => {
            let what = if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                e.to_string()
            };
            Outcome::Failed(None, what)
        }
    }
}

/// Delivers the outbox until `shutdown` resolves. Each URL has at most one attempt in flight
/// (its deliveries go out in order); URLs do not wait for each other, so a receiver that times
/// out does not hold up the others.
pub async fn deliver(
    outbox: Arc<Outbox>,
    history: Arc<History>,
    client: reqwest::Client,
    policy: RetryPolicy,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use futures::StreamExt;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut busy: HashSet<String> = HashSet::new();
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        let (due, next) = outbox.due(now, &busy);
        for d in due {
            busy.insert(d.target.url().to_owned());
            let client = client.clone();
            let timeout = policy.timeout;
            in_flight.push(async move {
                let outcome = attempt(&client, &d, timeout).await;
                (d, outcome)
            });
        }
        let sleep = match next {
            Some(at) => Duration::from_millis((at - now).clamp(1, 60_000) as u64),
            None => Duration::from_secs(60),
        };
        tokio::select! {
            Some((d, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                busy.remove(d.target.url());
                settle(&outbox, &history, &policy, d, outcome);
            }
            _ = outbox.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Records an attempt's outcome: the delivery is done, given up, or rescheduled.
fn settle(
    outbox: &Outbox,
    history: &History,
    policy: &RetryPolicy,
    mut d: Delivery,
    outcome: Outcome,
) {
    d.attempts += 1;
    let now = chrono::Utc::now().timestamp_millis();
    let entry = |outcome: &str, http_status, error, next_attempt_ms| Entry::Notification {
        ts_ms: now,
        delivery_id: d.id.clone(),
        rule: d.rule.clone(),
        function: d.function.clone(),
        status: d.status.clone(),
        target: d.target.url().to_owned(),
        attempt: d.attempts,
        outcome: outcome.into(),
        http_status,
        error,
        next_attempt_ms,
    };
    let record = match outcome {
        Outcome::Delivered(status) => {
            outbox.finish(&d);
            entry("delivered", Some(status), None, None)
        }
        Outcome::Failed(status, error) => {
            let age = Duration::from_millis((now - d.created_ms).max(0) as u64);
            if age >= policy.give_up_after {
                tracing::warn!(
                    id = d.id,
                    url = d.target.url(),
                    error,
                    "giving up a notification"
                );
                outbox.finish(&d);
                entry("gave_up", status, Some(error), None)
            } else {
                let wait = policy.backoff(d.attempts, rand::random::<f64>());
                let next_attempt_ms = now + wait.as_millis() as i64;
                let e = entry("failed", status, Some(error), Some(next_attempt_ms));
                d.next_attempt_ms = next_attempt_ms;
                outbox.reschedule(d);
                e
            }
        }
    };
    history.append(&[record]);
    history.sync();
}

/// What a notification says about one alert instance.
#[derive(Debug, Clone)]
pub struct Alert<'a> {
    pub rule: &'a crate::rule::Compiled,
    pub function: &'a str,
    pub firing: bool,
    pub value: Option<f64>,
    pub fingerprint: &'a str,
    pub starts_ms: i64,
    /// When it resolved; `None` while firing.
    pub ends_ms: Option<i64>,
    pub external_url: &'a str,
    pub delivery_id: &'a str,
    pub state_since_ms: i64,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Alert<'_> {
    fn labels(&self) -> BTreeMap<String, String> {
        let rule = &self.rule.rule;
        let mut labels = rule.labels.clone();
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("function".into(), self.function.into());
        labels.insert("severity".into(), rule.severity.clone());
        if let Some(v) = &rule.version {
            labels.insert("version".into(), v.clone());
        }
        labels
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        let rule = &self.rule.rule;
        let mut annotations = rule.annotations.clone();
        let value = self
            .value
            .map_or_else(|| "no data".to_owned(), |v| format!("{v:.4}"));
        annotations.entry("summary".into()).or_insert_with(|| {
            format!(
                "{} {} on {}: {} {} {}",
                rule.name,
                if self.firing { "firing" } else { "resolved" },
                self.function,
                value,
                rule.comparison.as_str(),
                rule.threshold
            )
        });
        annotations
    }

    fn generator_url(&self) -> String {
        let base = self.external_url.trim_end_matches('/');
        let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "{base}/#/alerts?rule={}&function={}",
            q(&self.rule.rule.name),
            q(self.function)
        )
    }

    fn status(&self) -> &'static str {
        if self.firing { "firing" } else { "resolved" }
    }

    fn ends_at(&self) -> String {
        self.ends_ms
            .map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339)
    }

    /// The webhook body: Alertmanager's webhook payload (version 4), plus an `fnlens` object.
    pub fn webhook_body(&self) -> serde_json::Value {
        let labels = self.labels();
        let annotations = self.annotations();
        let rule = &self.rule.rule;
        let group_labels = BTreeMap::from([("alertname".to_owned(), rule.name.clone())]);
        serde_json::json!({
            "version": "4",
            "groupKey": format!("{{}}:{{alertname={:?}, function={:?}}}", rule.name, self.function),
            "truncatedAlerts": 0,
            "status": self.status(),
            "receiver": "fnlens",
            "groupLabels": group_labels,
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": self.external_url,
            "alerts": [{
                "status": self.status(),
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(self.starts_ms),
                "endsAt": self.ends_at(),
                "generatorURL": self.generator_url(),
                "fingerprint": self.fingerprint,
            }],
            "fnlens": {
                "delivery_id": self.delivery_id,
                "rule": rule.name,
                "function": self.function,
                "version": rule.version,
                "metric": rule.metric.name(),
                "statistic": matches!(rule.metric, crate::rule::Metric::Duration | crate::rule::Metric::InitDuration | crate::rule::Metric::MemoryUtilization).then_some(self.rule.statistic),
                "state": if self.firing { "ALARM" } else { "OK" },
                "value": self.value,
                "comparison": rule.comparison.as_str(),
                "threshold": rule.threshold,
                "window": rule.window,
                "window_ms": self.rule.window_ms,
                "period_ms": self.rule.period_ms,
                "evaluation_periods": self.rule.n,
                "datapoints_to_alarm": self.rule.m,
                "since": rfc3339(self.state_since_ms),
            },
        })
    }

    /// The body for Alertmanager's `POST /api/v2/alerts`.
    pub fn alertmanager_body(&self) -> serde_json::Value {
        let mut alert = serde_json::json!({
            "labels": self.labels(),
            "annotations": self.annotations(),
            "startsAt": rfc3339(self.starts_ms),
            "generatorURL": self.generator_url(),
        });
        if let Some(ends) = self.ends_ms {
            alert["endsAt"] = rfc3339(ends).into();
        }
        serde_json::json!([alert])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A firing notification to `url`, due at its creation.
    fn d(id: &str, created_ms: i64, url: &str) -> Delivery {
        Delivery {
            id: id.into(),
            created_ms,
            target: Target::Webhook {
                url: url.into(),
                secret: Some("k".into()),
            },
            rule: "r".into(),
            function: "f".into(),
            status: "firing".into(),
            body: "{}".into(),
            attempts: 0,
            next_attempt_ms: created_ms,
        }
    }

    #[test]
    fn signatures_match_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 1.0), Duration::from_secs(1));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(4));
        assert_eq!(p.backoff(30, 1.0), Duration::from_secs(60));
        assert_eq!(p.backoff(30, 0.0), Duration::from_secs(6));
        // A receiver down for ten minutes is retried at least every minute, so it hears every
        // notification within a minute of coming back.
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        while waited < Duration::from_secs(600) {
            attempt += 1;
            waited += p.backoff(attempt, 1.0);
        }
        assert!(attempt < 20, "{attempt} attempts in ten minutes");
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_does_not_hold_up_the_others() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        // One receiver accepts connections and never answers; the other answers 200.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_url = format!("http://{}/", silent.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = silent.accept().await {
                held.push(conn);
            }
        });
        let quick = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let quick_url = format!("http://{}/", quick.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = quick.accept().await {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let outbox = Arc::new(Outbox::open(dir.path()).unwrap());
        let history = Arc::new(History::open(dir.path()).unwrap());
        outbox
            .enqueue(vec![d("slow", 1, &silent_url), d("fast", 2, &quick_url)])
            .unwrap();
        let policy = RetryPolicy {
            timeout: Duration::from_secs(600),
            ..RetryPolicy::default()
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(deliver(
            outbox.clone(),
            history.clone(),
            reqwest::Client::new(),
            policy,
            stopped,
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while outbox.pending().len() > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the quick receiver got nothing"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The quick one is delivered while the silent one's attempt is still waiting.
        let entries = history.recent(10, None, None, None);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(
            matches!(&entries[0], Entry::Notification { delivery_id, outcome, .. }
            if delivery_id == "fast" && outcome == "delivered")
        );
        assert_eq!(outbox.pending()[0].id, "slow");
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[test]
    fn the_outbox_survives_a_reopen_and_keeps_order_per_url() {
        let dir = tempfile::tempdir().unwrap();
        {
            let outbox = Outbox::open(dir.path()).unwrap();
            outbox
                .enqueue(vec![
                    d("b", 2, "http://a/"),
                    d("a", 1, "http://a/"),
                    d("c", 3, "http://b/"),
                ])
                .unwrap();
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        let (due, _) = outbox.due(10, &HashSet::new());
        let ids: Vec<&str> = due.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        let mut later = due[0].clone();
        later.next_attempt_ms = 100;
        outbox.reschedule(later);
        // "b" waits behind "a", which is not due.
        let (due, next) = outbox.due(10, &HashSet::new());
        assert_eq!(due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(next, Some(100));
        // A URL with an attempt in flight gets no other.
        let (due, next) = outbox.due(1000, &HashSet::from(["http://a/".to_owned()]));
        assert_eq!(due.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(next, None);
        outbox.finish(&due[0]);
        assert_eq!(Outbox::open(dir.path()).unwrap().pending().len(), 2);
    }
}
