//! SQL over the stores with DataFusion: the `invocations` and `metrics` tables (Parquet plus the
//! rows not yet flushed) and the `logs` table (read from the tantivy index, with full-text
//! predicates pushed down into it).
//!
//! Every statement is checked before planning: only queries (and `EXPLAIN` of a query) run. Each
//! query gets its own memory pool (no spilling) and a deadline.

mod deadline;
mod functions;
mod logs;
mod tables;
mod views;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::datasource::{TableProvider, ViewTable};
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext, col, lit};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use fnlens_model::TimeRange;
use fnlens_store::{LogStore, TableStore};

pub use functions::{FULL_TEXT_FUNCTIONS, register_functions};
pub use logs::LogsTable;
pub use tables::ParquetTable;
pub use views::VIEWS;

use crate::QueryError;

/// Limits of one query.
#[derive(Debug, Clone)]
pub struct SqlLimits {
    /// Memory a query may hold for sorts, joins and aggregations; past it the query fails.
    pub memory_bytes: usize,
    /// Wall time from planning to the last row.
    pub timeout: Duration,
    /// Rows an answer may carry; more is an error asking for a LIMIT.
    pub max_rows: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            memory_bytes: 1 << 30,
            timeout: Duration::from_secs(30),
            max_rows: 1_000_000,
        }
    }
}

/// A finished query: its schema and rows.
#[derive(Debug, Clone)]
pub struct SqlResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl SqlResult {
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// The threads queries run on, apart from the runtime that serves the API: a query that keeps
/// its threads busy cannot starve the HTTP handlers, ingest or the deadline that cancels it.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn new() -> std::io::Result<QueryRuntime> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("fnlens-sql")
            .enable_all()
            .build()?;
        Ok(QueryRuntime(Some(runtime)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime is only taken on drop")
            .handle()
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside another runtime.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs SQL over the fnlens tables.
#[derive(Clone)]
pub struct SqlEngine {
    /// The tables, made once: every session registers the same providers.
    tables: Vec<(&'static str, Arc<dyn TableProvider>)>,
    /// The views' plans, made by the first query and shared by all after it.
    views: Arc<tokio::sync::OnceCell<Vec<(&'static str, LogicalPlan)>>>,
    limits: SqlLimits,
    runtime: Arc<QueryRuntime>,
    /// Shared by every query: the caches of Parquet footers, statistics and file listings
    /// (files never change once written), and the disabled disk manager.
    base_env: Arc<RuntimeEnv>,
    /// DataFusion's settings: its defaults (one partition per core), then any `DATAFUSION_*`
    /// environment variables of the server (e.g. `DATAFUSION_EXECUTION_BATCH_SIZE`).
    options: ConfigOptions,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl SqlEngine {
    pub fn new(
        invocations: Arc<TableStore>,
        metrics: Arc<TableStore>,
        logs: Arc<LogStore>,
        limits: SqlLimits,
    ) -> std::io::Result<SqlEngine> {
        let base_env = RuntimeEnvBuilder::new()
            // A query over its memory fails rather than filling the disk.
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()
            .map_err(std::io::Error::other)?;
        let mut options = ConfigOptions::from_env().map_err(std::io::Error::other)?;
        options.catalog.information_schema = true;
        let tables: Vec<(&'static str, Arc<dyn TableProvider>)> = vec![
            ("invocations", Arc::new(ParquetTable::new(invocations))),
            ("metrics", Arc::new(ParquetTable::new(metrics))),
            ("logs", Arc::new(LogsTable::new(logs))),
        ];
        Ok(SqlEngine {
            tables,
            views: Arc::default(),
            limits,
            runtime: Arc::new(QueryRuntime::new()?),
            base_env,
            options,
        })
    }

    pub fn limits(&self) -> &SqlLimits {
        &self.limits
    }

    /// The same engine (tables, threads, caches) with other limits: for internal scans that
    /// are not a user's query, such as the alert engine's start-up load.
    pub fn with_limits(&self, limits: SqlLimits) -> SqlEngine {
        SqlEngine {
            limits,
            ..self.clone()
        }
    }

    /// A session with the tables, functions and views, and this engine's memory limit.
    async fn context(&self) -> Result<SessionContext, QueryError> {
        let internal = |e: DataFusionError| QueryError::Internal(e.to_string());
        let config = SessionConfig::from(self.options.clone());
        // Its own memory pool, the shared caches.
        let runtime = RuntimeEnvBuilder::from_runtime_env(&self.base_env)
            .with_memory_limit(self.limits.memory_bytes, 1.0)
            .build_arc()
            .map_err(internal)?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        for (name, table) in &self.tables {
            ctx.register_table(*name, table.clone()).map_err(internal)?;
        }
        register_functions(&ctx);
        let views = self
            .views
            .get_or_try_init(|| async {
                let mut plans = Vec::new();
                for (name, view_sql) in VIEWS {
                    let plan = ctx
                        .state()
                        .create_logical_plan(view_sql)
                        .await
                        .map_err(|e| QueryError::Internal(format!("view {name}: {e}")))?;
                    plans.push((*name, plan));
                }
                Ok::<_, QueryError>(plans)
            })
            .await?;
        for (name, plan) in views {
            ctx.register_table(*name, Arc::new(ViewTable::new(plan.clone(), None)))
                .map_err(internal)?;
        }
        Ok(ctx)
    }

    /// Plans and runs one read-only statement within the limits.
    pub async fn execute(&self, sql: &str) -> Result<SqlResult, QueryError> {
        let explain = check_read_only(sql)?;
        let ctx = self.context().await?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let max_rows = self.limits.max_rows;
        let sql = sql.to_owned();
        let timeout = self.limits.timeout;
        let message: Arc<str> =
            format!("the query ran longer than the {timeout:?} limit and was cancelled").into();
        let deadline = std::time::Instant::now() + timeout;
        let timeout_error = QueryError::Timeout(message.to_string());
        let run = async move {
            let df = ctx
                .sql_with_options(&sql, options)
                .await
                .map_err(classify)?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let task = df.task_ctx();
            let plan = df.create_physical_plan().await.map_err(classify)?;
            // EXPLAIN shows the plan as DataFusion made it (EXPLAIN ANALYZE still has the
            // task's deadline).
            let plan = if explain {
                plan
            } else {
                deadline::with_deadline(plan, deadline, message).map_err(classify)?
            };
            let mut stream = datafusion::physical_plan::execute_stream(plan, Arc::new(task))
                .map_err(classify)?;
            let mut batches = Vec::new();
            let mut rows = 0;
            use futures::StreamExt;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(classify)?;
                rows += batch.num_rows();
                if rows > max_rows {
                    return Err(QueryError::ResourcesExhausted(format!(
                        "the answer has more than {max_rows} rows; add a LIMIT or aggregate"
                    )));
                }
                batches.push(batch);
            }
            Ok(SqlResult { schema, batches })
        };
        // The query runs on its own task, so that the deadline fires even while an operator
        // keeps its thread busy; aborting it drops the plan, which cancels its tasks (log scans
        // stop at their next batch).
        let mut task = self.runtime.handle().spawn(run);
        match tokio::time::timeout(self.limits.timeout, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(QueryError::Internal(format!("the query task failed: {e}"))),
            Err(_) => {
                task.abort();
                Err(timeout_error)
            }
        }
    }

    /// The invocation rows with this request id (one, unless a client sent it twice). `near`,
    /// when known (the times of its log lines), lets partitions and row groups outside it be
    /// skipped.
    pub async fn invocation(
        &self,
        request_id: &str,
        near: Option<TimeRange>,
    ) -> Result<SqlResult, QueryError> {
        let ctx = self.context().await?;
        let mut filter = col("request_id").eq(lit(request_id));
        if let Some(range) = near {
            let ts = |ms: i64| {
                lit(ScalarValue::TimestampMillisecond(
                    Some(ms),
                    Some("UTC".into()),
                ))
            };
            filter = filter
                .and(col("ts").gt_eq(ts(range.start_ms())))
                .and(col("ts").lt(ts(range.end_ms())));
        }
        let df = ctx
            .table("invocations")
            .await
            .map_err(classify)?
            .filter(filter)
            .map_err(classify)?
            .sort(vec![col("ts").sort(true, true)])
            .map_err(classify)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(classify)?;
        Ok(SqlResult { schema, batches })
    }
}

/// Refuses, before planning, anything but one query: DDL, DML, COPY, settings, transactions.
/// Answers whether the statement is an `EXPLAIN`.
pub fn check_read_only(sql: &str) -> Result<bool, QueryError> {
    let statements = DFParser::parse_sql(sql).map_err(classify)?;
    if statements.len() != 1 {
        return Err(QueryError::InvalidSql(format!(
            "expected exactly one statement, found {}",
            statements.len()
        )));
    }
    check_statement(&statements[0])?;
    Ok(match &statements[0] {
        DfStatement::Explain(_) => true,
        DfStatement::Statement(s) => matches!(s.as_ref(), SqlStatement::Explain { .. }),
        _ => false,
    })
}

fn check_statement(statement: &DfStatement) -> Result<(), QueryError> {
    let refuse = |what: &str| {
        Err(QueryError::Forbidden(format!(
            "{what} is not allowed: fnlens SQL is read-only (SELECT, WITH, VALUES, EXPLAIN, SHOW, DESCRIBE)"
        )))
    };
    match statement {
        DfStatement::CreateExternalTable(_) => refuse("CREATE EXTERNAL TABLE"),
        DfStatement::CopyTo(_) => refuse("COPY"),
        DfStatement::Reset(_) => refuse("RESET (changing settings)"),
        DfStatement::Explain(e) => check_statement(&e.statement),
        DfStatement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(_)
            | SqlStatement::ShowTables { .. }
            | SqlStatement::ShowColumns { .. }
            | SqlStatement::ExplainTable { .. } => Ok(()),
            SqlStatement::Explain { statement, .. } => match statement.as_ref() {
                SqlStatement::Query(_) => Ok(()),
                other => refuse(&statement_kind(other)),
            },
            SqlStatement::Set(_) | SqlStatement::ShowVariable { .. } => {
                refuse("SET (changing settings)")
            }
            other => refuse(&statement_kind(other)),
        },
    }
}

/// The leading keywords of a statement (`INSERT`, `CREATE TABLE`), for error messages.
fn statement_kind(s: &SqlStatement) -> String {
    let text = s.to_string();
    let words: Vec<&str> = text.split_whitespace().take(3).collect();
    let n = match words.first().map(|w| w.to_ascii_uppercase()) {
        Some(w) if ["CREATE", "DROP", "ALTER", "TRUNCATE"].contains(&w.as_str()) => {
            // CREATE [OR REPLACE] TABLE / VIEW ...
            if words.get(1).is_some_and(|w| w.eq_ignore_ascii_case("OR")) {
                3
            } else {
                2
            }
        }
        _ => 1,
    };
    words[..n.min(words.len())].join(" ").to_ascii_uppercase()
}

/// Sorts DataFusion's errors by whose fault they are.
fn classify(e: DataFusionError) -> QueryError {
    match e.find_root() {
        DataFusionError::External(inner) => match inner.downcast_ref::<QueryError>() {
            Some(q) => q.clone(),
            None => QueryError::Internal(inner.to_string()),
        },
        DataFusionError::ResourcesExhausted(msg) => QueryError::ResourcesExhausted(format!(
            "the query needs more memory than its limit: {msg}"
        )),
        DataFusionError::IoError(_)
        | DataFusionError::ObjectStore(_)
        | DataFusionError::ParquetError(_)
        | DataFusionError::Internal(_) => QueryError::Internal(e.strip_backtrace()),
        _ => QueryError::InvalidSql(e.strip_backtrace()),
    }
}
