//! SQL over the stores with DataFusion. Read-only: DDL, DML and statements that change settings
//! are refused before planning.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext, col, lit};
use fnlens_model::TimeRange;
use fnlens_store::InvocationStore;

use crate::QueryError;

/// The `invocations` table: the Parquet files plus the rows still in the Arrow buffer.
#[derive(Clone)]
pub struct InvocationsTable {
    store: Arc<InvocationStore>,
}

impl std::fmt::Debug for InvocationsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvocationsTable").finish_non_exhaustive()
    }
}

impl InvocationsTable {
    pub fn new(store: Arc<InvocationStore>) -> InvocationsTable {
        InvocationsTable { store }
    }
}

#[async_trait]
impl TableProvider for InvocationsTable {
    fn schema(&self) -> SchemaRef {
        fnlens_model::invocations_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters reach the Parquet scan for row-group pruning; DataFusion still applies them.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let snapshot = self.store.snapshot(TimeRange::all());
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = vec![MemorySourceConfig::try_new_exec(
            &[snapshot.buffered],
            schema.clone(),
            projection.cloned(),
        )?];
        if !snapshot.files.is_empty() {
            let urls = snapshot
                .files
                .iter()
                .map(|f| ListingTableUrl::parse(f.path.to_string_lossy()))
                .collect::<DfResult<Vec<_>>>()?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(schema.clone());
            let table = ListingTable::try_new(config)?;
            inputs.push(table.scan(state, projection, filters, limit).await?);
        }
        UnionExec::try_new(inputs)
    }
}

/// A finished query: its schema and rows.
#[derive(Debug, Clone)]
pub struct SqlResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Runs SQL over the fnlens tables.
#[derive(Clone)]
pub struct SqlEngine {
    invocations: Arc<InvocationStore>,
}

impl SqlEngine {
    pub fn new(invocations: Arc<InvocationStore>) -> SqlEngine {
        SqlEngine { invocations }
    }

    fn context(&self) -> Result<SessionContext, QueryError> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(2);
        let ctx = SessionContext::new_with_config(config);
        ctx.register_table(
            "invocations",
            Arc::new(InvocationsTable::new(self.invocations.clone())),
        )
        .map_err(|e| QueryError::Internal(e.to_string()))?;
        Ok(ctx)
    }

    /// Plans and runs one read-only statement.
    pub async fn execute(&self, sql: &str) -> Result<SqlResult, QueryError> {
        let ctx = self.context()?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(sql, options).await.map_err(classify)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(classify)?;
        Ok(SqlResult { schema, batches })
    }
}

impl SqlEngine {
    /// The invocation rows with this request id (one, unless a client sent it twice). `near`,
    /// when known (the times of its log lines), lets row groups outside it be skipped.
    pub async fn invocation(
        &self,
        request_id: &str,
        near: Option<TimeRange>,
    ) -> Result<SqlResult, QueryError> {
        let ctx = self.context()?;
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

/// Sorts DataFusion's errors by whose fault they are.
fn classify(e: DataFusionError) -> QueryError {
    match e {
        DataFusionError::IoError(_)
        | DataFusionError::ObjectStore(_)
        | DataFusionError::Internal(_)
        | DataFusionError::External(_) => QueryError::Internal(e.to_string()),
        DataFusionError::ResourcesExhausted(_) => QueryError::ResourcesExhausted(e.to_string()),
        other => QueryError::InvalidSql(other.to_string()),
    }
}
