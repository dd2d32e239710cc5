//! The ingest pipeline: WAL first, then the stores.
//!
//! ```text
//! handler ──Append──▶ WAL thread ──Durable (LSN order)──▶ applier thread ──Frozen──▶ flusher thread
//!   ▲  (group commit: one fsync per group)    │ tantivy add / Arrow append      │ Parquet + CHECKPOINT
//!   └────────────── ack (after apply) ◀───────┘ commit + reload every tick       │ compaction
//!                                              ├─▶ observers (called in LSN order, lossless)
//!                                              └─▶ subscribers (broadcast, in LSN order, lossy)
//! ```
//!
//! Observers are called on the applier thread with every applied batch, before its request is
//! acknowledged: the alert engine counts every invocation this way. They must only queue work.
//! Subscribers get the batch through a bounded broadcast channel and may lag (the live tail).
//!
//! A request is acknowledged after its WAL frame is fsynced and its events are applied to the
//! in-memory side of every store (the log index, the invocations and metrics tables), so it is
//! in SQL at once and in search after the next commit tick. The WAL is truncated through the
//! lowest LSN all stores hold durably.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fnlens_model::{Batch, invocations_to_record_batch, metrics_to_record_batch};
use fnlens_store::table::{Frozen, OBSOLETE_GRACE};
use fnlens_store::wal::{self, Append, Durable, WalConfig, WalTruncator};
use fnlens_store::{
    DataDir, LogStore, LogStoreConfig, Lsn, StoreError, StoreStats, TableSpec, TableStore,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::stats::IngestStats;

/// Tuning of the pipeline. The defaults suit one small machine.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub data_dir: PathBuf,
    /// How often the log index commits and readers reload: the bound on ack-to-searchable.
    pub commit_interval: Duration,
    /// The table buffers go to Parquet at least this often...
    pub flush_interval: Duration,
    /// ...or once it holds this many rows.
    pub flush_rows: usize,
    pub wal_segment_bytes: u64,
    pub indexer_threads: usize,
    pub indexer_memory_bytes: usize,
    /// Appends waiting for the WAL thread, at most; senders wait beyond it (backpressure).
    pub queue_depth: usize,
    /// Partitions that end before `now - retention` are dropped; `None` keeps everything.
    pub retention: Option<Duration>,
}

impl PipelineConfig {
    pub fn new(data_dir: PathBuf) -> PipelineConfig {
        PipelineConfig {
            data_dir,
            commit_interval: Duration::from_millis(500),
            flush_interval: Duration::from_secs(30),
            flush_rows: 500_000,
            wal_segment_bytes: 64 << 20,
            indexer_threads: 2,
            indexer_memory_bytes: 128 << 20,
            queue_depth: 4096,
            retention: Some(Duration::from_secs(7 * 86_400)),
        }
    }
}

/// Why an ingest did not complete. All of them are the server's problem.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("the write-ahead log failed: {0}")]
    Wal(String),
    #[error("the batch is durable but could not be applied to the stores: {0}")]
    Apply(String),
    #[error("fnlens is shutting down")]
    ShuttingDown,
    /// The write-ahead log's queue stayed full for [`OVERLOAD_WAIT`]: the client should retry.
    #[error("the write-ahead log is behind")]
    Overloaded,
}

/// How long an ingest request waits for room in the write-ahead log's queue before it is
/// answered "overloaded" (and the client retries later) instead of waiting on.
pub const OVERLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A batch as subscribers receive it.
#[derive(Debug)]
pub struct Ingested {
    pub lsn: Lsn,
    pub batch: Arc<Batch>,
}

/// A function called with every applied batch, in LSN order, before the batch is acknowledged.
pub type Observer = Arc<dyn Fn(Lsn, &Batch) + Send + Sync>;

/// The stores, for readers.
#[derive(Clone)]
pub struct Stores {
    pub logs: Arc<LogStore>,
    pub invocations: Arc<TableStore>,
    pub metrics: Arc<TableStore>,
    pub stats: Arc<StoreStats>,
}

impl Stores {
    /// The Parquet-backed tables.
    pub fn tables(&self) -> [&Arc<TableStore>; 2] {
        [&self.invocations, &self.metrics]
    }
}

/// Appends the rows of `batch` to the tables.
fn append_rows(tables: &Tables, lsn: Lsn, batch: &Batch, replay: bool) -> Result<(), StoreError> {
    if !batch.invocations.is_empty() {
        let rows = invocations_to_record_batch(&batch.invocations)?;
        tables.invocations.append(lsn, rows, replay)?;
    }
    if !batch.metrics.is_empty() {
        let rows = metrics_to_record_batch(&batch.metrics)?;
        tables.metrics.append(lsn, rows, replay)?;
    }
    Ok(())
}

/// The Parquet-backed tables, as the applier and flusher hold them.
#[derive(Clone)]
struct Tables {
    invocations: Arc<TableStore>,
    metrics: Arc<TableStore>,
}

impl Tables {
    fn all(&self) -> [&Arc<TableStore>; 2] {
        [&self.invocations, &self.metrics]
    }

    /// The LSN through which every table holds its rows durably, given that `applied` is the
    /// last record applied.
    fn durable_through(&self, applied: Lsn) -> Lsn {
        self.all()
            .iter()
            .map(|t| {
                if t.has_unflushed() {
                    t.checkpoint()
                } else {
                    // With nothing buffered, every row applied so far is in Parquet.
                    applied
                }
            })
            .min()
            .unwrap_or(applied)
    }
}

struct Pending {
    batch: Arc<Batch>,
    done: oneshot::Sender<Result<Lsn, IngestError>>,
}

/// The running pipeline.
pub struct Pipeline {
    /// `None` once shutdown has begun.
    append_tx: Mutex<Option<mpsc::Sender<Append<Pending>>>>,
    stores: Stores,
    stats: Arc<IngestStats>,
    events: broadcast::Sender<Arc<Ingested>>,
    /// Called with every applied batch (see [`Observer`]).
    observers: Arc<RwLock<Vec<Observer>>>,
    /// The LSN of the last batch sent to subscribers.
    published: Arc<AtomicU64>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Holds the data directory's lock for as long as the pipeline lives.
    _data_dir: DataDir,
}

/// How often the retention horizon is checked.
const RETENTION_CHECK: Duration = Duration::from_secs(60);

/// Capacity of the subscription channel; a subscriber further behind is told it lagged.
const SUBSCRIBER_BACKLOG: usize = 8192;

impl Pipeline {
    /// Opens the data directory, replays the WAL into the stores and starts the threads.
    pub fn open(config: PipelineConfig) -> Result<Pipeline, StoreError> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let store_stats = Arc::new(StoreStats::default());
        let logs = Arc::new(LogStore::open(
            LogStoreConfig {
                dir: data_dir.logs_dir(),
                writer_threads: config.indexer_threads,
                writer_memory_bytes: config.indexer_memory_bytes,
                writer_idle: Duration::from_secs(300),
            },
            store_stats.clone(),
        )?);
        let tables = Tables {
            invocations: Arc::new(TableStore::open(
                TableSpec::invocations(),
                data_dir.invocations_dir(),
                store_stats.clone(),
            )?),
            metrics: Arc::new(TableStore::open(
                TableSpec::metrics(),
                data_dir.metrics_dir(),
                store_stats.clone(),
            )?),
        };

        // Replay what the stores do not hold durably yet.
        let started = Instant::now();
        let mut replayed = 0u64;
        let mut replay_error = None;
        let wal_last = wal::replay(&data_dir.wal_dir(), |rec| {
            if replay_error.is_some() {
                return;
            }
            match serde_json::from_slice::<Batch>(&rec.payload) {
                Ok(batch) => {
                    let r = logs
                        .add(rec.lsn, &batch.logs, true)
                        .and_then(|_| append_rows(&tables, rec.lsn, &batch, true));
                    if let Err(e) = r {
                        replay_error = Some(e);
                    }
                    replayed += 1;
                }
                Err(e) => {
                    tracing::warn!(lsn = rec.lsn, error = %e, "skipping unreadable wal record")
                }
            }
        })?;
        if let Some(e) = replay_error {
            return Err(e);
        }
        let last = tables
            .all()
            .iter()
            .fold(wal_last.max(logs.max_committed_lsn()), |m, t| {
                m.max(t.checkpoint())
            });
        if replayed > 0 {
            logs.commit(last)?;
            for table in tables.all() {
                if let Some(frozen) = table.freeze() {
                    table.write_frozen(&frozen)?;
                }
            }
            tracing::info!(
                records = replayed,
                through = last,
                took_ms = started.elapsed().as_millis() as u64,
                "replayed the write-ahead log"
            );
        }

        let (append_tx, append_rx) = mpsc::channel(config.queue_depth);
        let (durable_tx, durable_rx) = std::sync::mpsc::channel();
        let (truncator, wal_thread) = wal::spawn(
            WalConfig {
                dir: data_dir.wal_dir(),
                segment_bytes: config.wal_segment_bytes,
            },
            last + 1,
            append_rx,
            durable_tx,
            store_stats.clone(),
        )?;
        // Everything before the new segment is durable in the stores now.
        truncator.truncate_through(last)?;

        let stats = Arc::new(IngestStats::default());
        let (events, _) = broadcast::channel(SUBSCRIBER_BACKLOG);
        let published = Arc::new(AtomicU64::new(last));
        let observers: Arc<RwLock<Vec<Observer>>> = Arc::default();
        let (flush_tx, flush_rx) = std::sync::mpsc::channel();
        let flusher = {
            let tables = tables.clone();
            std::thread::Builder::new()
                .name("fnlens-flush".into())
                .spawn(move || flusher_loop(tables, flush_rx))?
        };
        let applier = Applier {
            config: config.clone(),
            logs: logs.clone(),
            tables: tables.clone(),
            truncator,
            events: events.clone(),
            observers: observers.clone(),
            published: published.clone(),
            stats: stats.clone(),
            flush_tx,
            last_retention: None,
            applied: last,
            logs_durable: last,
            last_flush: Instant::now(),
        };
        let applier = std::thread::Builder::new()
            .name("fnlens-apply".into())
            .spawn(move || applier.run(durable_rx, flusher))?;

        Ok(Pipeline {
            append_tx: Mutex::new(Some(append_tx)),
            stores: Stores {
                logs,
                invocations: tables.invocations,
                metrics: tables.metrics,
                stats: store_stats,
            },
            stats,
            events,
            observers,
            published,
            threads: Mutex::new(vec![wal_thread, applier]),
            _data_dir: data_dir,
        })
    }

    /// Makes `batch` durable and visible. Resolves once its WAL frame is fsynced and its events
    /// are applied; the LSN is the batch's position in the log.
    pub async fn ingest(&self, batch: Batch) -> Result<Lsn, IngestError> {
        let tx = self
            .append_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(IngestError::ShuttingDown)?;
        let payload = serde_json::to_vec(&batch).map_err(|e| IngestError::Wal(e.to_string()))?;
        let (done, rx) = oneshot::channel();
        let pending = Pending {
            batch: Arc::new(batch),
            done,
        };
        let append = Append {
            payload,
            item: pending,
        };
        tx.send_timeout(append, OVERLOAD_WAIT)
            .await
            .map_err(|e| match e {
                mpsc::error::SendTimeoutError::Timeout(_) => IngestError::Overloaded,
                mpsc::error::SendTimeoutError::Closed(_) => IngestError::ShuttingDown,
            })?;
        rx.await.map_err(|_| IngestError::ShuttingDown)?
    }

    /// Calls `observer` with every batch applied from now on, in LSN order, on the applier
    /// thread and before the batch is acknowledged: nothing is missed, and the observer must
    /// be quick (queue the work, do it elsewhere).
    pub fn observe(&self, observer: Observer) {
        self.observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(observer);
    }

    /// Every batch applied from now on, in LSN order. A subscriber that falls more than
    /// 8,192 batches behind is told it lagged: use [`Pipeline::observe`] to miss nothing.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Ingested>> {
        self.events.subscribe()
    }

    /// The LSN of the last batch handed to subscribers. Every acknowledged batch is at or
    /// below it.
    pub fn published_lsn(&self) -> Lsn {
        self.published.load(Ordering::Acquire)
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    pub fn stats(&self) -> &Arc<IngestStats> {
        &self.stats
    }

    /// Stops taking batches, lets everything in flight finish, commits the log index and flushes
    /// the invocation buffer. Blocking: call it from a blocking context.
    pub fn shutdown(&self) {
        self.append_tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// State of the applier thread, which alone writes to the stores.
struct Applier {
    config: PipelineConfig,
    logs: Arc<LogStore>,
    tables: Tables,
    truncator: WalTruncator,
    events: broadcast::Sender<Arc<Ingested>>,
    observers: Arc<RwLock<Vec<Observer>>>,
    published: Arc<AtomicU64>,
    stats: Arc<IngestStats>,
    flush_tx: std::sync::mpsc::Sender<(Arc<TableStore>, Arc<Frozen>)>,
    /// When retention last ran.
    last_retention: Option<Instant>,
    /// Every record at or below this LSN has been applied.
    applied: Lsn,
    /// The log index holds every record at or below this LSN durably.
    logs_durable: Lsn,
    last_flush: Instant,
}

impl Applier {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Durable<Pending>>, flusher: JoinHandle<()>) {
        let mut next_tick = Instant::now() + self.config.commit_interval;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Durable::Written(items)) => {
                    for (lsn, pending) in items {
                        let result = self.apply(lsn, &pending.batch);
                        let _ = pending.done.send(result);
                    }
                }
                Ok(Durable::Failed(items, e)) => {
                    for pending in items {
                        let _ = pending.done.send(Err(IngestError::Wal(e.to_string())));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + self.config.commit_interval;
            }
        }
        // Shutdown: the WAL thread is gone and every append has been answered.
        let Applier {
            logs,
            tables,
            truncator,
            flush_tx,
            applied,
            mut logs_durable,
            ..
        } = self;
        match logs.close(applied) {
            Ok(()) => logs_durable = applied,
            Err(e) => {
                tracing::error!(error = %e, "final log commit failed; the wal will replay it")
            }
        }
        for table in tables.all() {
            if let Some(frozen) = table.freeze() {
                let _ = flush_tx.send((table.clone(), frozen));
            }
        }
        drop(flush_tx);
        let _ = flusher.join();
        let tables_durable = tables.durable_through(applied);
        if let Err(e) = truncator.truncate_through(logs_durable.min(tables_durable)) {
            tracing::warn!(error = %e, "could not truncate the wal at shutdown");
        }
        tracing::info!(through = applied, "ingest pipeline stopped");
    }

    fn apply(&mut self, lsn: Lsn, batch: &Arc<Batch>) -> Result<Lsn, IngestError> {
        let result = self
            .logs
            .add(lsn, &batch.logs, false)
            .and_then(|_| append_rows(&self.tables, lsn, batch, false));
        self.applied = lsn;
        match result {
            Ok(()) => {
                self.stats.record_applied(batch);
                for observer in self
                    .observers
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                {
                    observer(lsn, batch);
                }
                let _ = self.events.send(Arc::new(Ingested {
                    lsn,
                    batch: batch.clone(),
                }));
                self.published.store(lsn, Ordering::Release);
                Ok(lsn)
            }
            Err(e) => {
                tracing::error!(lsn, error = %e, "applying a durable batch failed");
                self.stats.apply_errors.fetch_add(1, Ordering::Relaxed);
                Err(IngestError::Apply(e.to_string()))
            }
        }
    }

    /// Commit the log index, hand the table buffers to the flusher when due, and truncate the
    /// WAL through what all stores hold durably.
    fn tick(&mut self) {
        match self.logs.commit(self.applied) {
            Ok(_) => self.logs_durable = self.applied,
            Err(e) => tracing::error!(error = %e, "log index commit failed"),
        }
        let due = self.last_flush.elapsed() >= self.config.flush_interval;
        let mut flushed = false;
        for table in self.tables.all() {
            if let Err(e) = table.coalesce() {
                tracing::warn!(error = %e, table = table.spec().name, "could not coalesce a buffer");
            }
            let rows = table.active_rows();
            if rows > 0 && (due || rows >= self.config.flush_rows) {
                if let Some(frozen) = table.freeze() {
                    let _ = self.flush_tx.send((table.clone(), frozen));
                }
                flushed = true;
            }
        }
        if flushed || due {
            self.last_flush = Instant::now();
        }
        let tables_durable = self.tables.durable_through(self.applied);
        if let Err(e) = self
            .truncator
            .truncate_through(self.logs_durable.min(tables_durable))
        {
            tracing::warn!(error = %e, "wal truncation failed");
        }
        if self
            .last_retention
            .is_none_or(|t| t.elapsed() >= RETENTION_CHECK)
        {
            self.last_retention = Some(Instant::now());
            self.enforce_retention();
        }
    }

    /// Drops the partitions of both stores that end before the retention horizon.
    fn enforce_retention(&self) {
        let Some(retention) = self.config.retention else {
            return;
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let cutoff = now_ms.saturating_sub(retention.as_millis() as i64);
        let results = [
            ("logs", self.logs.drop_partitions_before(cutoff)),
            (
                "invocations",
                self.tables.invocations.drop_partitions_before(cutoff),
            ),
            (
                "metrics",
                self.tables.metrics.drop_partitions_before(cutoff),
            ),
        ];
        for (store, result) in results {
            match result {
                Ok(dropped) if !dropped.is_empty() => {
                    tracing::info!(
                        partitions = dropped.len(),
                        store,
                        "retention dropped partitions"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, store, "retention failed"),
            }
        }
    }
}

/// How often the flusher looks for compaction work when no flush arrives.
const COMPACTION_CHECK: Duration = Duration::from_secs(10);

fn flusher_loop(tables: Tables, rx: std::sync::mpsc::Receiver<(Arc<TableStore>, Arc<Frozen>)>) {
    loop {
        match rx.recv_timeout(COMPACTION_CHECK) {
            Ok((table, frozen)) => {
                let mut attempt = 0u32;
                while let Err(e) = table.write_frozen(&frozen) {
                    attempt += 1;
                    tracing::error!(error = %e, attempt, table = table.spec().name, "parquet flush failed; retrying");
                    if attempt >= 10 {
                        tracing::error!(
                            "giving up on this flush; the wal keeps its rows until restart"
                        );
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // One compaction per table per round keeps flushes from waiting long behind it.
        let now_ms = chrono::Utc::now().timestamp_millis();
        for table in tables.all() {
            if let Err(e) = table.compact_once(now_ms) {
                tracing::warn!(error = %e, table = table.spec().name, "compaction failed");
            }
            table.purge_obsolete(OBSOLETE_GRACE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnlens_model::{Level, LogRecord, LogSource, TimeRange};

    fn line(ts_ms: i64, message: &str) -> LogRecord {
        LogRecord {
            ts_ms,
            function: "f".into(),
            version: "1".into(),
            request_id: None,
            level: Level::Info,
            source: LogSource::Function,
            message: message.into(),
            attributes: Default::default(),
        }
    }

    fn config(dir: &std::path::Path) -> PipelineConfig {
        let mut c = PipelineConfig::new(dir.to_path_buf());
        c.commit_interval = Duration::from_millis(20);
        c.indexer_threads = 1;
        c.indexer_memory_bytes = 15_000_000;
        c
    }

    fn doc_count(p: &Pipeline) -> u64 {
        p.stores()
            .logs
            .partitions(TimeRange::all())
            .iter()
            .map(|part| part.searcher().num_docs())
            .sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subscribers_see_batches_in_lsn_order_and_replay_adds_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        {
            let p = Pipeline::open(config(dir.path())).unwrap();
            let mut sub = p.subscribe();
            let mut lsns = Vec::new();
            for i in 0..5 {
                let batch = Batch {
                    logs: vec![line(now + i, &format!("m{i}"))],
                    ..Batch::default()
                };
                lsns.push(p.ingest(batch).await.unwrap());
            }
            for (i, lsn) in lsns.iter().enumerate() {
                let got = sub.recv().await.unwrap();
                assert_eq!(got.lsn, *lsn);
                assert_eq!(got.batch.logs[0].message, format!("m{i}"));
            }
            assert!(lsns.windows(2).all(|w| w[0] < w[1]));
            tokio::task::spawn_blocking(move || p.shutdown())
                .await
                .unwrap();
        }
        let p = Pipeline::open(config(dir.path())).unwrap();
        assert_eq!(doc_count(&p), 5);
        let lsn = p
            .ingest(Batch {
                logs: vec![line(now, "after restart")],
                ..Batch::default()
            })
            .await
            .unwrap();
        assert!(lsn > 5, "lsns keep growing across restarts: {lsn}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn observers_see_every_batch_before_its_ack() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let p = Arc::new(Pipeline::open(config(dir.path())).unwrap());
        let seen: Arc<Mutex<Vec<Lsn>>> = Arc::default();
        let sink = seen.clone();
        p.observe(Arc::new(move |lsn, _batch| sink.lock().unwrap().push(lsn)));
        // More batches, sent at once, than a subscriber's channel holds.
        let n = 9000;
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let p = p.clone();
                tokio::spawn(async move {
                    p.ingest(Batch {
                        logs: vec![line(now + i, "m")],
                        ..Batch::default()
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        for t in tasks {
            let lsn = t.await.unwrap();
            // Acknowledged means observed.
            assert!(seen.lock().unwrap().contains(&lsn));
        }
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), n as usize);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        tokio::task::spawn_blocking(move || p.shutdown())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_drops_old_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.retention = Some(Duration::from_secs(86_400));
        let now = chrono::Utc::now().timestamp_millis();
        {
            let mut keep_all = c.clone();
            keep_all.retention = None;
            let p = Pipeline::open(keep_all).unwrap();
            let old = line(now - 10 * 86_400_000, "old");
            p.ingest(Batch {
                logs: vec![old, line(now, "new")],
                ..Batch::default()
            })
            .await
            .unwrap();
            tokio::task::spawn_blocking(move || p.shutdown())
                .await
                .unwrap();
        }
        let p = Pipeline::open(c).unwrap();
        assert_eq!(p.stores().logs.partition_count(), 2);
        for _ in 0..100 {
            if p.stores().logs.partition_count() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(p.stores().logs.partition_count(), 1);
        assert_eq!(doc_count(&p), 1);
    }
}
