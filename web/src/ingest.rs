//! The ingest endpoints of other producers' protocols: OTLP/HTTP (`/v1/logs`, `/v1/metrics`),
//! CloudWatch Logs (`/api/v1/ingest/cloudwatch`) and the Kinesis Firehose HTTP endpoint
//! (`/api/v1/ingest/firehose`). Each answers the way its producer expects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fnlens_ingest::decode::cloudwatch::{self, StreamParams};
use fnlens_ingest::decode::otlp::{self, Encoding};
use fnlens_ingest::decode::{self, DecodeError};
use fnlens_ingest::{Decoded, IngestStats};
use serde::Deserialize;
use serde_json::json;

use crate::handlers::{INLINE_DECODE_BYTES, keep, read_body, store_decoded};
use crate::{ApiError, AppState};

/// Runs a decoder inline for small bodies, on the blocking pool for large ones.
async fn decode_off_thread<T: Send + 'static>(
    size: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    if size > INLINE_DECODE_BYTES {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(ApiError::internal)
    } else {
        Ok(f())
    }
}

/// The body after `Content-Encoding` (gzip or none), at most `limit` bytes either way.
fn decompress(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => Ok(decode::gunzip(&body, limit, "the body")?.into()),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("Content-Encoding {other:?} is not supported; use gzip or none"),
        )),
    }
}

fn record_rejection(stats: &IngestStats) -> impl Fn(ApiError) -> ApiError + '_ {
    move |e| {
        stats.record_rejected_request(e.error);
        e
    }
}

// ---------------------------------------------------------------------------------------------
// OTLP/HTTP

/// An error in OTLP's shape: a `google.rpc.Status` in the request's encoding.
fn otlp_error(e: ApiError, encoding: Encoding) -> Response {
    let code = match e.status {
        StatusCode::TOO_MANY_REQUESTS => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        s if s.is_server_error() => 13,
        _ => 3,
    };
    let message = format!("{}: {}", e.error, e.detail);
    let mut response = (
        e.status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        otlp::status_body(code, &message, encoding),
    )
        .into_response();
    if let Some(secs) = e.retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[derive(Clone, Copy)]
enum Signal {
    Logs,
    Metrics,
}

async fn otlp(state: AppState, signal: Signal, headers: HeaderMap, body: Body) -> Response {
    let stats = state.pipeline.stats().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        let e = ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            format!(
                "Content-Type {content_type:?} is not OTLP; use application/x-protobuf or \
                 application/json"
            ),
        );
        return otlp_error(record_rejection(&stats)(e), Encoding::Json);
    };
    match otlp_inner(&state, signal, encoding, &headers, body).await {
        Ok(response) => response,
        Err(e) => {
            if e.status.is_client_error() {
                stats.record_rejected_request(e.error);
            }
            otlp_error(e, encoding)
        }
    }
}

async fn otlp_inner(
    state: &AppState,
    signal: Signal,
    encoding: Encoding,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = state.config.max_body_bytes;
    let body = read_body(body, limit).await?;
    state.pipeline.stats().record_bytes(body.len());
    let body = decompress(headers, body, limit)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let decoded = decode_off_thread(body.len(), move || match signal {
        Signal::Logs => otlp::decode_logs(&body, encoding, now_ms),
        Signal::Metrics => otlp::decode_metrics(&body, encoding, now_ms),
    })
    .await??;
    let unit = match signal {
        Signal::Logs => "log records",
        Signal::Metrics => "data points",
    };
    let kept = keep(state, decoded, unit).await?;
    let message = match kept.rejected.first() {
        None => String::new(),
        Some(first) => format!(
            "{} rejected; the first (#{}): {}",
            kept.rejected.len(),
            first.index,
            first.detail
        ),
    };
    let body = match signal {
        Signal::Logs => otlp::logs_response(kept.rejected.len(), &message, encoding),
        Signal::Metrics => otlp::metrics_response(kept.rejected.len(), &message, encoding),
    };
    Ok(([(header::CONTENT_TYPE, encoding.content_type())], body).into_response())
}

/// `POST /v1/logs`: an OTLP `ExportLogsServiceRequest`.
pub(crate) async fn otlp_logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    otlp(state, Signal::Logs, headers, body).await
}

/// `POST /v1/metrics`: an OTLP `ExportMetricsServiceRequest`.
pub(crate) async fn otlp_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    otlp(state, Signal::Metrics, headers, body).await
}

// ---------------------------------------------------------------------------------------------
// CloudWatch Logs

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamQuery {
    function: Option<String>,
    version: Option<String>,
    region: Option<String>,
}

impl StreamQuery {
    fn params(self) -> StreamParams {
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        StreamParams {
            function: nonempty(self.function),
            version: nonempty(self.version),
            region: nonempty(self.region),
        }
    }
}

fn stream_params(
    params: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<StreamParams, ApiError> {
    let Query(q) = params.map_err(|e| {
        ApiError::bad_request(
            "invalid_query_string",
            format!("{e}; expected function, version and region"),
        )
    })?;
    let params = q.params();
    if let Some(problem) = params
        .function
        .as_deref()
        .and_then(fnlens_model::function_name_problem)
    {
        return Err(ApiError::bad_request("invalid_function", problem));
    }
    Ok(params)
}

/// `POST /api/v1/ingest/cloudwatch`: a subscription payload, its decoded JSON, or plain text
/// lines of the function named by `?function=`.
pub(crate) async fn cloudwatch(
    State(state): State<AppState>,
    params: Result<Query<StreamQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let stats = state.pipeline.stats().clone();
    let reject = record_rejection(&stats);
    let params = stream_params(params).map_err(&reject)?;
    let limit = state.config.max_body_bytes;
    let body = read_body(body, limit).await.map_err(&reject)?;
    stats.record_bytes(body.len());
    let body = decompress(&headers, body, limit).map_err(&reject)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let decoded = decode_off_thread(body.len(), move || {
        cloudwatch::decode_body(&body, &params, limit, now_ms)
    })
    .await?
    .map_err(|e| reject(e.into()))?;
    store_decoded(&state, decoded, "events").await
}

// ---------------------------------------------------------------------------------------------
// Kinesis Firehose

/// Request ids of Firehose deliveries already stored, so that a retry of one (same
/// `X-Amz-Firehose-Request-Id`) is answered without storing it twice. A delivery being stored
/// holds its entry's lock, so a retry arriving meanwhile waits for its outcome. Entries live an
/// hour (Firehose retries for at most two) and only in memory.
#[derive(Default)]
pub(crate) struct FirehoseDedup {
    seen: Mutex<HashMap<String, (Instant, Delivery)>>,
}

/// One delivery's outcome: `true` once stored. Its lock is held while it is being stored.
type Delivery = Arc<tokio::sync::Mutex<bool>>;

const DEDUP_TTL: Duration = Duration::from_secs(3600);

impl FirehoseDedup {
    fn entry(&self, request_id: &str) -> Delivery {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, (at, _)| at.elapsed() < DEDUP_TTL);
        }
        seen.entry(request_id.to_owned())
            .or_insert_with(|| (Instant::now(), Arc::default()))
            .1
            .clone()
    }
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Firehose's answer: `{"requestId","timestamp"}`, plus `errorMessage` on failure.
fn firehose_answer(status: StatusCode, request_id: &str, error: Option<&str>) -> Response {
    let mut body = json!({
        "requestId": request_id,
        "timestamp": chrono::Utc::now().timestamp_millis(),
    });
    if let Some(message) = error {
        body["errorMessage"] = json!(message);
    }
    (status, axum::Json(body)).into_response()
}

/// `POST /api/v1/ingest/firehose`: the Kinesis Firehose HTTP endpoint delivery protocol 1.0.
pub(crate) async fn firehose(
    State(state): State<AppState>,
    params: Result<Query<StreamQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let request_id = header_str("x-amz-firehose-request-id");
    let stats = state.pipeline.stats().clone();
    let fail = |e: ApiError| {
        if e.status.is_client_error() {
            stats.record_rejected_request(e.error);
        }
        let mut r = firehose_answer(
            e.status,
            &request_id,
            Some(&format!("{}: {}", e.error, e.detail)),
        );
        if let Some(secs) = e.retry_after_secs {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    };
    if let Some(secret) = &state.config.firehose_access_key
        && !same_secret(
            header_str("x-amz-firehose-access-key").as_bytes(),
            secret.as_bytes(),
        )
    {
        return fail(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_access_key",
            "X-Amz-Firehose-Access-Key is missing or does not match the configured key",
        ));
    }
    if request_id.is_empty() {
        return fail(ApiError::bad_request(
            "missing_request_id",
            "the X-Amz-Firehose-Request-Id header is missing",
        ));
    }
    let params = match stream_params(params) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let entry = state.firehose.entry(&request_id);
    let mut stored = entry.lock().await;
    if *stored {
        // A retry of a delivery already stored: the same answer, nothing stored again.
        return firehose_answer(StatusCode::OK, &request_id, None);
    }
    match firehose_store(&state, params, &headers, body).await {
        Ok(()) => {
            *stored = true;
            firehose_answer(StatusCode::OK, &request_id, None)
        }
        Err(e) => fail(e),
    }
}

async fn firehose_store(
    state: &AppState,
    params: StreamParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), ApiError> {
    let limit = state.config.max_body_bytes;
    let body = read_body(body, limit).await?;
    state.pipeline.stats().record_bytes(body.len());
    let body = decompress(headers, body, limit)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let delivery = decode_off_thread(body.len(), move || {
        cloudwatch::decode_firehose(&body, &params, limit, now_ms)
    })
    .await??;
    let header_id = headers
        .get("x-amz-firehose-request-id")
        .and_then(|v| v.to_str().ok());
    if header_id != Some(delivery.request_id.as_str()) {
        return Err(DecodeError::Shape(format!(
            "the body's requestId {:?} is not the X-Amz-Firehose-Request-Id header's",
            delivery.request_id
        ))
        .into());
    }
    let decoded: Decoded = delivery.decoded;
    keep(state, decoded, "records").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }

    #[test]
    fn overload_is_a_retryable_503_in_otlp_shape() {
        let e = ApiError::from(fnlens_ingest::IngestError::Overloaded);
        let r = otlp_error(e, Encoding::Json);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = ApiError::from(fnlens_ingest::IngestError::Overloaded).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[tokio::test]
    async fn dedup_hands_out_one_entry_per_id() {
        let d = FirehoseDedup::default();
        *d.entry("a").lock().await = true;
        assert!(*d.entry("a").lock().await);
        assert!(!*d.entry("b").lock().await);
    }
}
