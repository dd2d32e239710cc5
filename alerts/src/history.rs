//! The alert history: every state transition and every notification attempt, appended to
//! `history.jsonl`, with the most recent entries kept in memory for the API. Appends are
//! written at once and fsynced by [`History::sync`], which the engine calls every 5 seconds
//! and whenever receivers were notified: a crash loses at most the last 5 seconds of
//! transitions that notified nobody (the states themselves are re-derived from the reloaded
//! windows).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::state::AlarmState;

/// Entries the API can list; older ones stay in the file.
const KEEP_IN_MEMORY: usize = 20_000;
/// The file is rotated (to `history.1.jsonl`) past this size.
const ROTATE_BYTES: u64 = 64 << 20;

/// One line of history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Transition {
        ts_ms: i64,
        rule: String,
        function: String,
        from: AlarmState,
        to: AlarmState,
        value: Option<f64>,
        threshold: f64,
        /// A silence matched: the change is recorded, nobody was notified.
        silenced: bool,
    },
    Notification {
        ts_ms: i64,
        delivery_id: String,
        rule: String,
        function: String,
        /// `firing` or `resolved`.
        status: String,
        target: String,
        attempt: u32,
        /// `delivered`, `failed` (will retry) or `gave_up`.
        outcome: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_attempt_ms: Option<i64>,
    },
}

impl Entry {
    pub fn rule(&self) -> &str {
        match self {
            Entry::Transition { rule, .. } | Entry::Notification { rule, .. } => rule,
        }
    }
    pub fn function(&self) -> &str {
        match self {
            Entry::Transition { function, .. } | Entry::Notification { function, .. } => function,
        }
    }
}

/// The history log.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    bytes: u64,
    recent: VecDeque<Entry>,
    /// Appended since the last fsync.
    unsynced: bool,
}

impl History {
    /// Opens `dir/history.jsonl`, reading back its most recent entries.
    pub fn open(dir: &Path) -> std::io::Result<History> {
        let path = dir.join("history.jsonl");
        let mut recent = VecDeque::new();
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                // A torn last line (a crash mid-append) is skipped.
                if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                    if recent.len() == KEEP_IN_MEMORY {
                        recent.pop_front();
                    }
                    recent.push_back(e);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let bytes = file.metadata()?.len();
        Ok(History {
            path,
            inner: Mutex::new(Inner {
                file,
                bytes,
                recent,
                unsynced: false,
            }),
        })
    }

    /// Appends entries (durable at the next [`History::sync`]).
    pub fn append(&self, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = Vec::new();
        for e in entries {
            if let Ok(line) = serde_json::to_vec(e) {
                buf.extend_from_slice(&line);
                buf.push(b'\n');
            }
        }
        if let Err(e) = inner
            .file
            .write_all(&buf)
            .and_then(|_| inner.file.sync_data())
        {
            tracing::error!(error = %e, "could not append to the alert history");
        }
        inner.bytes += buf.len() as u64;
        for e in entries {
            if inner.recent.len() == KEEP_IN_MEMORY {
                inner.recent.pop_front();
            }
            inner.recent.push_back(e.clone());
        }
        if inner.bytes > ROTATE_BYTES {
            let _ = inner.file.sync_data();
            let rotated = self.path.with_extension("1.jsonl");
            let reopened = std::fs::rename(&self.path, &rotated).and_then(|_| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
            });
            match reopened {
                Ok(f) => {
                    inner.file = f;
                    inner.bytes = 0;
                }
                Err(e) => tracing::warn!(error = %e, "could not rotate the alert history"),
            }
        }
    }

    /// Makes every append so far durable.
    pub fn sync(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.unsynced {
            if let Err(e) = inner.file.sync_data() {
                tracing::error!(error = %e, "could not sync the alert history");
            }
            inner.unsynced = false;
        }
    }

    /// The newest entries first, filtered.
    pub fn recent(
        &self,
        limit: usize,
        rule: Option<&str>,
        function: Option<&str>,
        kind: Option<&str>,
    ) -> Vec<Entry> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .recent
            .iter()
            .rev()
            .filter(|e| rule.is_none_or(|r| e.rule() == r))
            .filter(|e| function.is_none_or(|f| e.function() == f))
            .filter(|e| {
                kind.is_none_or(|k| match e {
                    Entry::Transition { .. } => k == "transition",
                    Entry::Notification { .. } => k == "notification",
                })
            })
            .take(limit)
            .cloned()
            .collect()
    }
}
