//! The invocation store: an in-memory Arrow buffer in front of Parquet files partitioned by day
//! (`invocations/<YYYY-MM-DD>/inv-<lsn>.parquet`).
//!
//! The applier appends to the *active* buffer. A flush *freezes* it (it stays readable) and a
//! flusher thread writes it out, one file per partition, sorted by `ts`. Only after every file of
//! a flush is durable does the checkpoint (`invocations/CHECKPOINT`, the LSN the files hold
//! everything through) move; files above the checkpoint are leftovers of an interrupted flush and
//! are deleted at open, since WAL replay writes their rows again.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arrow::array::{Array, RecordBatch, TimestampMillisecondArray};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use fnlens_model::{
    Invocation, PartitionKey, TimeRange, invocations_schema, invocations_to_record_batch,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::StoreError;
use crate::metrics::StoreStats;
use crate::wal::{Lsn, sync_dir};

const CHECKPOINT: &str = "CHECKPOINT";
/// Rows per Parquet row group: small enough for `ts` pruning inside a day, large enough to scan fast.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// One Parquet file of the store.
#[derive(Debug, Clone)]
pub struct ParquetFile {
    pub path: PathBuf,
    pub partition: PartitionKey,
    pub rows: usize,
    pub bytes: u64,
}

/// A frozen buffer on its way to Parquet.
#[derive(Debug)]
pub struct Frozen {
    batches: Vec<RecordBatch>,
    /// Highest LSN whose invocations are in this buffer (and all earlier ones).
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
pub struct InvocationSnapshot {
    pub schema: SchemaRef,
    pub buffered: Vec<RecordBatch>,
    pub files: Vec<ParquetFile>,
}

/// The invocation store.
pub struct InvocationStore {
    dir: PathBuf,
    state: RwLock<State>,
    /// Every invocation at or below this LSN is in a durable Parquet file.
    checkpoint: AtomicU64,
    stats: Arc<StoreStats>,
}

impl InvocationStore {
    pub fn open(dir: PathBuf, stats: Arc<StoreStats>) -> Result<InvocationStore, StoreError> {
        fs::create_dir_all(&dir)?;
        let checkpoint = match fs::read_to_string(dir.join(CHECKPOINT)) {
            Ok(s) => s.trim().parse::<Lsn>().map_err(|_| {
                StoreError::Corrupt(format!("bad invocation checkpoint {:?}", s.trim()))
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
            for f in fs::read_dir(entry.path())? {
                let f = f?;
                let name = f.file_name().to_string_lossy().into_owned();
                let lsn = name
                    .strip_prefix("inv-")
                    .and_then(|n| n.strip_suffix(".parquet"))
                    .and_then(|n| n.parse::<Lsn>().ok());
                match lsn {
                    Some(lsn) if lsn <= checkpoint => {
                        let meta = f.metadata()?;
                        let rows = parquet_rows(&f.path()).unwrap_or(0);
                        files.entry(key).or_default().push(ParquetFile {
                            path: f.path(),
                            partition: key,
                            rows,
                            bytes: meta.len(),
                        });
                    }
                    _ => {
                        tracing::info!(file = %f.path().display(), "removing unfinished parquet file");
                        fs::remove_file(f.path())?;
                    }
                }
            }
        }
        for list in files.values_mut() {
            list.sort_by(|a, b| a.path.cmp(&b.path));
        }
        Ok(InvocationStore {
            dir,
            state: RwLock::new(State {
                files,
                ..State::default()
            }),
            checkpoint: AtomicU64::new(checkpoint),
            stats,
        })
    }

    /// The LSN through which every invocation is in Parquet.
    pub fn checkpoint(&self) -> Lsn {
        self.checkpoint.load(Ordering::Acquire)
    }

    /// Appends the invocations of WAL record `lsn` to the active buffer. With `replay`, records
    /// already in Parquet are skipped.
    pub fn append(&self, lsn: Lsn, rows: &[Invocation], replay: bool) -> Result<(), StoreError> {
        if rows.is_empty() || (replay && lsn <= self.checkpoint()) {
            return Ok(());
        }
        let batch = invocations_to_record_batch(rows)?;
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
        let merged = concat_batches(&invocations_schema(), &tail)?;
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
        let schema = invocations_schema();
        let all = concat_batches(&schema, &frozen.batches)?;
        let mut written = Vec::new();
        for (key, part) in split_by_partition(&all)? {
            let dir = self.dir.join(key.dir_name());
            fs::create_dir_all(&dir)?;
            let path = dir.join(format!("inv-{:020}.parquet", frozen.through));
            let tmp = path.with_extension("parquet.tmp");
            let bytes = write_parquet(&tmp, &part)?;
            fs::rename(&tmp, &path)?;
            sync_dir(&dir)?;
            written.push(ParquetFile {
                path,
                partition: key,
                rows: part.num_rows(),
                bytes,
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
        tracing::debug!(rows, bytes, through = frozen.through, "flushed invocations");
        Ok(())
    }

    /// The buffered rows and the Parquet files of the partitions overlapping `range`.
    pub fn snapshot(&self, range: TimeRange) -> InvocationSnapshot {
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
        InvocationSnapshot {
            schema: invocations_schema(),
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

fn parquet_rows(path: &Path) -> Result<usize, StoreError> {
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(File::open(path)?)?;
    use parquet::file::reader::FileReader;
    Ok(reader.metadata().file_metadata().num_rows() as usize)
}

/// Splits rows by day partition, each part sorted by `ts`.
fn split_by_partition(batch: &RecordBatch) -> Result<Vec<(PartitionKey, RecordBatch)>, StoreError> {
    let sorted = {
        let indices = sort_to_indices(batch.column(0), None, None)?;
        take_record_batch(batch, &indices)?
    };
    let ts = sorted
        .column(0)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| StoreError::Corrupt("invocation ts column has the wrong type".into()))?;
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

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<u64, StoreError> {
    let file = File::create(path)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    let file = writer.into_inner()?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnlens_model::Status;

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

    fn rows(snapshot: &InvocationSnapshot) -> usize {
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
        let store = InvocationStore::open(dir.path().to_path_buf(), Arc::default()).unwrap();
        store
            .append(1, &[inv(day + 5), inv(2 * day), inv(day + 1)], false)
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
        let store = InvocationStore::open(dir.path().to_path_buf(), Arc::default()).unwrap();
        assert_eq!(store.checkpoint(), 1);
        assert_eq!(rows(&store.snapshot(TimeRange::all())), 3);
        // Replaying a flushed record adds nothing.
        store.append(1, &[inv(day + 5)], true).unwrap();
        assert_eq!(store.active_rows(), 0);
    }

    #[test]
    fn coalesce_merges_small_batches_without_losing_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = InvocationStore::open(dir.path().to_path_buf(), Arc::default()).unwrap();
        for lsn in 1..=3 {
            store
                .append(lsn, &[inv(lsn as i64), inv(10 + lsn as i64)], false)
                .unwrap();
        }
        store.coalesce().unwrap();
        let snap = store.snapshot(TimeRange::all());
        assert_eq!(snap.buffered.len(), 1);
        assert_eq!(rows(&snap), 6);
        store.append(4, &[inv(4)], false).unwrap();
        store.append(5, &[inv(5)], false).unwrap();
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
        let store = InvocationStore::open(dir.path().to_path_buf(), Arc::default()).unwrap();
        store.append(7, &[inv(5)], false).unwrap();
        let frozen = store.freeze().unwrap();
        store.write_frozen(&frozen).unwrap();
        // Simulate a flush interrupted before its checkpoint.
        fs::write(dir.path().join(CHECKPOINT), "3").unwrap();
        let store = InvocationStore::open(dir.path().to_path_buf(), Arc::default()).unwrap();
        assert_eq!(store.snapshot(TimeRange::all()).files.len(), 0);
    }
}
