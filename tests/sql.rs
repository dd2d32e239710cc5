//! End to end: `fnlens sql` against a running server, as a table, CSV and JSON, and its errors.

mod common;

use std::process::Command;

use common::*;

const CHECKOUT: &str = "telemetry/handbuilt.checkout-node-cold-warm-timeout.json";

fn fnlens() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fnlens"))
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = fnlens().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_cli_prints_a_table_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, body) = post_lambda(&server, "checkout", "", fixture(CHECKOUT)).await;
    assert_eq!(status, 200, "{body}");
    let url = server.url("");
    let query = "SELECT status, count(*) AS n FROM invocations GROUP BY status ORDER BY status";
    let expected = sql(&server, query).await;
    assert!(expected.len() >= 2, "{expected:?}");

    let (ok, table, err) = run(&["sql", query, "--server", &url]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    // +--------+---+ / | status | n | / +--------+---+ / rows / +--------+---+ / N rows
    assert!(
        lines[1].contains("status") && lines[1].contains(" n "),
        "{table}"
    );
    for row in &expected {
        let status = row["status"].as_str().unwrap();
        let n = row["n"].as_u64().unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("| {status}")) && l.contains(&format!(" {n} "))),
            "{status} {n} missing from\n{table}"
        );
    }
    assert_eq!(
        lines.last().unwrap(),
        &format!("{} rows", expected.len()),
        "{table}"
    );

    let (ok, csv, err) = run(&["sql", "--format", "csv", query, "--server", &url]);
    assert!(ok, "{err}");
    let csv_lines: Vec<&str> = csv.lines().collect();
    assert_eq!(csv_lines[0], "status,n");
    assert_eq!(csv_lines.len(), expected.len() + 1, "{csv}");

    let (ok, json, err) = run(&["sql", "--format", "json", query, "--server", &url]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows, expected);

    // Errors come back as the server's, with a failing exit status.
    let (ok, _, err) = run(&["sql", "DROP TABLE invocations", "--server", &url]);
    assert!(!ok);
    assert!(
        err.contains("read_only") && err.contains("DROP TABLE"),
        "{err}"
    );
    let (ok, _, err) = run(&["sql", "SELECT nope FROM invocations", "--server", &url]);
    assert!(!ok);
    assert!(err.contains("nope"), "{err}");
    server.stop();
}
