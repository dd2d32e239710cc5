//! The alert engine: rules, their instances and states, silences, and the loops that evaluate
//! them and deliver notifications.
//!
//! ```text
//! applier thread ──observe(batch)──▶ samples ──wake──▶ evaluator thread: windows += samples,
//!                                                       every streaming rule evaluated
//! scheduled task (1 s tick) ──Sources (search, SQL)──▶ log and SQL rules evaluated
//!                     transitions ──▶ history.jsonl     notifications ──▶ outbox/ ──▶ delivery task
//! ```
//!
//! What lives under the alerts directory: `rules.json` (every rule), `state.json` (every
//! instance: its state, since when, and what receivers last heard), `silences.json`,
//! `history.jsonl` and `outbox/`. All of them but the history are rewritten whole, atomically.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fnlens_model::Batch;
use serde::{Deserialize, Serialize};

use crate::history::{Entry, History};
use crate::notify::{self, Alert, Delivery, Outbox, RetryPolicy};
use crate::persist::{read_json, write_atomic};
use crate::rule::{Compiled, FunctionMatcher, Metric, Rule, Statistic, Target};
use crate::state::{AlarmState, Point, next_state};
use crate::window::{Agg, Sample, Windows};

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Where rules, state, history and the outbox live.
    pub dir: PathBuf,
    /// The address users reach fnlens at, for the links in notifications.
    pub external_url: String,
    pub retry: RetryPolicy,
    /// Streaming rules are evaluated at least this often (time passing changes windows too),
    /// and at once when invocations arrive, at most every `min_gap`.
    pub tick: Duration,
    pub min_gap: Duration,
}

impl AlertsConfig {
    pub fn new(dir: PathBuf, external_url: String) -> AlertsConfig {
        AlertsConfig {
            dir,
            external_url,
            retry: RetryPolicy::default(),
            tick: Duration::from_secs(1),
            min_gap: Duration::from_millis(250),
        }
    }
}

/// The data log and SQL rules read, provided by whoever knows the query engines.
#[async_trait::async_trait]
pub trait Sources: Send + Sync + 'static {
    /// Lines matching `query` in `[start_ms, end_ms)`, per function.
    async fn log_counts(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(String, u64)>, String>;
    /// The `(function, value)` rows of `sql` run over `[start_ms, end_ms)`.
    async fn sql_values(
        &self,
        sql: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(String, f64)>, String>;
    /// Whether a log query or an SQL rule would run, before it is saved.
    async fn check(&self, metric: &Metric) -> Result<(), String>;
}

/// Why an alerts call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AlertError {
    /// The request is wrong: a bad rule or silence.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The alerts directory could not be written.
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for AlertError {
    fn from(e: std::io::Error) -> Self {
        AlertError::Io(e.to_string())
    }
}

/// One alert instance: a rule applied to one function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub rule: String,
    pub function: String,
    pub state: AlarmState,
    /// The newest datapoint.
    pub value: Option<f64>,
    /// The last N datapoints, newest first (`null` where missing).
    pub datapoints: Vec<Option<f64>>,
    /// When the current state began, UTC epoch ms.
    pub since_ms: i64,
    /// When the current (or last) ALARM began: the notifications' `startsAt`.
    pub alarm_since_ms: Option<i64>,
    /// Whether receivers last heard "firing" (and not yet "resolved").
    pub heard_firing: bool,
    /// When they last heard anything.
    pub notified_ms: Option<i64>,
    /// Alertmanager's fingerprint: 16 hex digits of a hash of the rule and function.
    pub fingerprint: String,
    pub evaluated_ms: i64,
}

/// A silence: matching instances change state as usual, and nobody is notified until it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    /// The rule it mutes; `None` mutes every rule.
    pub rule: Option<String>,
    /// A function name or glob.
    pub function: String,
    pub until_ms: i64,
    pub comment: String,
    pub created_ms: i64,
}

impl Silence {
    fn matches(&self, rule: &str, function: &str, now_ms: i64) -> bool {
        now_ms < self.until_ms
            && self.rule.as_deref().is_none_or(|r| r == rule)
            && FunctionMatcher::new(&self.function).is_ok_and(|m| m.matches(function))
    }
}

/// Counters for `/metrics` and the benchmark.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub evaluations: AtomicU64,
    /// Wall time of the evaluation passes, writing their effects included...
    pub evaluation_ns: AtomicU64,
    /// ...of which writing the outbox, the history and the state.
    pub persist_ns: AtomicU64,
    pub samples: AtomicU64,
}

/// A rule with its live status, as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleStatus {
    #[serde(flatten)]
    pub rule: Rule,
    pub instances: usize,
    pub alarm: usize,
    /// The last failure of a log or SQL rule's query.
    pub error: Option<String>,
}

struct Inner {
    rules: BTreeMap<String, Arc<Compiled>>,
    windows: Windows,
    instances: BTreeMap<(String, String), Instance>,
    silences: Vec<Silence>,
    /// The last error of each scheduled rule.
    errors: HashMap<String, String>,
    last_prune: Option<Instant>,
    /// Instances changed (states, values) since `state.json` was last written.
    dirty: bool,
    last_save: Option<Instant>,
}

/// The alert engine.
pub struct Engine {
    config: AlertsConfig,
    inner: Mutex<Inner>,
    /// Samples from the ingest stream, waiting for the evaluator.
    samples: Mutex<Vec<Sample>>,
    wake: SyncSender<()>,
    wake_rx: Mutex<Option<Receiver<()>>>,
    outbox: Arc<Outbox>,
    history: Arc<History>,
    stopping: AtomicBool,
    shutdown: tokio::sync::watch::Sender<bool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub stats: EngineStats,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.config.dir)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn fingerprint(rule: &str, function: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{rule}\u{0}{function}").as_bytes());
    hex::encode(&digest[..8])
}

fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Engine {
    /// Opens the alerts directory. `file_rules` (from `--rules`) replace the stored rules of the
    /// same names.
    pub fn open(config: AlertsConfig, file_rules: Vec<Rule>) -> Result<Arc<Engine>, AlertError> {
        std::fs::create_dir_all(&config.dir)?;
        let stored: Vec<Rule> = read_json(&config.dir.join("rules.json"))?.unwrap_or_default();
        let mut rules = BTreeMap::new();
        for rule in stored.into_iter().chain(file_rules) {
            match rule.compile() {
                Ok(c) => {
                    rules.insert(rule.name.clone(), Arc::new(c));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a stored rule that no longer passes its checks")
                }
            }
        }
        let instances: Vec<Instance> =
            read_json(&config.dir.join("state.json"))?.unwrap_or_default();
        let silences: Vec<Silence> =
            read_json(&config.dir.join("silences.json"))?.unwrap_or_default();
        let outbox = Arc::new(Outbox::open(&config.dir)?);
        let history = Arc::new(History::open(&config.dir)?);
        let (wake, wake_rx) = std::sync::mpsc::sync_channel(1);
        let engine = Engine {
            inner: Mutex::new(Inner {
                instances: instances
                    .into_iter()
                    .filter(|i| rules.contains_key(&i.rule))
                    .map(|i| ((i.rule.clone(), i.function.clone()), i))
                    .collect(),
                rules,
                windows: Windows::default(),
                silences,
                errors: HashMap::new(),
                last_prune: None,
                dirty: false,
                last_save: None,
            }),
            config,
            samples: Mutex::new(Vec::new()),
            wake,
            wake_rx: Mutex::new(Some(wake_rx)),
            outbox,
            history,
            stopping: AtomicBool::new(false),
            shutdown: tokio::sync::watch::channel(false).0,
            threads: Mutex::new(Vec::new()),
            stats: EngineStats::default(),
        };
        engine.save_rules(&engine.lock())?;
        Ok(Arc::new(engine))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How far back the streaming rules look: the invocations to load at start.
    pub fn lookback_ms(&self) -> i64 {
        Self::max_lookback(&self.lock())
    }

    fn max_lookback(inner: &Inner) -> i64 {
        inner
            .rules
            .values()
            .filter(|c| c.rule.metric.is_streaming())
            .map(|c| c.lookback_ms())
            .max()
            .unwrap_or(0)
            .max(15 * 60_000)
    }

    /// Takes the invocations of an applied batch. Called on the ingest pipeline's applier
    /// thread, so it only queues them and wakes the evaluator.
    pub fn observe(&self, batch: &Batch) {
        if batch.invocations.is_empty() {
            return;
        }
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.extend(batch.invocations.iter().map(Sample::from_invocation));
        drop(samples);
        let _ = self.wake.try_send(());
    }

    /// Adds invocations straight to the windows (the history loaded at start).
    pub fn add_samples(&self, samples: &[Sample]) {
        let mut inner = self.lock();
        for s in samples {
            inner.windows.add(s);
        }
        self.stats
            .samples
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
    }

    /// Starts the evaluator thread, the scheduled rules and the delivery task. Call it from
    /// within a Tokio runtime.
    pub fn start(self: &Arc<Self>, sources: Arc<dyn Sources>, client: reqwest::Client) {
        let Some(rx) = self
            .wake_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let engine = self.clone();
        match std::thread::Builder::new()
            .name("fnlens-alerts".into())
            .spawn(move || engine.run_evaluator(rx))
        {
            Ok(t) => self
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(t),
            Err(e) => tracing::error!(error = %e, "could not start the alert evaluator"),
        }
        tokio::spawn(notify::deliver(
            self.outbox.clone(),
            self.history.clone(),
            client,
            self.config.retry.clone(),
            self.shutdown.subscribe(),
        ));
        tokio::spawn(
            self.clone()
                .run_scheduled(sources, self.shutdown.subscribe()),
        );
    }

    /// Stops the loops. Pending deliveries stay in the outbox for the next start.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.shutdown.send(true);
        let _ = self.wake.try_send(());
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        let mut inner = self.lock();
        if inner.dirty && self.save_state(&inner).is_ok() {
            inner.dirty = false;
        }
        self.history.sync();
    }

    fn run_evaluator(self: Arc<Self>, rx: Receiver<()>) {
        let mut last = Instant::now() - self.config.min_gap;
        loop {
            match rx.recv_timeout(self.config.tick) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            // Under a steady stream of batches, evaluate at most every `min_gap`.
            let since = last.elapsed();
            if since < self.config.min_gap {
                std::thread::sleep(self.config.min_gap - since);
            }
            last = Instant::now();
            self.evaluate_streaming(now_ms());
        }
    }

    /// Folds the queued samples into the windows and evaluates every streaming rule at `now`.
    pub fn evaluate_streaming(&self, now: i64) {
        let started = Instant::now();
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        let mut inner = self.lock();
        for s in &samples {
            inner.windows.add(s);
        }
        self.stats
            .samples
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        if inner
            .last_prune
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            inner.last_prune = Some(Instant::now());
            let horizon = now - Self::max_lookback(&inner) - 60_000;
            inner.windows.prune(horizon);
            // Instances of functions that stopped running fade away: a day after they ran out
            // of data, unless receivers were told they are firing.
            let before = inner.instances.len();
            inner.instances.retain(|_, i| {
                i.heard_firing
                    || i.state != AlarmState::InsufficientData
                    || now - i.since_ms < FORGET_AFTER_MS
            });
            inner.dirty |= inner.instances.len() != before;
        }
        let rules: Vec<Arc<Compiled>> = inner
            .rules
            .values()
            .filter(|c| c.rule.metric.is_streaming())
            .cloned()
            .collect();
        let mut effects = Effects::default();
        let mut cache = AggCache::new();
        for c in rules {
            let mut functions: HashSet<String> = inner
                .windows
                .functions()
                .filter(|f| c.function.matches(f))
                .map(str::to_owned)
                .collect();
            functions.extend(
                inner
                    .instances
                    .keys()
                    .filter(|(r, _)| *r == c.rule.name)
                    .map(|(_, f)| f.clone()),
            );
            for f in functions {
                let points = streaming_datapoints(&inner.windows, &mut cache, &c, &f, now);
                self.evaluate_instance(&mut inner, &c, &f, points, now, &mut effects);
            }
        }
        self.apply(&mut inner, effects);
        drop(inner);
        self.stats.evaluations.fetch_add(1, Ordering::Relaxed);
        self.stats
            .evaluation_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    async fn run_scheduled(
        self: Arc<Self>,
        sources: Arc<dyn Sources>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut last_run: HashMap<String, i64> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = now_ms();
            let due: Vec<Arc<Compiled>> = self
                .lock()
                .rules
                .values()
                .filter(|c| !c.rule.metric.is_streaming())
                .filter(|c| {
                    last_run
                        .get(&c.rule.name)
                        .is_none_or(|t| now - t >= c.schedule_ms)
                })
                .cloned()
                .collect();
            for c in due {
                last_run.insert(c.rule.name.clone(), now);
                let result = scheduled_datapoints(&*sources, &c, now).await;
                self.apply_scheduled(&c, result, now);
            }
        }
    }

    /// Evaluates a scheduled rule's instances from its fresh datapoints.
    fn apply_scheduled(
        &self,
        c: &Arc<Compiled>,
        result: Result<BTreeMap<String, Vec<Option<f64>>>, String>,
        now: i64,
    ) {
        let mut inner = self.lock();
        // The rule may have changed or gone while its queries ran.
        if !inner
            .rules
            .get(&c.rule.name)
            .is_some_and(|cur| Arc::ptr_eq(cur, c))
        {
            return;
        }
        let mut by_function = match result {
            Ok(r) => {
                inner.errors.remove(&c.rule.name);
                r
            }
            Err(e) => {
                tracing::warn!(
                    rule = c.rule.name,
                    error = e,
                    "an alert rule's query failed"
                );
                inner.errors.insert(c.rule.name.clone(), e);
                return;
            }
        };
        let known: Vec<String> = inner
            .instances
            .keys()
            .filter(|(r, _)| *r == c.rule.name)
            .map(|(_, f)| f.clone())
            .collect();
        for f in known {
            by_function.entry(f).or_insert_with(|| {
                // A function with no matching lines counted zero; one missing from an SQL
                // answer has no datapoint.
                let v = matches!(c.rule.metric, Metric::Logs(_)).then_some(0.0);
                vec![v; c.n]
            });
        }
        let mut effects = Effects::default();
        for (f, points) in by_function {
            self.evaluate_instance(&mut inner, c, &f, points, now, &mut effects);
        }
        self.apply(&mut inner, effects);
    }

    /// Moves one instance to its next state and decides what to notify.
    fn evaluate_instance(
        &self,
        inner: &mut Inner,
        c: &Compiled,
        function: &str,
        datapoints: Vec<Option<f64>>,
        now: i64,
        effects: &mut Effects,
    ) {
        let rule = &c.rule;
        let silenced = inner
            .silences
            .iter()
            .any(|s| s.matches(&rule.name, function, now));
        let key = (rule.name.clone(), function.to_owned());
        let inst = inner.instances.entry(key).or_insert_with(|| Instance {
            rule: rule.name.clone(),
            function: function.to_owned(),
            state: AlarmState::InsufficientData,
            value: None,
            datapoints: Vec::new(),
            since_ms: now,
            alarm_since_ms: None,
            heard_firing: false,
            notified_ms: None,
            fingerprint: fingerprint(&rule.name, function),
            evaluated_ms: now,
        });
        let points: Vec<Point> = datapoints
            .iter()
            .map(|d| match d {
                None => Point::Missing,
                Some(v) if rule.comparison.breaches(*v, rule.threshold) => Point::Breaching,
                Some(_) => Point::NotBreaching,
            })
            .collect();
        let next = next_state(&points, c.m, rule.missing_data, inst.state);
        inst.value = datapoints.first().copied().flatten();
        inst.datapoints = datapoints;
        inst.evaluated_ms = now;
        if next != inst.state {
            effects.history.push(Entry::Transition {
                ts_ms: now,
                rule: rule.name.clone(),
                function: function.to_owned(),
                from: inst.state,
                to: next,
                value: inst.value,
                threshold: rule.threshold,
                silenced,
            });
            inst.state = next;
            inst.since_ms = now;
            if next == AlarmState::Alarm {
                inst.alarm_since_ms = Some(now);
            }
            effects.changed = true;
        }
        if silenced {
            return;
        }
        let firing = inst.state == AlarmState::Alarm;
        let repeat_due = firing
            && inst.heard_firing
            && c.repeat_ms
                .zip(inst.notified_ms)
                .is_some_and(|(every, at)| now - at >= every);
        if firing != inst.heard_firing || repeat_due {
            self.notify(c, inst, firing, now, effects);
            inst.heard_firing = firing;
            inst.notified_ms = Some(now);
            effects.changed = true;
            effects.notified = true;
        }
    }

    /// Makes the deliveries of one notification, one per target.
    fn notify(&self, c: &Compiled, inst: &Instance, firing: bool, now: i64, effects: &mut Effects) {
        for target in &c.rule.notify {
            let id = new_id();
            let alert = Alert {
                rule: c,
                function: &inst.function,
                firing,
                value: inst.value,
                fingerprint: &inst.fingerprint,
                starts_ms: inst.alarm_since_ms.unwrap_or(inst.since_ms),
                ends_ms: (!firing).then_some(now),
                external_url: &self.config.external_url,
                delivery_id: &id,
                state_since_ms: inst.since_ms,
            };
            let body = match target {
                Target::Webhook { .. } => alert.webhook_body(),
                Target::Alertmanager { .. } => alert.alertmanager_body(),
            };
            effects.deliveries.push(Delivery {
                id,
                created_ms: now,
                target: target.clone(),
                rule: c.rule.name.clone(),
                function: inst.function.clone(),
                status: if firing { "firing" } else { "resolved" }.into(),
                body: body.to_string(),
                attempts: 0,
                next_attempt_ms: now,
            });
        }
    }

    /// Makes the effects of an evaluation durable: deliveries first (so a notification the
    /// state says was sent is in the outbox), then the history, then the state.
    ///
    /// The state is written at once when receivers were notified (so a restart does not notify
    /// them again); a change of state alone is written within [`SAVE_EVERY`] (a restart in
    /// between re-derives it from the reloaded windows).
    fn apply(&self, inner: &mut Inner, effects: Effects) {
        let started = Instant::now();
        self.persist(inner, effects);
        self.stats
            .persist_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn persist(&self, inner: &mut Inner, effects: Effects) {
        let notified = !effects.deliveries.is_empty() || effects.notified;
        if !effects.deliveries.is_empty()
            && let Err(e) = self.outbox.enqueue(effects.deliveries)
        {
            tracing::error!(error = %e, "could not store notifications in the outbox");
        }
        self.history.append(&effects.history);
        inner.dirty |= effects.changed;
        let due = inner.last_save.is_none_or(|t| t.elapsed() >= SAVE_EVERY);
        if notified || due {
            self.history.sync();
            if inner.dirty {
                match self.save_state(inner) {
                    Ok(()) => inner.dirty = false,
                    Err(e) => tracing::error!(error = %e, "could not save the alert state"),
                }
            }
            inner.last_save = Some(Instant::now());
        }
    }

    fn save_state(&self, inner: &Inner) -> std::io::Result<()> {
        let instances: Vec<&Instance> = inner.instances.values().collect();
        write_atomic(
            &self.config.dir.join("state.json"),
            &serde_json::to_vec(&instances).map_err(std::io::Error::other)?,
        )
    }

    fn save_rules(&self, inner: &Inner) -> std::io::Result<()> {
        let rules: Vec<&Rule> = inner.rules.values().map(|c| &c.rule).collect();
        write_atomic(
            &self.config.dir.join("rules.json"),
            &serde_json::to_vec_pretty(&rules).map_err(std::io::Error::other)?,
        )
    }

    fn save_silences(&self, inner: &Inner) -> std::io::Result<()> {
        write_atomic(
            &self.config.dir.join("silences.json"),
            &serde_json::to_vec_pretty(&inner.silences).map_err(std::io::Error::other)?,
        )
    }

    pub fn rules(&self) -> Vec<RuleStatus> {
        let inner = self.lock();
        inner
            .rules
            .values()
            .map(|c| {
                let name = &c.rule.name;
                let of_rule = || inner.instances.values().filter(move |i| &i.rule == name);
                RuleStatus {
                    rule: c.rule.clone(),
                    instances: of_rule().count(),
                    alarm: of_rule().filter(|i| i.state == AlarmState::Alarm).count(),
                    error: inner.errors.get(name).cloned(),
                }
            })
            .collect()
    }

    pub fn rule(&self, name: &str) -> Option<Rule> {
        self.lock().rules.get(name).map(|c| c.rule.clone())
    }

    /// Adds a rule (`replace` false) or replaces one of the same name (`replace` true).
    pub fn put_rule(&self, rule: Rule, replace: bool) -> Result<Rule, AlertError> {
        let compiled = rule
            .compile()
            .map_err(|e| AlertError::Invalid(e.to_string()))?;
        let mut inner = self.lock();
        let exists = inner.rules.contains_key(&rule.name);
        if replace && !exists {
            return Err(AlertError::NotFound(format!(
                "no rule is named {:?}",
                rule.name
            )));
        }
        if !replace && exists {
            return Err(AlertError::Conflict(format!(
                "a rule named {:?} exists; PUT /api/v1/alerts/rules/{{name}} replaces it",
                rule.name
            )));
        }
        inner.rules.insert(rule.name.clone(), Arc::new(compiled));
        inner.errors.remove(&rule.name);
        self.save_rules(&inner)?;
        drop(inner);
        let _ = self.wake.try_send(());
        Ok(rule)
    }

    /// Deletes a rule; its instances that were firing are resolved to their receivers.
    pub fn delete_rule(&self, name: &str) -> Result<(), AlertError> {
        let mut inner = self.lock();
        let Some(c) = inner.rules.remove(name) else {
            return Err(AlertError::NotFound(format!("no rule is named {name:?}")));
        };
        let now = now_ms();
        let mut effects = Effects {
            changed: true,
            notified: true,
            ..Effects::default()
        };
        let gone: Vec<Instance> = inner
            .instances
            .values()
            .filter(|i| i.rule == name)
            .cloned()
            .collect();
        for inst in gone {
            inner
                .instances
                .remove(&(inst.rule.clone(), inst.function.clone()));
            if inst.heard_firing {
                self.notify(&c, &inst, false, now, &mut effects);
            }
        }
        inner.errors.remove(name);
        self.save_rules(&inner)?;
        self.apply(&mut inner, effects);
        Ok(())
    }

    /// Every instance, with whether a silence mutes it now.
    pub fn instances(&self) -> Vec<(Instance, bool)> {
        let inner = self.lock();
        let now = now_ms();
        inner
            .instances
            .values()
            .map(|i| {
                let silenced = inner
                    .silences
                    .iter()
                    .any(|s| s.matches(&i.rule, &i.function, now));
                (i.clone(), silenced)
            })
            .collect()
    }

    pub fn history(
        &self,
        limit: usize,
        rule: Option<&str>,
        function: Option<&str>,
        kind: Option<&str>,
    ) -> Vec<Entry> {
        self.history.recent(limit, rule, function, kind)
    }

    /// Notifications not yet delivered.
    pub fn pending_deliveries(&self) -> Vec<Delivery> {
        self.outbox.pending()
    }

    /// Adds a silence; expired ones are dropped on the way.
    pub fn add_silence(
        &self,
        rule: Option<String>,
        function: Option<String>,
        until_ms: i64,
        comment: String,
    ) -> Result<Silence, AlertError> {
        let now = now_ms();
        if until_ms <= now {
            return Err(AlertError::Invalid("until is in the past".into()));
        }
        let function = function.unwrap_or_else(|| "*".into());
        FunctionMatcher::new(&function).map_err(AlertError::Invalid)?;
        let mut inner = self.lock();
        if let Some(r) = &rule
            && !inner.rules.contains_key(r)
        {
            return Err(AlertError::Invalid(format!("no rule is named {r:?}")));
        }
        let silence = Silence {
            id: new_id(),
            rule,
            function,
            until_ms,
            comment,
            created_ms: now,
        };
        inner.silences.retain(|s| s.until_ms > now);
        inner.silences.push(silence.clone());
        self.save_silences(&inner)?;
        Ok(silence)
    }

    pub fn silences(&self) -> Vec<Silence> {
        let now = now_ms();
        self.lock()
            .silences
            .iter()
            .filter(|s| s.until_ms > now)
            .cloned()
            .collect()
    }

    /// Ends a silence now; what it held back is notified at the next evaluation.
    pub fn delete_silence(&self, id: &str) -> Result<(), AlertError> {
        let mut inner = self.lock();
        let before = inner.silences.len();
        inner.silences.retain(|s| s.id != id);
        if inner.silences.len() == before {
            return Err(AlertError::NotFound(format!("no silence has id {id:?}")));
        }
        self.save_silences(&inner)?;
        drop(inner);
        let _ = self.wake.try_send(());
        Ok(())
    }

    /// Buckets held by the rolling windows.
    pub fn window_buckets(&self) -> usize {
        self.lock().windows.bucket_count()
    }
}

/// What one evaluation pass produced, made durable by [`Engine::apply`].
#[derive(Default)]
struct Effects {
    history: Vec<Entry>,
    deliveries: Vec<Delivery>,
    /// Some instance changed state or what its receivers heard.
    changed: bool,
    /// What receivers heard changed (with or without targets to tell).
    notified: bool,
}

/// An instance in INSUFFICIENT_DATA this long, that receivers do not think firing, is dropped.
const FORGET_AFTER_MS: i64 = 24 * 3_600_000;

/// A state change that notified nobody is written to `state.json` (and the history fsynced)
/// at most this often.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// The value of a streaming metric over one window; `None` when the window has no (or too
/// few) invocations.
fn metric_value(c: &Compiled, agg: &Agg) -> Option<f64> {
    if agg.invocations == 0 || agg.invocations < c.rule.min_invocations {
        return None;
    }
    let n = agg.invocations as f64;
    let stat = |sketch: &Option<crate::QuantileSketch>| {
        let s = sketch.as_ref().filter(|s| s.count() > 0)?;
        match c.statistic {
            Statistic::Avg => Some(s.sum() / s.count() as f64),
            Statistic::Max => s.max(),
            p => s.quantile(p.quantile().unwrap_or(0.5)),
        }
    };
    match &c.rule.metric {
        Metric::ErrorRate => Some(agg.failed as f64 * 100.0 / n),
        Metric::Errors => Some(agg.failed as f64),
        Metric::Invocations => Some(n),
        Metric::ColdStartRate => Some(agg.cold_starts as f64 * 100.0 / n),
        Metric::Duration => stat(&agg.duration),
        Metric::InitDuration => stat(&agg.init_duration),
        Metric::MemoryUtilization => match c.statistic {
            Statistic::Avg => (agg.memory_n > 0).then(|| agg.memory_sum / agg.memory_n as f64),
            _ => agg.memory_max,
        },
        Metric::Logs(_) | Metric::Sql(_) => None,
    }
}

/// The N datapoints of a streaming rule for one function at `now`, newest first. Datapoint k
/// covers `(now - k * period - window, now - k * period]`; the newest also takes anything
/// stamped after now (clocks differ).
pub fn streaming_datapoints(
    windows: &Windows,
    cache: &mut AggCache,
    c: &Compiled,
    function: &str,
    now: i64,
) -> Vec<Option<f64>> {
    let sketches = matches!(c.rule.metric, Metric::Duration | Metric::InitDuration);
    (0..c.n as i64)
        .map(|k| {
            let end = now - k * c.period_ms;
            let start = end - c.window_ms;
            let end = if k == 0 { i64::MAX / 2 } else { end };
            let key = (
                function.to_owned(),
                c.rule.version.clone(),
                start,
                end,
                sketches,
            );
            let agg = cache.entry(key).or_insert_with(|| {
                windows.aggregate(function, c.rule.version.as_deref(), start, end, sketches)
            });
            metric_value(c, agg)
        })
        .collect()
}

/// The aggregates one evaluation pass has computed, by function, version, window and whether
/// they hold sketches: rules over the same windows share them.
pub type AggCache = HashMap<(String, Option<String>, i64, i64, bool), Agg>;

/// The N datapoints of a log or SQL rule, per function, newest first.
async fn scheduled_datapoints(
    sources: &dyn Sources,
    c: &Compiled,
    now: i64,
) -> Result<BTreeMap<String, Vec<Option<f64>>>, String> {
    let mut out: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for k in 0..c.n {
        let end = now - k as i64 * c.period_ms;
        let start = end - c.window_ms;
        let values: Vec<(String, f64)> = match &c.rule.metric {
            Metric::Logs(q) => {
                let q = match &c.rule.version {
                    Some(v) => format!("({q}) AND version:{:?}", v),
                    None => q.clone(),
                };
                sources
                    .log_counts(&q, start, end)
                    .await?
                    .into_iter()
                    .map(|(f, n)| (f, n as f64))
                    .collect()
            }
            Metric::Sql(sql) => sources.sql_values(sql, start, end).await?,
            _ => return Err("not a scheduled rule".into()),
        };
        let zero = matches!(c.rule.metric, Metric::Logs(_)).then_some(0.0);
        for (f, v) in values {
            if !c.function.matches(&f) {
                continue;
            }
            let points = out.entry(f).or_insert_with(|| vec![zero; c.n]);
            points[k] = Some(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnlens_model::{Invocation, Status};

    fn inv(end_ms: i64, function: &str, status: Status, duration_ms: f64) -> Invocation {
        Invocation {
            ts_ms: end_ms - duration_ms as i64,
            end_ts_ms: end_ms,
            function: function.into(),
            version: "1".into(),
            request_id: new_id(),
            status,
            error_type: None,
            duration_ms,
            billed_duration_ms: duration_ms.ceil(),
            memory_size_mb: 128,
            max_memory_used_mb: 64,
            init_duration_ms: None,
            cold_start: false,
            init_status: None,
            instance: None,
            region: None,
        }
    }

    fn engine(dir: &std::path::Path, rules: serde_json::Value) -> Arc<Engine> {
        let rules: Vec<Rule> = serde_json::from_value(rules).unwrap();
        Engine::open(
            AlertsConfig::new(dir.to_owned(), "http://fnlens.test".into()),
            rules,
        )
        .unwrap()
    }

    fn batch(invocations: Vec<Invocation>) -> Batch {
        Batch {
            invocations,
            ..Batch::default()
        }
    }

    fn state_of(e: &Engine, rule: &str, function: &str) -> AlarmState {
        e.instances()
            .into_iter()
            .find(|(i, _)| i.rule == rule && i.function == function)
            .map(|(i, _)| i.state)
            .unwrap()
    }

    #[test]
    fn an_error_burst_alarms_notifies_once_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(
            dir.path(),
            serde_json::json!([{
                "name": "errors", "metric": "error_rate", "comparison": ">", "threshold": 10,
                "window": "30s", "min_invocations": 5,
                "notify": [{"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "k"}]
            }]),
        );
        let t = 1_800_000_000_000;
        e.observe(&batch(
            (0..20)
                .map(|i| inv(t + i, "pay", Status::Success, 10.0))
                .collect(),
        ));
        e.evaluate_streaming(t + 100);
        assert_eq!(state_of(&e, "errors", "pay"), AlarmState::Ok);
        e.observe(&batch(
            (0..10)
                .map(|i| inv(t + 200 + i, "pay", Status::Error, 10.0))
                .collect(),
        ));
        e.evaluate_streaming(t + 300);
        assert_eq!(state_of(&e, "errors", "pay"), AlarmState::Alarm);
        e.evaluate_streaming(t + 400);
        let pending = e.pending_deliveries();
        assert_eq!(pending.len(), 1, "one firing notification");
        let body: serde_json::Value = serde_json::from_str(&pending[0].body).unwrap();
        assert_eq!(body["status"], "firing");
        assert_eq!(body["alerts"][0]["labels"]["function"], "pay");
        assert_eq!(body["fnlens"]["threshold"], 10.0);
        // 10 of 30 failed.
        assert!((body["fnlens"]["value"].as_f64().unwrap() - 33.33).abs() < 0.01);

        // The state survives a reopen, and a re-evaluation does not notify again.
        drop(e);
        let e = engine(dir.path(), serde_json::json!([]));
        e.add_samples(
            &(0..20)
                .map(|i| Sample::from_invocation(&inv(t + i, "pay", Status::Success, 10.0)))
                .chain((0..10).map(|i| {
                    Sample::from_invocation(&inv(t + 200 + i, "pay", Status::Error, 10.0))
                }))
                .collect::<Vec<_>>(),
        );
        e.evaluate_streaming(t + 500);
        assert_eq!(state_of(&e, "errors", "pay"), AlarmState::Alarm);
        assert_eq!(e.pending_deliveries().len(), 1);

        // Past the window the rate has no datapoint (missing): INSUFFICIENT_DATA, resolved.
        e.evaluate_streaming(t + 60_000);
        assert_eq!(state_of(&e, "errors", "pay"), AlarmState::InsufficientData);
        let pending = e.pending_deliveries();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[1].status, "resolved");
        let transitions = e.history(10, Some("errors"), None, Some("transition"));
        let path: Vec<_> = transitions
            .iter()
            .rev()
            .map(|t| match t {
                Entry::Transition { to, .. } => *to,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            path,
            [
                AlarmState::Ok,
                AlarmState::Alarm,
                AlarmState::InsufficientData
            ]
        );
    }

    #[test]
    fn silences_mute_notifications_but_not_state_changes() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(
            dir.path(),
            serde_json::json!([{
                "name": "slow", "metric": "duration", "statistic": "p90", "comparison": ">",
                "threshold": 500, "window": "1m",
                "notify": [{"type": "alertmanager", "url": "http://127.0.0.1:9"}]
            }]),
        );
        let now = now_ms();
        e.add_silence(
            Some("slow".into()),
            Some("pay*".into()),
            now + 60_000,
            "deploy".into(),
        )
        .unwrap();
        e.observe(&batch(
            (0..10)
                .map(|i| inv(now - 1000 + i, "payments", Status::Success, 900.0))
                .collect(),
        ));
        e.evaluate_streaming(now);
        assert_eq!(state_of(&e, "slow", "payments"), AlarmState::Alarm);
        assert!(e.pending_deliveries().is_empty());
        let (_, silenced) = e.instances().into_iter().next().unwrap();
        assert!(silenced);
        // Ending the silence lets the firing notification out.
        let id = e.silences()[0].id.clone();
        e.delete_silence(&id).unwrap();
        e.evaluate_streaming(now + 10);
        let pending = e.pending_deliveries();
        assert_eq!(pending.len(), 1);
        let body: serde_json::Value = serde_json::from_str(&pending[0].body).unwrap();
        assert_eq!(body[0]["labels"]["alertname"], "slow");
        assert!(body[0].get("endsAt").is_none());
        assert!(e.add_silence(None, None, now - 1, String::new()).is_err());
    }

    #[test]
    fn repeats_while_in_alarm_and_counts_late_invocations() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(
            dir.path(),
            serde_json::json!([{
                "name": "errors", "metric": "errors", "comparison": ">=", "threshold": 3,
                "window": "1m", "repeat_interval": "5m",
                "notify": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]
            }]),
        );
        let t = 1_800_000_000_000;
        e.observe(&batch(vec![
            inv(t - 5_000, "f", Status::Error, 1.0),
            inv(t - 4_000, "f", Status::Error, 1.0),
        ]));
        e.evaluate_streaming(t);
        assert_eq!(state_of(&e, "errors", "f"), AlarmState::Ok);
        // A third failure arrives late, stamped 50 s ago: still inside the window, it counts.
        e.observe(&batch(vec![inv(t - 50_000, "f", Status::Timeout, 1.0)]));
        e.evaluate_streaming(t + 1_000);
        assert_eq!(state_of(&e, "errors", "f"), AlarmState::Alarm);
        // One stamped before the window does not.
        e.observe(&batch(vec![inv(t - 70_000, "g", Status::Error, 1.0)]));
        e.evaluate_streaming(t + 1_000);
        assert!(
            e.instances()
                .iter()
                .all(|(i, _)| i.function != "g" || i.state != AlarmState::Alarm)
        );
        assert_eq!(e.pending_deliveries().len(), 1);
        // Still failing five minutes later: notified again, with the same startsAt.
        let failing: Vec<Invocation> = (0..3)
            .map(|i| inv(t + 300_000 + i, "f", Status::Error, 1.0))
            .collect();
        e.observe(&batch(failing));
        e.evaluate_streaming(t + 200_000 + 1_000);
        e.evaluate_streaming(t + 301_000);
        let pending = e.pending_deliveries();
        assert_eq!(pending.len(), 2, "one repeat");
        let starts = |d: &Delivery| {
            let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
            body["alerts"][0]["startsAt"].clone()
        };
        assert_eq!(starts(&pending[0]), starts(&pending[1]));
        assert_ne!(pending[0].id, pending[1].id);
    }

    #[test]
    fn m_of_n_needs_m_breaching_periods() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(
            dir.path(),
            serde_json::json!([{
                "name": "errors", "metric": "errors", "comparison": ">=", "threshold": 1,
                "window": "10s", "evaluation_periods": 3, "datapoints_to_alarm": 2,
                "missing_data": "notBreaching"
            }]),
        );
        let t = 1_800_000_000_000;
        e.observe(&batch(vec![inv(t - 25_000, "f", Status::Timeout, 1.0)]));
        e.evaluate_streaming(t);
        // Datapoints: (t-10s, now+], (t-20s, t-10s], (t-30s, t-20s]: only the oldest breaches.
        assert_eq!(state_of(&e, "errors", "f"), AlarmState::Pending);
        e.observe(&batch(vec![inv(t - 2_000, "f", Status::Error, 1.0)]));
        e.evaluate_streaming(t);
        assert_eq!(state_of(&e, "errors", "f"), AlarmState::Alarm);
        // A rule replaced keeps its instances; a rule deleted takes them along.
        let mut r = e.rule("errors").unwrap();
        r.datapoints_to_alarm = Some(3);
        e.put_rule(r.clone(), true).unwrap();
        e.evaluate_streaming(t);
        assert_eq!(state_of(&e, "errors", "f"), AlarmState::Pending);
        assert!(matches!(e.put_rule(r, false), Err(AlertError::Conflict(_))));
        e.delete_rule("errors").unwrap();
        assert!(e.instances().is_empty());
        assert!(matches!(
            e.delete_rule("errors"),
            Err(AlertError::NotFound(_))
        ));
    }
}
