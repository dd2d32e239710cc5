//! The API's handlers.

use std::collections::HashMap;

use arrow::json::ArrayWriter;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fnlens_ingest::decode::telemetry::{self, LambdaContext};
use fnlens_ingest::{DecodeError, Decoded};
use fnlens_model::{LogRecord, TimeRange, format_ts_ms, parse_time_param};
use fnlens_query::{MAX_LIMIT, SearchRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// Bodies larger than this are decoded on the blocking pool rather than on a runtime worker.
const INLINE_DECODE_BYTES: usize = 256 << 10;

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
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
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
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_function",
            "the function name is empty",
        ));
    }
    if name.len() > 256 {
        return Err(ApiError::bad_request(
            "invalid_function",
            "the function name is longer than 256 characters",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '$')))
    {
        return Err(ApiError::bad_request(
            "invalid_function",
            format!("the function name {name:?} contains {c:?}; use letters, digits, - _ . : $"),
        ));
    }
    Ok(())
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
    let Decoded { batch, rejected } = decoded.map_err(|e| {
        reject(match e {
            DecodeError::Json(d) => ApiError::bad_request("invalid_json", d),
            DecodeError::NotAnArray => ApiError::bad_request(
                "not_an_array",
                "the body must be a JSON array of Telemetry API events",
            ),
        })
    })?;
    stats.record_rejected(&rejected);
    let total = batch.len();
    let accepted_nothing = batch.is_empty();
    if accepted_nothing && !rejected.is_empty() {
        let mut err = ApiError::bad_request(
            "all_events_rejected",
            format!(
                "all {} events were rejected; the first: {}",
                rejected.len(),
                rejected[0].detail
            ),
        );
        err.extra = Some(json!({"rejected": rejected.len(), "errors": rejected}));
        return Err(err);
    }
    let invocations = batch.invocations.len();
    let logs = batch.logs.len();
    if !batch.is_empty() {
        state.pipeline.ingest(batch).await?;
    }
    Ok(Json(json!({
        "accepted": total,
        "invocations": invocations,
        "logs": logs,
        "rejected": rejected.len(),
        "errors": rejected,
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

/// `GET /api/v1/logs/search?q=&start=&end=&limit=`.
pub(crate) async fn search_logs(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let range = time_range(&params)?;
    let limit = match params.get("limit").filter(|v| !v.is_empty()) {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| *l <= MAX_LIMIT)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit={v:?} must be a number from 0 to {MAX_LIMIT}"),
                )
            })?,
    };
    let req = SearchRequest {
        query: params.get("q").cloned().unwrap_or_default(),
        range,
        limit,
    };
    let logs = state.pipeline.stores().logs.clone();
    let result = tokio::task::spawn_blocking(move || fnlens_query::search(&logs, &req))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(json!({
        "hits": result.hits.iter().map(hit_json).collect::<Vec<_>>(),
        "total": result.total,
        "took_ms": result.took_ms,
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SqlBody {
    sql: String,
}

/// `POST /api/v1/sql` with `{"sql": "..."}`.
pub(crate) async fn sql(
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let req: SqlBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("expected {{\"sql\": \"...\"}}: {e}"),
        )
    })?;
    let started = std::time::Instant::now();
    let result = state.sql.execute(&req.sql).await?;
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut writer = ArrayWriter::new(Vec::new());
    let batches: Vec<_> = result.batches.iter().collect();
    writer.write_batches(&batches).map_err(ApiError::internal)?;
    writer.finish().map_err(ApiError::internal)?;
    let buf = writer.into_inner();
    let rows: Value = if buf.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&buf).map_err(ApiError::internal)?
    };
    let row_count = result.batches.iter().map(|b| b.num_rows()).sum::<usize>();
    Ok(Json(json!({
        "columns": columns,
        "rows": rows,
        "row_count": row_count,
        "took_ms": started.elapsed().as_secs_f64() * 1000.0,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        assert!(validate_function_name("checkout-api_v2").is_ok());
        assert!(validate_function_name("my-fn:prod").is_ok());
        assert!(validate_function_name("").is_err());
        assert!(validate_function_name("a b").is_err());
        assert!(validate_function_name(&"x".repeat(300)).is_err());
    }
}
