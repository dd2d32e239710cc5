//! The fnlens data directory.
//!
//! ```text
//! <data-dir>/
//!   LOCK                          held by the running server
//!   wal/<first-lsn>.wal           write-ahead log segments
//!   logs/<YYYY-MM-DD>/            one tantivy index per UTC day
//!   invocations/CHECKPOINT        LSN through which Parquet holds every invocation
//!   invocations/<YYYY-MM-DD>/inv-<lsn>.parquet            a flush
//!   invocations/<YYYY-MM-DD>/inv-<low>-<high>.parquet     a compaction of flushes
//!   metrics/CHECKPOINT, metrics/<YYYY-MM-DD>/met-*.parquet the same for metric points
//! ```
//!
//! This crate knows files, tantivy and Parquet; it does not know wire formats or HTTP.

pub mod logs;
pub mod metrics;
pub mod table;
pub mod wal;

use std::fs::{self, File};
use std::path::{Path, PathBuf};

pub use logs::{LogPartition, LogSchema, LogStore, LogStoreConfig};
pub use metrics::StoreStats;
pub use table::{ParquetFile, TableSnapshot, TableSpec, TableStore};
pub use wal::Lsn;

/// Errors of the store layer. All of them are the server's problem, not the client's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("tantivy: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("tantivy directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("corrupt data directory: {0}")]
    Corrupt(String),
    #[error("data directory {0} is in use by another fnlens process")]
    Locked(PathBuf),
}

/// The paths of a data directory, and the lock that keeps a second server out of it.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    /// Held for the life of the process; the OS releases it if the process dies.
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed and takes its lock.
    pub fn open(root: &Path) -> Result<DataDir, StoreError> {
        fs::create_dir_all(root)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("LOCK"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(root.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        Ok(DataDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.root.join("wal")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn invocations_dir(&self) -> PathBuf {
        self.root.join("invocations")
    }

    pub fn metrics_dir(&self) -> PathBuf {
        self.root.join("metrics")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DataDir::open(dir.path()).unwrap();
        assert!(matches!(
            DataDir::open(dir.path()),
            Err(StoreError::Locked(_))
        ));
    }
}
