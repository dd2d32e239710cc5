//! `POST /api/v1/ingest/logs` through the router: good lines are stored and findable by search
//! and SQL, bad ones are rejected alone with their position, and a body with no good line stores
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fnlens_ingest::{Pipeline, PipelineConfig};
use fnlens_web::{AppState, WebConfig, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

fn post(body: &str) -> Request<Body> {
    Request::post("/api/v1/ingest/logs")
        .header("content-type", "application/x-ndjson")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn sql(app: &axum::Router, q: &str) -> Value {
    let req = Request::post("/api/v1/sql")
        .header("content-type", "application/json")
        .body(Body::from(json!({"sql": q}).to_string()))
        .unwrap();
    let (status, body) = call(app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["rows"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_lines_are_stored_searchable_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = PipelineConfig::new(dir.path().to_path_buf());
    config.commit_interval = Duration::from_millis(20);
    config.retention = None;
    let pipeline = Arc::new(Pipeline::open(config).unwrap());
    let app = app(AppState::new(pipeline.clone(), WebConfig::default()).unwrap());

    // Nothing good: a 400, and nothing stored.
    let (status, body) = call(&app, post("not json\n{\"message\":\"no function\"}\n")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!("all_events_rejected"));
    assert_eq!(body["rejected"], json!(2));
    let (status, body) = call(&app, post("\n\n")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!("empty_body"));
    assert_eq!(
        sql(&app, "SELECT count(*) AS n FROM logs").await[0]["n"],
        json!(0)
    );

    let body = r#"{"ts":"2026-11-27T10:00:00.123Z","function":"checkout","version":"7","request_id":"r-1","level":"ERROR","message":"card declined by issuer","order_id":42}
{"ts":1795780800000,"function":"checkout","message":"retrying","attempt":2}
{"function":"checkout","level":"loud","message":"bad level"}
{"ts":"2026-11-27T10:00:01Z","function":"checkout","message":"order placed","_aws":{"Timestamp":1795780801000,"CloudWatchMetrics":[{"Namespace":"Shop","Dimensions":[["service"]],"Metrics":[{"Name":"OrderValue","Unit":"None"}]}]},"service":"checkout","OrderValue":[30.5,12.25]}
"#;
    let (status, answer) = call(&app, post(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["logs"], json!(3));
    assert_eq!(answer["metrics"], json!(2));
    assert_eq!(answer["rejected"], json!(1));
    assert_eq!(answer["errors"][0]["index"], json!(2));
    assert!(
        answer["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("loud")
    );

    // Searchable once committed, with the extra keys as attributes.
    let mut found = Value::Null;
    for _ in 0..500 {
        let req = Request::get(
            "/api/v1/logs/search?start=2026-11-27T00:00:00Z&end=2026-11-28T00:00:00Z&q=attributes.order_id:42",
        )
        .body(Body::empty())
        .unwrap();
        let (_, body) = call(&app, req).await;
        if body["total"] == json!(1) {
            found = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hit = &found["hits"][0];
    assert_eq!(hit["message"], json!("card declined by issuer"), "{found}");
    assert_eq!(hit["level"], json!("ERROR"));
    assert_eq!(hit["request_id"], json!("r-1"));
    assert_eq!(hit["version"], json!("7"));

    let rows = sql(
        &app,
        "SELECT count(*) AS n FROM logs WHERE search('function:checkout')",
    )
    .await;
    assert_eq!(rows[0]["n"], json!(3));
    let rows = sql(
        &app,
        "SELECT name, sum(value) AS total, min(function) AS f FROM metrics GROUP BY name",
    )
    .await;
    assert_eq!(
        rows,
        json!([{"name": "OrderValue", "total": 42.75, "f": "checkout"}])
    );
    tokio::task::spawn_blocking(move || pipeline.shutdown())
        .await
        .unwrap();
}
