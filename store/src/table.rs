//! A columnar table: an in-memory Arrow buffer in front of Parquet files partitioned by day
//! (`<table>/<YYYY-MM-DD>/<prefix>-<lsn>.parquet`). The invocations and metrics tables are two
//! of them, with their own schemas; column 0 of every schema is `ts`.
//!
//! The applier appends to the *active* buffer. A flush *freezes* it (it stays readable) and a
//! flusher thread writes it out, one file per partition, sorted by `ts`. Only after every file of
//! a flush is durable does the checkpoint (`<table>/CHECKPOINT`, the LSN the files hold
//! everything through) move; files above the checkpoint are leftovers of an interrupted flush and
//! are deleted at open, since WAL replay writes their rows again.
//!
//! Compaction merges runs of small files of a partition into one file named after the LSN range
//! it covers (`<prefix>-<low>-<high>.parquet`). The merged file is durable before its inputs
//! leave the table, and a file whose range lies inside another's is a leftover input, deleted at
//! open; so a crash at any point leaves every row exactly once. Inputs are deleted after a grace
//! period, so that queries planned on the old file list can finish reading them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, TimestampMillisecondArray};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use fnlens_model::{PartitionKey, TimeRange};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::StoreError;
use crate::metrics::StoreStats;
use crate::wal::{Lsn, sync_dir};

const CHECKPOINT: &str = "CHECKPOINT";
/// Rows per Parquet row group: small enough for `ts` pruning inside a day, large enough to scan fast.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Files of at least this many rows are left alone by compaction.
const COMPACT_TARGET_ROWS: usize = 1 << 20;
/// A partition is compacted once it has this many small files in a row (two, once the day is over).
const COMPACT_MIN_FILES: usize = 4;
/// How long replaced files stay on disk for the queries that already listed them.
pub const OBSOLETE_GRACE: Duration = Duration::from_secs(120);

/// What distinguishes one table from another.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// The table's name, used in logs.
    pub name: &'static str,
    /// The Arrow schema; column 0 is `ts`, a millisecond timestamp.
    pub schema: SchemaRef,
    /// File name prefix (`inv`, `met`).
    pub prefix: &'static str,
}

impl TableSpec {
    pub fn invocations() -> TableSpec {
        TableSpec {
            name: "invocations",
            schema: fnlens_model::invocations_schema(),
            prefix: "inv",
        }
    }

    pub fn metrics() -> TableSpec {
        TableSpec {
            name: "metrics",
            schema: fnlens_model::metrics_schema(),
            prefix: "met",
        }
    }
}

/// One Parquet file of a table.
#[derive(Debug, Clone)]
pub struct ParquetFile {
    pub path: PathBuf,
    pub partition: PartitionKey,
    pub rows: usize,
    pub bytes: u64,
    /// The WAL records whose rows this file holds lie in `lsn_low..=lsn_high` (for a flush,
    /// the two are equal: the flush's checkpoint).
    pub lsn_low: Lsn,
    pub lsn_high: Lsn,
}

impl ParquetFile {
    /// Whether `other` is a leftover input of the compaction that wrote `self`.
    fn supersedes(&self, other: &ParquetFile) -> bool {
        self.lsn_low <= other.lsn_low
            && other.lsn_high <= self.lsn_high
            && (self.lsn_low, self.lsn_high) != (other.lsn_low, other.lsn_high)
    }
}

/// Parses `<prefix>-<high>.parquet` or `<prefix>-<low>-<high>.parquet`.
fn parse_file_name(prefix: &str, name: &str) -> Option<(Lsn, Lsn)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let rest = rest.strip_suffix(".parquet")?;
    match rest.split_once('-') {
        None => {
            let high = rest.parse().ok()?;
            Some((high, high))
        }
        Some((low, high)) => Some((low.parse().ok()?, high.parse().ok()?)),
    }
}

/// A frozen buffer on its way to Parquet.
#[derive(Debug)]
pub struct Frozen {
    batches: Vec<RecordBatch>,
    /// Highest LSN whose rows are in this buffer (and all earlier ones).
    through: Lsn,
}

#[derive(Debug, Default)]
struct State {
    active: Vec<RecordBatch>,
    active_rows: usize,
    /// Highest LSN appended to the active buffer.
    active_through: Lsn,
    /// `active[..coalesced]` are already merged; the rest are one small batch per request.
    coalesced: usize,
    frozen: Vec<Arc<Frozen>>,
    files: BTreeMap<PartitionKey, Vec<ParquetFile>>,
}

/// What a reader sees at one moment: the buffered rows and the files.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub schema: SchemaRef,
    pub buffered: Vec<RecordBatch>,
    pub files: Vec<ParquetFile>,
}

/// A table of the data directory.
pub struct TableStore {
    spec: TableSpec,
    dir: PathBuf,
    state: RwLock<State>,
    /// Every row at or below this LSN is in a durable Parquet file.
    checkpoint: AtomicU64,
    /// Files replaced by compaction, deleted once the grace period is over.
    obsolete: Mutex<Vec<(Instant, PathBuf)>>,
    stats: Arc<StoreStats>,
}

impl std::fmt::Debug for TableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableStore")
            .field("name", &self.spec.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl TableStore {
    pub fn open(
        spec: TableSpec,
        dir: PathBuf,
        stats: Arc<StoreStats>,
    ) -> Result<TableStore, StoreError> {
        fs::create_dir_all(&dir)?;
        let checkpoint = match fs::read_to_string(dir.join(CHECKPOINT)) {
            Ok(s) => s.trim().parse::<Lsn>().map_err(|_| {
                StoreError::Corrupt(format!("bad {} checkpoint {:?}", spec.name, s.trim()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        let mut files: BTreeMap<PartitionKey, Vec<ParquetFile>> = BTreeMap::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let Some(key) = PartitionKey::parse_dir_name(&entry.file_name().to_string_lossy())
            else {
                continue;
            };
            let mut list = Vec::new();
            for f in fs::read_dir(entry.path())? {
                let f = f?;
                let name = f.file_name().to_string_lossy().into_owned();
                match parse_file_name(spec.prefix, &name) {
                    Some((low, high)) if high <= checkpoint => {
                        let meta = f.metadata()?;
                        list.push(ParquetFile {
                            rows: parquet_rows(&f.path())?,
                            path: f.path(),
                            partition: key,
                            bytes: meta.len(),
                            lsn_low: low,
                            lsn_high: high,
                        });
                    }
                    _ => {
                        tracing::info!(file = %f.path().display(), "removing unfinished parquet file");
                        fs::remove_file(f.path())?;
                    }
                }
            }
            // Inputs of a compaction that finished but had not deleted them yet.
            let (keep, leftovers): (Vec<_>, Vec<_>) = list
                .iter()
                .cloned()
                .partition(|f| !list.iter().any(|g| g.supersedes(f)));
            for f in leftovers {
                tracing::info!(file = %f.path.display(), "removing a compacted parquet file");
                fs::remove_file(&f.path)?;
            }
            if !keep.is_empty() {
                files.insert(key, keep);
            }
        }
        for list in files.values_mut() {
            list.sort_by_key(|f| (f.lsn_low, f.lsn_high));
        }
        Ok(TableStore {
            spec,
            dir,
            state: RwLock::new(State {
                files,
                ..State::default()
            }),
            checkpoint: AtomicU64::new(checkpoint),
            obsolete: Mutex::new(Vec::new()),
            stats,
        })
    }

    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// The LSN through which every row is in Parquet.
    pub fn checkpoint(&self) -> Lsn {
        self.checkpoint.load(Ordering::Acquire)
    }

    /// Appends the rows of WAL record `lsn` to the active buffer. With `replay`, records
    /// already in Parquet are skipped.
    pub fn append(&self, lsn: Lsn, batch: RecordBatch, replay: bool) -> Result<(), StoreError> {
        if batch.num_rows() == 0 || (replay && lsn <= self.checkpoint()) {
            return Ok(());
        }
        if batch.schema() != self.spec.schema {
            return Err(StoreError::Corrupt(format!(
                "a batch for {} has another schema",
                self.spec.name
            )));
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.active_rows += batch.num_rows();
        state.active.push(batch);
        state.active_through = lsn;
        Ok(())
    }

    /// Merges the batches appended since the last call into one, so that readers scan a few
    /// large batches rather than one small batch per request. Call it from the thread that
    /// appends (the applier): the merge runs outside the lock because nothing else changes
    /// `active` meanwhile.
    pub fn coalesce(&self) -> Result<(), StoreError> {
        let (start, tail) = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            (state.coalesced, state.active[state.coalesced..].to_vec())
        };
        if tail.len() < 2 {
            return Ok(());
        }
        let merged = concat_batches(&self.spec.schema, &tail)?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.coalesced != start || state.active.len() != start + tail.len() {
            // The buffer changed under us (frozen meanwhile): leave it as it is.
            return Ok(());
        }
        state.active.truncate(start);
        state.active.push(merged);
        state.coalesced = state.active.len();
        Ok(())
    }

    /// Rows in the active buffer.
    pub fn active_rows(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .active_rows
    }

    /// Whether rows are buffered or being flushed.
    pub fn has_unflushed(&self) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.active_rows > 0 || !state.frozen.is_empty()
    }

    /// Freezes the active buffer for flushing. It stays visible to readers until its files are in.
    pub fn freeze(&self) -> Option<Arc<Frozen>> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.active.is_empty() {
            return None;
        }
        let frozen = Arc::new(Frozen {
            batches: std::mem::take(&mut state.active),
            through: state.active_through,
        });
        state.active_rows = 0;
        state.coalesced = 0;
        state.frozen.push(frozen.clone());
        Some(frozen)
    }

    /// Writes a frozen buffer to Parquet (one file per partition, sorted by `ts`), moves the
    /// checkpoint, and swaps the buffer for the files in what readers see.
    pub fn write_frozen(&self, frozen: &Arc<Frozen>) -> Result<(), StoreError> {
        let all = concat_batches(&self.spec.schema, &frozen.batches)?;
        let mut written = Vec::new();
        for (key, part) in split_by_partition(&all)? {
            let dir = self.dir.join(key.dir_name());
            fs::create_dir_all(&dir)?;
            let path = dir.join(format!(
                "{}-{:020}.parquet",
                self.spec.prefix, frozen.through
            ));
            let bytes = write_parquet_atomically(&path, std::slice::from_ref(&part))?;
            written.push(ParquetFile {
                path,
                partition: key,
                rows: part.num_rows(),
                bytes,
                lsn_low: frozen.through,
                lsn_high: frozen.through,
            });
        }
        sync_dir(&self.dir)?;
        // The checkpoint moves only once every file is durable.
        let tmp = self.dir.join("CHECKPOINT.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(frozen.through.to_string().as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(CHECKPOINT))?;
        sync_dir(&self.dir)?;

        let rows: usize = written.iter().map(|f| f.rows).sum();
        let bytes: u64 = written.iter().map(|f| f.bytes).sum();
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            state.frozen.retain(|f| !Arc::ptr_eq(f, frozen));
            for f in written {
                state.files.entry(f.partition).or_default().push(f);
            }
        }
        self.checkpoint.fetch_max(frozen.through, Ordering::AcqRel);
        self.stats.parquet_flushes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .parquet_rows
            .fetch_add(rows as u64, Ordering::Relaxed);
        self.stats.parquet_bytes.fetch_add(bytes, Ordering::Relaxed);
        tracing::debug!(
            table = self.spec.name,
            rows,
            bytes,
            through = frozen.through,
            "flushed"
        );
        Ok(())
    }

    /// Writes rows straight to Parquet files (sorted, partitioned), for bulk loads. The caller
    /// must be the only writer and `through` must be above the current checkpoint.
    pub fn bulk_load(&self, through: Lsn, batches: Vec<RecordBatch>) -> Result<(), StoreError> {
        if batches.is_empty() {
            return Ok(());
        }
        let frozen = Arc::new(Frozen { batches, through });
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .frozen
            .push(frozen.clone());
        self.write_frozen(&frozen)
    }

    /// Compacts the first partition that needs it; returns how many files were merged (0 when
    /// nothing needed it). Call it from one thread at a time (the flusher).
    pub fn compact_once(&self, now_ms: i64) -> Result<usize, StoreError> {
        let Some((key, inputs)) = self.pick_compaction(now_ms) else {
            return Ok(0);
        };
        let started = Instant::now();
        let mut batches = Vec::new();
        for f in &inputs {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&f.path)?)?
                .with_batch_size(64 * 1024)
                .build()?;
            for b in reader {
                batches.push(to_schema(&b?, &self.spec.schema)?);
            }
        }
        let all = concat_batches(&self.spec.schema, &batches)?;
        drop(batches);
        let sorted = sort_by_ts(&all)?;
        drop(all);
        let low = inputs.iter().map(|f| f.lsn_low).min().unwrap_or(0);
        let high = inputs.iter().map(|f| f.lsn_high).max().unwrap_or(0);
        let dir = self.dir.join(key.dir_name());
        let path = dir.join(format!("{}-{low:020}-{high:020}.parquet", self.spec.prefix));
        let bytes = write_parquet_atomically(&path, std::slice::from_ref(&sorted))?;
        let merged = ParquetFile {
            path: path.clone(),
            partition: key,
            rows: sorted.num_rows(),
            bytes,
            lsn_low: low,
            lsn_high: high,
        };
        let replaced = {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            match state.files.get_mut(&key) {
                Some(list) if inputs.iter().all(|i| list.iter().any(|f| f.path == i.path)) => {
                    list.retain(|f| !merged.supersedes(f));
                    list.push(merged);
                    list.sort_by_key(|f| (f.lsn_low, f.lsn_high));
                    true
                }
                // Retention dropped the partition meanwhile.
                _ => false,
            }
        };
        if !replaced {
            let _ = fs::remove_file(&path);
            return Ok(0);
        }
        let mut obsolete = self.obsolete.lock().unwrap_or_else(|e| e.into_inner());
        obsolete.extend(inputs.iter().map(|f| (Instant::now(), f.path.clone())));
        self.stats
            .parquet_compactions
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            table = self.spec.name,
            partition = %key.dir_name(),
            files = inputs.len(),
            rows = sorted.num_rows(),
            took_ms = started.elapsed().as_millis() as u64,
            "compacted"
        );
        Ok(inputs.len())
    }

    /// The longest run of consecutive small files in a partition, when long enough.
    fn pick_compaction(&self, now_ms: i64) -> Option<(PartitionKey, Vec<ParquetFile>)> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        for (key, list) in &state.files {
            // A finished day is compacted down fully; the current one in runs.
            let min_files = if key.end_ms() + 3_600_000 < now_ms {
                2
            } else {
                COMPACT_MIN_FILES
            };
            let mut run: Vec<ParquetFile> = Vec::new();
            let mut rows = 0;
            for f in list.iter().chain(std::iter::once(&sentinel())) {
                // The sentinel ends the last run: it is never small.
                let small = f.rows < COMPACT_TARGET_ROWS;
                if small && rows + f.rows <= 2 * COMPACT_TARGET_ROWS {
                    rows += f.rows;
                    run.push(f.clone());
                    continue;
                }
                if run.len() >= min_files {
                    return Some((*key, run));
                }
                run.clear();
                rows = 0;
                if small {
                    rows = f.rows;
                    run.push(f.clone());
                }
            }
        }
        None
    }

    /// Deletes the replaced files whose grace period is over.
    pub fn purge_obsolete(&self, grace: Duration) {
        let mut obsolete = self.obsolete.lock().unwrap_or_else(|e| e.into_inner());
        obsolete.retain(|(since, path)| {
            if since.elapsed() < grace {
                return true;
            }
            match fs::remove_file(path) {
                Ok(()) => false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "could not delete a compacted file");
                    true
                }
            }
        });
    }

    /// The buffered rows and the Parquet files of the partitions overlapping `range`.
    pub fn snapshot(&self, range: TimeRange) -> TableSnapshot {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut buffered: Vec<RecordBatch> = state.active.clone();
        for f in &state.frozen {
            buffered.extend(f.batches.iter().cloned());
        }
        let files = state
            .files
            .iter()
            .filter(|(k, _)| range.overlaps(**k))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        TableSnapshot {
            schema: self.spec.schema.clone(),
            buffered,
            files,
        }
    }

    pub fn partition_count(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .files
            .len()
    }

    pub fn file_count(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .files
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Drops every partition that ends at or before `cutoff_ms`.
    pub fn drop_partitions_before(&self, cutoff_ms: i64) -> Result<Vec<PartitionKey>, StoreError> {
        let doomed: Vec<PartitionKey> = {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<_> = state
                .files
                .keys()
                .filter(|k| k.end_ms() <= cutoff_ms)
                .copied()
                .collect();
            for k in &keys {
                state.files.remove(k);
            }
            keys
        };
        for k in &doomed {
            fs::remove_dir_all(self.dir.join(k.dir_name()))?;
        }
        Ok(doomed)
    }
}

/// Ends the run scan in [`TableStore::pick_compaction`].
fn sentinel() -> ParquetFile {
    ParquetFile {
        path: PathBuf::new(),
        partition: PartitionKey::for_ts(0),
        rows: usize::MAX,
        bytes: 0,
        lsn_low: 0,
        lsn_high: 0,
    }
}

fn parquet_rows(path: &Path) -> Result<usize, StoreError> {
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(File::open(path)?)?;
    use parquet::file::reader::FileReader;
    Ok(reader.metadata().file_metadata().num_rows() as usize)
}

fn ts_column(batch: &RecordBatch) -> Result<&TimestampMillisecondArray, StoreError> {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| StoreError::Corrupt("column 0 is not a millisecond timestamp".into()))
}

fn sort_by_ts(batch: &RecordBatch) -> Result<RecordBatch, StoreError> {
    let indices = sort_to_indices(batch.column(0), None, None)?;
    Ok(take_record_batch(batch, &indices)?)
}

/// Splits rows by day partition, each part sorted by `ts`.
fn split_by_partition(batch: &RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, StoreError> {
    let sorted = sort_by_ts(batch)?;
    let ts = ts_column(&sorted)?;
    let mut parts = Vec::new();
    let mut start = 0;
    while start < ts.len() {
        let key = PartitionKey::for_ts(ts.value(start));
        let mut end = start;
        while end < ts.len() && ts.value(end) < key.end_ms() {
            end += 1;
        }
        parts.push((key, sorted.slice(start, end - start)));
        start = end;
    }
    Ok(parts)
}

/// Writes `batches` to `path` through a temporary file, durably: data, rename, directory.
fn write_parquet_atomically(path: &Path, batches: &[RecordBatch]) -> Result<u64, StoreError> {
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props))?;
    for b in batches {
        writer.write(b)?;
    }
    let file = writer.into_inner()?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(bytes)
}

/// A batch read from a file written by an earlier version, in the current schema: columns
/// found by name, columns added since (all nullable) filled with nulls.
fn to_schema(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, StoreError> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(c.clone()),
            Some(c) => Ok(arrow::compute::cast(c, field.data_type())?),
            None if field.is_nullable() => Ok(arrow::array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            )),
            None => Err(StoreError::Corrupt(format!(
                "a Parquet file lacks the required column {}",
                field.name()
            ))),
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnlens_model::{Invocation, Status, invocations_to_record_batch};

    fn open(dir: &Path) -> TableStore {
        TableStore::open(TableSpec::invocations(), dir.to_path_buf(), Arc::default()).unwrap()
    }

    fn batch(rows: &[Invocation]) -> RecordBatch {
        invocations_to_record_batch(rows).unwrap()
    }

    fn inv(ts_ms: i64) -> Invocation {
        Invocation {
            ts_ms,
            end_ts_ms: ts_ms + 10,
            function: "f".into(),
            version: "1".into(),
            request_id: format!("r{ts_ms}"),
            status: Status::Success,
            error_type: None,
            duration_ms: 10.0,
            billed_duration_ms: 10.0,
            memory_size_mb: 128,
            max_memory_used_mb: 60,
            init_duration_ms: None,
            cold_start: false,
            init_status: None,
            instance: None,
            region: None,
        }
    }

    fn rows(snapshot: &TableSnapshot) -> usize {
        snapshot
            .buffered
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>()
            + snapshot.files.iter().map(|f| f.rows).sum::<usize>()
    }

    #[test]
    fn flush_moves_rows_to_partitioned_files() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        let store = open(dir.path());
        store
            .append(1, batch(&[inv(day + 5), inv(2 * day), inv(day + 1)]), false)
            .unwrap();
        assert_eq!(rows(&store.snapshot(TimeRange::all())), 3);
        let frozen = store.freeze().unwrap();
        assert_eq!(rows(&store.snapshot(TimeRange::all())), 3);
        store.write_frozen(&frozen).unwrap();
        let snap = store.snapshot(TimeRange::all());
        assert!(snap.buffered.is_empty());
        assert_eq!(snap.files.len(), 2);
        assert_eq!(rows(&snap), 3);
        assert_eq!(store.checkpoint(), 1);
        // Only the first day overlaps this range.
        assert_eq!(
            store
                .snapshot(TimeRange::new(day, day + 10).unwrap())
                .files
                .len(),
            1
        );

        drop(store);
        let store = open(dir.path());
        assert_eq!(store.checkpoint(), 1);
        assert_eq!(rows(&store.snapshot(TimeRange::all())), 3);
        // Replaying a flushed record adds nothing.
        store.append(1, batch(&[inv(day + 5)]), true).unwrap();
        assert_eq!(store.active_rows(), 0);
    }

    #[test]
    fn coalesce_merges_small_batches_without_losing_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        for lsn in 1..=3 {
            store
                .append(lsn, batch(&[inv(lsn as i64), inv(10 + lsn as i64)]), false)
                .unwrap();
        }
        store.coalesce().unwrap();
        let snap = store.snapshot(TimeRange::all());
        assert_eq!(snap.buffered.len(), 1);
        assert_eq!(rows(&snap), 6);
        store.append(4, batch(&[inv(4)]), false).unwrap();
        store.append(5, batch(&[inv(5)]), false).unwrap();
        store.coalesce().unwrap();
        let snap = store.snapshot(TimeRange::all());
        assert_eq!(
            snap.buffered.len(),
            2,
            "the merged prefix is not merged again"
        );
        assert_eq!(rows(&snap), 8);
        let frozen = store.freeze().unwrap();
        store.write_frozen(&frozen).unwrap();
        assert_eq!(rows(&store.snapshot(TimeRange::all())), 8);
    }

    #[test]
    fn files_past_the_checkpoint_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append(7, batch(&[inv(5)]), false).unwrap();
        let frozen = store.freeze().unwrap();
        store.write_frozen(&frozen).unwrap();
        // Simulate a flush interrupted before its checkpoint.
        fs::write(dir.path().join(CHECKPOINT), "3").unwrap();
        let store = open(dir.path());
        assert_eq!(store.snapshot(TimeRange::all()).files.len(), 0);
    }

    fn all_ts(store: &TableStore) -> Vec<i64> {
        let snap = store.snapshot(TimeRange::all());
        let mut out = Vec::new();
        for f in &snap.files {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&f.path).unwrap())
                .unwrap()
                .build()
                .unwrap();
            for b in reader {
                out.extend(ts_column(&b.unwrap()).unwrap().values().iter().copied());
            }
        }
        out
    }

    #[test]
    fn compaction_merges_small_files_and_survives_a_crash_at_any_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let day = 86_400_000;
        // Six flushes into the same (long finished) day, out of time order.
        for lsn in 1..=6 {
            let t = day + (7 - lsn as i64) * 1000;
            store
                .append(lsn, batch(&[inv(t), inv(t + 1), inv(t + 500)]), false)
                .unwrap();
            let frozen = store.freeze().unwrap();
            store.write_frozen(&frozen).unwrap();
        }
        assert_eq!(store.file_count(), 6);
        let now = 10 * day;
        assert_eq!(store.compact_once(now).unwrap(), 6);
        assert_eq!(store.compact_once(now).unwrap(), 0, "nothing left to merge");
        assert_eq!(store.file_count(), 1);
        let merged = store.snapshot(TimeRange::all()).files[0].clone();
        assert_eq!((merged.lsn_low, merged.lsn_high, merged.rows), (1, 6, 18));
        let ts = all_ts(&store);
        assert_eq!(ts.len(), 18);
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "the merged file is sorted"
        );

        // The inputs stay on disk through the grace period, for queries that listed them.
        let part_dir = merged.path.parent().unwrap().to_path_buf();
        let on_disk = || fs::read_dir(&part_dir).unwrap().count();
        assert_eq!(on_disk(), 7);
        // A crash now: the reopened store keeps the merged file only, and deletes the inputs.
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.file_count(), 1);
        assert_eq!(on_disk(), 1);
        assert_eq!(all_ts(&store).len(), 18);

        // A crash while the merged file was being written leaves a temporary file: removed.
        fs::write(
            part_dir.join("inv-00000000000000000001-00000000000000000009.parquet.tmp"),
            b"x",
        )
        .unwrap();
        drop(store);
        let store = open(dir.path());
        assert_eq!(on_disk(), 1);

        // More flushes, compaction, and the grace period passing.
        store.append(7, batch(&[inv(day + 9)]), false).unwrap();
        let frozen = store.freeze().unwrap();
        store.write_frozen(&frozen).unwrap();
        store.append(8, batch(&[inv(day + 10)]), false).unwrap();
        let frozen = store.freeze().unwrap();
        store.write_frozen(&frozen).unwrap();
        assert_eq!(store.compact_once(now).unwrap(), 3);
        store.purge_obsolete(Duration::ZERO);
        assert_eq!(on_disk(), 1);
        assert_eq!(all_ts(&store).len(), 20);
        assert_eq!(store.snapshot(TimeRange::all()).files[0].lsn_low, 1);
        assert_eq!(store.snapshot(TimeRange::all()).files[0].lsn_high, 8);
    }

    #[test]
    fn the_current_day_is_compacted_in_runs_of_four() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let day = 86_400_000;
        for lsn in 1..=3 {
            store
                .append(lsn, batch(&[inv(day + lsn as i64)]), false)
                .unwrap();
            let frozen = store.freeze().unwrap();
            store.write_frozen(&frozen).unwrap();
        }
        let now = day + 1000;
        assert_eq!(store.compact_once(now).unwrap(), 0);
        store.append(4, batch(&[inv(day + 4)]), false).unwrap();
        let frozen = store.freeze().unwrap();
        store.write_frozen(&frozen).unwrap();
        assert_eq!(store.compact_once(now).unwrap(), 4);
        assert_eq!(store.file_count(), 1);
    }

    #[test]
    fn file_names_carry_their_lsn_range() {
        assert_eq!(
            parse_file_name("inv", "inv-00000000000000000042.parquet"),
            Some((42, 42))
        );
        assert_eq!(
            parse_file_name(
                "inv",
                "inv-00000000000000000003-00000000000000000042.parquet"
            ),
            Some((3, 42))
        );
        assert_eq!(parse_file_name("inv", "met-1.parquet"), None);
        assert_eq!(parse_file_name("inv", "inv-1.parquet.tmp"), None);
    }

    #[test]
    fn files_of_an_earlier_schema_are_read_with_nulls_for_new_columns() {
        let full = fnlens_model::metrics_schema();
        let mut point = fnlens_model::MetricPoint::gauge(5, "ns", "m", "Count", 1.0);
        point.temporality = Some("delta".into());
        let batch = fnlens_model::metrics_to_record_batch(&[point]).unwrap();
        let old_fields: Vec<_> = full
            .fields()
            .iter()
            .filter(|f| f.name() != "temporality")
            .cloned()
            .collect();
        let old_schema = Arc::new(arrow::datatypes::Schema::new(old_fields));
        let old = batch
            .project(&(0..full.fields().len() - 1).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(old.schema().fields(), old_schema.fields());
        let adapted = to_schema(&old, &full).unwrap();
        assert_eq!(adapted.schema(), full);
        assert_eq!(
            adapted.column_by_name("temporality").unwrap().null_count(),
            1
        );
        assert_eq!(to_schema(&batch, &full).unwrap(), batch);
    }
}
