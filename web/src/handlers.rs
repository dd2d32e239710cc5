//! The API's handlers.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use fnlens_ingest::decode::Rejection;
use fnlens_ingest::decode::ndjson;
use fnlens_ingest::decode::telemetry::{self, LambdaContext};
use fnlens_ingest::{DecodeError, Decoded};
use fnlens_model::{LogRecord, TimeRange, format_ts_ms, parse_duration_ms, parse_time_param};
use fnlens_query::{
    Cursor, HistogramRequest, MAX_LIMIT, SearchRequest, SortOrder, SplitBy, TailEvent,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Bodies larger than this are decoded on the blocking pool rather than on a runtime worker.
pub(crate) const INLINE_DECODE_BYTES: usize = 256 << 10;

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// `POST /api/v1/ingest/lambda/` without a function name.
pub(crate) async fn missing_function(State(state): State<AppState>) -> ApiError {
    state
        .pipeline
        .stats()
        .record_rejected_request("invalid_function");
    ApiError::bad_request(
        "invalid_function",
        "the function name is missing: POST /api/v1/ingest/lambda/{function}",
    )
}

/// Reads the whole body, refusing it once it passes the limit.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is over the limit of {limit} bytes"),
            )
        } else {
            ApiError::bad_request("unreadable_body", e.to_string())
        }
    })
}

/// Lambda function names (and the ARNs and aliases users put in URIs) use these characters.
fn validate_function_name(name: &str) -> Result<(), ApiError> {
    match fnlens_model::function_name_problem(name) {
        Some(problem) => Err(ApiError::bad_request("invalid_function", problem)),
        None => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LambdaParams {
    version: Option<String>,
    region: Option<String>,
    instance: Option<String>,
}

/// `POST /api/v1/ingest/lambda/{function}`: a Telemetry API batch.
pub(crate) async fn ingest_lambda(
    State(state): State<AppState>,
    Path(function): Path<String>,
    params: Result<Query<LambdaParams>, QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let stats = state.pipeline.stats().clone();
    let reject = |e: ApiError| {
        stats.record_rejected_request(e.error);
        e
    };
    validate_function_name(&function).map_err(reject)?;
    let Query(params) = params.map_err(|e| {
        reject(ApiError::bad_request(
            "invalid_query_string",
            format!("{e}; expected version, region and instance"),
        ))
    })?;
    let body = read_body(body, state.config.max_body_bytes)
        .await
        .map_err(reject)?;
    stats.record_bytes(body.len());
    let ctx = LambdaContext {
        function,
        version: params.version.filter(|v| !v.is_empty()),
        region: params.region.filter(|v| !v.is_empty()),
        instance: params.instance.filter(|v| !v.is_empty()),
    };
    let decoded = if body.len() > INLINE_DECODE_BYTES {
        tokio::task::spawn_blocking(move || telemetry::decode(&body, &ctx))
            .await
            .map_err(ApiError::internal)?
    } else {
        telemetry::decode(&body, &ctx)
    };
    let decoded = decoded.map_err(|e| {
        reject(match e {
            DecodeError::NotAnArray => ApiError::bad_request(
                "not_an_array",
                "the body must be a JSON array of Telemetry API events",
            ),
            other => other.into(),
        })
    })?;
    store_decoded(&state, decoded, "events").await
}

/// `POST /api/v1/ingest/logs`: fnlens's NDJSON, one log record per line.
pub(crate) async fn ingest_logs(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    let stats = state.pipeline.stats().clone();
    let body = read_body(body, state.config.max_body_bytes)
        .await
        .inspect_err(|e| stats.record_rejected_request(e.error))?;
    stats.record_bytes(body.len());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let decoded = if body.len() > INLINE_DECODE_BYTES {
        tokio::task::spawn_blocking(move || ndjson::decode(&body, now_ms))
            .await
            .map_err(ApiError::internal)?
    } else {
        ndjson::decode(&body, now_ms)
    };
    if decoded.batch.is_empty() && decoded.rejected.is_empty() {
        stats.record_rejected_request("empty_body");
        return Err(ApiError::bad_request(
            "empty_body",
            "the body holds no lines; send one JSON object per line",
        ));
    }
    store_decoded(&state, decoded, "lines").await
}

/// What was kept of a request.
pub(crate) struct Kept {
    pub(crate) total: usize,
    pub(crate) invocations: usize,
    pub(crate) logs: usize,
    pub(crate) metrics: usize,
    pub(crate) rejected: Vec<Rejection>,
}

/// Stores the good events of a decoded request, durably. A request whose every event was
/// rejected is a 400, and nothing of it is stored.
pub(crate) async fn keep(state: &AppState, decoded: Decoded, unit: &str) -> Result<Kept, ApiError> {
    let Decoded { batch, rejected } = decoded;
    let stats = state.pipeline.stats();
    stats.record_rejected(&rejected);
    if batch.is_empty() && !rejected.is_empty() {
        let mut err = ApiError::bad_request(
            "all_events_rejected",
            format!(
                "all {} {unit} were rejected; the first: {}",
                rejected.len(),
                rejected[0].detail
            ),
        );
        err.extra = Some(json!({"rejected": rejected.len(), "errors": rejected}));
        return Err(err);
    }
    let kept = Kept {
        total: batch.len(),
        invocations: batch.invocations.len(),
        logs: batch.logs.len(),
        metrics: batch.metrics.len(),
        rejected,
    };
    if !batch.is_empty() {
        state.pipeline.ingest(batch).await?;
    }
    Ok(kept)
}

/// Stores the good events and answers what was kept and rejected.
pub(crate) async fn store_decoded(
    state: &AppState,
    decoded: Decoded,
    unit: &str,
) -> Result<Response, ApiError> {
    let k = keep(state, decoded, unit).await?;
    Ok(Json(json!({
        "accepted": k.total,
        "invocations": k.invocations,
        "logs": k.logs,
        "metrics": k.metrics,
        "rejected": k.rejected.len(),
        "errors": k.rejected,
    }))
    .into_response())
}

/// A log record as the API shows it.
pub(crate) fn hit_json(r: &LogRecord) -> Value {
    json!({
        "ts": format_ts_ms(r.ts_ms),
        "ts_ms": r.ts_ms,
        "function": r.function,
        "version": r.version,
        "request_id": r.request_id,
        "level": r.level.as_str(),
        "source": r.source.as_str(),
        "message": r.message,
        "attributes": r.attributes,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Reads `start` and `end` (default: the last hour).
fn time_range(params: &HashMap<String, String>) -> Result<TimeRange, ApiError> {
    let now = now_ms();
    let get = |key: &str, default: i64| -> Result<i64, ApiError> {
        match params.get(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => parse_time_param(v, now).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_time",
                    format!("{key}={v:?} is not RFC 3339, epoch milliseconds, or now-<duration>"),
                )
            }),
        }
    };
    let end = get("end", now + 1)?;
    let start = get("start", now - 3_600_000)?;
    TimeRange::new(start, end)
        .map_err(|e| ApiError::bad_request("invalid_time_range", e.to_string()))
}

/// Reads a numeric parameter in `0..=max`.
fn number_param(
    params: &HashMap<String, String>,
    key: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("{key}={v:?} must be a number from 0 to {max}"),
                )
            }),
    }
}

fn query_param(params: &HashMap<String, String>) -> String {
    params.get("q").cloned().unwrap_or_default()
}

/// The message with its matched byte ranges wrapped in `<mark>`, HTML-escaped.
fn highlight_html(message: &str, ranges: &[std::ops::Range<usize>]) -> String {
    fn escape(out: &mut String, s: &str) {
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
    }
    let mut out = String::with_capacity(message.len() + 16 * ranges.len());
    let mut at = 0;
    for r in ranges {
        let (Some(before), Some(marked)) = (message.get(at..r.start), message.get(r.clone()))
        else {
            continue;
        };
        escape(&mut out, before);
        out.push_str("<mark>");
        escape(&mut out, marked);
        out.push_str("</mark>");
        at = r.end;
    }
    escape(&mut out, message.get(at..).unwrap_or_default());
    out
}

/// `GET /api/v1/logs/search?q=&start=&end=&limit=&order=&cursor=&highlight=`.
pub(crate) async fn search_logs(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let range = time_range(&params)?;
    let limit = number_param(&params, "limit", 100, MAX_LIMIT)?;
    let order = match params.get("order").filter(|v| !v.is_empty()) {
        None => SortOrder::Desc,
        Some(v) => SortOrder::parse(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("order={v:?} must be desc or asc"),
            )
        })?,
    };
    let cursor = match params.get("cursor").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(Cursor::decode(v)?),
    };
    let highlight = match params.get("highlight").map(String::as_str) {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(v) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("highlight={v:?} must be true or false"),
            ));
        }
    };
    let req = SearchRequest {
        query: query_param(&params),
        range,
        limit,
        order,
        cursor,
        highlight,
    };
    let logs = state.pipeline.stores().logs.clone();
    let result = tokio::task::spawn_blocking(move || fnlens_query::search(&logs, &req))
        .await
        .map_err(ApiError::internal)??;
    let hits: Vec<Value> = result
        .hits
        .iter()
        .map(|h| {
            let mut v = hit_json(&h.record);
            if highlight {
                v["highlight"] = Value::String(highlight_html(&h.record.message, &h.highlights));
            }
            v
        })
        .collect();
    Ok(Json(json!({
        "hits": hits,
        "total": result.total,
        "took_ms": result.took_ms,
        "cursor": result.cursor.map(|c| c.encode()),
        "partitions_searched": result.partitions_searched,
    })))
}

/// `GET /api/v1/logs/histogram?q=&start=&end=&interval=&split=`.
pub(crate) async fn histogram(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let range = time_range(&params)?;
    let interval_ms = match params
        .get("interval")
        .map(String::as_str)
        .filter(|v| !v.is_empty())
    {
        None | Some("auto") => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .or_else(|| parse_duration_ms(v))
                .filter(|ms| *ms > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!(
                            "interval={v:?} must be a duration like 30s, 5m, 1h or milliseconds"
                        ),
                    )
                })?,
        ),
    };
    let split = match params.get("split").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(SplitBy::parse(v).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("split={v:?} must be level or function"),
            )
        })?),
    };
    let req = HistogramRequest {
        query: query_param(&params),
        range,
        interval_ms,
        split,
    };
    let logs = state.pipeline.stores().logs.clone();
    let h = tokio::task::spawn_blocking(move || fnlens_query::histogram(&logs, &req))
        .await
        .map_err(ApiError::internal)??;
    let buckets: Vec<Value> = h
        .counts
        .iter()
        .enumerate()
        .map(|(i, count)| {
            let ts_ms = h.start_ms + i as i64 * h.interval_ms;
            let mut b = json!({"ts": format_ts_ms(ts_ms), "ts_ms": ts_ms, "count": count});
            if !h.series.is_empty() {
                b["by"] = h
                    .series
                    .iter()
                    .filter(|(_, counts)| counts[i] > 0)
                    .map(|(name, counts)| (name.clone(), json!(counts[i])))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
            }
            b
        })
        .collect();
    let mut body = json!({
        "interval_ms": h.interval_ms,
        "buckets": buckets,
        "total": h.total,
        "took_ms": h.took_ms,
        "partitions_searched": h.partitions_searched,
    });
    if let Some(split) = split {
        body["split"] = json!(match split {
            SplitBy::Level => "level",
            SplitBy::Function => "function",
        });
        body["series"] = h
            .series
            .iter()
            .map(|(name, counts)| json!({"value": name, "total": counts.iter().sum::<u64>()}))
            .collect();
    }
    Ok(Json(body))
}

/// `GET /api/v1/logs/facets?q=&start=&end=&size=`.
pub(crate) async fn facets(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let range = time_range(&params)?;
    let size = number_param(&params, "size", 10, 1000)?;
    let query = query_param(&params);
    let logs = state.pipeline.stores().logs.clone();
    let f = tokio::task::spawn_blocking(move || fnlens_query::facets(&logs, &query, range, size))
        .await
        .map_err(ApiError::internal)??;
    let facets: serde_json::Map<String, Value> = f
        .fields
        .iter()
        .map(|(field, values)| {
            let values: Vec<Value> = values
                .iter()
                .map(|(value, count)| json!({"value": value, "count": count}))
                .collect();
            ((*field).to_owned(), Value::Array(values))
        })
        .collect();
    Ok(Json(json!({
        "facets": facets,
        "total": f.total,
        "took_ms": f.took_ms,
        "partitions_searched": f.partitions_searched,
    })))
}

/// How often an idle tail stream says it is alive.
const TAIL_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /api/v1/logs/tail?q=`: Server-Sent Events. `event: subscribed` first, then one
/// `event: line` per matching line, `event: dropped` when the client fell behind, and
/// `event: heartbeat` every 10 s of silence.
pub(crate) async fn tail(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let query = query_param(&params);
    let rx = state
        .tail
        .subscribe(&query, state.pipeline.published_lsn())?;
    let subscribed = Event::default()
        .event("subscribed")
        .data(json!({"q": query}).to_string());
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let sse = match event {
            TailEvent::Line { rendered, .. } => Event::default().event("line").data(&*rendered),
            TailEvent::Dropped { lines, batches } => Event::default()
                .event("dropped")
                .data(json!({"lines": lines, "batches": batches}).to_string()),
        };
        Some((Ok::<_, std::convert::Infallible>(sse), rx))
    });
    let stream = futures::stream::once(async move { Ok(subscribed) }).chain(lines);
    Ok(Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(TAIL_HEARTBEAT)
                .event(Event::default().event("heartbeat").data("{}")),
        )
        .into_response())
}

/// The most log lines the request view returns.
const REQUEST_VIEW_MAX_LINES: usize = 10_000;

/// `GET /api/v1/invocations/{request_id}`: the invocation and every line it printed, in order.
pub(crate) async fn invocation(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if request_id.is_empty() || request_id.len() > 256 {
        return Err(ApiError::bad_request(
            "invalid_request_id",
            "the request id must be 1 to 256 characters",
        ));
    }
    let logs = state.pipeline.stores().logs.clone();
    let id = request_id.clone();
    let (lines, total) = tokio::task::spawn_blocking(move || {
        fnlens_query::request_logs(&logs, &id, TimeRange::all(), REQUEST_VIEW_MAX_LINES)
    })
    .await
    .map_err(ApiError::internal)??;
    // An invocation lasts at most 15 minutes: its row starts within that of its first line.
    const MAX_INVOCATION_MS: i64 = 15 * 60_000;
    let near = match (lines.first(), lines.last()) {
        (Some(first), Some(last)) => TimeRange::new(
            first.ts_ms.saturating_sub(MAX_INVOCATION_MS + 60_000),
            last.ts_ms.saturating_add(60_000),
        )
        .ok(),
        _ => None,
    };
    let result = state.sql.invocation(&request_id, near).await?;
    let rows = record_batches_json(&result.batches)?;
    let invocation = rows.as_array().and_then(|r| r.first()).cloned();
    if invocation.is_none() && lines.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no invocation and no log line has request id {request_id:?}"),
        ));
    }
    Ok(Json(json!({
        "request_id": request_id,
        "invocation": invocation,
        "logs": lines.iter().map(hit_json).collect::<Vec<_>>(),
        "log_count": total,
        "logs_truncated": total > lines.len() as u64,
    })))
}

/// Arrow rows as a JSON array of objects.
fn record_batches_json(batches: &[arrow::array::RecordBatch]) -> Result<Value, ApiError> {
    serde_json::from_slice(&record_batches_json_text(batches)?).map_err(ApiError::internal)
}

/// Arrow rows as the text of a JSON array of objects, nulls included.
fn record_batches_json_text(batches: &[arrow::array::RecordBatch]) -> Result<Vec<u8>, ApiError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(Vec::new());
    let refs: Vec<_> = batches.iter().collect();
    writer.write_batches(&refs).map_err(ApiError::internal)?;
    writer.finish().map_err(ApiError::internal)?;
    let buf = writer.into_inner();
    if buf.is_empty() {
        return Ok(b"[]".to_vec());
    }
    Ok(buf)
}

/// How `POST /api/v1/sql` answers.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SqlFormat {
    /// Column names and types, and rows as objects.
    #[default]
    Json,
    /// RFC 4180 with a header line.
    Csv,
    /// An Arrow IPC stream.
    Arrow,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlBody {
    sql: String,
    #[serde(default)]
    format: SqlFormat,
}

/// `POST /api/v1/sql` with `{"sql": "...", "format": "json"|"csv"|"arrow"}`.
pub(crate) async fn sql(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let req: SqlBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("expected {{\"sql\": \"...\", \"format\": \"json\"|\"csv\"|\"arrow\"}}: {e}"),
        )
    })?;
    let started = std::time::Instant::now();
    let result = state.sql.execute(&req.sql).await?;
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    let took = [("x-fnlens-took-ms", format!("{took_ms:.3}"))];
    match req.format {
        SqlFormat::Json => {
            let columns: Vec<Value> = result
                .schema
                .fields()
                .iter()
                .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
                .collect();
            // The rows go out as the Arrow writer renders them, without a round trip through
            // `serde_json::Value`.
            let rows = record_batches_json_text(&result.batches)?;
            let mut body = Vec::with_capacity(rows.len() + 512);
            body.extend_from_slice(b"{\"columns\":");
            serde_json::to_writer(&mut body, &columns).map_err(ApiError::internal)?;
            body.extend_from_slice(b",\"rows\":");
            body.extend_from_slice(&rows);
            body.extend_from_slice(
                format!(
                    ",\"row_count\":{},\"took_ms\":{took_ms}}}",
                    result.row_count()
                )
                .as_bytes(),
            );
            Ok((
                [("content-type", "application/json".to_owned())],
                took,
                body,
            )
                .into_response())
        }
        SqlFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(Vec::new());
            if result.batches.is_empty() {
                writer
                    .write(&arrow::array::RecordBatch::new_empty(result.schema.clone()))
                    .map_err(ApiError::internal)?;
            }
            for b in &result.batches {
                writer.write(b).map_err(ApiError::internal)?;
            }
            let body = writer.into_inner();
            Ok((
                [("content-type", "text/csv; charset=utf-8".to_owned())],
                took,
                body,
            )
                .into_response())
        }
        SqlFormat::Arrow => {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &result.schema)
                .map_err(ApiError::internal)?;
            for b in &result.batches {
                writer.write(b).map_err(ApiError::internal)?;
            }
            writer.finish().map_err(ApiError::internal)?;
            let body = writer.into_inner().map_err(ApiError::internal)?;
            Ok((
                [(
                    "content-type",
                    "application/vnd.apache.arrow.stream".to_owned(),
                )],
                took,
                body,
            )
                .into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_are_escaped_html() {
        assert_eq!(
            highlight_html("a <b> timeout & x", &[6..13, 16..17]),
            "a &lt;b&gt; <mark>timeout</mark> &amp; <mark>x</mark>"
        );
        assert_eq!(
            highlight_html("héllo wörld", &[0..6, 7..13]),
            "<mark>héllo</mark> <mark>wörld</mark>"
        );
        // Ranges off a char boundary are skipped, not a panic.
        assert_eq!(highlight_html("é x", &[1..2, 3..4]), "é <mark>x</mark>");
    }

    #[test]
    fn function_names() {
        assert!(validate_function_name("checkout-api_v2").is_ok());
        assert!(validate_function_name("my-fn:prod").is_ok());
        assert!(validate_function_name("").is_err());
        assert!(validate_function_name("a b").is_err());
        assert!(validate_function_name(&"x".repeat(300)).is_err());
    }
}
