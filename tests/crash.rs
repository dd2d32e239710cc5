//! Crash: kill -9 the server while a client posts, restart, and check that every acknowledged
//! batch is fully present and that no batch is half present.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{Server, eventually, search, sql};
use fnlens_ingest::decode::telemetry::{LambdaContext, decode};
use fnlens_ingest::simulate::{Fleet, FleetConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let now = chrono::Utc::now().timestamp_millis();
    let mut fleet = Fleet::new(&FleetConfig {
        functions: 4,
        seed: 3,
        start_ms: now - 300_000,
        rate: 100.0,
    });
    // Each batch goes to a function of its own, so it can be counted on its own afterwards.
    let mut batches = Vec::new();
    while batches.len() < 400 {
        for b in fleet.tick(200) {
            let function = format!("crash-{}", batches.len());
            let decoded = decode(
                &b.body,
                &LambdaContext {
                    function: function.clone(),
                    ..LambdaContext::default()
                },
            )
            .unwrap();
            batches.push((
                function,
                b.body,
                decoded.batch.invocations.len() as u64,
                decoded.batch.logs.len() as u64,
            ));
        }
    }
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let base = server.base.clone();
    let poster = {
        let acked = acked.clone();
        let batches = batches.clone();
        tokio::spawn(async move {
            let client = common::client();
            let mut tasks = Vec::new();
            // Four clients in flight at once, like a small fleet.
            for lane in 0..4 {
                let client = client.clone();
                let base = base.clone();
                let acked = acked.clone();
                let mine: Vec<_> = batches
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 4 == lane)
                    .map(|(i, b)| (i, b.clone()))
                    .collect();
                tasks.push(tokio::spawn(async move {
                    for (i, (function, body, _, _)) in mine {
                        let res = client
                            .post(format!("{base}/api/v1/ingest/lambda/{function}"))
                            .body(body)
                            .send()
                            .await;
                        match res {
                            Ok(r) if r.status().is_success() => acked.lock().unwrap().push(i),
                            _ => return,
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };
    // Kill once a good part of the batches are in, while the rest are in flight.
    eventually("some batches acknowledged", || {
        let acked = acked.clone();
        async move { acked.lock().unwrap().len() >= 120 }
    })
    .await;
    server.kill();
    let _ = poster.await;
    let acked: Vec<usize> = acked.lock().unwrap().clone();
    assert!(
        acked.len() < batches.len(),
        "the kill came too late to test anything"
    );

    let server = Server::start(dir.path(), &[]);
    let rows = sql(
        &server,
        "SELECT function, count(*) AS n FROM invocations GROUP BY function",
    )
    .await;
    let inv_by_fn: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    // Search is complete once replay is done, which happens before the server listens.
    let total_logs = search(&server, "", 0).await.0;
    let mut expected_logs_min = 0;
    for (i, (function, _, invocations, logs)) in batches.iter().enumerate() {
        let got_inv = inv_by_fn.get(function).copied().unwrap_or(0);
        let got_logs = search(&server, &format!("function:{function}"), 0).await.0;
        if acked.contains(&i) {
            assert_eq!(
                got_inv, *invocations,
                "acknowledged batch {i} lost invocations"
            );
            assert_eq!(got_logs, *logs, "acknowledged batch {i} lost log lines");
            expected_logs_min += logs;
        } else {
            // Not acknowledged: all or nothing, in both stores together.
            let present = got_logs > 0 || got_inv > 0;
            if present {
                assert_eq!(
                    (got_inv, got_logs),
                    (*invocations, *logs),
                    "batch {i} is half present"
                );
            } else {
                assert_eq!((got_inv, got_logs), (0, 0));
            }
        }
    }
    assert!(total_logs >= expected_logs_min);
    server.stop();
}
