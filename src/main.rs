//! The `fnlens` binary: parses the command line and wires the crates together.

mod cli;

use clap::{Parser, Subcommand};

/// Ingest allocates many small, short-lived objects (JSON values, strings, tantivy documents)
/// across threads; mimalloc measured faster than the system allocator on this workload.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "fnlens",
    version,
    about = "Observability and log analytics for serverless functions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: ingest, search, SQL.
    Serve(cli::serve::ServeArgs),
    /// Search the logs of a running server; --follow streams new matches.
    Search(cli::search::SearchArgs),
    /// Run SQL on a running server and print the answer as a table, CSV or JSON.
    Sql(cli::sql::SqlArgs),
    /// Act as a fleet of Lambda functions posting Telemetry API batches (or write them to a file).
    Simulate(cli::simulate::SimulateArgs),
    /// Benchmarks against a running server.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tantivy=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cli::serve::run(args).await,
            Command::Search(args) => cli::search::run(args).await,
            Command::Sql(args) => cli::sql::run(args).await,
            Command::Simulate(args) => cli::simulate::run(args).await,
            Command::Bench(cmd) => cli::bench::run(cmd).await,
        }
    })
}
