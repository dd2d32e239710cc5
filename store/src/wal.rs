//! The write-ahead log: the only thing an acknowledgement waits for.
//!
//! Frames are appended to segment files named by the LSN of their first frame
//! (`wal/00000000000000000042.wal`). A frame is
//! `[len: u32 LE][crc32(lsn ++ payload): u32 LE][lsn: u64 LE][payload]`, so a torn tail after a
//! crash is detected and replay stops there.
//!
//! One thread owns the active segment. It takes every append that is waiting, writes them all,
//! and makes them durable with a single `fdatasync` (group commit), then hands each item on, in
//! LSN order, to whoever consumes durable records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::metrics::StoreStats;

/// Log sequence number: the position of one WAL record. Starts at 1; 0 means "nothing".
pub type Lsn = u64;

const HEADER_LEN: usize = 16;
/// A frame larger than this is treated as corruption rather than allocated.
const MAX_FRAME_LEN: usize = 1 << 30;
/// Appends taken into one group commit, at most.
const MAX_GROUP: usize = 4096;

/// One record read back from the WAL.
#[derive(Debug)]
pub struct WalRecord {
    pub lsn: Lsn,
    pub payload: Vec<u8>,
}

/// A request to append `payload`; `item` travels with it to the durable side.
pub struct Append<T> {
    pub payload: Vec<u8>,
    pub item: T,
}

/// What the WAL thread hands on after a group commit.
pub enum Durable<T> {
    /// The records are on disk, in LSN order.
    Written(Vec<(Lsn, T)>),
    /// Writing or syncing failed; none of these records is durable.
    Failed(Vec<T>, io::Error),
}

/// The first LSNs of the segment files, oldest first. Shared between the WAL thread (which
/// adds segments) and whoever truncates.
#[derive(Debug, Default)]
struct Segments {
    firsts: Vec<Lsn>,
}

/// Handle to the WAL directory for truncation, shared with the WAL thread.
#[derive(Debug, Clone)]
pub struct WalTruncator {
    dir: PathBuf,
    segments: Arc<Mutex<Segments>>,
}

impl WalTruncator {
    /// Deletes every closed segment whose records all have an LSN at or below `durable`.
    pub fn truncate_through(&self, durable: Lsn) -> io::Result<usize> {
        let mut removed = 0;
        let mut segments = self.segments.lock().unwrap_or_else(|e| e.into_inner());
        while segments.firsts.len() > 1 && segments.firsts[1].saturating_sub(1) <= durable {
            let first = segments.firsts.remove(0);
            match fs::remove_file(segment_path(&self.dir, first)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    segments.firsts.insert(0, first);
                    return Err(e);
                }
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .firsts
            .len()
    }
}

fn segment_path(dir: &Path, first: Lsn) -> PathBuf {
    dir.join(format!("{first:020}.wal"))
}

/// The segment files in `dir`, oldest first.
fn list_segments(dir: &Path) -> io::Result<Vec<Lsn>> {
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal")
            && let Ok(lsn) = stem.parse::<Lsn>()
        {
            firsts.push(lsn);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// Reads every intact record in `dir`, oldest first, calling `f` on each. Within a segment,
/// reading stops at the first torn or corrupt frame (nothing after it was ever acknowledged).
pub fn replay(dir: &Path, mut f: impl FnMut(WalRecord)) -> io::Result<Lsn> {
    fs::create_dir_all(dir)?;
    let mut last = 0;
    for first in list_segments(dir)? {
        let path = segment_path(dir, first);
        let mut reader = BufReader::with_capacity(1 << 20, File::open(&path)?);
        loop {
            match read_frame(&mut reader) {
                Ok(Some(rec)) => {
                    last = last.max(rec.lsn);
                    f(rec);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "wal replay stopped at a torn frame");
                    break;
                }
            }
        }
    }
    Ok(last)
}

fn read_frame(reader: &mut impl Read) -> io::Result<Option<WalRecord>> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = reader.read(&mut header[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "torn frame header",
            ));
        }
        got += n;
    }
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let lsn = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if len > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame length out of range",
        ));
    }
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..16]);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame checksum mismatch",
        ));
    }
    Ok(Some(WalRecord { lsn, payload }))
}

fn write_frame(w: &mut impl Write, lsn: Lsn, payload: &[u8]) -> io::Result<usize> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| (l as usize) <= MAX_FRAME_LEN)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "wal record too large"))?;
    let lsn_bytes = lsn.to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn_bytes);
    hasher.update(payload);
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&hasher.finalize().to_le_bytes())?;
    w.write_all(&lsn_bytes)?;
    w.write_all(payload)?;
    Ok(HEADER_LEN + payload.len())
}

/// Configuration of the WAL writer.
#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// A new segment is started once the active one is larger than this.
    pub segment_bytes: u64,
}

/// The receiving half of the append queue, fed by [`tokio::sync::mpsc::Sender<Append<T>>`].
pub type AppendReceiver<T> = tokio::sync::mpsc::Receiver<Append<T>>;

/// Starts the WAL thread. Records get LSNs from `next_lsn` on, in a new segment. Durable
/// groups go to `out`; the thread ends when every sender of `rx` is dropped.
pub fn spawn<T: Send + 'static>(
    config: WalConfig,
    next_lsn: Lsn,
    mut rx: AppendReceiver<T>,
    out: std::sync::mpsc::Sender<Durable<T>>,
    stats: Arc<StoreStats>,
) -> io::Result<(WalTruncator, JoinHandle<()>)> {
    fs::create_dir_all(&config.dir)?;
    let mut firsts = list_segments(&config.dir)?;
    let mut active = ActiveSegment::create(&config.dir, next_lsn)?;
    // An empty segment of an earlier run may already bear this name; it was just recreated.
    if firsts.last() != Some(&next_lsn) {
        firsts.push(next_lsn);
    }
    let segments = Arc::new(Mutex::new(Segments { firsts }));
    let truncator = WalTruncator {
        dir: config.dir.clone(),
        segments: segments.clone(),
    };
    let handle = std::thread::Builder::new()
        .name("fnlens-wal".into())
        .spawn(move || {
            let mut next = next_lsn;
            while let Some(first) = rx.blocking_recv() {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(a) => group.push(a),
                        Err(_) => break,
                    }
                }
                let start = Instant::now();
                match active.write_group(next, &group) {
                    Ok(bytes) => {
                        stats.wal_fsyncs.fetch_add(1, Ordering::Relaxed);
                        stats.wal_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                        stats
                            .wal_fsync_seconds
                            .observe(start.elapsed().as_secs_f64());
                        let items = group
                            .into_iter()
                            .map(|a| {
                                let lsn = next;
                                next += 1;
                                (lsn, a.item)
                            })
                            .collect();
                        if out.send(Durable::Written(items)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "wal write failed");
                        let items = group.into_iter().map(|a| a.item).collect();
                        if out.send(Durable::Failed(items, e)).is_err() {
                            break;
                        }
                    }
                }
                if active.len >= config.segment_bytes {
                    match ActiveSegment::create(&config.dir, next) {
                        Ok(seg) => {
                            active = seg;
                            segments
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .firsts
                                .push(next);
                        }
                        Err(e) => tracing::error!(error = %e, "could not start a new wal segment"),
                    }
                }
            }
        })?;
    Ok((truncator, handle))
}

struct ActiveSegment {
    file: BufWriter<File>,
    len: u64,
}

impl ActiveSegment {
    fn create(dir: &Path, first: Lsn) -> io::Result<ActiveSegment> {
        let path = segment_path(dir, first);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        sync_dir(dir)?;
        Ok(ActiveSegment {
            file: BufWriter::with_capacity(1 << 20, file),
            len: 0,
        })
    }

    /// Writes the group and syncs it. On failure the segment is cut back to where it was.
    fn write_group<T>(&mut self, first_lsn: Lsn, group: &[Append<T>]) -> io::Result<usize> {
        let before = self.len;
        let result = (|| {
            let mut written = 0;
            for (i, a) in group.iter().enumerate() {
                written += write_frame(&mut self.file, first_lsn + i as u64, &a.payload)?;
            }
            self.file.flush()?;
            self.file.get_ref().sync_data()?;
            Ok(written)
        })();
        match result {
            Ok(written) => {
                self.len += written as u64;
                Ok(written)
            }
            Err(e) => {
                // Drop whatever is buffered and cut the file back so later frames follow intact ones.
                let file = self.file.get_ref().try_clone()?;
                file.set_len(before)?;
                let mut file = file;
                file.seek(SeekFrom::Start(before))?;
                self.file = BufWriter::with_capacity(1 << 20, file);
                Err(e)
            }
        }
    }
}

/// Makes a directory entry (a created or renamed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_records(
        dir: &Path,
        next: Lsn,
        payloads: &[&[u8]],
        segment_bytes: u64,
    ) -> WalTruncator {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (out_tx, out_rx) = std::sync::mpsc::channel();
        let config = WalConfig {
            dir: dir.to_path_buf(),
            segment_bytes,
        };
        let (trunc, handle) =
            spawn::<usize>(config, next, rx, out_tx, Arc::new(StoreStats::default())).unwrap();
        for (i, p) in payloads.iter().enumerate() {
            tx.blocking_send(Append {
                payload: p.to_vec(),
                item: i,
            })
            .unwrap();
            match out_rx.recv().unwrap() {
                Durable::Written(items) => assert_eq!(items, vec![(next + i as u64, i)]),
                Durable::Failed(_, e) => panic!("{e}"),
            }
        }
        drop(tx);
        handle.join().unwrap();
        trunc
    }

    fn read_all(dir: &Path) -> Vec<(Lsn, Vec<u8>)> {
        let mut got = Vec::new();
        replay(dir, |r| got.push((r.lsn, r.payload))).unwrap();
        got
    }

    #[test]
    fn round_trip_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        write_records(dir.path(), 1, &[b"a", b"bb", b"ccc"], 1);
        let got = read_all(dir.path());
        assert_eq!(
            got,
            vec![
                (1, b"a".to_vec()),
                (2, b"bb".to_vec()),
                (3, b"ccc".to_vec())
            ]
        );
        // One segment per record plus the empty active one.
        assert_eq!(list_segments(dir.path()).unwrap(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write_records(dir.path(), 1, &[b"first", b"second"], u64::MAX);
        let path = segment_path(dir.path(), 1);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        assert_eq!(read_all(dir.path()), vec![(1, b"first".to_vec())]);
    }

    #[test]
    fn corrupt_frame_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write_records(dir.path(), 1, &[b"first", b"second"], u64::MAX);
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert_eq!(read_all(dir.path()), vec![(1, b"first".to_vec())]);
    }

    #[test]
    fn truncation_keeps_what_is_not_durable() {
        let dir = tempfile::tempdir().unwrap();
        let trunc = write_records(dir.path(), 1, &[b"a", b"b", b"c"], 1);
        // Segments: [1], [2], [3], [4 (active, empty)].
        assert_eq!(trunc.truncate_through(1).unwrap(), 1);
        assert_eq!(read_all(dir.path()).first().map(|r| r.0), Some(2));
        assert_eq!(trunc.truncate_through(10).unwrap(), 2);
        assert_eq!(trunc.segment_count(), 1);
        assert!(read_all(dir.path()).is_empty());
    }
}
