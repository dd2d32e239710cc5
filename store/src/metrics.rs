//! Counters the store keeps about itself, rendered by `GET /metrics`.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A Prometheus-style histogram with fixed bucket bounds (in seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    inner: Mutex<HistogramInner>,
}

#[derive(Debug, Default)]
struct HistogramInner {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Bounds suited to fsyncs and commits: 50 us to 5 s.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            inner: Mutex::new(HistogramInner {
                counts: vec![0; bounds.len()],
                sum: 0.0,
                count: 0,
            }),
        }
    }

    pub fn observe(&self, v: f64) {
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            h.counts[i] += 1;
        }
        h.sum += v;
        h.count += 1;
    }

    /// Appends this histogram in the Prometheus text format.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&h.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}", h.sum);
        let _ = writeln!(out, "{name}_count {}", h.count);
    }
}

/// What the store layer counts.
#[derive(Debug)]
pub struct StoreStats {
    pub wal_fsyncs: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub wal_fsync_seconds: Histogram,
    pub log_commits: AtomicU64,
    pub log_commit_seconds: Histogram,
    pub log_docs: AtomicU64,
    pub parquet_flushes: AtomicU64,
    pub parquet_rows: AtomicU64,
    pub parquet_bytes: AtomicU64,
    pub parquet_compactions: AtomicU64,
}

impl Default for StoreStats {
    fn default() -> Self {
        StoreStats {
            wal_fsyncs: AtomicU64::new(0),
            wal_bytes: AtomicU64::new(0),
            wal_fsync_seconds: Histogram::new(LATENCY_BOUNDS),
            log_commits: AtomicU64::new(0),
            log_commit_seconds: Histogram::new(LATENCY_BOUNDS),
            log_docs: AtomicU64::new(0),
            parquet_flushes: AtomicU64::new(0),
            parquet_rows: AtomicU64::new(0),
            parquet_bytes: AtomicU64::new(0),
            parquet_compactions: AtomicU64::new(0),
        }
    }
}

/// Appends one counter or gauge line with its HELP and TYPE.
pub fn render_metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

impl StoreStats {
    pub fn render(&self, out: &mut String) {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        render_metric(
            out,
            "fnlens_wal_fsyncs_total",
            "counter",
            "WAL group commits (one fsync each)",
            c(&self.wal_fsyncs),
        );
        render_metric(
            out,
            "fnlens_wal_bytes_total",
            "counter",
            "Bytes appended to the WAL",
            c(&self.wal_bytes),
        );
        self.wal_fsync_seconds.render(
            out,
            "fnlens_wal_fsync_seconds",
            "Time to write and fsync one WAL group",
        );
        render_metric(
            out,
            "fnlens_log_commits_total",
            "counter",
            "tantivy commits of the log store",
            c(&self.log_commits),
        );
        self.log_commit_seconds.render(
            out,
            "fnlens_log_commit_seconds",
            "Time of one log store commit and reader reload",
        );
        render_metric(
            out,
            "fnlens_log_docs_total",
            "counter",
            "Log records added to the log index",
            c(&self.log_docs),
        );
        render_metric(
            out,
            "fnlens_parquet_flushes_total",
            "counter",
            "Flushes of the table buffers (invocations, metrics) to Parquet",
            c(&self.parquet_flushes),
        );
        render_metric(
            out,
            "fnlens_parquet_rows_total",
            "counter",
            "Rows flushed to Parquet",
            c(&self.parquet_rows),
        );
        render_metric(
            out,
            "fnlens_parquet_bytes_total",
            "counter",
            "Bytes of Parquet written",
            c(&self.parquet_bytes),
        );
        render_metric(
            out,
            "fnlens_parquet_compactions_total",
            "counter",
            "Runs of small Parquet files merged into one",
            c(&self.parquet_compactions),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.1\"} 1\n"));
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count 3\n"));
    }
}
