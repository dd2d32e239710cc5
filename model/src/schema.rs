//! The Arrow schema of the `invocations` table, shared by the Parquet writer and SQL.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::Invocation;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Columns of the `invocations` table, in order.
pub fn invocations_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("ts", ts_type(), false),
                Field::new("end_ts", ts_type(), false),
                Field::new("function", DataType::Utf8, false),
                Field::new("version", DataType::Utf8, false),
                Field::new("request_id", DataType::Utf8, false),
                Field::new("status", DataType::Utf8, false),
                Field::new("error_type", DataType::Utf8, true),
                Field::new("duration_ms", DataType::Float64, false),
                Field::new("billed_duration_ms", DataType::Float64, false),
                Field::new("memory_size_mb", DataType::Int64, false),
                Field::new("max_memory_used_mb", DataType::Int64, false),
                Field::new("init_duration_ms", DataType::Float64, true),
                Field::new("cold_start", DataType::Boolean, false),
                Field::new("init_status", DataType::Utf8, true),
                Field::new("instance", DataType::Utf8, true),
                Field::new("region", DataType::Utf8, true),
            ]))
        })
        .clone()
}

/// Builds one record batch from invocations, in the order given.
pub fn invocations_to_record_batch(rows: &[Invocation]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut end_ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut function = StringBuilder::with_capacity(n, n * 16);
    let mut version = StringBuilder::with_capacity(n, n * 8);
    let mut request_id = StringBuilder::with_capacity(n, n * 36);
    let mut status = StringBuilder::with_capacity(n, n * 8);
    let mut error_type = StringBuilder::new();
    let mut duration = Float64Builder::with_capacity(n);
    let mut billed = Float64Builder::with_capacity(n);
    let mut memory = Int64Builder::with_capacity(n);
    let mut max_memory = Int64Builder::with_capacity(n);
    let mut init = Float64Builder::with_capacity(n);
    let mut cold = BooleanBuilder::with_capacity(n);
    let mut init_status = StringBuilder::new();
    let mut instance = StringBuilder::new();
    let mut region = StringBuilder::new();
    for r in rows {
        ts.append_value(r.ts_ms);
        end_ts.append_value(r.end_ts_ms);
        function.append_value(&r.function);
        version.append_value(&r.version);
        request_id.append_value(&r.request_id);
        status.append_value(r.status.as_str());
        error_type.append_option(r.error_type.as_deref());
        duration.append_value(r.duration_ms);
        billed.append_value(r.billed_duration_ms);
        memory.append_value(r.memory_size_mb);
        max_memory.append_value(r.max_memory_used_mb);
        init.append_option(r.init_duration_ms);
        cold.append_value(r.cold_start);
        init_status.append_option(r.init_status.as_deref());
        instance.append_option(r.instance.as_deref());
        region.append_option(r.region.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(end_ts.finish()),
        Arc::new(function.finish()),
        Arc::new(version.finish()),
        Arc::new(request_id.finish()),
        Arc::new(status.finish()),
        Arc::new(error_type.finish()),
        Arc::new(duration.finish()),
        Arc::new(billed.finish()),
        Arc::new(memory.finish()),
        Arc::new(max_memory.finish()),
        Arc::new(init.finish()),
        Arc::new(cold.finish()),
        Arc::new(init_status.finish()),
        Arc::new(instance.finish()),
        Arc::new(region.finish()),
    ];
    RecordBatch::try_new(invocations_schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn batch_matches_schema() {
        let row = Invocation {
            ts_ms: 1,
            end_ts_ms: 3,
            function: "f".into(),
            version: "$LATEST".into(),
            request_id: "r".into(),
            status: Status::Timeout,
            error_type: Some("Sandbox.Timedout".into()),
            duration_ms: 2.0,
            billed_duration_ms: 2.0,
            memory_size_mb: 128,
            max_memory_used_mb: 64,
            init_duration_ms: None,
            cold_start: false,
            init_status: None,
            instance: None,
            region: Some("eu-west-1".into()),
        };
        let batch = invocations_to_record_batch(&[row.clone(), row]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.num_columns(), invocations_schema().fields().len());
    }
}
