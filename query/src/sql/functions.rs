//! The functions fnlens adds to SQL: `gb_seconds`, `error_rate`, and the full-text filters
//! `match` and `search`, which only the `logs` table can run (it pushes them into tantivy).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, UInt64Array};
use arrow::compute::kernels::numeric::{div, mul};
use arrow::datatypes::DataType;
use arrow::datatypes::{Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result as DfResult;
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, Case, Cast};
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, Signature, Volatility,
    create_udf,
};
use datafusion::prelude::{SessionContext, lit};

/// The names of the full-text filters.
pub const FULL_TEXT_FUNCTIONS: [&str; 2] = ["match", "search"];

/// Registers the fnlens functions in a session.
pub fn register_functions(ctx: &SessionContext) {
    // gb_seconds(billed_duration_ms, memory_size_mb): what Lambda bills, in GB-seconds.
    ctx.register_udf(create_udf(
        "gb_seconds",
        vec![DataType::Float64, DataType::Float64],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(gb_seconds),
    ));
    // error_rate(status): the share of rows whose status is not `success`.
    ctx.register_udaf(AggregateUDF::new_from_impl(ErrorRateUdaf::new()));
    for (name, args) in [
        ("match", vec![DataType::Utf8, DataType::Utf8]),
        ("search", vec![DataType::Utf8]),
    ] {
        ctx.register_udf(create_udf(
            name,
            args,
            DataType::Boolean,
            Volatility::Immutable,
            Arc::new(move |_| {
                exec_err!(
                    "{name}() is a filter on the logs table: use it in the WHERE clause of a \
                     query on logs, combined with other conditions by AND"
                )
            }),
        ));
    }
}

fn gb_seconds(args: &[ColumnarValue]) -> DfResult<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    // ms / 1000 * MB / 1024
    let scale = Float64Array::new_scalar(1000.0 * 1024.0);
    let product = mul(&arrays[0], &arrays[1])?;
    let result: ArrayRef = div(&product, &scale)?;
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &result, 0,
        )?));
    }
    Ok(ColumnarValue::Array(result))
}

/// `error_rate(status)`. The optimizer rewrites it into
/// `avg(CASE WHEN status IS NULL THEN NULL WHEN status <> 'success' THEN 1.0 ELSE 0.0 END)`,
/// which runs on DataFusion's vectorised group accumulators; the plain accumulator below serves
/// the cases that are not simplified (window frames).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ErrorRateUdaf {
    signature: Signature,
}

impl ErrorRateUdaf {
    fn new() -> Self {
        ErrorRateUdaf {
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8View, DataType::Utf8, DataType::LargeUtf8],
                Volatility::Immutable,
            ),
        }
    }
}

impl AggregateUDFImpl for ErrorRateUdaf {
    fn name(&self) -> &str {
        "error_rate"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(ErrorRate::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[errors]", args.name),
                DataType::UInt64,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[total]", args.name),
                DataType::UInt64,
                true,
            )),
        ])
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        Some(Box::new(|f: AggregateFunction, _| {
            let params = f.params;
            let Some(status) = params.args.into_iter().next() else {
                return exec_err!("error_rate takes one argument");
            };
            // The rewrite comes after type coercion: compare views with views.
            let status = Expr::Cast(Cast::new(Box::new(status), DataType::Utf8View));
            let success = lit(ScalarValue::Utf8View(Some("success".into())));
            let flag = Expr::Case(Case::new(
                None,
                vec![
                    (
                        Box::new(status.clone().is_null()),
                        Box::new(lit(ScalarValue::Float64(None))),
                    ),
                    (Box::new(status.not_eq(success)), Box::new(lit(1.0))),
                ],
                Some(Box::new(lit(0.0))),
            ));
            Ok(Expr::AggregateFunction(AggregateFunction::new_udf(
                avg_udaf(),
                vec![flag],
                params.distinct,
                params.filter,
                params.order_by,
                params.null_treatment,
            )))
        }))
    }
}

/// Errors and total of `error_rate`.
#[derive(Debug, Default)]
struct ErrorRate {
    errors: u64,
    total: u64,
}

impl Accumulator for ErrorRate {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let mut count = |s: Option<&str>| {
            if let Some(s) = s {
                self.total += 1;
                if s != "success" {
                    self.errors += 1;
                }
            }
        };
        match values[0].data_type() {
            DataType::Utf8View => values[0].as_string_view().iter().for_each(&mut count),
            DataType::Utf8 => values[0].as_string::<i32>().iter().for_each(&mut count),
            DataType::LargeUtf8 => values[0].as_string::<i64>().iter().for_each(&mut count),
            other => return exec_err!("error_rate takes a string status, not {other}"),
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let errors = states[0].as_any().downcast_ref::<UInt64Array>();
        let total = states[1].as_any().downcast_ref::<UInt64Array>();
        let (Some(errors), Some(total)) = (errors, total) else {
            return exec_err!("error_rate: unexpected state types");
        };
        self.errors += errors.iter().flatten().sum::<u64>();
        self.total += total.iter().flatten().sum::<u64>();
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::UInt64(Some(self.errors)),
            ScalarValue::UInt64(Some(self.total)),
        ])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(ScalarValue::Float64(
            (self.total > 0).then(|| self.errors as f64 / self.total as f64),
        ))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn helpers_compute_what_they_say() {
        let ctx = SessionContext::new();
        register_functions(&ctx);
        let df = ctx
            .sql(
                "SELECT gb_seconds(1000.0, 1024) AS a, gb_seconds(500, 2048) AS b, \
                 error_rate(s) AS r FROM (VALUES ('success'), ('error'), ('timeout'), ('success')) t(s)",
            )
            .await
            .unwrap();
        let batches = df.collect().await.unwrap();
        let b = &batches[0];
        let f = |i: usize| {
            b.column(i)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .value(0)
        };
        assert_eq!(f(0), 1.0);
        assert_eq!(f(1), 1.0);
        assert_eq!(f(2), 0.5);
        let err = ctx
            .sql("SELECT match('a', 'b')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("WHERE clause"), "{err}");
    }
}
