//! The Parquet-backed tables (`invocations`, `metrics`): the files of the partitions a query's
//! `ts` filters reach, plus the rows not flushed yet.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::col;
use fnlens_model::TimeRange;
use fnlens_store::TableStore;

/// A [`TableStore`] as a DataFusion table. Strings are exposed as `Utf8View`: the Parquet
/// reader produces views without copying, and DataFusion groups and compares them fastest.
#[derive(Clone)]
pub struct ParquetTable {
    store: Arc<TableStore>,
    schema: SchemaRef,
}

impl std::fmt::Debug for ParquetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetTable")
            .field("name", &self.store.spec().name)
            .finish()
    }
}

impl ParquetTable {
    pub fn new(store: Arc<TableStore>) -> ParquetTable {
        let fields: Vec<Field> = store
            .spec()
            .schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
                _ => f.as_ref().clone(),
            })
            .collect();
        ParquetTable {
            store,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// A buffered batch in the table's SQL types.
    fn to_sql_types(&self, batch: &RecordBatch) -> DfResult<RecordBatch> {
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    cast(c, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for ParquetTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // `ts` filters pick partitions; all filters reach the Parquet scan for row-group and
        // page pruning. DataFusion still applies them to the rows.
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
        let range = ts_range(filters);
        let snapshot = self.store.snapshot(range);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !snapshot.buffered.is_empty() || snapshot.files.is_empty() {
            let buffered = snapshot
                .buffered
                .iter()
                .map(|b| self.to_sql_types(b))
                .collect::<DfResult<Vec<_>>>()?;
            inputs.push(MemorySourceConfig::try_new_exec(
                &[buffered],
                schema.clone(),
                projection.cloned(),
            )?);
        }
        if !snapshot.files.is_empty() {
            let urls = snapshot
                .files
                .iter()
                .map(|f| ListingTableUrl::parse(f.path.to_string_lossy()))
                .collect::<DfResult<Vec<_>>>()?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                // Every file is written sorted by ts.
                .with_file_sort_order(vec![vec![col("ts").sort(true, false)]]);
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(schema.clone());
            let table = ListingTable::try_new(config)?;
            inputs.push(table.scan(state, projection, filters, limit).await?);
        }
        if inputs.len() == 1 {
            return Ok(inputs.remove(0));
        }
        UnionExec::try_new(inputs)
    }
}

/// The time range the conjunction of `filters` allows for the `ts` column: `ts >= a`, `ts > a`,
/// `ts < b`, `ts <= b`, `ts = t`, `ts BETWEEN a AND b`, in either operand order. Anything else
/// leaves the range open.
pub(crate) fn ts_range(filters: &[Expr]) -> TimeRange {
    let mut start = i64::MIN;
    let mut end = i64::MAX;
    for f in filters {
        constrain(f, &mut start, &mut end);
    }
    TimeRange::new(start, end).unwrap_or_else(|_| {
        // An empty range (start past end): no partition matches.
        TimeRange::new(0, 0).unwrap_or(TimeRange::all())
    })
}

fn constrain(expr: &Expr, start: &mut i64, end: &mut i64) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            constrain(left, start, end);
            constrain(right, start, end);
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = match (is_ts(left), is_ts(right)) {
                (true, false) => (*op, right),
                (false, true) => match op.swap() {
                    Some(op) => (op, left),
                    None => return,
                },
                _ => return,
            };
            let Some(ms) = literal_ms(value) else { return };
            match op {
                // end is exclusive.
                Operator::Lt => *end = (*end).min(ms.ceil),
                Operator::LtEq => *end = (*end).min(ms.floor.saturating_add(1)),
                Operator::Gt => *start = (*start).max(ms.floor.saturating_add(1)),
                Operator::GtEq => *start = (*start).max(ms.floor),
                Operator::Eq => {
                    *start = (*start).max(ms.floor);
                    *end = (*end).min(ms.floor.saturating_add(1));
                }
                _ => {}
            }
        }
        Expr::Between(b) if !b.negated && is_ts(&b.expr) => {
            if let Some(lo) = literal_ms(&b.low) {
                *start = (*start).max(lo.floor);
            }
            if let Some(hi) = literal_ms(&b.high) {
                *end = (*end).min(hi.floor.saturating_add(1));
            }
        }
        _ => {}
    }
}

fn is_ts(e: &Expr) -> bool {
    match e {
        Expr::Column(c) => c.name == "ts",
        Expr::Cast(c) => is_ts(&c.expr),
        Expr::TryCast(c) => is_ts(&c.expr),
        _ => false,
    }
}

/// A timestamp literal in whole milliseconds, rounded down and up.
struct Ms {
    floor: i64,
    ceil: i64,
}

fn literal_ms(e: &Expr) -> Option<Ms> {
    let (value, per_ms) = match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampSecond(Some(s), _) => {
                let ms = s.checked_mul(1000)?;
                return Some(Ms {
                    floor: ms,
                    ceil: ms,
                });
            }
            ScalarValue::TimestampMillisecond(Some(v), _) => (*v, 1),
            ScalarValue::TimestampMicrosecond(Some(v), _) => (*v, 1_000),
            ScalarValue::TimestampNanosecond(Some(v), _) => (*v, 1_000_000),
            _ => return None,
        },
        Expr::Cast(c) => return literal_ms(&c.expr),
        _ => return None,
    };
    Some(Ms {
        floor: value.div_euclid(per_ms),
        ceil: value.div_euclid(per_ms) + i64::from(value.rem_euclid(per_ms) != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::lit;

    fn ts(ms: i64) -> Expr {
        lit(ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn ts_filters_become_a_range() {
        let r = ts_range(&[col("ts").gt_eq(ts(100)), col("ts").lt(ts(200))]);
        assert_eq!((r.start_ms(), r.end_ms()), (100, 200));
        let r = ts_range(&[ts(100).lt(col("ts")).and(col("ts").lt_eq(ts(200)))]);
        assert_eq!((r.start_ms(), r.end_ms()), (101, 201));
        let r = ts_range(&[col("ts").between(ts(5), ts(9))]);
        assert_eq!((r.start_ms(), r.end_ms()), (5, 10));
        let micros = lit(ScalarValue::TimestampMicrosecond(Some(1_500), None));
        let r = ts_range(&[col("ts").lt(micros)]);
        assert_eq!(r.end_ms(), 2, "a fractional bound rounds outwards");
        // Disjunctions and other columns leave the range open.
        let r = ts_range(&[
            col("ts").lt(ts(5)).or(col("ts").gt(ts(9))),
            col("end_ts").lt(ts(1)),
        ]);
        assert_eq!(r, TimeRange::all());
    }
}
