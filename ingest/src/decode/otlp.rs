//! OpenTelemetry OTLP/HTTP logs and metrics (formats.md section 5), protobuf or JSON.
//!
//! Log records become [`LogRecord`]s of the function the resource names (`faas.name`, else
//! `service.name`), with `faas.version`, `faas.invocation_id` as the request id, the level from
//! the severity, and every attribute kept (plus `trace_id`, `span_id` and the scope). Data
//! points become [`MetricPoint`]s: gauges and sums keep their value, histograms their count,
//! sum, min, max and buckets (exponential ones are turned into explicit bounds). A record or
//! point that cannot be read is rejected alone and counted in the answer's `partial_success`.

use std::collections::BTreeMap;

use fnlens_model::{
    Batch, Level, LogRecord, LogSource, MetricKind, MetricPoint, function_name_problem,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{self as metric_points, metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Map, Value};

use super::telemetry::DEFAULT_VERSION;
use super::{DecodeError, Decoded, Rejection, emf};

/// How the body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// `application/x-protobuf` or `application/json` (parameters ignored); anything else is
    /// `None`.
    pub fn from_content_type(content_type: &str) -> Option<Encoding> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

fn parse<T: Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    encoding: Encoding,
    name: &'static str,
) -> Result<T, DecodeError> {
    match encoding {
        Encoding::Protobuf => {
            T::decode(body).map_err(|e| DecodeError::Protobuf(name, e.to_string()))
        }
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))
        }
    }
}

/// An attribute value as JSON: strings, numbers, booleans, arrays and maps as themselves,
/// bytes as base64.
fn any_to_json(v: &AnyValue) -> Value {
    match &v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attributes(&kv.values)),
        Some(any_value::Value::BytesValue(b)) => {
            use base64::Engine;
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(any_value::Value::StringValueStrindex(i)) => Value::from(*i),
    }
}

fn attributes(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Value::Null, any_to_json),
            )
        })
        .collect()
}

fn string_attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        })
}

/// A dimension value: strings as themselves, anything else as its JSON text.
fn dimension_value(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => v.map(any_to_json).unwrap_or(Value::Null).to_string(),
    }
}

/// Who the resource is: the function (`faas.name`, else `service.name`), its version, and the
/// instance (`faas.instance`, else `service.instance.id`) that tells one execution environment's
/// cumulative series from another's.
struct Source {
    function: Result<String, String>,
    version: String,
    instance: Option<(&'static str, String)>,
}

fn source(resource: Option<&Resource>) -> Source {
    let attrs = resource.map_or(&[][..], |r| &r.attributes[..]);
    let function =
        match string_attr(attrs, "faas.name").or_else(|| string_attr(attrs, "service.name")) {
            None => Err("the resource has neither faas.name nor service.name".to_owned()),
            Some(name) => match function_name_problem(name) {
                Some(problem) => Err(problem),
                None => Ok(name.to_owned()),
            },
        };
    let instance = ["faas.instance", "service.instance.id"]
        .into_iter()
        .find_map(|key| string_attr(attrs, key).map(|v| (key, v.to_owned())));
    Source {
        function,
        version: string_attr(attrs, "faas.version")
            .unwrap_or(DEFAULT_VERSION)
            .to_owned(),
        instance,
    }
}

fn nanos_to_ms(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

/// OTLP's severity number ranges (1-4 TRACE ... 21-24 FATAL), else the text, else INFO.
fn level(number: i32, text: &str) -> Level {
    match number {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => Level::parse(text).unwrap_or(Level::Info),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Decodes an `ExportLogsServiceRequest`. Positions of rejections count log records across the
/// whole request, from 0.
pub fn decode_logs(body: &[u8], encoding: Encoding, now_ms: i64) -> Result<Decoded, DecodeError> {
    let request: ExportLogsServiceRequest = parse(body, encoding, "ExportLogsServiceRequest")?;
    let mut batch = Batch::default();
    let mut rejected = Vec::new();
    let mut index = 0usize;
    for resource_logs in &request.resource_logs {
        let src = source(resource_logs.resource.as_ref());
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_logs.scope.as_ref().map_or("", |s| s.name.as_str());
            for record in &scope_logs.log_records {
                let at = index;
                index += 1;
                let function = match &src.function {
                    Ok(f) => f,
                    Err(problem) => {
                        rejected.push(Rejection {
                            index: at,
                            event_type: Some("log_record".to_owned()),
                            reason: "invalid_function",
                            detail: problem.clone(),
                        });
                        continue;
                    }
                };
                let ts_ms = match (record.time_unix_nano, record.observed_time_unix_nano) {
                    (0, 0) => now_ms,
                    (0, observed) => nanos_to_ms(observed),
                    (t, _) => nanos_to_ms(t),
                };
                let mut attrs = attributes(&record.attributes);
                let request_id =
                    string_attr(&record.attributes, "faas.invocation_id").map(str::to_owned);
                if !record.trace_id.is_empty() {
                    attrs.insert("trace_id".into(), Value::String(hex(&record.trace_id)));
                }
                if !record.span_id.is_empty() {
                    attrs.insert("span_id".into(), Value::String(hex(&record.span_id)));
                }
                if !scope.is_empty() {
                    attrs.insert("scope".into(), Value::String(scope.to_owned()));
                }
                if !record.event_name.is_empty() {
                    attrs.insert(
                        "event_name".into(),
                        Value::String(record.event_name.clone()),
                    );
                }
                let message = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                    None => String::new(),
                    Some(any_value::Value::StringValue(s)) => {
                        s.trim_end_matches(['\n', '\r']).to_owned()
                    }
                    Some(_) => any_to_json(record.body.as_ref().unwrap_or(&AnyValue::default()))
                        .to_string(),
                };
                // An EMF document logged through OTLP still yields its metric points.
                if message.starts_with('{')
                    && let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&message)
                    && emf::is_emf(&doc)
                {
                    let ctx = emf::EmfContext {
                        function: Some(function),
                        version: Some(&src.version),
                        request_id: request_id.as_deref(),
                    };
                    match emf::extract(&doc, &ctx) {
                        Ok(points) => batch.metrics.extend(points),
                        Err(mut r) => {
                            r.index = at;
                            r.event_type = Some("log_record".to_owned());
                            rejected.push(r);
                            continue;
                        }
                    }
                }
                batch.logs.push(LogRecord {
                    ts_ms,
                    function: function.clone(),
                    version: src.version.clone(),
                    request_id,
                    level: level(record.severity_number, &record.severity_text),
                    source: LogSource::Function,
                    message,
                    attributes: attrs,
                });
            }
        }
    }
    Ok(Decoded { batch, rejected })
}

/// Decodes an `ExportMetricsServiceRequest`. Positions of rejections count data points across
/// the whole request, from 0. Metrics need no function: a resource without one gives points
/// without one.
pub fn decode_metrics(
    body: &[u8],
    encoding: Encoding,
    now_ms: i64,
) -> Result<Decoded, DecodeError> {
    let request: ExportMetricsServiceRequest =
        parse(body, encoding, "ExportMetricsServiceRequest")?;
    let mut batch = Batch::default();
    let mut rejected = Vec::new();
    let mut index = 0usize;
    for resource_metrics in &request.resource_metrics {
        let src = source(resource_metrics.resource.as_ref());
        let function = src.function.ok();
        let version = function.as_ref().map(|_| src.version.clone());
        let instance = src.instance;
        for scope_metrics in &resource_metrics.scope_metrics {
            let namespace = match scope_metrics.scope.as_ref().map(|s| s.name.as_str()) {
                Some(name) if !name.is_empty() => name,
                _ => "otlp",
            };
            for m in &scope_metrics.metrics {
                let point = |ts_nanos: u64, kind: MetricKind, dims: &[KeyValue]| {
                    let ts_ms = if ts_nanos == 0 {
                        now_ms
                    } else {
                        nanos_to_ms(ts_nanos)
                    };
                    MetricPoint {
                        kind,
                        value: None,
                        function: function.clone(),
                        version: version.clone(),
                        dimensions: instance
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), v.clone()))
                            .chain(
                                dims.iter()
                                    .map(|kv| (kv.key.clone(), dimension_value(kv.value.as_ref()))),
                            )
                            .collect::<BTreeMap<_, _>>(),
                        ..MetricPoint::gauge(ts_ms, namespace, &m.name, &m.unit, 0.0)
                    }
                };
                // A histogram's point: count, sum, min and max; the buckets are the caller's.
                let histogram =
                    |ts_nanos: u64,
                     dims: &[KeyValue],
                     (count, sum, min, max): (u64, Option<f64>, Option<f64>, Option<f64>),
                     temporality: Option<String>| MetricPoint {
                        count: Some(count),
                        sum,
                        min,
                        max,
                        temporality,
                        ..point(ts_nanos, MetricKind::Histogram, dims)
                    };
                let bad = |index: usize, detail: String| Rejection {
                    index,
                    event_type: Some(m.name.clone()),
                    reason: "invalid_data_point",
                    detail,
                };
                match &m.data {
                    None => {
                        rejected.push(bad(index, format!("metric {:?} has no data", m.name)));
                        index += 1;
                    }
                    Some(metric::Data::Gauge(metric_points::Gauge { data_points, .. }))
                    | Some(metric::Data::Sum(metric_points::Sum { data_points, .. })) => {
                        let (kind, temporality) = match &m.data {
                            Some(metric::Data::Sum(s)) => {
                                (MetricKind::Sum, temporality(s.aggregation_temporality))
                            }
                            _ => (MetricKind::Gauge, None),
                        };
                        for p in data_points {
                            match number(p.value) {
                                Some(v) => {
                                    let mut mp = point(p.time_unix_nano, kind, &p.attributes);
                                    mp.value = Some(v);
                                    mp.temporality.clone_from(&temporality);
                                    batch.metrics.push(mp);
                                }
                                None => rejected.push(bad(
                                    index,
                                    format!("a data point of {:?} has no value", m.name),
                                )),
                            }
                            index += 1;
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        for p in &h.data_points {
                            if !p.bucket_counts.is_empty()
                                && p.bucket_counts.len() != p.explicit_bounds.len() + 1
                            {
                                rejected.push(bad(
                                    index,
                                    format!(
                                        "a data point of {:?} has {} bucket counts for {} bounds",
                                        m.name,
                                        p.bucket_counts.len(),
                                        p.explicit_bounds.len()
                                    ),
                                ));
                            } else {
                                let mut mp = histogram(
                                    p.time_unix_nano,
                                    &p.attributes,
                                    (p.count, p.sum, p.min, p.max),
                                    temporality(h.aggregation_temporality),
                                );
                                mp.bucket_bounds.clone_from(&p.explicit_bounds);
                                mp.bucket_counts.clone_from(&p.bucket_counts);
                                batch.metrics.push(mp);
                            }
                            index += 1;
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            let mut mp = histogram(
                                p.time_unix_nano,
                                &p.attributes,
                                (p.count, p.sum, p.min, p.max),
                                temporality(h.aggregation_temporality),
                            );
                            let (bounds, counts) = exponential_buckets(p);
                            mp.bucket_bounds = bounds;
                            mp.bucket_counts = counts;
                            batch.metrics.push(mp);
                            index += 1;
                        }
                    }
                    Some(metric::Data::Summary(s)) => {
                        for p in &s.data_points {
                            batch.metrics.push(histogram(
                                p.time_unix_nano,
                                &p.attributes,
                                (p.count, Some(p.sum), None, None),
                                None,
                            ));
                            // Quantiles as gauges, one per quantile, as Prometheus does.
                            for q in &p.quantile_values {
                                let mut g =
                                    point(p.time_unix_nano, MetricKind::Gauge, &p.attributes);
                                g.dimensions
                                    .insert("quantile".into(), q.quantile.to_string());
                                g.value = Some(q.value);
                                batch.metrics.push(g);
                            }
                            index += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(Decoded { batch, rejected })
}

/// OTLP's `AggregationTemporality`: 1 delta, 2 cumulative, 0 unspecified.
fn temporality(t: i32) -> Option<String> {
    match t {
        1 => Some("delta".to_owned()),
        2 => Some("cumulative".to_owned()),
        _ => None,
    }
}

fn number(v: Option<number_data_point::Value>) -> Option<f64> {
    match v? {
        number_data_point::Value::AsDouble(d) => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
    }
}

/// An exponential histogram's buckets as explicit bounds: the zero bucket (with any negative
/// values) first, then the positive buckets; bounds are each bucket's lower edge,
/// `base^(offset + i)` with `base = 2^(2^-scale)`.
fn exponential_buckets(
    p: &opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint,
) -> (Vec<f64>, Vec<u64>) {
    let negative: u64 = p
        .negative
        .as_ref()
        .map_or(0, |b| b.bucket_counts.iter().sum());
    let Some(positive) = p.positive.as_ref().filter(|b| !b.bucket_counts.is_empty()) else {
        return (Vec::new(), Vec::new());
    };
    let base = 2f64.powf(2f64.powi(-p.scale));
    let mut counts = Vec::with_capacity(positive.bucket_counts.len() + 1);
    counts.push(p.zero_count + negative);
    counts.extend_from_slice(&positive.bucket_counts);
    let bounds = (0..positive.bucket_counts.len())
        .map(|i| base.powi(positive.offset + i as i32))
        .collect();
    (bounds, counts)
}

/// The `Export*ServiceResponse` body: empty when everything was kept, `partial_success` with the
/// number rejected and why otherwise.
pub fn logs_response(rejected: usize, message: &str, encoding: Encoding) -> Vec<u8> {
    let response = ExportLogsServiceResponse {
        partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejected as i64,
            error_message: message.to_owned(),
        }),
    };
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => partial_json("rejectedLogRecords", rejected, message),
    }
}

/// See [`logs_response`].
pub fn metrics_response(rejected: usize, message: &str, encoding: Encoding) -> Vec<u8> {
    let response = ExportMetricsServiceResponse {
        partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: rejected as i64,
            error_message: message.to_owned(),
        }),
    };
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => partial_json("rejectedDataPoints", rejected, message),
    }
}

fn partial_json(key: &str, rejected: usize, message: &str) -> Vec<u8> {
    let body = if rejected == 0 {
        serde_json::json!({})
    } else {
        // OTLP/JSON writes int64 as a string.
        serde_json::json!({"partialSuccess": {key: rejected.to_string(), "errorMessage": message}})
    };
    body.to_string().into_bytes()
}

/// `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The body of an OTLP error answer: a `google.rpc.Status` with `code` (3 INVALID_ARGUMENT,
/// 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE) and the message.
pub fn status_body(code: i32, message: &str, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => RpcStatus {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..KeyValue::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn request(resource: Vec<KeyValue>, records: Vec<OtlpLog>) -> Vec<u8> {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn maps_faas_attributes() {
        let body = request(
            vec![
                kv("service.name", s("svc")),
                kv("faas.name", s("checkout")),
                kv("faas.version", s("7")),
            ],
            vec![OtlpLog {
                time_unix_nano: 1_700_000_000_123_456_789,
                severity_number: 13,
                severity_text: "WARN".into(),
                body: Some(AnyValue {
                    value: Some(s("slow\n")),
                }),
                attributes: vec![
                    kv("faas.invocation_id", s("r-1")),
                    kv("n", any_value::Value::IntValue(3)),
                ],
                trace_id: vec![0xab; 16],
                ..OtlpLog::default()
            }],
        );
        let d = decode_logs(&body, Encoding::Protobuf, 0).unwrap();
        assert!(d.rejected.is_empty());
        let l = &d.batch.logs[0];
        assert_eq!((l.function.as_str(), l.version.as_str()), ("checkout", "7"));
        assert_eq!(l.ts_ms, 1_700_000_000_123);
        assert_eq!(l.level, Level::Warn);
        assert_eq!(l.message, "slow");
        assert_eq!(l.request_id.as_deref(), Some("r-1"));
        assert_eq!(l.attributes["n"], Value::from(3));
        assert_eq!(l.attributes["trace_id"], Value::from("ab".repeat(16)));
    }

    #[test]
    fn records_without_a_function_are_rejected() {
        let body = request(vec![], vec![OtlpLog::default(), OtlpLog::default()]);
        let d = decode_logs(&body, Encoding::Protobuf, 5).unwrap();
        assert!(d.batch.logs.is_empty());
        assert_eq!(d.rejected.len(), 2);
        assert_eq!(d.rejected[1].index, 1);
        assert!(d.rejected[0].detail.contains("faas.name"));
    }

    #[test]
    fn truncated_protobuf_is_unreadable() {
        let body = request(vec![kv("faas.name", s("f"))], vec![OtlpLog::default()]);
        let err = decode_logs(&body[..body.len() - 3], Encoding::Protobuf, 0).unwrap_err();
        assert_eq!(err.code(), "invalid_protobuf");
        assert!(
            err.to_string().contains("ExportLogsServiceRequest"),
            "{err}"
        );
    }

    #[test]
    fn severity_text_when_no_number() {
        assert_eq!(level(0, "CRITICAL"), Level::Fatal);
        assert_eq!(level(0, ""), Level::Info);
        assert_eq!(level(24, ""), Level::Fatal);
        assert_eq!(level(5, "INFO"), Level::Debug);
    }

    #[test]
    fn responses_round_trip() {
        let body = logs_response(2, "two bad", Encoding::Protobuf);
        let r = ExportLogsServiceResponse::decode(&body[..]).unwrap();
        assert_eq!(r.partial_success.unwrap().rejected_log_records, 2);
        assert!(logs_response(0, "", Encoding::Protobuf).is_empty());
        assert_eq!(
            String::from_utf8(metrics_response(1, "x", Encoding::Json)).unwrap(),
            r#"{"partialSuccess":{"errorMessage":"x","rejectedDataPoints":"1"}}"#
        );
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn exponential_buckets_have_lower_edges() {
        use opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint;
        use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
        let p = ExponentialHistogramDataPoint {
            scale: 0,
            zero_count: 1,
            positive: Some(Buckets {
                offset: 1,
                bucket_counts: vec![2, 3],
            }),
            ..ExponentialHistogramDataPoint::default()
        };
        assert_eq!(exponential_buckets(&p), (vec![2.0, 4.0], vec![1, 2, 3]));
    }
}
