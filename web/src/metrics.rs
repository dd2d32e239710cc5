//! `GET /metrics` in the Prometheus text format, and the request counter behind it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fnlens_ingest::Stores;
use fnlens_store::TableStore;
use fnlens_store::metrics::render_metric;

use crate::AppState;

/// Requests by route and status.
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

pub(crate) async fn count_requests(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    *state
        .http
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((route, status))
        .or_default() += 1;
    response
}

pub(crate) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::with_capacity(8192);
    let _ = writeln!(
        out,
        "# HELP fnlens_http_requests_total HTTP requests by route and status\n# TYPE fnlens_http_requests_total counter"
    );
    for ((route, status), n) in state
        .http
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        let _ = writeln!(
            out,
            "fnlens_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    state.pipeline.stats().render(&mut out);
    if let Some(engine) = &state.alerts {
        render_alerts(&mut out, engine);
    }
    let stores = state.pipeline.stores();
    stores.stats.render(&mut out);
    let _ = writeln!(
        out,
        "# HELP fnlens_partitions Time partitions on disk, by store\n# TYPE fnlens_partitions gauge"
    );
    let _ = writeln!(
        out,
        "fnlens_partitions{{store=\"logs\"}} {}",
        stores.logs.partition_count()
    );
    for table in stores.tables() {
        let _ = writeln!(
            out,
            "fnlens_partitions{{store=\"{}\"}} {}",
            table.spec().name,
            table.partition_count()
        );
    }
    render_per_table(
        &mut out,
        stores,
        "fnlens_parquet_files",
        "Parquet files, by table (compaction keeps this bounded)",
        TableStore::file_count,
    );
    render_metric(
        &mut out,
        "fnlens_log_segments",
        "gauge",
        "tantivy segments over all log partitions (merging keeps this bounded)",
        stores.logs.segment_count() as u64,
    );
    render_metric(
        &mut out,
        "fnlens_tail_clients",
        "gauge",
        "Open live-tail streams",
        state.tail.client_count() as u64,
    );
    let tail = state.tail.stats();
    for (name, help, value) in [
        (
            "fnlens_tail_lines_sent_total",
            "Lines delivered to live-tail clients",
            &tail.lines_sent,
        ),
        (
            "fnlens_tail_lines_dropped_total",
            "Matching lines dropped because a tail client's buffer was full",
            &tail.lines_dropped,
        ),
        (
            "fnlens_tail_batches_missed_total",
            "Ingest batches the tail fell too far behind to match",
            &tail.batches_missed,
        ),
    ] {
        render_metric(
            &mut out,
            name,
            "counter",
            help,
            value.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    render_per_table(
        &mut out,
        stores,
        "fnlens_buffered_rows",
        "Rows in a table's Arrow buffer, not yet in Parquet",
        TableStore::active_rows,
    );
    render_metric(
        &mut out,
        "fnlens_process_resident_memory_bytes",
        "gauge",
        "Resident set size of the process",
        resident_memory_bytes(),
    );
    render_metric(
        &mut out,
        "fnlens_process_peak_resident_memory_bytes",
        "gauge",
        "Peak resident set size of the process",
        peak_resident_memory_bytes(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// Reads a `/proc/self/status` field in kB, as bytes (0 where /proc is absent).
/// A gauge with one sample per Parquet table.
fn render_alerts(out: &mut String, engine: &fnlens_alerts::Engine) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &engine.stats;
    let instances = engine.instances();
    let _ = writeln!(
        out,
        "# HELP fnlens_alert_evaluations_total Evaluation passes over the streaming rules\n# TYPE fnlens_alert_evaluations_total counter\nfnlens_alert_evaluations_total {}",
        stats.evaluations.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP fnlens_alert_evaluation_seconds_total Time spent in those passes\n# TYPE fnlens_alert_evaluation_seconds_total counter\nfnlens_alert_evaluation_seconds_total {:.6}",
        stats.evaluation_ns.load(Relaxed) as f64 / 1e9
    );
    let _ = writeln!(
        out,
        "# HELP fnlens_alert_persist_seconds_total Of which writing the outbox, history and state\n# TYPE fnlens_alert_persist_seconds_total counter\nfnlens_alert_persist_seconds_total {:.6}",
        stats.persist_ns.load(Relaxed) as f64 / 1e9
    );
    let _ = writeln!(
        out,
        "# HELP fnlens_alert_window_buckets Buckets held by the rolling windows\n# TYPE fnlens_alert_window_buckets gauge\nfnlens_alert_window_buckets {}",
        engine.window_buckets()
    );
    let _ = writeln!(
        out,
        "# HELP fnlens_alert_instances Alert instances by state\n# TYPE fnlens_alert_instances gauge"
    );
    for state in [
        fnlens_alerts::AlarmState::Ok,
        fnlens_alerts::AlarmState::Pending,
        fnlens_alerts::AlarmState::Alarm,
        fnlens_alerts::AlarmState::InsufficientData,
    ] {
        let n = instances.iter().filter(|(i, _)| i.state == state).count();
        let _ = writeln!(
            out,
            "fnlens_alert_instances{{state=\"{}\"}} {n}",
            state.as_str()
        );
    }
    let _ = writeln!(
        out,
        "# HELP fnlens_alert_pending_deliveries Notifications not yet delivered\n# TYPE fnlens_alert_pending_deliveries gauge\nfnlens_alert_pending_deliveries {}",
        engine.pending_deliveries().len()
    );
}

fn render_per_table(
    out: &mut String,
    stores: &Stores,
    name: &str,
    help: &str,
    value: impl Fn(&TableStore) -> usize,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for table in stores.tables() {
        let _ = writeln!(
            out,
            "{name}{{table=\"{}\"}} {}",
            table.spec().name,
            value(table)
        );
    }
}

fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn resident_memory_bytes() -> u64 {
    proc_status_kb("VmRSS:")
}

fn peak_resident_memory_bytes() -> u64 {
    proc_status_kb("VmHWM:")
}
