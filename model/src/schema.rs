//! The Arrow schemas of the SQL tables (`invocations`, `metrics`, `logs`), shared by the Parquet
//! writer and SQL.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, MapBuilder,
    RecordBatch, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::{Invocation, MetricPoint};

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

fn dimensions_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

/// Columns of the `metrics` table, in order. `dimensions` is a map from name to value.
pub fn metrics_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            // The nested types exactly as the builders produce them.
            let map_type = dimensions_builder().finish().data_type().clone();
            let bounds_type = ListBuilder::new(Float64Builder::new())
                .finish()
                .data_type()
                .clone();
            let counts_type = ListBuilder::new(UInt64Builder::new())
                .finish()
                .data_type()
                .clone();
            Arc::new(Schema::new(vec![
                Field::new("ts", ts_type(), false),
                Field::new("namespace", DataType::Utf8, false),
                Field::new("name", DataType::Utf8, false),
                Field::new("unit", DataType::Utf8, false),
                Field::new("kind", DataType::Utf8, false),
                Field::new("value", DataType::Float64, true),
                Field::new("count", DataType::UInt64, true),
                Field::new("sum", DataType::Float64, true),
                Field::new("min", DataType::Float64, true),
                Field::new("max", DataType::Float64, true),
                Field::new("bucket_bounds", bounds_type, true),
                Field::new("bucket_counts", counts_type, true),
                Field::new("function", DataType::Utf8, true),
                Field::new("version", DataType::Utf8, true),
                Field::new("request_id", DataType::Utf8, true),
                Field::new("dimensions", map_type, true),
                // Added after the first release: files written before lack it (read as null).
                Field::new("temporality", DataType::Utf8, true),
            ]))
        })
        .clone()
}

/// Builds one record batch from metric points, in the order given.
pub fn metrics_to_record_batch(rows: &[MetricPoint]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut namespace = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut unit = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut value = Float64Builder::with_capacity(n);
    let mut count = UInt64Builder::with_capacity(n);
    let mut sum = Float64Builder::with_capacity(n);
    let mut min = Float64Builder::with_capacity(n);
    let mut max = Float64Builder::with_capacity(n);
    let mut bounds = ListBuilder::new(Float64Builder::new());
    let mut counts = ListBuilder::new(UInt64Builder::new());
    let mut function = StringBuilder::new();
    let mut version = StringBuilder::new();
    let mut request_id = StringBuilder::new();
    let mut dimensions = dimensions_builder();
    let mut temporality = StringBuilder::new();
    for r in rows {
        ts.append_value(r.ts_ms);
        namespace.append_value(&r.namespace);
        name.append_value(&r.name);
        unit.append_value(&r.unit);
        kind.append_value(r.kind.as_str());
        value.append_option(r.value);
        count.append_option(r.count);
        sum.append_option(r.sum);
        min.append_option(r.min);
        max.append_option(r.max);
        if r.bucket_counts.is_empty() {
            bounds.append_null();
            counts.append_null();
        } else {
            bounds.values().append_slice(&r.bucket_bounds);
            bounds.append(true);
            counts.values().append_slice(&r.bucket_counts);
            counts.append(true);
        }
        function.append_option(r.function.as_deref());
        version.append_option(r.version.as_deref());
        request_id.append_option(r.request_id.as_deref());
        for (k, v) in &r.dimensions {
            dimensions.keys().append_value(k);
            dimensions.values().append_value(v);
        }
        dimensions.append(true)?;
        temporality.append_option(r.temporality.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(namespace.finish()),
        Arc::new(name.finish()),
        Arc::new(unit.finish()),
        Arc::new(kind.finish()),
        Arc::new(value.finish()),
        Arc::new(count.finish()),
        Arc::new(sum.finish()),
        Arc::new(min.finish()),
        Arc::new(max.finish()),
        Arc::new(bounds.finish()),
        Arc::new(counts.finish()),
        Arc::new(function.finish()),
        Arc::new(version.finish()),
        Arc::new(request_id.finish()),
        Arc::new(dimensions.finish()),
        Arc::new(temporality.finish()),
    ];
    RecordBatch::try_new(metrics_schema(), columns)
}

/// Columns of the `logs` table, read from the log index. `attributes` is the JSON object text.
pub fn logs_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("ts", ts_type(), false),
                Field::new("function", DataType::Utf8, false),
                Field::new("version", DataType::Utf8, false),
                Field::new("request_id", DataType::Utf8, true),
                Field::new("level", DataType::Utf8, false),
                Field::new("source", DataType::Utf8, false),
                Field::new("message", DataType::Utf8, false),
                Field::new("attributes", DataType::Utf8, false),
            ]))
        })
        .clone()
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

    #[test]
    fn metric_batch_matches_schema() {
        let mut p = MetricPoint::gauge(5, "shop", "latency", "Milliseconds", 100.0);
        p.dimensions.insert("service".into(), "checkout".into());
        let mut h = MetricPoint::gauge(6, "otel", "faas.invoke_duration", "s", 0.0);
        h.kind = crate::MetricKind::Histogram;
        h.value = None;
        h.count = Some(3);
        h.bucket_bounds = vec![0.1, 1.0];
        h.bucket_counts = vec![1, 1, 1];
        let batch = metrics_to_record_batch(&[p, h]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), metrics_schema());
    }
}
