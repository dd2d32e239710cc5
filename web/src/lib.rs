//! The fnlens HTTP API. This is the only crate that knows HTTP: handlers turn requests into calls
//! on the ingest pipeline and the query engines, and their errors into JSON answers.

mod error;
mod handlers;
mod metrics;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use fnlens_ingest::Pipeline;
use fnlens_query::SqlEngine;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub use error::ApiError;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Largest request body accepted, in bytes (after decompression); larger ones get a 413.
    pub max_body_bytes: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            max_body_bytes: 16 << 20,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub sql: SqlEngine,
    pub config: WebConfig,
    pub http: Arc<metrics::HttpStats>,
}

impl AppState {
    pub fn new(pipeline: Arc<Pipeline>, config: WebConfig) -> AppState {
        let sql = SqlEngine::new(pipeline.stores().invocations.clone());
        AppState {
            pipeline,
            sql,
            config,
            http: Arc::default(),
        }
    }
}

/// The API router, without a socket: tests drive it with `tower::ServiceExt::oneshot`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/v1/ingest/lambda/{function}",
            post(handlers::ingest_lambda),
        )
        .route("/api/v1/ingest/lambda", post(handlers::missing_function))
        .route("/api/v1/ingest/lambda/", post(handlers::missing_function))
        .route("/api/v1/logs/search", get(handlers::search_logs))
        .route("/api/v1/sql", post(handlers::sql))
        .route("/healthz", get(handlers::healthz))
        .route("/metrics", get(metrics::render))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
