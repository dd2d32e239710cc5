//! Lambda Telemetry API batches (formats.md section 1), and the older Logs API (2020-08-15).
//!
//! A batch is decoded in two passes: every event is first validated on its own (a bad event is
//! rejected alone), then the good ones are read in order, so that `platform.start`,
//! `platform.runtimeDone` and `platform.initStart`/`initReport` can enrich the invocation that
//! `platform.report` produces, and log lines without a request id inherit the one in progress.

use std::collections::{HashMap, HashSet};

use fnlens_model::{Batch, Invocation, Level, LogRecord, LogSource, Status, parse_rfc3339_ms};
use serde_json::{Map, Value};

use super::emf;
use super::lines::{parse_json_line, parse_text_line};
use super::{DecodeError, Decoded, Rejection};

/// Where a batch came from: the URI names the function, the batch does not.
#[derive(Debug, Clone, Default)]
pub struct LambdaContext {
    pub function: String,
    /// Overrides the version found in the records.
    pub version: Option<String>,
    pub region: Option<String>,
    pub instance: Option<String>,
}

/// The version used when neither the request nor the records name one.
pub const DEFAULT_VERSION: &str = "$LATEST";

/// One validated event. Text sources (CloudWatch lines) produce the same events, so an
/// invocation is assembled the same way whichever way it arrived.
pub(super) enum Event {
    InitStart {
        version: Option<String>,
        instance: Option<String>,
    },
    InitDone {
        status: Option<String>,
        error_type: Option<String>,
        duration_ms: Option<f64>,
    },
    Start {
        request_id: Option<String>,
        version: Option<String>,
    },
    RuntimeDone {
        request_id: Option<String>,
        error_type: Option<String>,
    },
    /// A text source's sign that an invocation failed although its REPORT line says nothing:
    /// the old `Task timed out` line, Node's `Invoke Error`, Python's unhandled exception.
    Failed {
        request_id: String,
        status: Status,
        error_type: Option<String>,
    },
    Report(Report),
    LogsDropped {
        records: u64,
    },
    Log {
        source: LogSource,
        record: Value,
    },
    /// Any other platform event: kept as a platform log line.
    Other,
}

pub(super) struct Report {
    pub(super) request_id: String,
    pub(super) status: Status,
    pub(super) error_type: Option<String>,
    pub(super) duration_ms: f64,
    pub(super) billed_duration_ms: f64,
    pub(super) memory_size_mb: i64,
    pub(super) max_memory_used_mb: i64,
    pub(super) init_duration_ms: Option<f64>,
}

pub(super) struct Validated {
    /// Position in the request's array.
    pub(super) index: usize,
    pub(super) time_ms: i64,
    pub(super) kind: String,
    pub(super) event: Event,
    /// The platform log line this event renders to, if any.
    pub(super) platform_line: Option<(String, Level, Option<String>)>,
}

fn str_field(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A number that must be there and be a number.
fn required_number(metrics: &Map<String, Value>, key: &str) -> Result<f64, Rejection> {
    match metrics.get(key) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| Rejection::invalid(key)),
        Some(_) => Err(Rejection::new(
            "invalid_field",
            format!("record.metrics.{key} must be a number"),
        )),
        None => Err(Rejection::new(
            "missing_field",
            format!("record.metrics.{key} is missing"),
        )),
    }
}

/// A number that may be absent, but must be a number when present.
fn optional_number(metrics: &Map<String, Value>, key: &str) -> Result<Option<f64>, Rejection> {
    match metrics.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(Rejection::new(
            "invalid_field",
            format!("record.metrics.{key} must be a number"),
        )),
    }
}

fn record_object<'a>(record: &'a Value, kind: &str) -> Result<&'a Map<String, Value>, Rejection> {
    record.as_object().ok_or_else(|| {
        Rejection::new(
            "invalid_record",
            format!("record of {kind} must be an object"),
        )
    })
}

fn validate_report(record: &Value) -> Result<Report, Rejection> {
    let obj = record_object(record, "platform.report")?;
    let request_id = match obj.get("requestId") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return Err(Rejection::new(
                "invalid_field",
                "record.requestId must be a non-empty string",
            ));
        }
        None => {
            return Err(Rejection::new(
                "missing_field",
                "record.requestId is missing",
            ));
        }
    };
    let metrics = match obj.get("metrics") {
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(Rejection::new(
                "invalid_field",
                "record.metrics must be an object",
            ));
        }
        None => return Err(Rejection::new("missing_field", "record.metrics is missing")),
    };
    let duration_ms = required_number(metrics, "durationMs")?;
    let billed_duration_ms = required_number(metrics, "billedDurationMs")?;
    let memory_size_mb = required_number(metrics, "memorySizeMB")?.round() as i64;
    let max_memory_used_mb = required_number(metrics, "maxMemoryUsedMB")?.round() as i64;
    let init_duration_ms = optional_number(metrics, "initDurationMs")?;
    optional_number(metrics, "restoreDurationMs")?;
    let status = obj
        .get("status")
        .and_then(Value::as_str)
        .map(Status::parse)
        .unwrap_or(Status::Success);
    Ok(Report {
        request_id,
        status,
        error_type: str_field(obj, "errorType"),
        duration_ms,
        billed_duration_ms,
        memory_size_mb,
        max_memory_used_mb,
        init_duration_ms,
    })
}

pub(super) fn fmt_ms(v: f64) -> String {
    format!("{v:.2}")
}

fn validate(raw: Value) -> Result<Validated, Rejection> {
    let Value::Object(mut obj) = raw else {
        return Err(Rejection::new(
            "not_an_object",
            "event must be a JSON object",
        ));
    };
    let time_ms = match obj.get("time") {
        Some(Value::String(s)) => parse_rfc3339_ms(s).ok_or_else(|| {
            Rejection::new(
                "invalid_time",
                format!("time {s:?} is not an RFC 3339 timestamp"),
            )
        })?,
        Some(_) => {
            return Err(Rejection::new(
                "invalid_time",
                "time must be an RFC 3339 string",
            ));
        }
        None => return Err(Rejection::new("missing_field", "time is missing")),
    };
    let kind = match obj.get("type") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            return Err(Rejection::new(
                "invalid_field",
                "type must be a non-empty string",
            ));
        }
        None => return Err(Rejection::new("missing_field", "type is missing")),
    };
    let record = obj.remove("record").unwrap_or(Value::Null);
    let empty = Map::new();
    let rec = record.as_object().unwrap_or(&empty);
    let info = |msg: String| Some((msg, Level::Info, None));
    let (event, platform_line) = match kind.as_str() {
        "function" | "extension" => {
            if !(record.is_string() || record.is_object()) {
                return Err(Rejection::new(
                    "invalid_record",
                    format!("record of {kind} must be a string or an object"),
                ));
            }
            let source = if kind == "function" {
                LogSource::Function
            } else {
                LogSource::Extension
            };
            (Event::Log { source, record }, None)
        }
        "platform.report" => {
            let r = validate_report(&record)?;
            let mut line = format!(
                "REPORT RequestId: {}\tDuration: {} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
                r.request_id,
                fmt_ms(r.duration_ms),
                r.billed_duration_ms,
                r.memory_size_mb,
                r.max_memory_used_mb
            );
            if let Some(i) = r.init_duration_ms {
                line.push_str(&format!("\tInit Duration: {} ms", fmt_ms(i)));
            }
            let mut level = Level::Info;
            if r.status != Status::Success {
                level = Level::Error;
                line.push_str(&format!("\tStatus: {}", r.status.as_str()));
                if let Some(e) = &r.error_type {
                    line.push_str(&format!("\tError Type: {e}"));
                }
            }
            let id = Some(r.request_id.clone());
            (Event::Report(r), Some((line, level, id)))
        }
        "platform.start" => {
            let request_id = str_field(rec, "requestId");
            let version = str_field(rec, "version");
            let line = format!(
                "START RequestId: {} Version: {}",
                request_id.as_deref().unwrap_or("-"),
                version.as_deref().unwrap_or(DEFAULT_VERSION)
            );
            let id = request_id.clone();
            (
                Event::Start {
                    request_id,
                    version,
                },
                Some((line, Level::Info, id)),
            )
        }
        "platform.runtimeDone" | "platform.end" => {
            let request_id = str_field(rec, "requestId");
            let status = str_field(rec, "status");
            let error_type = str_field(rec, "errorType");
            let mut line = format!("END RequestId: {}", request_id.as_deref().unwrap_or("-"));
            let mut level = Level::Info;
            if let Some(s) = status.as_deref().filter(|s| *s != "success") {
                level = Level::Error;
                line.push_str(&format!("\tStatus: {s}"));
                if let Some(e) = &error_type {
                    line.push_str(&format!("\tError Type: {e}"));
                }
            }
            let id = request_id.clone();
            (
                Event::RuntimeDone {
                    request_id,
                    error_type,
                },
                Some((line, level, id)),
            )
        }
        "platform.initStart" => {
            let line = format!(
                "INIT_START Runtime Version: {}\tRuntime Version ARN: {}",
                str_field(rec, "runtimeVersion").as_deref().unwrap_or("-"),
                str_field(rec, "runtimeVersionArn")
                    .as_deref()
                    .unwrap_or("-")
            );
            (
                Event::InitStart {
                    version: str_field(rec, "functionVersion"),
                    instance: str_field(rec, "instanceId"),
                },
                info(line),
            )
        }
        "platform.initRuntimeDone" | "platform.initReport" => {
            let duration_ms = match rec.get("metrics") {
                Some(Value::Object(m)) => optional_number(m, "durationMs")?,
                _ => None,
            };
            let status = str_field(rec, "status");
            let error_type = str_field(rec, "errorType");
            let line = if kind == "platform.initReport" {
                let mut l = format!(
                    "INIT_REPORT Init Duration: {} ms\tPhase: {}\tStatus: {}",
                    duration_ms.map(fmt_ms).unwrap_or_else(|| "-".into()),
                    str_field(rec, "phase").as_deref().unwrap_or("init"),
                    status.as_deref().unwrap_or("success")
                );
                if let Some(e) = &error_type {
                    l.push_str(&format!("\tError Type: {e}"));
                }
                l
            } else {
                format!("{kind} {}", Value::Object(rec.clone()))
            };
            let level = if status.as_deref().is_some_and(|s| s != "success") {
                Level::Error
            } else {
                Level::Info
            };
            (
                Event::InitDone {
                    status,
                    error_type,
                    duration_ms,
                },
                Some((line, level, None)),
            )
        }
        "platform.logsDropped" => {
            let records = rec
                .get("droppedRecords")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let line = format!(
                "platform.logsDropped droppedRecords={records} droppedBytes={} reason={}",
                rec.get("droppedBytes").and_then(Value::as_u64).unwrap_or(0),
                str_field(rec, "reason").as_deref().unwrap_or("-")
            );
            (
                Event::LogsDropped { records },
                Some((line, Level::Warn, None)),
            )
        }
        _ => {
            // Unknown or informational platform events (extension, telemetrySubscription, fault,
            // restore*, and types not invented yet) are kept as platform lines.
            let body = match &record {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let id = str_field(rec, "requestId");
            (
                Event::Other,
                Some((format!("{kind} {body}"), Level::Info, id)),
            )
        }
    };
    Ok(Validated {
        index: 0,
        time_ms,
        kind,
        event,
        platform_line,
    })
}

#[derive(Default, Clone)]
struct InitInfo {
    status: Option<String>,
    error_type: Option<String>,
    duration_ms: Option<f64>,
}

/// Decodes one Telemetry API delivery body.
pub fn decode(body: &[u8], ctx: &LambdaContext) -> Result<Decoded, DecodeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Array(raw_events) = value else {
        return Err(DecodeError::NotAnArray);
    };
    let mut rejected = Vec::new();
    let mut events = Vec::with_capacity(raw_events.len());
    for (index, raw) in raw_events.into_iter().enumerate() {
        let event_type = raw.get("type").and_then(Value::as_str).map(str::to_owned);
        match validate(raw) {
            Ok(mut v) => {
                v.index = index;
                events.push(v);
            }
            Err(mut r) => {
                r.index = index;
                r.event_type = event_type;
                rejected.push(r);
            }
        }
    }

    Ok(assemble(events, rejected, ctx))
}

/// Turns validated events, in order, into invocations, log lines and metric points.
pub(super) fn assemble(
    events: Vec<Validated>,
    mut rejected: Vec<Rejection>,
    ctx: &LambdaContext,
) -> Decoded {
    // The version: the request's, else the records' own, else $LATEST.
    let records_version = events.iter().find_map(|e| match &e.event {
        Event::Start {
            version: Some(v), ..
        }
        | Event::InitStart {
            version: Some(v), ..
        } => Some(v.clone()),
        _ => None,
    });
    let version = ctx
        .version
        .clone()
        .or(records_version)
        .unwrap_or_else(|| DEFAULT_VERSION.to_owned());
    let instance = ctx.instance.clone().or_else(|| {
        events.iter().find_map(|e| match &e.event {
            Event::InitStart { instance, .. } => instance.clone(),
            _ => None,
        })
    });

    let mut batch = Batch::default();
    let mut starts: HashMap<String, i64> = HashMap::new();
    let mut runtime_errors: HashMap<String, String> = HashMap::new();
    let mut failures: HashMap<String, (Status, Option<String>)> = HashMap::new();
    // Init phase seen in this batch, waiting for the invocation it precedes.
    let mut pending_init: Option<InitInfo> = None;
    let mut cold: HashMap<String, InitInfo> = HashMap::new();
    let mut current_request: Option<String> = None;

    // START and END lines of an invocation whose REPORT is in this batch add nothing the
    // invocation row and the REPORT line do not hold; they are not indexed (about a third fewer
    // documents). Orphans, whose REPORT comes in another batch, stay findable as lines.
    let reported: HashSet<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Report(r) => Some(r.request_id.clone()),
            _ => None,
        })
        .collect();
    for v in events {
        let folded = match &v.event {
            Event::Start {
                request_id: Some(id),
                ..
            }
            | Event::RuntimeDone {
                request_id: Some(id),
                ..
            } => reported.contains(id),
            _ => false,
        };
        if let Some((message, level, request_id)) = v.platform_line.clone().filter(|_| !folded) {
            batch.logs.push(LogRecord {
                ts_ms: v.time_ms,
                function: ctx.function.clone(),
                version: version.clone(),
                request_id,
                level,
                source: LogSource::Platform,
                message,
                attributes: Map::new(),
            });
        }
        match v.event {
            Event::InitStart { .. } => pending_init = Some(InitInfo::default()),
            Event::InitDone {
                status,
                error_type,
                duration_ms,
            } => {
                let p = pending_init.get_or_insert_with(InitInfo::default);
                if status.is_some() {
                    p.status = status;
                }
                if error_type.is_some() {
                    p.error_type = error_type;
                }
                if duration_ms.is_some() && v.kind == "platform.initReport" {
                    p.duration_ms = duration_ms;
                }
            }
            Event::Start { request_id, .. } => {
                if let Some(id) = request_id {
                    starts.insert(id.clone(), v.time_ms);
                    if let Some(init) = pending_init.take() {
                        cold.insert(id.clone(), init);
                    }
                    current_request = Some(id);
                }
            }
            Event::RuntimeDone {
                request_id,
                error_type,
            } => {
                if let (Some(id), Some(e)) = (request_id, error_type) {
                    runtime_errors.insert(id, e);
                }
            }
            Event::Failed {
                request_id,
                status,
                error_type,
            } => {
                failures.insert(request_id, (status, error_type));
            }
            Event::Report(mut r) => {
                if let Some((status, error_type)) = failures.remove(&r.request_id)
                    && r.status == Status::Success
                {
                    r.status = status;
                    r.error_type = r.error_type.or(error_type);
                }
                let init = cold.remove(&r.request_id);
                let ts_ms = starts
                    .get(&r.request_id)
                    .copied()
                    .unwrap_or_else(|| v.time_ms - r.duration_ms.round() as i64);
                let cold_start = r.init_duration_ms.is_some() || init.is_some();
                let init = init.unwrap_or_default();
                let error_type = r
                    .error_type
                    .or_else(|| runtime_errors.remove(&r.request_id));
                if current_request.as_deref() == Some(r.request_id.as_str()) {
                    current_request = None;
                }
                batch.invocations.push(Invocation {
                    ts_ms,
                    end_ts_ms: ts_ms + r.duration_ms.round() as i64,
                    function: ctx.function.clone(),
                    version: version.clone(),
                    request_id: r.request_id,
                    status: r.status,
                    error_type,
                    duration_ms: r.duration_ms,
                    billed_duration_ms: r.billed_duration_ms,
                    memory_size_mb: r.memory_size_mb,
                    max_memory_used_mb: r.max_memory_used_mb,
                    init_duration_ms: r.init_duration_ms.or(if cold_start {
                        init.duration_ms
                    } else {
                        None
                    }),
                    cold_start,
                    init_status: if cold_start { init.status } else { None },
                    instance: instance.clone(),
                    region: ctx.region.clone(),
                });
            }
            Event::LogsDropped { records } => batch.logs_dropped_records += records,
            Event::Log { source, record } => {
                let parsed = match record {
                    Value::String(s) => parse_text_line(&s),
                    Value::Object(o) => parse_json_line(o),
                    _ => continue,
                };
                let request_id = parsed.request_id.or_else(|| current_request.clone());
                if emf::is_emf(&parsed.attributes) {
                    let emf_ctx = emf::EmfContext {
                        function: Some(&ctx.function),
                        version: Some(&version),
                        request_id: request_id.as_deref(),
                    };
                    match emf::extract(&parsed.attributes, &emf_ctx) {
                        Ok(points) => batch.metrics.extend(points),
                        Err(mut r) => {
                            r.index = v.index;
                            r.event_type = Some(v.kind.clone());
                            rejected.push(r);
                            continue;
                        }
                    }
                }
                batch.logs.push(LogRecord {
                    ts_ms: v.time_ms,
                    function: ctx.function.clone(),
                    version: version.clone(),
                    request_id,
                    level: parsed.level.unwrap_or(Level::Info),
                    source,
                    message: parsed.message,
                    attributes: parsed.attributes,
                });
            }
            Event::Other => {}
        }
    }
    Decoded { batch, rejected }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> LambdaContext {
        LambdaContext {
            function: "checkout".into(),
            ..LambdaContext::default()
        }
    }

    #[test]
    fn formats_md_example() {
        let body = br#"[{"time":"2022-10-19T13:52:15.636Z","type":"platform.initStart","record":{"initializationType":"on-demand","phase":"init","functionName":"checkout","functionVersion":"$LATEST"}},
 {"time":"2022-10-21T14:05:03.165Z","type":"platform.start","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","version":"$LATEST"}},
 {"time":"2022-10-21T14:05:03.300Z","type":"function","record":"2022-10-21T14:05:03.300Z\t459921b5-681c-4a96-beb0-81e0aa586026\tINFO\tcharging card"},
 {"time":"2022-10-21T14:05:05.764Z","type":"platform.runtimeDone","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","status":"success","metrics":{"durationMs":2599.0,"producedBytes":8}}},
 {"time":"2022-10-21T14:05:05.766Z","type":"platform.report","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","metrics":{"durationMs":2599.4,"billedDurationMs":2600,"memorySizeMB":128,"maxMemoryUsedMB":94,"initDurationMs":549.04},"status":"success"}}]"#;
        let d = decode(body, &ctx()).unwrap();
        assert!(d.rejected.is_empty());
        assert_eq!(d.batch.invocations.len(), 1);
        let inv = &d.batch.invocations[0];
        assert_eq!(
            inv.ts_ms,
            parse_rfc3339_ms("2022-10-21T14:05:03.165Z").unwrap()
        );
        assert_eq!(inv.end_ts_ms, inv.ts_ms + 2599);
        assert!(inv.cold_start);
        assert_eq!(inv.init_duration_ms, Some(549.04));
        assert_eq!(inv.billed_duration_ms, 2600.0);
        assert_eq!(inv.version, "$LATEST");
        let function_lines: Vec<_> = d
            .batch
            .logs
            .iter()
            .filter(|l| l.source == LogSource::Function)
            .collect();
        assert_eq!(function_lines.len(), 1);
        assert_eq!(function_lines[0].message, "charging card");
        // INIT_START, the function line and REPORT.
        assert_eq!(d.batch.logs.len(), 3);
    }

    #[test]
    fn not_an_array() {
        assert!(matches!(
            decode(b"{}", &ctx()),
            Err(DecodeError::NotAnArray)
        ));
        assert!(matches!(decode(b"[", &ctx()), Err(DecodeError::Json(_))));
    }

    #[test]
    fn bad_event_is_rejected_alone() {
        let body = br#"[{"time":"2022-10-12T00:03:50.000Z","type":"function","record":"ok"},
            {"time":"nope","type":"function","record":"bad"}, 7]"#;
        let d = decode(body, &ctx()).unwrap();
        assert_eq!(d.batch.logs.len(), 1);
        assert_eq!(
            d.rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(d.rejected[0].reason, "invalid_time");
    }

    #[test]
    fn query_version_wins_and_lines_inherit_request_id() {
        let body = br#"[{"time":"2022-10-12T00:03:50.000Z","type":"platform.start","record":{"requestId":"r1","version":"3"}},
            {"time":"2022-10-12T00:03:50.001Z","type":"function","record":"[INFO] hi"}]"#;
        let mut c = ctx();
        c.version = Some("7".into());
        let d = decode(body, &c).unwrap();
        assert!(d.batch.logs.iter().all(|l| l.version == "7"));
        // The START line stays: this batch has no REPORT for r1.
        assert_eq!(d.batch.logs[0].message, "START RequestId: r1 Version: 3");
        let line = &d.batch.logs[1];
        assert_eq!(
            (line.source, line.message.as_str()),
            (LogSource::Function, "hi")
        );
        assert_eq!(line.request_id.as_deref(), Some("r1"));
        let d = decode(body, &ctx()).unwrap();
        assert_eq!(d.batch.logs[1].version, "3");
    }

    #[test]
    fn timeout_takes_error_type_from_runtime_done() {
        let body = br#"[{"time":"2022-10-12T00:00:00.000Z","type":"platform.runtimeDone","record":{"requestId":"r1","status":"timeout","errorType":"Sandbox.Timedout"}},
            {"time":"2022-10-12T00:00:03.000Z","type":"platform.report","record":{"requestId":"r1","status":"timeout","metrics":{"durationMs":3000.0,"billedDurationMs":3000,"memorySizeMB":128,"maxMemoryUsedMB":64}}}]"#;
        let d = decode(body, &ctx()).unwrap();
        let inv = &d.batch.invocations[0];
        assert_eq!(inv.status, Status::Timeout);
        assert_eq!(inv.error_type.as_deref(), Some("Sandbox.Timedout"));
        assert!(!inv.cold_start);
        assert_eq!(
            inv.ts_ms,
            parse_rfc3339_ms("2022-10-12T00:00:00.000Z").unwrap()
        );
    }
}
