//! Decoded events: one [`Invocation`] per function invocation, one [`LogRecord`] per log line.

use serde::{Deserialize, Serialize};

/// How an invocation ended, as the Lambda platform reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Failure,
    Error,
    Timeout,
}

impl Status {
    /// Reads a platform status. Unknown values count as `failure`: the set is open upstream and a
    /// status we do not know is still not a success.
    pub fn parse(s: &str) -> Status {
        match s.to_ascii_lowercase().as_str() {
            "success" => Status::Success,
            "error" => Status::Error,
            "timeout" => Status::Timeout,
            _ => Status::Failure,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Error => "error",
            Status::Timeout => "timeout",
        }
    }
}

/// Log severity, normalised to the six levels Lambda's runtimes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// Reads a level as runtimes and loggers spell it (`WARNING`, `critical`, `Err`, ...).
    pub fn parse(s: &str) -> Option<Level> {
        let upper = s.trim().to_ascii_uppercase();
        Some(match upper.as_str() {
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" | "INFORMATION" | "NOTICE" => Level::Info,
            "WARN" | "WARNING" => Level::Warn,
            "ERROR" | "ERR" => Level::Error,
            "FATAL" | "CRITICAL" | "CRIT" | "EMERGENCY" | "ALERT" => Level::Fatal,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }
}

/// Who wrote a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The function's own stdout/stderr.
    Function,
    /// A Lambda extension.
    Extension,
    /// The Lambda platform itself (START, END, REPORT, INIT_START, ...).
    Platform,
}

impl LogSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::Function => "function",
            LogSource::Extension => "extension",
            LogSource::Platform => "platform",
        }
    }
}

/// What is wrong with a function name, if anything: it must be 1 to 256 characters of letters,
/// digits and `- _ . : $` (Lambda's names, versions and aliases).
pub fn function_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the function name is empty".into());
    }
    if name.len() > 256 {
        return Some("the function name is longer than 256 characters".into());
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '$')))
        .map(|c| {
            format!("the function name {name:?} contains {c:?}; use letters, digits, - _ . : $")
        })
}

/// One function invocation, as `platform.report` (or a REPORT line) describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// Start of the invocation, UTC epoch ms.
    pub ts_ms: i64,
    /// End of the invocation (start + duration), UTC epoch ms.
    pub end_ts_ms: i64,
    pub function: String,
    pub version: String,
    pub request_id: String,
    pub status: Status,
    pub error_type: Option<String>,
    pub duration_ms: f64,
    pub billed_duration_ms: f64,
    pub memory_size_mb: i64,
    pub max_memory_used_mb: i64,
    /// Present on cold starts only.
    pub init_duration_ms: Option<f64>,
    pub cold_start: bool,
    /// Status of the init phase on a cold start (`success`, `error`, ...).
    pub init_status: Option<String>,
    pub instance: Option<String>,
    pub region: Option<String>,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub ts_ms: i64,
    pub function: String,
    pub version: String,
    pub request_id: Option<String>,
    pub level: Level,
    pub source: LogSource,
    pub message: String,
    /// Structured fields (JSON logs, EMF, OTLP attributes). Always a JSON object, possibly empty.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// What kind of data point a [`MetricPoint`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// One observed value (an EMF value, an OTLP gauge).
    Gauge,
    /// A sum over an interval or since a start (an OTLP sum, a counter).
    Sum,
    /// A distribution: count, sum, min, max and bucket counts.
    Histogram,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Sum => "sum",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric data point, from EMF or OTLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub ts_ms: i64,
    pub namespace: String,
    pub name: String,
    /// The unit as the producer spelled it (`Milliseconds`, `ms`, `By`); `None` when absent.
    pub unit: String,
    pub kind: MetricKind,
    /// The value of a gauge or sum; absent for histograms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Histogram fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Upper bounds of the buckets but the last (which is unbounded), as OTLP's explicitBounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bucket_bounds: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bucket_counts: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Dimension (EMF) or attribute (OTLP) names and values.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub dimensions: std::collections::BTreeMap<String, String>,
    /// OTLP's aggregation temporality of a sum or histogram: `cumulative` (the value counts
    /// everything since the series started) or `delta` (since the previous point); absent for
    /// gauges and EMF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporality: Option<String>,
}

impl MetricPoint {
    /// A gauge point with no function, request or dimensions yet.
    pub fn gauge(ts_ms: i64, namespace: &str, name: &str, unit: &str, value: f64) -> MetricPoint {
        MetricPoint {
            ts_ms,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            unit: unit.to_owned(),
            kind: MetricKind::Gauge,
            value: Some(value),
            count: None,
            sum: None,
            min: None,
            max: None,
            bucket_bounds: Vec::new(),
            bucket_counts: Vec::new(),
            function: None,
            version: None,
            request_id: None,
            dimensions: Default::default(),
            temporality: None,
        }
    }
}

/// What one accepted request adds to the stores: the unit of the WAL and of the subscription
/// point. Only events that passed validation are in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invocations: Vec<Invocation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricPoint>,
    /// Records the platform reported as dropped before they reached us (`platform.logsDropped`).
    #[serde(default)]
    pub logs_dropped_records: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.invocations.is_empty()
            && self.logs.is_empty()
            && self.metrics.is_empty()
            && self.logs_dropped_records == 0
    }

    /// Moves the events of `other` to the end of this batch.
    pub fn append(&mut self, other: Batch) {
        self.invocations.extend(other.invocations);
        self.logs.extend(other.logs);
        self.metrics.extend(other.metrics);
        self.logs_dropped_records += other.logs_dropped_records;
    }

    /// Number of events (invocations, log lines and metric points).
    pub fn len(&self) -> usize {
        self.invocations.len() + self.logs.len() + self.metrics.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_synonyms() {
        assert_eq!(Level::parse("warning"), Some(Level::Warn));
        assert_eq!(Level::parse("CRITICAL"), Some(Level::Fatal));
        assert_eq!(Level::parse(" info "), Some(Level::Info));
        assert_eq!(Level::parse("anything"), None);
    }

    #[test]
    fn unknown_status_is_not_success() {
        assert_eq!(Status::parse("Success"), Status::Success);
        assert_eq!(Status::parse("timeout"), Status::Timeout);
        assert_eq!(Status::parse("weird"), Status::Failure);
    }
}
