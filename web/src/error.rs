//! One error type for every handler: a client's mistake is a 4xx naming the problem, a server
//! failure is logged in full and answered with a generic 5xx.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fnlens_ingest::IngestError;
use fnlens_ingest::decode::DecodeError;
use fnlens_query::QueryError;
use serde_json::json;

/// An error answer: `{"error": "<short code>", "detail": "<what exactly>"}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: String,
    /// Extra fields merged into the body (e.g. the rejected events).
    pub extra: Option<serde_json::Value>,
    /// Seconds a client should wait before retrying (`Retry-After`), for 429 and 503.
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            detail: detail.into(),
            extra: None,
            retry_after_secs: None,
        }
    }

    pub fn bad_request(error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error, detail)
    }

    /// A server failure: logged in full, answered generically.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> ApiError {
        let detail = detail.to_string();
        tracing::error!(detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed; see its log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error, "detail": self.detail});
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
            (self.extra, body.as_object_mut())
        {
            obj.extend(extra);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.code(), e.to_string())
            }
            other => ApiError::bad_request(other.code(), other.to_string()),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::ShuttingDown => ApiError {
                retry_after_secs: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                    "fnlens is shutting down; retry",
                )
            },
            IngestError::Overloaded => ApiError {
                retry_after_secs: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "the write-ahead log is behind; retry shortly",
                )
            },
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::InvalidQuery(d) => ApiError::bad_request("invalid_query", d),
            QueryError::Syntax { message, position } => {
                let mut err = ApiError::bad_request(
                    "invalid_query",
                    format!("syntax error at position {position}: {message}"),
                );
                err.extra = Some(json!({"position": position}));
                err
            }
            QueryError::InvalidSql(d) => ApiError::bad_request("invalid_sql", d),
            QueryError::Forbidden(d) => ApiError::bad_request("read_only", d),
            QueryError::ResourcesExhausted(d) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "resources_exhausted", d)
            }
            QueryError::Timeout(d) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "query_timeout", d)
            }
            QueryError::Internal(d) => ApiError::internal(d),
        }
    }
}

/// Answer of the panic guard. Handlers are written not to panic; this keeps the server up if one does.
pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the server failed; see its log",
    )
    .into_response()
}
