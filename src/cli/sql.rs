//! `fnlens sql`: runs a query on a running server and prints an aligned table, CSV or JSON.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    /// The query, e.g. "SELECT function, count(*) FROM invocations GROUP BY 1". `-` reads stdin.
    sql: String,
    /// How to print the answer.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The fnlens server.
    #[arg(long, env = "FNLENS_URL", default_value = "http://127.0.0.1:7070")]
    server: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned columns with a header.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row.
    Json,
}

pub(crate) async fn run(args: SqlArgs) -> anyhow::Result<()> {
    let sql = if args.sql == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the query from stdin")?
    } else {
        args.sql
    };
    let wire = match args.format {
        Format::Table => "arrow",
        Format::Csv => "csv",
        Format::Json => "json",
    };
    let base = args.server.trim_end_matches('/');
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/sql"))
        .json(&json!({"sql": sql, "format": wire}))
        .send()
        .await
        .with_context(|| format!("connecting to {base}"))?;
    let status = resp.status();
    let body = resp.bytes().await.context("reading the server's answer")?;
    if !status.is_success() {
        let err: Value = serde_json::from_slice(&body).unwrap_or_default();
        bail!(
            "{} ({}): {}",
            err["error"].as_str().unwrap_or("error"),
            status,
            err["detail"].as_str().unwrap_or_default()
        );
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Table => {
            let reader =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
                    .context("decoding the Arrow answer")?;
            let batches = reader
                .collect::<Result<Vec<_>, _>>()
                .context("decoding the Arrow answer")?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            if !batches.is_empty() {
                writeln!(
                    out,
                    "{}",
                    arrow::util::pretty::pretty_format_batches(&batches)?
                )?;
            }
            writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
        }
        Format::Csv => out.write_all(&body)?,
        Format::Json => {
            let answer: Value = serde_json::from_slice(&body)?;
            for row in answer["rows"].as_array().into_iter().flatten() {
                writeln!(out, "{row}")?;
            }
        }
    }
    Ok(())
}
