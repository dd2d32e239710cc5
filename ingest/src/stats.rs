//! What the ingest side counts, rendered by `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use fnlens_model::Batch;
use fnlens_store::metrics::render_metric;

use crate::decode::Rejection;

#[derive(Debug, Default)]
pub struct IngestStats {
    pub batches: AtomicU64,
    pub bytes: AtomicU64,
    pub invocations: AtomicU64,
    pub logs: AtomicU64,
    pub metric_points: AtomicU64,
    pub logs_dropped_records: AtomicU64,
    pub apply_errors: AtomicU64,
    /// Rejected events by reason.
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

impl IngestStats {
    pub(crate) fn record_applied(&self, batch: &Batch) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.invocations
            .fetch_add(batch.invocations.len() as u64, Ordering::Relaxed);
        self.logs
            .fetch_add(batch.logs.len() as u64, Ordering::Relaxed);
        self.metric_points
            .fetch_add(batch.metrics.len() as u64, Ordering::Relaxed);
        self.logs_dropped_records
            .fetch_add(batch.logs_dropped_records, Ordering::Relaxed);
    }

    /// Counts the bytes of a request body that reached a decoder.
    pub fn record_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts rejections. A whole unreadable request counts once under `reason`.
    pub fn record_rejected(&self, rejected: &[Rejection]) {
        let mut map = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        for r in rejected {
            *map.entry(r.reason).or_default() += 1;
        }
    }

    pub fn record_rejected_request(&self, reason: &'static str) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    pub fn render(&self, out: &mut String) {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        render_metric(
            out,
            "fnlens_ingest_batches_total",
            "counter",
            "Batches accepted and applied",
            c(&self.batches),
        );
        render_metric(
            out,
            "fnlens_ingest_bytes_total",
            "counter",
            "Request body bytes received by the decoders",
            c(&self.bytes),
        );
        let _ = writeln!(
            out,
            "# HELP fnlens_ingest_events_accepted_total Events stored, by kind\n# TYPE fnlens_ingest_events_accepted_total counter"
        );
        let _ = writeln!(
            out,
            "fnlens_ingest_events_accepted_total{{kind=\"invocation\"}} {}",
            c(&self.invocations)
        );
        let _ = writeln!(
            out,
            "fnlens_ingest_events_accepted_total{{kind=\"log\"}} {}",
            c(&self.logs)
        );
        let _ = writeln!(
            out,
            "fnlens_ingest_events_accepted_total{{kind=\"metric_point\"}} {}",
            c(&self.metric_points)
        );
        let _ = writeln!(
            out,
            "# HELP fnlens_ingest_events_rejected_total Events or requests rejected, by reason\n# TYPE fnlens_ingest_events_rejected_total counter"
        );
        for (reason, n) in self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "fnlens_ingest_events_rejected_total{{reason=\"{reason}\"}} {n}"
            );
        }
        render_metric(
            out,
            "fnlens_ingest_logs_dropped_records_total",
            "counter",
            "Records the Lambda platform reported as dropped (platform.logsDropped)",
            c(&self.logs_dropped_records),
        );
        render_metric(
            out,
            "fnlens_ingest_apply_errors_total",
            "counter",
            "Durable batches the stores failed to apply",
            c(&self.apply_errors),
        );
    }
}
