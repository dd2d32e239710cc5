//! The fnlens HTTP API. This is the only crate that knows HTTP: handlers turn requests into calls
//! on the ingest pipeline and the query engines, and their errors into JSON answers.

mod alerts;
mod error;
mod handlers;
mod ingest;
mod metrics;
mod ui;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use fnlens_ingest::Pipeline;
use fnlens_query::{SqlEngine, SqlLimits, TailHub};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub use alerts::{QuerySources, start_alerts};
pub use error::ApiError;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Largest request body accepted, in bytes (after decompression); larger ones get a 413.
    pub max_body_bytes: usize,
    /// Memory, time and row limits of each SQL query.
    pub sql: SqlLimits,
    /// The secret Firehose must send in `X-Amz-Firehose-Access-Key`; `None` checks nothing.
    pub firehose_access_key: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            max_body_bytes: 16 << 20,
            sql: SqlLimits::default(),
            firehose_access_key: None,
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
    pub tail: TailHub,
    pub(crate) firehose: Arc<ingest::FirehoseDedup>,
    /// The alert engine; `None` answers the alerts API with 503.
    pub alerts: Option<Arc<fnlens_alerts::Engine>>,
}

impl AppState {
    /// Starts the live-tail thread on the pipeline's subscription point.
    pub fn new(pipeline: Arc<Pipeline>, config: WebConfig) -> std::io::Result<AppState> {
        let stores = pipeline.stores();
        let sql = SqlEngine::new(
            stores.invocations.clone(),
            stores.metrics.clone(),
            stores.logs.clone(),
            config.sql.clone(),
        )?;
        let tail = TailHub::start(
            pipeline.subscribe(),
            pipeline.stores().logs.schema().clone(),
            Arc::new(|r| handlers::hit_json(r).to_string()),
        )?;
        Ok(AppState {
            pipeline,
            sql,
            config,
            http: Arc::default(),
            tail,
            firehose: Arc::default(),
            alerts: None,
        })
    }

    /// Adds the alert engine; [`start_alerts`] starts it.
    pub fn with_alerts(mut self, engine: Arc<fnlens_alerts::Engine>) -> AppState {
        self.alerts = Some(engine);
        self
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
        .route("/api/v1/ingest/logs", post(handlers::ingest_logs))
        .route("/api/v1/ingest/cloudwatch", post(ingest::cloudwatch))
        .route("/api/v1/ingest/firehose", post(ingest::firehose))
        .route("/v1/logs", post(ingest::otlp_logs))
        .route("/v1/metrics", post(ingest::otlp_metrics))
        .route("/api/v1/logs/search", get(handlers::search_logs))
        .route("/api/v1/logs/histogram", get(handlers::histogram))
        .route("/api/v1/logs/facets", get(handlers::facets))
        .route("/api/v1/logs/tail", get(handlers::tail))
        .route(
            "/api/v1/invocations/{request_id}",
            get(handlers::invocation),
        )
        .route("/api/v1/sql", post(handlers::sql))
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route(
            "/api/v1/alerts/rules",
            get(alerts::list_rules).post(alerts::create_rule),
        )
        .route(
            "/api/v1/alerts/rules/{name}",
            get(alerts::get_rule)
                .put(alerts::replace_rule)
                .delete(alerts::delete_rule),
        )
        .route("/api/v1/alerts/history", get(alerts::history))
        .route(
            "/api/v1/alerts/silences",
            get(alerts::list_silences).post(alerts::create_silence),
        )
        .route(
            "/api/v1/alerts/silences/{id}",
            axum::routing::delete(alerts::delete_silence),
        )
        .route("/", get(ui::index))
        .route("/ui/{*path}", get(ui::asset))
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use fnlens_ingest::PipelineConfig;
    use tower::ServiceExt;

    async fn call(app: Router, req: Request<Body>) -> (StatusCode, String) {
        let res = app.oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_not_found_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = PipelineConfig::new(dir.path().to_path_buf());
        config.indexer_threads = 1;
        config.indexer_memory_bytes = 15_000_000;
        let pipeline = Arc::new(Pipeline::open(config).unwrap());
        let app = app(AppState::new(pipeline.clone(), WebConfig::default()).unwrap());

        let (status, body) = call(
            app.clone(),
            Request::get("/healthz").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, r#"{"status":"ok"}"#)
        );

        let (status, body) = call(
            app.clone(),
            Request::get("/nope").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("\"error\":\"not_found\""), "{body}");

        let batch =
            r#"[{"time":"2026-01-01T00:00:00Z","type":"function","record":"[ERROR] boom"}]"#;
        let req = Request::post("/api/v1/ingest/lambda/f")
            .body(Body::from(batch))
            .unwrap();
        let (status, body) = call(app.clone(), req).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        let (status, metrics) =
            call(app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        for needle in [
            "fnlens_http_requests_total{route=\"/healthz\",status=\"200\"} 1",
            "fnlens_http_requests_total{route=\"unmatched\",status=\"404\"} 1",
            "fnlens_ingest_events_accepted_total{kind=\"log\"} 1",
            "fnlens_ingest_bytes_total ",
            "fnlens_wal_fsyncs_total 1",
            "fnlens_wal_fsync_seconds_count 1",
            "fnlens_partitions{store=\"logs\"} 1",
        ] {
            assert!(metrics.contains(needle), "missing {needle:?} in\n{metrics}");
        }
        tokio::task::spawn_blocking(move || pipeline.shutdown())
            .await
            .unwrap();
    }
}
