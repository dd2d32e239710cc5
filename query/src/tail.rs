//! Live tail: the log lines of each new batch that match each client's query.
//!
//! One thread reads the ingest subscription point. When clients are connected, it indexes each
//! run of new batches into a small in-memory tantivy segment, with the same schema and
//! tokenizers as the store, and runs every client's query over it, so a tail matches exactly
//! what a search would. Each client has a bounded buffer: when it is full the client's lines are
//! counted as dropped and it is told so, and nobody (ingest, other clients) ever waits for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fnlens_ingest::Ingested;
use fnlens_model::LogRecord;
use fnlens_store::{LogSchema, Lsn};
use tantivy::collector::DocSetCollector;
use tantivy::directory::RamDirectory;
use tantivy::{Index, SingleSegmentIndexWriter};
use tokio::sync::{broadcast, mpsc};

use crate::QueryError;
use crate::search::LogQuery;

/// Lines a client may have waiting before new ones are dropped.
pub const CLIENT_BUFFER: usize = 4096;

/// At most this many batches are matched together.
const MAX_BATCHES_PER_ROUND: usize = 256;

/// The memory budget of the per-round in-memory index.
const ROUND_INDEX_BYTES: usize = 20_000_000;

/// What a tail client receives.
#[derive(Debug, Clone, PartialEq)]
pub enum TailEvent {
    /// A matching line, in ingest order, with its rendering (made once for every client).
    Line {
        record: Arc<LogRecord>,
        rendered: Arc<str>,
    },
    /// Lines were lost since the last event: `lines` matching lines did not fit this client's
    /// buffer; `batches` whole ingest batches went by unmatched because the tail fell behind.
    Dropped { lines: u64, batches: u64 },
}

struct Client {
    query: LogQuery,
    /// Batches at or below this LSN were ingested before the client subscribed.
    after_lsn: Lsn,
    tx: mpsc::Sender<TailEvent>,
    dropped_lines: u64,
    dropped_batches: u64,
}

impl Client {
    /// Tells the client what it lost, if anything. False once the client has gone away;
    /// `Ok(false)` when its buffer is still full.
    fn report_drops(&mut self) -> Result<bool, ()> {
        if self.dropped_lines + self.dropped_batches == 0 {
            return Ok(true);
        }
        let dropped = TailEvent::Dropped {
            lines: self.dropped_lines,
            batches: self.dropped_batches,
        };
        match self.tx.try_send(dropped) {
            Ok(()) => {
                self.dropped_lines = 0;
                self.dropped_batches = 0;
                Ok(true)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        }
    }

    /// Sends a line unless the buffer is full (then counts it as dropped); reports earlier drops
    /// first. Returns false once the client has gone away.
    fn offer(&mut self, event: TailEvent) -> bool {
        match self.report_drops() {
            Err(()) => return false,
            Ok(false) => {
                self.dropped_lines += 1;
                return true;
            }
            Ok(true) => {}
        }
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_lines += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Counters of the tail, for `/metrics`.
#[derive(Debug, Default)]
pub struct TailStats {
    pub lines_sent: AtomicU64,
    pub lines_dropped: AtomicU64,
    pub batches_missed: AtomicU64,
}

/// Renders a line for the wire (the web layer's JSON); called once per matched line.
pub type RenderLine = dyn Fn(&LogRecord) -> String + Send + Sync;

/// The registry of tail clients and the thread that feeds them.
#[derive(Clone)]
pub struct TailHub {
    clients: Arc<Mutex<Vec<Client>>>,
    schema: LogSchema,
    stats: Arc<TailStats>,
    render: Arc<RenderLine>,
}

impl TailHub {
    /// Starts the matching thread on `events`; it ends when the pipeline closes the channel.
    pub fn start(
        events: broadcast::Receiver<Arc<Ingested>>,
        schema: LogSchema,
        render: Arc<RenderLine>,
    ) -> std::io::Result<TailHub> {
        let hub = TailHub {
            clients: Arc::default(),
            schema,
            stats: Arc::default(),
            render,
        };
        let worker = hub.clone();
        std::thread::Builder::new()
            .name("fnlens-tail".into())
            .spawn(move || worker.run(events))?;
        Ok(hub)
    }

    /// Registers a client for the lines matching `query` of the batches after `after_lsn`
    /// (the pipeline's published LSN when the client arrived).
    pub fn subscribe(
        &self,
        query: &str,
        after_lsn: Lsn,
    ) -> Result<mpsc::Receiver<TailEvent>, QueryError> {
        let query = LogQuery::parse(&self.schema, query)?;
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        self.lock().push(Client {
            query,
            after_lsn,
            tx,
            dropped_lines: 0,
            dropped_batches: 0,
        });
        Ok(rx)
    }

    pub fn client_count(&self) -> usize {
        self.lock().iter().filter(|c| !c.tx.is_closed()).count()
    }

    pub fn stats(&self) -> &TailStats {
        &self.stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(self, mut events: broadcast::Receiver<Arc<Ingested>>) {
        loop {
            let first = match events.blocking_recv() {
                Ok(b) => b,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.stats.batches_missed.fetch_add(n, Ordering::Relaxed);
                    for c in self.lock().iter_mut() {
                        c.dropped_batches += n;
                    }
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            {
                let mut clients = self.lock();
                clients.retain(|c| !c.tx.is_closed());
                if clients.is_empty() {
                    continue;
                }
            }
            let mut round = vec![first];
            while round.len() < MAX_BATCHES_PER_ROUND {
                match events.try_recv() {
                    Ok(b) => round.push(b),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        self.stats.batches_missed.fetch_add(n, Ordering::Relaxed);
                        for c in self.lock().iter_mut() {
                            c.dropped_batches += n;
                        }
                    }
                    Err(_) => break,
                }
            }
            let lines: Vec<(Lsn, Arc<LogRecord>)> = round
                .iter()
                .flat_map(|b| b.batch.logs.iter().map(|r| (b.lsn, Arc::new(r.clone()))))
                .collect();
            if lines.is_empty() {
                continue;
            }
            if let Err(e) = self.match_round(&lines) {
                tracing::error!(error = %e, "live tail failed to match a batch");
            }
        }
    }

    /// Indexes `lines` in memory and hands each client its matches, in order.
    fn match_round(&self, lines: &[(Lsn, Arc<LogRecord>)]) -> tantivy::Result<()> {
        // A single segment, built on this thread: no writer threads, no merges.
        let mut writer: SingleSegmentIndexWriter = Index::builder()
            .schema(self.schema.schema.clone())
            .tokenizers(fnlens_store::logs::tokenizers())
            .single_segment_index_writer(RamDirectory::create(), ROUND_INDEX_BYTES)?;
        for (i, (_, r)) in lines.iter().enumerate() {
            writer.add_document(self.schema.to_doc(r, i as u64))?;
        }
        let index = writer.finalize()?;
        let searcher = index.reader()?.searcher();
        // Each matched line is rendered once, however many clients get it.
        let rendered: Vec<std::sync::OnceLock<Arc<str>>> = (0..lines.len())
            .map(|_| std::sync::OnceLock::new())
            .collect();
        let mut clients = self.lock();
        clients.retain_mut(|client| {
            let docs = match searcher.search(client.query.query(), &DocSetCollector) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "live tail query failed");
                    return true;
                }
            };
            let mut ids: Vec<u32> = docs.into_iter().map(|a| a.doc_id).collect();
            ids.sort_unstable();
            for id in ids {
                let Some((lsn, line)) = lines.get(id as usize) else {
                    continue;
                };
                if *lsn <= client.after_lsn {
                    continue;
                }
                let before = client.dropped_lines;
                let text = rendered[id as usize].get_or_init(|| (self.render)(line).into());
                let event = TailEvent::Line {
                    record: line.clone(),
                    rendered: text.clone(),
                };
                if !client.offer(event) {
                    return false;
                }
                if client.dropped_lines > before {
                    self.stats.lines_dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.stats.lines_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Tell a client about lost batches even when nothing matched this round.
            client.report_drops().is_ok()
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnlens_model::{Batch, Level, LogSource};

    fn line(message: &str, level: Level) -> LogRecord {
        LogRecord {
            ts_ms: 1_700_000_000_000,
            function: "checkout".into(),
            version: "1".into(),
            request_id: Some("r-1".into()),
            level,
            source: LogSource::Function,
            message: message.into(),
            attributes: Default::default(),
        }
    }

    fn batch(lsn: u64, logs: Vec<LogRecord>) -> Arc<Ingested> {
        Arc::new(Ingested {
            lsn,
            batch: Arc::new(Batch {
                logs,
                ..Batch::default()
            }),
        })
    }

    #[tokio::test]
    async fn clients_get_their_matches_in_order_and_slow_ones_are_told_they_dropped() {
        let (tx, rx) = broadcast::channel(16);
        let hub = TailHub::start(rx, LogSchema::new(), Arc::new(|r| r.message.clone())).unwrap();
        let mut errors = hub.subscribe("level:error", 0).unwrap();
        let mut timeouts = hub.subscribe("timeout", 0).unwrap();
        // Subscribed after batch 1 was published: must not see its "upstream timeout".
        let mut late = hub.subscribe("upstream OR after", 1).unwrap();
        assert!(matches!(
            hub.subscribe("a AND (b", 0),
            Err(QueryError::Syntax { .. })
        ));
        assert_eq!(hub.client_count(), 3);

        tx.send(batch(
            1,
            vec![
                line("upstream timeout", Level::Error),
                line("all good", Level::Info),
                line("second timeout", Level::Warn),
            ],
        ))
        .unwrap();
        let got = |e: Option<TailEvent>| match e {
            Some(TailEvent::Line { record, rendered }) => {
                assert_eq!(*rendered, *record.message);
                record.message.clone()
            }
            other => panic!("expected a line, got {other:?}"),
        };
        assert_eq!(got(errors.recv().await), "upstream timeout");
        assert_eq!(got(timeouts.recv().await), "upstream timeout");
        assert_eq!(got(timeouts.recv().await), "second timeout");

        // Overflow the error client's buffer without reading it.
        let many: Vec<_> = (0..CLIENT_BUFFER + 10)
            .map(|i| line(&format!("boom {i}"), Level::Error))
            .collect();
        tx.send(batch(2, many)).unwrap();
        // Let the hub finish the round before reading, so exactly the buffer's worth fits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while hub.stats().lines_dropped.load(Ordering::Relaxed) < 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "the hub never dropped lines"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        for i in 0..CLIENT_BUFFER {
            assert_eq!(got(errors.recv().await), format!("boom {i}"));
        }
        tx.send(batch(3, vec![line("after", Level::Error)]))
            .unwrap();
        assert_eq!(
            errors.recv().await,
            Some(TailEvent::Dropped {
                lines: 10,
                batches: 0
            })
        );
        assert_eq!(got(errors.recv().await), "after");
        assert_eq!(got(late.recv().await), "after");
        drop(late);
        assert_eq!(hub.stats().lines_dropped.load(Ordering::Relaxed), 10);

        drop(timeouts);
        tx.send(batch(4, vec![line("x", Level::Error)])).unwrap();
        assert_eq!(got(errors.recv().await), "x");
        assert_eq!(hub.client_count(), 1);
    }
}
