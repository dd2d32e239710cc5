//! Lambda's log stream as CloudWatch holds it (formats.md sections 2 and 3): plain text, one
//! event per line; CloudWatch Logs subscription payloads (`{"awslogs":{"data":...}}` and their
//! decoded form); and Kinesis Firehose HTTP deliveries of those payloads.
//!
//! Each line becomes the same event the Telemetry API would have sent: `START` is
//! `platform.start`, `REPORT` is `platform.report`, and so on. The events then go through the
//! Telemetry decoder's assembly, so an invocation read from text is the row the Telemetry API's
//! `platform.report` would have produced. Text adds what the Telemetry API says in fields: the
//! old `Task timed out after` line, Node's `Invoke Error` line and Python's unhandled-exception
//! line mark the invocation they belong to as timed out or failed.

use fnlens_model::{Batch, Level, LogSource, Status, function_name_problem, parse_rfc3339_ms};
use serde_json::{Map, Value};

use super::telemetry::{self, Event, LambdaContext, Report, Validated};
use super::{DecodeError, Decoded, Rejection, base64_decode, gunzip, is_gzip};

/// What the request says about the stream beyond its body.
#[derive(Debug, Clone, Default)]
pub struct StreamParams {
    /// The function, required for plain text; overrides a subscription's log group.
    pub function: Option<String>,
    /// Overrides the version found in the log stream name and START lines.
    pub version: Option<String>,
    pub region: Option<String>,
}

/// One event of a log stream: its time, when the source gives one, and its message.
#[derive(Debug, Clone)]
pub struct StreamEvent<'a> {
    pub ts_ms: Option<i64>,
    pub message: &'a str,
}

/// Platform lines Lambda writes, by their first word.
const PLATFORM_WORDS: &[&str] = &[
    "START",
    "END",
    "REPORT",
    "INIT_START",
    "INIT_REPORT",
    "INIT_RUNTIME_DONE",
    "XRAY",
    "EXTENSION",
    "TELEMETRY",
    "RESTORE_START",
    "RESTORE_REPORT",
    "RUNTIME_DONE",
];

/// The platform word a line starts with, when the line has that platform line's shape
/// (`START RequestId: ...`, `XRAY TraceId: ...`, `INIT_START Runtime Version: ...`): a function
/// that logs "REPORT ready" writes a runtime line, not a REPORT.
fn platform_word(line: &str) -> Option<&'static str> {
    let mut tokens = line.split_ascii_whitespace();
    let first = tokens.next()?;
    let word = PLATFORM_WORDS.iter().copied().find(|w| *w == first)?;
    let shaped = match word {
        "START" | "END" | "REPORT" => tokens.next() == Some("RequestId:"),
        "XRAY" => tokens.next() == Some("TraceId:"),
        _ => tokens.take(3).any(|t| t.ends_with(':')),
    };
    shaped.then_some(word)
}

/// `Key: value` pairs of a platform line, keys of several words joined by one space, units
/// (`ms`, `MB`) dropped. Separators vary (tabs or spaces), so this splits on whitespace runs.
fn fields(rest: &str) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let mut key_words: Vec<&str> = Vec::new();
    let mut tokens = rest.split_ascii_whitespace().peekable();
    while let Some(token) = tokens.next() {
        if let Some(word) = token.strip_suffix(':') {
            key_words.push(word);
            let key = key_words.join(" ");
            key_words.clear();
            let value = tokens.next().unwrap_or("");
            out.push((key, value));
            if tokens
                .peek()
                .is_some_and(|u| matches!(*u, "ms" | "MB" | "s" | "sec"))
            {
                tokens.next();
            }
        } else {
            key_words.push(token);
        }
    }
    out
}

fn field<'a>(fields: &'a [(String, &'a str)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| *v)
}

fn report_number(fields: &[(String, &str)], key: &str) -> Result<Option<f64>, Rejection> {
    match field(fields, key) {
        None => Ok(None),
        Some(v) => match v.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
            _ => Err(Rejection::new(
                "invalid_field",
                format!("{key} {v:?} is not a number"),
            )),
        },
    }
}

fn required(fields: &[(String, &str)], key: &str) -> Result<f64, Rejection> {
    report_number(fields, key)?
        .ok_or_else(|| Rejection::new("missing_field", format!("REPORT line has no {key}")))
}

fn parse_report(rest: &str) -> Result<Report, Rejection> {
    let f = fields(rest);
    let request_id = field(&f, "RequestId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejection::new("missing_field", "REPORT line has no RequestId"))?
        .to_owned();
    let duration_ms = required(&f, "Duration")?;
    let billed_duration_ms = required(&f, "Billed Duration")?;
    let memory_size_mb = required(&f, "Memory Size")?.round() as i64;
    let max_memory_used_mb = required(&f, "Max Memory Used")?.round() as i64;
    let init_duration_ms = report_number(&f, "Init Duration")?;
    report_number(&f, "Restore Duration")?;
    report_number(&f, "Billed Restore Duration")?;
    let status = field(&f, "Status")
        .map(Status::parse)
        .unwrap_or(Status::Success);
    Ok(Report {
        request_id,
        status,
        error_type: field(&f, "Error Type").map(str::to_owned),
        duration_ms,
        billed_duration_ms,
        memory_size_mb,
        max_memory_used_mb,
        init_duration_ms,
    })
}

/// A line that starts with its own RFC 3339 time followed by a platform line or the old
/// timeout line (as exports and `aws logs tail` write them): the time and the rest.
fn leading_time(line: &str) -> Option<(i64, &str)> {
    let (first, rest) = line.split_once([' ', '\t'])?;
    let ts = parse_rfc3339_ms(first)?;
    let rest = rest.trim_start();
    (platform_word(rest).is_some() || timed_out(rest).is_some()).then_some((ts, rest))
}

/// `<requestId> Task timed out after 3.03 seconds`: the request id.
fn timed_out(rest: &str) -> Option<&str> {
    let (id, tail) = rest.split_once([' ', '\t'])?;
    tail.trim_start()
        .starts_with("Task timed out after")
        .then_some(id)
}

/// The request id and error type of a runtime's report of a failed invocation: Node's
/// `ISO\trequestId\tERROR\tInvoke Error \t{"errorType":...}` and Python's
/// `[ERROR] Type: message\rTraceback ...` (whose request is the one in progress).
fn runtime_failure(line: &str, current: Option<&str>) -> Option<(String, Option<String>)> {
    let mut parts = line.splitn(4, '\t');
    if let (Some(_), Some(id), Some("ERROR"), Some(msg)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
        && let Some(json) = msg.strip_prefix("Invoke Error")
    {
        let error_type = serde_json::from_str::<Value>(json.trim())
            .ok()
            .and_then(|v| v.get("errorType")?.as_str().map(str::to_owned));
        return Some((id.to_owned(), error_type));
    }
    let rest = line.strip_prefix("[ERROR] ")?;
    let (head, trace) = rest.split_once(['\r', '\n'])?;
    if !trace.starts_with("Traceback") {
        return None;
    }
    let error_type = head.split_once(':').map(|(t, _)| t.trim().to_owned());
    Some((current?.to_owned(), error_type))
}

/// Line-by-line state: the invocation in progress and the last REPORT (an XRAY line follows it).
#[derive(Default)]
struct LineState {
    current: Option<String>,
    last_report: Option<String>,
}

/// Turns one line into events (a failure line is a log line and a failure mark).
fn parse_line(
    line: &str,
    time_ms: i64,
    state: &mut LineState,
    out: &mut Vec<Validated>,
) -> Result<(), Rejection> {
    let lead = leading_time(line);
    let (time_ms, rest) = lead.unwrap_or((time_ms, line));
    let platform = |kind: &str, event: Event, level: Level, id: Option<String>| Validated {
        index: 0,
        time_ms,
        kind: kind.to_owned(),
        event,
        platform_line: Some((rest.trim_end().to_owned(), level, id)),
    };
    // The old timeout line always starts with its time.
    if let Some(id) = lead.and_then(|_| timed_out(rest)) {
        out.push(platform(
            "platform.log",
            Event::Other,
            Level::Error,
            Some(id.to_owned()),
        ));
        out.push(Validated {
            index: 0,
            time_ms,
            kind: "platform.runtimeDone".to_owned(),
            event: Event::Failed {
                request_id: id.to_owned(),
                status: Status::Timeout,
                error_type: None,
            },
            platform_line: None,
        });
        return Ok(());
    }
    let Some(word) = platform_word(rest) else {
        if let Some((request_id, error_type)) = runtime_failure(line, state.current.as_deref()) {
            out.push(Validated {
                index: 0,
                time_ms,
                kind: "platform.runtimeDone".to_owned(),
                event: Event::Failed {
                    request_id,
                    status: Status::Failure,
                    error_type,
                },
                platform_line: None,
            });
        }
        out.push(Validated {
            index: 0,
            time_ms,
            kind: "function".to_owned(),
            event: Event::Log {
                source: LogSource::Function,
                record: Value::String(line.to_owned()),
            },
            platform_line: None,
        });
        return Ok(());
    };
    let f = fields(&rest[word.len()..]);
    let v = match word {
        "START" => {
            let request_id = field(&f, "RequestId").map(str::to_owned);
            state.current.clone_from(&request_id);
            platform(
                "platform.start",
                Event::Start {
                    request_id: request_id.clone(),
                    version: field(&f, "Version").map(str::to_owned),
                },
                Level::Info,
                request_id,
            )
        }
        "END" => {
            let request_id = field(&f, "RequestId").map(str::to_owned);
            platform(
                "platform.runtimeDone",
                Event::RuntimeDone {
                    request_id: request_id.clone(),
                    error_type: None,
                },
                Level::Info,
                request_id,
            )
        }
        "REPORT" => {
            let report = parse_report(&rest[word.len()..]).map_err(|mut r| {
                r.event_type = Some("REPORT".to_owned());
                r
            })?;
            let level = if report.status == Status::Success {
                Level::Info
            } else {
                Level::Error
            };
            let id = report.request_id.clone();
            if state.current.as_deref() == Some(id.as_str()) {
                state.current = None;
            }
            state.last_report = Some(id.clone());
            platform("platform.report", Event::Report(report), level, Some(id))
        }
        "INIT_START" => platform(
            "platform.initStart",
            Event::InitStart {
                version: None,
                instance: None,
            },
            Level::Info,
            None,
        ),
        "INIT_REPORT" => {
            let duration_ms = report_number(&f, "Init Duration").map_err(|mut r| {
                r.event_type = Some("INIT_REPORT".to_owned());
                r
            })?;
            let status = field(&f, "Status").map(str::to_owned);
            let level = if status.as_deref().is_some_and(|s| s != "success") {
                Level::Error
            } else {
                Level::Info
            };
            platform(
                "platform.initReport",
                Event::InitDone {
                    status,
                    error_type: field(&f, "Error Type").map(str::to_owned),
                    duration_ms,
                },
                level,
                None,
            )
        }
        "XRAY" => platform(
            "platform.xray",
            Event::Other,
            Level::Info,
            state.last_report.clone(),
        ),
        _ => platform(
            "platform.log",
            Event::Other,
            Level::Info,
            field(&f, "RequestId").map(str::to_owned),
        ),
    };
    out.push(v);
    Ok(())
}

/// The lines of one event: its message, split before an inner platform line (a REPORT event
/// carries its XRAY line after a newline). Other newlines stay inside the message.
fn event_lines(message: &str) -> impl Iterator<Item = &str> {
    let message = message.trim_end_matches(['\n', '\r']);
    let mut rest = Some(message);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut from = 0;
        while let Some(pos) = text[from..].find('\n') {
            let at = from + pos;
            if platform_word(&text[at + 1..]).is_some() {
                rest = Some(&text[at + 1..]);
                return Some(&text[..at]);
            }
            from = at + 1;
        }
        rest = None;
        Some(text)
    })
}

/// Decodes the events of one log stream. Events without a time (platform lines of plain text
/// carry none) take the last time seen, except START and INIT_START, which take the next one
/// (they open what follows); the first ones take the first time seen, and a stream with no time
/// at all `now_ms`.
pub fn decode_events(events: &[StreamEvent<'_>], ctx: &LambdaContext, now_ms: i64) -> Decoded {
    let own_time = |e: &StreamEvent<'_>| {
        e.ts_ms.or_else(|| {
            let line = e.message.trim_start();
            leading_time(line)
                .map(|(ts, _)| ts)
                .or_else(|| super::lines::parse_text_line_time(line))
        })
    };
    let times: Vec<Option<i64>> = events.iter().map(own_time).collect();
    // The next time seen from each event on: START and INIT_START open what follows them.
    let mut next_times = vec![None; times.len()];
    let mut next = None;
    for (i, t) in times.iter().enumerate().rev() {
        next = t.or(next);
        next_times[i] = next;
    }
    let mut last = times.iter().flatten().next().copied().unwrap_or(now_ms);
    let mut state = LineState::default();
    let mut validated = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    for (index, (event, time)) in events.iter().zip(times).enumerate() {
        let opens = matches!(platform_word(event.message), Some("START" | "INIT_START"));
        let time_ms = match time {
            Some(t) => t,
            None if opens => next_times[index].unwrap_or(last),
            None => last,
        };
        last = time_ms;
        for line in event_lines(event.message) {
            if line.trim().is_empty() {
                continue;
            }
            let before = validated.len();
            match parse_line(line, time_ms, &mut state, &mut validated) {
                Ok(()) => validated[before..].iter_mut().for_each(|v| v.index = index),
                Err(mut r) => {
                    r.index = index;
                    rejected.push(r);
                }
            }
        }
    }
    telemetry::assemble(validated, rejected, ctx)
}

/// Decodes a plain-text stream: one event per line.
pub fn decode_text(body: &[u8], ctx: &LambdaContext, now_ms: i64) -> Result<Decoded, DecodeError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| DecodeError::Shape(format!("the body is not UTF-8 text: {e}")))?;
    let events: Vec<StreamEvent<'_>> = text
        .split('\n')
        .map(|message| StreamEvent {
            ts_ms: None,
            message,
        })
        .collect();
    Ok(decode_events(&events, ctx, now_ms))
}

/// The version a log stream name carries: `2025/11/26/[$LATEST]f3a1...` -> `$LATEST`.
fn stream_version(log_stream: &str) -> Option<String> {
    let (_, rest) = log_stream.split_once('[')?;
    let (version, _) = rest.split_once(']')?;
    (!version.is_empty()).then(|| version.to_owned())
}

fn function_context(function: String, params: &StreamParams) -> Result<LambdaContext, DecodeError> {
    if let Some(problem) = function_name_problem(&function) {
        return Err(DecodeError::Shape(problem));
    }
    Ok(LambdaContext {
        function,
        version: params.version.clone(),
        region: params.region.clone(),
        instance: None,
    })
}

/// Decodes a subscription message (the JSON inside `awslogs.data`). A `CONTROL_MESSAGE` yields
/// nothing.
pub fn decode_subscription(
    doc: Map<String, Value>,
    params: &StreamParams,
) -> Result<Decoded, DecodeError> {
    let kind = doc.get("messageType").and_then(Value::as_str);
    if kind == Some("CONTROL_MESSAGE") {
        return Ok(Decoded::default());
    }
    if kind.is_some_and(|k| k != "DATA_MESSAGE") {
        return Err(DecodeError::Shape(format!(
            "messageType {:?} is neither DATA_MESSAGE nor CONTROL_MESSAGE",
            kind.unwrap_or_default()
        )));
    }
    let log_group = doc.get("logGroup").and_then(Value::as_str).unwrap_or("");
    let log_stream = doc.get("logStream").and_then(Value::as_str).unwrap_or("");
    let function = match &params.function {
        Some(f) => f.clone(),
        None => {
            let last = log_group.trim_end_matches('/').rsplit('/').next();
            match last.filter(|s| !s.is_empty()) {
                Some(f) => f.to_owned(),
                None => {
                    return Err(DecodeError::Shape(format!(
                        "logGroup {log_group:?} names no function; name it with ?function="
                    )));
                }
            }
        }
    };
    let mut ctx = function_context(function, params)?;
    if ctx.version.is_none() {
        ctx.version = stream_version(log_stream);
    }
    if !log_stream.is_empty() {
        ctx.instance = Some(log_stream.to_owned());
    }
    let Some(Value::Array(raw)) = doc.get("logEvents") else {
        return Err(DecodeError::Shape(
            "logEvents is missing or not an array".to_owned(),
        ));
    };
    let mut events = Vec::with_capacity(raw.len());
    let mut bad = Vec::new();
    let mut positions = Vec::with_capacity(raw.len());
    for (index, e) in raw.iter().enumerate() {
        let ts = e.get("timestamp").and_then(Value::as_i64);
        let message = e.get("message").and_then(Value::as_str);
        match (ts, message) {
            (Some(ts), Some(message)) => {
                events.push(StreamEvent {
                    ts_ms: Some(ts),
                    message,
                });
                positions.push(index);
            }
            (None, _) => bad.push(Rejection {
                index,
                event_type: None,
                reason: "invalid_field",
                detail: "logEvents[].timestamp must be epoch milliseconds".to_owned(),
            }),
            (_, None) => bad.push(Rejection {
                index,
                event_type: None,
                reason: "invalid_field",
                detail: "logEvents[].message must be a string".to_owned(),
            }),
        }
    }
    let mut decoded = decode_events(&events, &ctx, 0);
    // Positions are those of logEvents, skipped events included.
    for r in &mut decoded.rejected {
        r.index = positions[r.index];
    }
    decoded.rejected.extend(bad);
    decoded.rejected.sort_by_key(|r| r.index);
    Ok(decoded)
}

/// Reads JSON that must be an object.
fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, DecodeError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(DecodeError::Shape(format!("{what} must be a JSON object"))),
        Err(e) => Err(DecodeError::Json(format!("{what}: {e}"))),
    }
}

/// Unpacks `{"awslogs":{"data":"<base64(gzip(JSON))>"}}`.
fn unpack_awslogs(data: &Value, limit: usize) -> Result<Map<String, Value>, DecodeError> {
    let data = data
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| DecodeError::Shape("awslogs.data must be a string".to_owned()))?;
    let zipped = base64_decode(data, "awslogs.data")?;
    let json = gunzip(&zipped, limit, "awslogs.data")?;
    json_object(&json, "awslogs.data")
}

/// `POST /api/v1/ingest/cloudwatch`: a subscription payload, its decoded form, or plain text.
/// `limit` caps every decompression.
pub fn decode_body(
    body: &[u8],
    params: &StreamParams,
    limit: usize,
    now_ms: i64,
) -> Result<Decoded, DecodeError> {
    let unzipped;
    let body = if is_gzip(body) {
        unzipped = gunzip(body, limit, "body")?;
        &unzipped[..]
    } else {
        body
    };
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"{")
        && let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(trimmed)
    {
        if let Some(awslogs) = obj.remove("awslogs") {
            return decode_subscription(unpack_awslogs(&awslogs, limit)?, params);
        }
        if obj.contains_key("logEvents") || obj.contains_key("messageType") {
            return decode_subscription(obj, params);
        }
        if params.function.is_none() {
            return Err(DecodeError::Shape(
                "a JSON body must be a subscription payload ({\"awslogs\":{\"data\":...}}) or its \
                 decoded form (messageType, logGroup, logEvents); for plain text lines, name the \
                 function with ?function="
                    .to_owned(),
            ));
        }
    }
    let Some(function) = params.function.clone() else {
        return Err(DecodeError::Shape(
            "plain text log lines need the function query parameter (?function=<name>)".to_owned(),
        ));
    };
    decode_text(body, &function_context(function, params)?, now_ms)
}

/// A Firehose HTTP endpoint delivery, decoded.
#[derive(Debug)]
pub struct FirehoseDelivery {
    pub request_id: String,
    pub decoded: Decoded,
}

/// Decodes a Firehose delivery body: each record is a subscription message
/// (base64(gzip(JSON)), as CloudWatch Logs sends through Firehose) or, from other sources, text
/// lines of the function named by `params`. Positions of rejections are record positions.
pub fn decode_firehose(
    body: &[u8],
    params: &StreamParams,
    limit: usize,
    now_ms: i64,
) -> Result<FirehoseDelivery, DecodeError> {
    let mut obj = json_object(body, "the body")?;
    let request_id = match obj.remove("requestId") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => {
            return Err(DecodeError::Shape(
                "requestId is missing or not a string".to_owned(),
            ));
        }
    };
    let Some(Value::Array(records)) = obj.remove("records") else {
        return Err(DecodeError::Shape(
            "records is missing or not an array".to_owned(),
        ));
    };
    let mut batch = Batch::default();
    let mut rejected = Vec::new();
    let mut decompressed = 0usize;
    for (index, record) in records.iter().enumerate() {
        let reject = |e: DecodeError| Rejection {
            index,
            event_type: None,
            reason: e.code(),
            detail: format!("records[{index}]: {e}"),
        };
        let outcome = firehose_record(record, params, limit - decompressed.min(limit), now_ms);
        match outcome {
            Ok((d, size)) => {
                decompressed += size;
                batch.append(d.batch);
                rejected.extend(d.rejected.into_iter().map(|mut r| {
                    r.detail = format!("records[{index}]: event {}: {}", r.index, r.detail);
                    r.index = index;
                    r
                }));
            }
            Err(DecodeError::TooLarge(l)) => return Err(DecodeError::TooLarge(l)),
            Err(e) => rejected.push(reject(e)),
        }
    }
    Ok(FirehoseDelivery {
        request_id,
        decoded: Decoded { batch, rejected },
    })
}

fn firehose_record(
    record: &Value,
    params: &StreamParams,
    limit: usize,
    now_ms: i64,
) -> Result<(Decoded, usize), DecodeError> {
    let data = record
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| DecodeError::Shape("data must be a base64 string".to_owned()))?;
    let mut bytes = base64_decode(data, "data")?;
    if is_gzip(&bytes) {
        bytes = gunzip(&bytes, limit, "data")?;
    } else if bytes.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    let size = bytes.len();
    if bytes.trim_ascii_start().starts_with(b"{")
        && let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&bytes)
        && (obj.contains_key("messageType") || obj.contains_key("logEvents"))
    {
        return Ok((decode_subscription(obj, params)?, size));
    }
    let Some(function) = params.function.clone() else {
        return Err(DecodeError::Shape(
            "the record is not a CloudWatch Logs subscription message, and no function query \
             parameter names the function its lines belong to"
                .to_owned(),
        ));
    };
    Ok((
        decode_text(&bytes, &function_context(function, params)?, now_ms)?,
        size,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fnlens_model::Invocation;

    fn ctx() -> LambdaContext {
        LambdaContext {
            function: "checkout".into(),
            ..LambdaContext::default()
        }
    }

    fn text(body: &str) -> Decoded {
        decode_text(body.as_bytes(), &ctx(), 1_000).unwrap()
    }

    fn only_invocation(d: &Decoded) -> &Invocation {
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert_eq!(d.batch.invocations.len(), 1);
        &d.batch.invocations[0]
    }

    #[test]
    fn fields_split_on_any_whitespace() {
        let f = fields(
            " RequestId: r1\tDuration: 46.84 ms  Billed Duration: 47 ms\tMemory Size: 192 MB\tMax Memory Used: 72 MB\tInit Duration: 116.67 ms\t",
        );
        assert_eq!(field(&f, "RequestId"), Some("r1"));
        assert_eq!(field(&f, "Billed Duration"), Some("47"));
        assert_eq!(field(&f, "Max Memory Used"), Some("72"));
        assert_eq!(field(&f, "Init Duration"), Some("116.67"));
    }

    #[test]
    fn report_with_init_duration_is_a_cold_start() {
        let d = text(
            "START RequestId: r1 Version: 7\nREPORT RequestId: r1\tDuration: 46.84 ms\tBilled Duration: 47 ms\tMemory Size: 192 MB\tMax Memory Used: 72 MB\tInit Duration: 116.67 ms\t\n",
        );
        let inv = only_invocation(&d);
        assert_eq!(inv.duration_ms, 46.84);
        assert_eq!(inv.billed_duration_ms, 47.0);
        assert_eq!((inv.memory_size_mb, inv.max_memory_used_mb), (192, 72));
        assert_eq!(inv.init_duration_ms, Some(116.67));
        assert!(inv.cold_start);
        assert_eq!(inv.status, Status::Success);
        assert_eq!(inv.version, "7");
        // The REPORT line stays searchable; START is folded into the invocation.
        assert_eq!(d.batch.logs.len(), 1);
        assert!(d.batch.logs[0].message.starts_with("REPORT RequestId: r1"));
    }

    #[test]
    fn status_timeout_and_error_type() {
        let d = text(
            "REPORT RequestId: r1  Duration: 180000.00 ms  Billed Duration: 180000 ms  Memory Size: 1280 MB  Max Memory Used: 1201 MB  Status: timeout",
        );
        let inv = only_invocation(&d);
        assert_eq!(inv.status, Status::Timeout);
        assert_eq!(d.batch.logs[0].level, Level::Error);
        let d = text(
            "INIT_REPORT Init Duration: 206.72 ms\tPhase: init\tStatus: error\tError Type: Runtime.ExitError\nSTART RequestId: r2 Version: $LATEST\nREPORT RequestId: r2\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\tStatus: error\tError Type: Runtime.ExitError",
        );
        let inv = only_invocation(&d);
        assert_eq!(inv.status, Status::Error);
        assert_eq!(inv.error_type.as_deref(), Some("Runtime.ExitError"));
        assert!(inv.cold_start);
        assert_eq!(inv.init_duration_ms, Some(206.72));
        assert_eq!(inv.init_status.as_deref(), Some("error"));
    }

    #[test]
    fn old_timeout_line_marks_the_invocation() {
        let d = text(
            "START RequestId: r1 Version: $LATEST\n2025-11-26T09:15:34.392Z r1 Task timed out after 3.03 seconds\nEND RequestId: r1\nREPORT RequestId: r1\tDuration: 3030.12 ms\tBilled Duration: 3000 ms\tMemory Size: 192 MB\tMax Memory Used: 78 MB\t",
        );
        let inv = only_invocation(&d);
        assert_eq!(inv.status, Status::Timeout);
        assert_eq!(inv.billed_duration_ms, 3000.0);
        let line = d
            .batch
            .logs
            .iter()
            .find(|l| l.message.contains("Task timed out"))
            .unwrap();
        assert_eq!(line.level, Level::Error);
        assert_eq!(line.request_id.as_deref(), Some("r1"));
        // Every line takes the only time the stream gives.
        assert!(
            d.batch
                .logs
                .iter()
                .all(|l| l.ts_ms == parse_rfc3339_ms("2025-11-26T09:15:34.392Z").unwrap())
        );
    }

    #[test]
    fn node_invoke_error_and_python_unhandled_fail_the_invocation() {
        let report = |id: &str| {
            format!(
                "REPORT RequestId: {id}\tDuration: 5.00 ms\tBilled Duration: 5 ms\tMemory Size: 128 MB\tMax Memory Used: 60 MB\t"
            )
        };
        let d = text(&format!(
            "START RequestId: n1 Version: $LATEST\n2025-11-26T09:14:07.496Z\tn1\tERROR\tInvoke Error \t{{\"errorType\":\"TypeError\",\"errorMessage\":\"x\"}}\n{}",
            report("n1")
        ));
        let inv = only_invocation(&d);
        assert_eq!(inv.status, Status::Failure);
        assert_eq!(inv.error_type.as_deref(), Some("TypeError"));
        let d = text(&format!(
            "START RequestId: p1 Version: $LATEST\n[ERROR] KeyError: 'sku'\rTraceback (most recent call last):\r  File \"/var/task/app.py\", line 3\n{}",
            report("p1")
        ));
        let inv = only_invocation(&d);
        assert_eq!(inv.status, Status::Failure);
        assert_eq!(inv.error_type.as_deref(), Some("KeyError"));
        // A logged (handled) error is not a failed invocation.
        let d = text(&format!(
            "START RequestId: p2 Version: $LATEST\n[ERROR]\t2025-11-26T09:14:30.124Z\tp2\tcharge failed\rTraceback (most recent call last):\n{}",
            report("p2")
        ));
        assert_eq!(only_invocation(&d).status, Status::Success);
    }

    #[test]
    fn garbled_report_is_rejected_alone() {
        let d = text(
            "2025-11-26T09:14:02.238Z\tr1\tINFO\thello\nREPORT RequestId: r1\tDuration: 4x.84 ms\tBilled Duration: 47 ms\tMemory Size: 192 MB\tMax Memory Used: 72 MB",
        );
        assert_eq!(d.batch.invocations.len(), 0);
        assert_eq!(d.batch.logs.len(), 1);
        assert_eq!(d.rejected.len(), 1);
        let r = &d.rejected[0];
        assert_eq!((r.index, r.reason), (1, "invalid_field"));
        assert_eq!(r.detail, "Duration \"4x.84\" is not a number");
        let d = text("REPORT RequestId: r1\tDuration: 1 ms");
        assert_eq!(d.rejected[0].detail, "REPORT line has no Billed Duration");
    }

    #[test]
    fn lines_that_only_begin_like_platform_lines_are_runtime_lines() {
        let d = text(
            "REPORT ready for customer 42\nSTART the engine\nbusy Task timed out after 3 seconds\nEND",
        );
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        assert!(d.batch.invocations.is_empty());
        assert_eq!(d.batch.logs.len(), 4);
        assert!(d.batch.logs.iter().all(|l| l.source == LogSource::Function));
        assert!(d.batch.logs.iter().all(|l| l.level == Level::Info));
    }

    #[test]
    fn xray_line_in_the_report_event_is_its_own_line() {
        let events = [StreamEvent {
            ts_ms: Some(5_000),
            message: "REPORT RequestId: r1\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\t\nXRAY TraceId: 1-abc\tSegmentId: def\tSampled: true\t\n",
        }];
        let d = decode_events(&events, &ctx(), 0);
        assert_eq!(d.batch.invocations.len(), 1);
        assert_eq!(d.batch.logs.len(), 2);
        assert!(d.batch.logs[1].message.starts_with("XRAY TraceId: 1-abc"));
        assert_eq!(d.batch.logs[1].request_id.as_deref(), Some("r1"));
        assert!(d.batch.logs.iter().all(|l| l.ts_ms == 5_000));
    }

    #[test]
    fn control_message_yields_nothing() {
        let doc = serde_json::json!({"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]});
        let Value::Object(doc) = doc else {
            unreachable!()
        };
        let d = decode_subscription(doc, &StreamParams::default()).unwrap();
        assert!(d.batch.is_empty() && d.rejected.is_empty());
    }

    #[test]
    fn subscription_names_function_version_and_instance() {
        let doc = serde_json::json!({"messageType":"DATA_MESSAGE","logGroup":"/aws/lambda/billing","logStream":"2025/11/26/[12]abc","logEvents":[
            {"id":"1","timestamp":1000,"message":"START RequestId: r1 Version: 12\n"},
            {"id":"2","timestamp":"x","message":"bad"},
            {"id":"3","timestamp":1500,"message":"REPORT RequestId: r1\tDuration: 500.00 ms\tBilled Duration: 500 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\t\n"}]});
        let Value::Object(doc) = doc else {
            unreachable!()
        };
        let d = decode_subscription(doc, &StreamParams::default()).unwrap();
        assert_eq!(d.rejected.len(), 1);
        assert_eq!(d.rejected[0].index, 1);
        let inv = &d.batch.invocations[0];
        assert_eq!(
            (inv.function.as_str(), inv.version.as_str(), inv.ts_ms),
            ("billing", "12", 1000)
        );
        assert_eq!(inv.instance.as_deref(), Some("2025/11/26/[12]abc"));
    }

    #[test]
    fn plain_text_needs_a_function() {
        let err = decode_body(b"hello", &StreamParams::default(), 1 << 20, 0).unwrap_err();
        assert!(
            err.to_string().contains("function query parameter"),
            "{err}"
        );
        let err = decode_body(
            br#"{"awslogs":{"data":"!!"}}"#,
            &StreamParams::default(),
            1 << 20,
            0,
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_base64");
        let err = decode_body(
            br#"{"awslogs":{"data":"aGVsbG8="}}"#,
            &StreamParams::default(),
            1 << 20,
            0,
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_gzip");
    }
}
