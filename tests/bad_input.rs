//! Bad input: each case gets a 4xx naming the problem, a rejected request leaves the stores as
//! they were, and a partly bad batch stores exactly its good events.

mod common;

use common::{Server, client, eventually, fixture, post_lambda, search, sql_count};
use serde_json::Value;

async fn counts(server: &Server) -> (u64, u64) {
    (
        sql_count(server, "SELECT count(*) AS n FROM invocations").await,
        search(server, "", 0).await.0,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-body-bytes", "4096"]);
    let good = fixture("telemetry/otel-lambda.report-valid.json");
    assert_eq!(post_lambda(&server, "base", "", good).await.0, 200);
    eventually("baseline searchable", || async {
        search(&server, "", 0).await.0 == 1
    })
    .await;
    let before = counts(&server).await;

    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed json",
            "f",
            b"[{\"time\": ".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "not an array",
            "f",
            b"{\"time\":\"2022-10-12T00:03:50.000Z\"}".to_vec(),
            400,
            "not_an_array",
        ),
        (
            "over the limit",
            "f",
            vec![b' '; 5000],
            413,
            "body_too_large",
        ),
        (
            "invalid function name",
            "bad%20name",
            b"[]".to_vec(),
            400,
            "invalid_function",
        ),
        (
            "empty function name",
            "",
            b"[]".to_vec(),
            400,
            "invalid_function",
        ),
        (
            "every event rejected",
            "f",
            fixture("telemetry/otel-lambda.bad-report-string-duration.json"),
            400,
            "all_events_rejected",
        ),
    ];
    for (what, function, body, status, error) in cases {
        let (got, answer) = post_lambda(&server, function, "", body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer["error"], error, "{what}: {answer}");
        assert!(
            answer["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: no detail"
        );
    }
    // Let a commit tick pass so anything wrongly written would show.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        counts(&server).await,
        before,
        "a rejected request changed the stores"
    );

    // The rejections are counted.
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fnlens_ingest_events_rejected_total{reason=\"invalid_json\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fnlens_ingest_events_rejected_total{reason=\"invalid_field\"} 1"),
        "{metrics}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_bad_batch_stores_exactly_its_good_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let good: Vec<Value> =
        serde_json::from_slice(&fixture("telemetry/otel-lambda.report-valid.json")).unwrap();
    let bad: Vec<Value> = serde_json::from_slice(&fixture(
        "telemetry/otel-lambda.bad-report-missing-requestid.json",
    ))
    .unwrap();
    let mut line = good[0].clone();
    line["type"] = "function".into();
    line["record"] = "[ERROR] something broke in the partly bad batch".into();
    let batch = serde_json::to_vec(&vec![
        good[0].clone(),
        bad[0].clone(),
        line,
        serde_json::json!("not an event"),
    ])
    .unwrap();
    let (status, answer) = post_lambda(&server, "mixed", "", batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rejected"], 2);
    assert_eq!(
        answer["accepted"], 3,
        "one invocation, its REPORT line and the function line: {answer}"
    );
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors[0]["index"], 1);
    assert_eq!(errors[0]["reason"], "missing_field");
    assert!(errors[0]["detail"].as_str().unwrap().contains("requestId"));
    assert_eq!(errors[1]["index"], 3);

    assert_eq!(
        sql_count(
            &server,
            "SELECT count(*) AS n FROM invocations WHERE function = 'mixed'"
        )
        .await,
        1
    );
    eventually("good lines searchable", || async {
        search(&server, "function:mixed", 0).await.0 == 2
    })
    .await;
    let (total, hits) = search(&server, "\"partly bad batch\"", 5).await;
    assert_eq!(total, 1);
    assert_eq!(hits[0]["level"], "ERROR");
    server.stop();
}
