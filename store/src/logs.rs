//! The log store: one tantivy index per time partition (`logs/<YYYY-MM-DD>/`).
//!
//! Writes come from a single applier thread ([`LogStore::add`], [`LogStore::commit`]); reads
//! take a [`tantivy::Searcher`] per partition and never block writes. Each commit stores, as
//! its payload, the LSN through which the partition holds every record, so WAL replay adds
//! exactly what a crash lost.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use fnlens_model::{Level, LogRecord, LogSource, PartitionKey, TimeRange};
use tantivy::columnar::ColumnValues;
use tantivy::directory::MmapDirectory;
use tantivy::index::SegmentId;
use tantivy::merge_policy::LogMergePolicy;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer, TokenizerManager};
use tantivy::{
    Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, SegmentReader, TantivyDocument,
};

use crate::StoreError;
use crate::metrics::StoreStats;
use crate::wal::Lsn;

/// The tokenizer of exact, case-insensitive keyword fields (`level`).
pub const KEYWORD_LOWERCASE: &str = "keyword_lowercase";

/// The tokenizers every log index and query parser uses: tantivy's defaults plus
/// [`KEYWORD_LOWERCASE`].
pub fn tokenizers() -> TokenizerManager {
    let manager = TokenizerManager::default();
    manager.register(
        KEYWORD_LOWERCASE,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
    manager
}

/// The tantivy fields of a log record.
#[derive(Debug, Clone)]
pub struct LogSchema {
    pub schema: Schema,
    /// UTC epoch ms; indexed for range queries, fast for sorting and histograms.
    pub ts: Field,
    /// Unique, increasing per record (LSN << 20 | position): the tie-breaker for stable order.
    pub seq: Field,
    pub function: Field,
    pub version: Field,
    pub level: Field,
    pub request_id: Field,
    pub source: Field,
    /// Full text, tokenized and lowercased.
    pub message: Field,
    /// Structured fields, indexed for `attributes.key:value` queries.
    pub attributes: Field,
    /// The attributes as written, returned with hits.
    pub attributes_json: Field,
}

impl LogSchema {
    pub fn new() -> LogSchema {
        let mut b = Schema::builder();
        let ts = b.add_i64_field("ts", INDEXED | FAST | STORED);
        let seq = b.add_u64_field("seq", FAST | STORED);
        let keyword = STRING | STORED | FAST;
        let function = b.add_text_field("function", keyword.clone());
        let version = b.add_text_field("version", keyword.clone());
        // `level:error` and `level:ERROR` both match; the fast column keeps the stored casing.
        let level = b.add_text_field(
            "level",
            TextOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(KEYWORD_LOWERCASE)
                        .set_index_option(IndexRecordOption::Basic),
                )
                .set_stored()
                .set_fast("raw"),
        );
        let request_id = b.add_text_field("request_id", STRING | STORED);
        let source = b.add_text_field("source", keyword);
        let message = b.add_text_field(
            "message",
            TextOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("default")
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions),
                )
                .set_stored(),
        );
        // Attributes keep positions: a value that tokenizes into several terms (a request id,
        // `checkout.payments`, a sentence) is matched as a phrase. They are also fast, which is
        // what numeric range queries (`attributes.duration_ms:>500`) run on.
        let attributes = b.add_json_field(
            "attributes",
            JsonObjectOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("default")
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions),
                )
                .set_fast("raw")
                .set_expand_dots_enabled(),
        );
        let attributes_json = b.add_text_field("attributes_json", STORED);
        LogSchema {
            schema: b.build(),
            ts,
            seq,
            function,
            version,
            level,
            request_id,
            source,
            message,
            attributes,
            attributes_json,
        }
    }

    /// Builds the tantivy document of a record.
    pub fn to_doc(&self, r: &LogRecord, seq: u64) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_i64(self.ts, r.ts_ms);
        doc.add_u64(self.seq, seq);
        doc.add_text(self.function, &r.function);
        doc.add_text(self.version, &r.version);
        doc.add_text(self.level, r.level.as_str());
        if let Some(id) = &r.request_id {
            doc.add_text(self.request_id, id);
        }
        doc.add_text(self.source, r.source.as_str());
        doc.add_text(self.message, &r.message);
        if !r.attributes.is_empty() {
            doc.add_field_value(
                self.attributes,
                &tantivy::schema::OwnedValue::from(r.attributes.clone()),
            );
            if let Ok(json) = serde_json::to_string(&r.attributes) {
                doc.add_text(self.attributes_json, json);
            }
        }
        doc
    }

    /// Reads a record back from its stored fields.
    pub fn from_doc(&self, doc: &TantivyDocument) -> LogRecord {
        let text = |f: Field| {
            doc.get_first(f)
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let attributes = doc
            .get_first(self.attributes_json)
            .and_then(|v| v.as_str())
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        LogRecord {
            ts_ms: doc.get_first(self.ts).and_then(|v| v.as_i64()).unwrap_or(0),
            function: text(self.function),
            version: text(self.version),
            request_id: doc
                .get_first(self.request_id)
                .and_then(|v| v.as_str().map(str::to_owned)),
            level: Level::parse(&text(self.level)).unwrap_or(Level::Info),
            source: match text(self.source).as_str() {
                "extension" => LogSource::Extension,
                "platform" => LogSource::Platform,
                _ => LogSource::Function,
            },
            message: text(self.message),
            attributes,
        }
    }
}

impl Default for LogSchema {
    fn default() -> Self {
        LogSchema::new()
    }
}

/// Tuning of the per-partition index writers.
#[derive(Debug, Clone)]
pub struct LogStoreConfig {
    pub dir: PathBuf,
    pub writer_threads: usize,
    pub writer_memory_bytes: usize,
    /// A partition that received nothing for this long has its writer closed.
    pub writer_idle: Duration,
}

/// Documents per block of [`TsBlocks`].
pub const TS_BLOCK_DOCS: u32 = 2048;

/// The min and max `ts` of each run of [`TS_BLOCK_DOCS`] consecutive documents of a segment.
/// Documents arrive roughly in time order, so the blocks of a segment cover narrow, mostly
/// increasing time spans: a newest-first search visits the newest blocks and stops.
#[derive(Debug)]
pub struct TsBlocks {
    pub bounds: Vec<(i64, i64)>,
}

/// What searches read of every segment, opened once per segment: opening a column decodes its
/// block metadata, which cost more than a whole rare-term search.
pub struct SegmentColumns {
    pub ts: Arc<dyn ColumnValues<i64>>,
    pub seq: Arc<dyn ColumnValues<u64>>,
    pub blocks: TsBlocks,
}

impl SegmentColumns {
    fn open(reader: &SegmentReader) -> tantivy::Result<SegmentColumns> {
        let ff = reader.fast_fields();
        let ts = ff.column_first_or_default::<i64>("ts")?;
        let seq = ff.column_first_or_default::<u64>("seq")?;
        let max_doc = reader.max_doc();
        let mut bounds = Vec::with_capacity(max_doc.div_ceil(TS_BLOCK_DOCS) as usize);
        let mut buf = vec![0i64; TS_BLOCK_DOCS as usize];
        let mut start = 0;
        while start < max_doc {
            let len = TS_BLOCK_DOCS.min(max_doc - start) as usize;
            ts.get_range(u64::from(start), &mut buf[..len]);
            let (lo, hi) = buf[..len]
                .iter()
                .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
            bounds.push((lo, hi));
            start += TS_BLOCK_DOCS;
        }
        Ok(SegmentColumns {
            ts,
            seq,
            blocks: TsBlocks { bounds },
        })
    }
}

/// One time partition of the log store.
pub struct LogPartition {
    pub key: PartitionKey,
    index: Index,
    reader: IndexReader,
    /// Open while the partition receives records; only the applier thread touches it.
    writer: Mutex<Option<IndexWriter>>,
    /// Highest LSN whose records this partition holds durably (the commit payload).
    committed_lsn: AtomicU64,
    /// Highest LSN added since the last commit, 0 if nothing is pending.
    pending_lsn: AtomicU64,
    last_write: Mutex<Instant>,
    /// Per segment, opened on first use (or at the commit that made it); segments are
    /// immutable, so entries never go stale, only unused (pruned when the map outgrows the
    /// live segments).
    columns: Mutex<HashMap<SegmentId, Arc<SegmentColumns>>>,
}

impl LogPartition {
    /// The `ts` and `seq` columns and time blocks of a segment of this partition.
    pub fn columns(&self, reader: &SegmentReader) -> tantivy::Result<Arc<SegmentColumns>> {
        let id = reader.segment_id();
        if let Some(c) = self
            .columns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(c.clone());
        }
        let columns = Arc::new(SegmentColumns::open(reader)?);
        let mut cache = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(id, columns.clone());
        let live = self.reader.searcher().segment_readers().len();
        if cache.len() > 2 * live + 8 {
            let searcher = self.reader.searcher();
            let ids: Vec<SegmentId> = searcher
                .segment_readers()
                .iter()
                .map(|r| r.segment_id())
                .collect();
            cache.retain(|k, _| ids.contains(k) || *k == id);
        }
        Ok(columns)
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    pub fn committed_lsn(&self) -> Lsn {
        self.committed_lsn.load(Ordering::Acquire)
    }

    /// Segments visible to searches now.
    pub fn segment_count(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }
}

/// The partitioned tantivy log store.
pub struct LogStore {
    config: LogStoreConfig,
    schema: LogSchema,
    partitions: RwLock<BTreeMap<PartitionKey, Arc<LogPartition>>>,
    stats: Arc<StoreStats>,
}

fn payload_lsn(index: &Index) -> Result<Lsn, StoreError> {
    let metas = index.load_metas()?;
    Ok(metas
        .payload
        .as_deref()
        .and_then(|p| p.parse::<Lsn>().ok())
        .unwrap_or(0))
}

impl LogStore {
    /// Opens every partition found under `config.dir`.
    pub fn open(config: LogStoreConfig, stats: Arc<StoreStats>) -> Result<LogStore, StoreError> {
        fs::create_dir_all(&config.dir)?;
        let schema = LogSchema::new();
        let mut partitions = BTreeMap::new();
        for entry in fs::read_dir(&config.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(key) = PartitionKey::parse_dir_name(&name.to_string_lossy()) else {
                continue;
            };
            let part = open_partition(&entry.path(), key, &schema)?;
            partitions.insert(key, Arc::new(part));
        }
        Ok(LogStore {
            config,
            schema,
            partitions: RwLock::new(partitions),
            stats,
        })
    }

    pub fn schema(&self) -> &LogSchema {
        &self.schema
    }

    /// The partitions overlapping `range`, newest first.
    pub fn partitions(&self, range: TimeRange) -> Vec<Arc<LogPartition>> {
        let parts = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        parts
            .values()
            .rev()
            .filter(|p| range.overlaps(p.key))
            .cloned()
            .collect()
    }

    pub fn partition_count(&self) -> usize {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Segments over all partitions, as searches see them.
    pub fn segment_count(&self) -> usize {
        self.partitions(TimeRange::all())
            .iter()
            .map(|p| p.segment_count())
            .sum()
    }

    /// The highest committed LSN of any partition.
    pub fn max_committed_lsn(&self) -> Lsn {
        let parts = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        parts.values().map(|p| p.committed_lsn()).max().unwrap_or(0)
    }

    fn partition_for_write(&self, key: PartitionKey) -> Result<Arc<LogPartition>, StoreError> {
        if let Some(p) = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let mut parts = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = parts.get(&key) {
            return Ok(p.clone());
        }
        let dir = self.config.dir.join(key.dir_name());
        fs::create_dir_all(&dir)?;
        let part = Arc::new(open_partition(&dir, key, &self.schema)?);
        parts.insert(key, part.clone());
        Ok(part)
    }

    /// Adds the records of WAL record `lsn`. With `replay`, partitions that already hold `lsn`
    /// durably are skipped, which makes replay idempotent.
    pub fn add(&self, lsn: Lsn, records: &[LogRecord], replay: bool) -> Result<(), StoreError> {
        let mut current: Option<(PartitionKey, Arc<LogPartition>)> = None;
        for (i, r) in records.iter().enumerate() {
            let key = PartitionKey::for_ts(r.ts_ms);
            let part = match &current {
                Some((k, p)) if *k == key => p.clone(),
                _ => {
                    let p = self.partition_for_write(key)?;
                    current = Some((key, p.clone()));
                    p
                }
            };
            if replay && part.committed_lsn() >= lsn {
                continue;
            }
            let mut writer = part.writer.lock().unwrap_or_else(|e| e.into_inner());
            if writer.is_none() {
                *writer = Some(self.new_writer(&part.index)?);
            }
            let w = writer.as_ref().expect("writer was just opened");
            w.add_document(self.schema.to_doc(r, (lsn << 20) | (i as u64 & 0xF_FFFF)))?;
            part.pending_lsn.store(lsn, Ordering::Release);
            *part.last_write.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
        self.stats
            .log_docs
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn new_writer(&self, index: &Index) -> Result<IndexWriter, StoreError> {
        let writer: IndexWriter = index.writer_with_num_threads(
            self.config.writer_threads.max(1),
            self.config.writer_memory_bytes,
        )?;
        // Commits every half second make many small segments. The log policy merges them by
        // size tiers (8 at a time), which bounds the segment count at O(log n) without
        // rewriting each document more than a few times; segments stop merging at 5M docs.
        let mut policy = LogMergePolicy::default();
        policy.set_max_docs_before_merge(5_000_000);
        writer.set_merge_policy(Box::new(policy));
        Ok(writer)
    }

    /// Commits every partition with pending records, recording `through` (the LSN through which
    /// every record has been added) as the commit payload, and reloads their readers. Closes the
    /// writers of partitions idle for longer than the configured time.
    pub fn commit(&self, through: Lsn) -> Result<usize, StoreError> {
        let parts: Vec<_> = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut committed = 0;
        for part in parts {
            let mut guard = part.writer.lock().unwrap_or_else(|e| e.into_inner());
            if part.pending_lsn.load(Ordering::Acquire) != 0 {
                let Some(writer) = guard.as_mut() else {
                    continue;
                };
                let start = Instant::now();
                let mut prepared = writer.prepare_commit()?;
                prepared.set_payload(&through.to_string());
                prepared.commit()?;
                part.reader.reload()?;
                // New segments get their columns opened now, not on the first search.
                for reader in part.reader.searcher().segment_readers() {
                    part.columns(reader)?;
                }
                part.committed_lsn.store(through, Ordering::Release);
                part.pending_lsn.store(0, Ordering::Release);
                self.stats.log_commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .log_commit_seconds
                    .observe(start.elapsed().as_secs_f64());
                committed += 1;
            } else if guard.is_some() {
                // Nothing pending: the partition is durable through `through` as well.
                part.committed_lsn.fetch_max(through, Ordering::AcqRel);
                let idle = part
                    .last_write
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .elapsed();
                if idle > self.config.writer_idle
                    && let Some(w) = guard.take()
                {
                    w.wait_merging_threads()?;
                    tracing::debug!(partition = %part.key.dir_name(), "closed idle log writer");
                }
            }
        }
        Ok(committed)
    }

    /// Closes every writer after a final commit (shutdown).
    pub fn close(&self, through: Lsn) -> Result<(), StoreError> {
        self.commit(through)?;
        let parts: Vec<_> = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for part in parts {
            let writer = part.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = writer {
                w.wait_merging_threads()?;
            }
        }
        Ok(())
    }

    /// Drops every partition that ends at or before `cutoff_ms`. Returns the dropped keys.
    pub fn drop_partitions_before(&self, cutoff_ms: i64) -> Result<Vec<PartitionKey>, StoreError> {
        let doomed: Vec<Arc<LogPartition>> = {
            let mut parts = self.partitions.write().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<_> = parts
                .keys()
                .filter(|k| k.end_ms() <= cutoff_ms)
                .copied()
                .collect();
            keys.iter().filter_map(|k| parts.remove(k)).collect()
        };
        let mut dropped = Vec::new();
        for part in doomed {
            if let Some(w) = part.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
                drop(w);
            }
            fs::remove_dir_all(self.config.dir.join(part.key.dir_name()))?;
            dropped.push(part.key);
        }
        Ok(dropped)
    }
}

fn open_partition(
    dir: &Path,
    key: PartitionKey,
    schema: &LogSchema,
) -> Result<LogPartition, StoreError> {
    let directory = MmapDirectory::open(dir)?;
    let mut index = if Index::exists(&directory).map_err(tantivy::TantivyError::from)? {
        // A partition written by an earlier version keeps the schema it was created with: the
        // same fields in the same order, perhaps with other index options (attributes gained
        // positions). Each partition's own schema governs how it is searched.
        let index = Index::open(directory)?;
        let names = |s: &tantivy::schema::Schema| {
            s.fields()
                .map(|(_, entry)| entry.name().to_owned())
                .collect::<Vec<_>>()
        };
        if names(&index.schema()) != names(&schema.schema) {
            return Err(StoreError::Corrupt(format!(
                "{}: the log index has fields {:?}, expected {:?}",
                dir.display(),
                names(&index.schema()),
                names(&schema.schema)
            )));
        }
        index
    } else {
        Index::create(directory, schema.schema.clone(), Default::default())?
    };
    index.set_tokenizers(tokenizers());
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    let committed = payload_lsn(&index)?;
    Ok(LogPartition {
        key,
        index,
        reader,
        writer: Mutex::new(None),
        committed_lsn: AtomicU64::new(committed),
        pending_lsn: AtomicU64::new(0),
        last_write: Mutex::new(Instant::now()),
        columns: Mutex::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::Term;
    use tantivy::collector::Count;
    use tantivy::query::AllQuery;

    fn record(ts_ms: i64, message: &str) -> LogRecord {
        LogRecord {
            ts_ms,
            function: "f".into(),
            version: "$LATEST".into(),
            request_id: Some("r1".into()),
            level: Level::Error,
            source: LogSource::Function,
            message: message.into(),
            attributes: serde_json::json!({"user": {"id": 42}})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    fn store(dir: &Path) -> LogStore {
        LogStore::open(
            LogStoreConfig {
                dir: dir.to_path_buf(),
                writer_threads: 1,
                writer_memory_bytes: 15_000_000,
                writer_idle: Duration::from_secs(60),
            },
            Arc::new(StoreStats::default()),
        )
        .unwrap()
    }

    fn count(store: &LogStore) -> usize {
        store
            .partitions(TimeRange::all())
            .iter()
            .map(|p| p.searcher().search(&AllQuery, &Count).unwrap())
            .sum()
    }

    #[test]
    fn records_round_trip_and_replay_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        {
            let s = store(dir.path());
            s.add(1, &[record(day, "a"), record(2 * day, "b")], false)
                .unwrap();
            s.commit(1).unwrap();
            s.add(2, &[record(2 * day + 5, "c")], false).unwrap();
            // Crash: record 2 never committed.
        }
        let s = store(dir.path());
        assert_eq!(s.partition_count(), 2);
        assert_eq!(count(&s), 2);
        // Replay both records: only the lost one is added again.
        s.add(1, &[record(day, "a"), record(2 * day, "b")], true)
            .unwrap();
        s.add(2, &[record(2 * day + 5, "c")], true).unwrap();
        s.commit(2).unwrap();
        assert_eq!(count(&s), 3);
        assert_eq!(s.max_committed_lsn(), 2);

        let parts = s.partitions(TimeRange::new(0, day + 1).unwrap());
        assert_eq!(parts.len(), 1);
        let searcher = parts[0].searcher();
        let top = searcher
            .search(
                &AllQuery,
                &tantivy::collector::TopDocs::with_limit(1).order_by_score(),
            )
            .unwrap();
        let doc: TantivyDocument = searcher.doc(top[0].1).unwrap();
        assert_eq!(s.schema().from_doc(&doc), record(day, "a"));
    }

    #[test]
    fn merging_bounds_the_segment_count_under_steady_commits() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        let s = store(dir.path());
        // A commit per tick, as the applier does: 300 tiny segments without merging.
        for lsn in 1..=300u64 {
            let records: Vec<_> = (0..5)
                .map(|i| record(day + lsn as i64 * 10 + i, "tick"))
                .collect();
            s.add(lsn, &records, false).unwrap();
            s.commit(lsn).unwrap();
        }
        s.close(300).unwrap();
        let s = store(dir.path());
        assert_eq!(count(&s), 1500);
        let segments = s.segment_count();
        assert!(segments <= 16, "{segments} segments after 300 commits");
    }

    #[test]
    fn level_matches_in_any_case() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.add(1, &[record(5, "x")], false).unwrap();
        s.commit(1).unwrap();
        let searcher = s.partitions(TimeRange::all())[0].searcher();
        for level in ["ERROR", "error", "Error"] {
            let q = tantivy::query::TermQuery::new(
                Term::from_field_text(s.schema().level, &level.to_lowercase()),
                IndexRecordOption::Basic,
            );
            assert_eq!(searcher.search(&q, &Count).unwrap(), 1, "{level}");
        }
    }

    #[test]
    fn retention_drops_whole_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        let s = store(dir.path());
        s.add(1, &[record(day, "old"), record(3 * day, "new")], false)
            .unwrap();
        s.commit(1).unwrap();
        let dropped = s.drop_partitions_before(2 * day).unwrap();
        assert_eq!(dropped, vec![PartitionKey::for_ts(day)]);
        assert_eq!(count(&s), 1);
        assert!(
            !dir.path()
                .join(PartitionKey::for_ts(day).dir_name())
                .exists()
        );
    }
}
