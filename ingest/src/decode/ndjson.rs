//! fnlens's own NDJSON (`POST /api/v1/ingest/logs`), for scripts and the generic HTTP outputs of
//! log shippers: one JSON object per line.
//!
//! ```text
//! {"ts":"2026-11-27T10:00:00.123Z","function":"checkout","version":"7","request_id":"r-1","level":"ERROR","message":"card declined","order_id":42}
//! ```
//!
//! `function` and `message` are required. `ts` is RFC 3339 or epoch milliseconds (the time of
//! arrival when absent), `level` one of TRACE..FATAL (and their synonyms; INFO when absent),
//! `version` `$LATEST` when absent. Every other key becomes an attribute. An EMF document (a
//! line with `_aws.CloudWatchMetrics`) also yields its metric points. Each bad line is rejected
//! alone, with its position (the 0-based line number) and reason.

use fnlens_model::{Batch, Level, LogRecord, LogSource, function_name_problem, parse_rfc3339_ms};
use serde_json::{Map, Value};

use super::{Decoded, Rejection, emf};

/// Decodes an NDJSON body; `now_ms` stands in for a missing `ts`.
pub fn decode(body: &[u8], now_ms: i64) -> Decoded {
    let mut batch = Batch::default();
    let mut rejected = Vec::new();
    for (index, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_line(line, now_ms, &mut batch) {
            Ok(()) => {}
            Err(mut r) => {
                // As in every decoder, the position from 0: here the line's, blank ones
                // included (the editor's line number minus one).
                r.index = index;
                rejected.push(r);
            }
        }
    }
    Decoded { batch, rejected }
}

fn string_field(obj: &mut Map<String, Value>, key: &str) -> Result<Option<String>, Rejection> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Rejection::new(
            "invalid_field",
            format!("{key} must be a string, not {other}"),
        )),
    }
}

fn decode_line(line: &[u8], now_ms: i64, batch: &mut Batch) -> Result<(), Rejection> {
    let mut obj = match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(obj)) => obj,
        Ok(_) => {
            return Err(Rejection::new(
                "not_an_object",
                "each line must be a JSON object",
            ));
        }
        Err(e) => return Err(Rejection::new("invalid_json", e.to_string())),
    };
    let function = string_field(&mut obj, "function")?
        .ok_or_else(|| Rejection::new("missing_field", "function is missing"))?;
    if let Some(problem) = function_name_problem(&function) {
        return Err(Rejection::new("invalid_function", problem));
    }
    let message = match obj.remove("message") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => {
            return Err(Rejection::new("missing_field", "message is missing"));
        }
        Some(other) => other.to_string(),
    };
    let ts_ms = match obj.remove("ts") {
        None | Some(Value::Null) => now_ms,
        Some(Value::String(s)) => parse_rfc3339_ms(&s).ok_or_else(|| {
            Rejection::new(
                "invalid_field",
                format!("ts {s:?} is not an RFC 3339 time or epoch milliseconds"),
            )
        })?,
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            Rejection::new(
                "invalid_field",
                format!("ts {n} is not whole epoch milliseconds"),
            )
        })?,
        Some(other) => {
            return Err(Rejection::new(
                "invalid_field",
                format!("ts must be an RFC 3339 string or epoch milliseconds, not {other}"),
            ));
        }
    };
    let level = match string_field(&mut obj, "level")? {
        None => Level::Info,
        Some(l) => Level::parse(&l).ok_or_else(|| {
            Rejection::new(
                "invalid_field",
                format!("level {l:?} is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"),
            )
        })?,
    };
    let version = string_field(&mut obj, "version")?.unwrap_or_else(|| "$LATEST".to_owned());
    let request_id = string_field(&mut obj, "request_id")?.filter(|s| !s.is_empty());
    if emf::is_emf(&obj) {
        let ctx = emf::EmfContext {
            function: Some(&function),
            version: Some(&version),
            request_id: request_id.as_deref(),
        };
        batch.metrics.extend(emf::extract(&obj, &ctx)?);
    }
    batch.logs.push(LogRecord {
        ts_ms,
        function,
        version,
        request_id,
        level,
        source: LogSource::Function,
        message,
        attributes: obj,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines_are_kept_and_bad_ones_rejected_with_their_position() {
        let body = br#"{"ts":"2026-11-27T10:00:00.123Z","function":"checkout","version":"7","request_id":"r-1","level":"error","message":"card declined","order_id":42}
{"function":"checkout","message":"no ts, no level"}

not json
["an","array"]
{"function":"bad name","message":"x"}
{"function":"f","message":"x","level":"LOUD"}
{"function":"f","message":"x","ts":"yesterday"}
{"message":"who?"}
{"function":"f","message":"emf","_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"x"}]}]}}
{"function":"f","message":"emf","_aws":{"Timestamp":5,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"x","Unit":"Count"}]}]},"x":[1,2]}
"#;
        let d = decode(body, 1_000);
        assert_eq!(d.batch.logs.len(), 3);
        let first = &d.batch.logs[0];
        assert_eq!(
            first.ts_ms,
            parse_rfc3339_ms("2026-11-27T10:00:00.123Z").unwrap()
        );
        assert_eq!(first.level, Level::Error);
        assert_eq!(first.version, "7");
        assert_eq!(first.request_id.as_deref(), Some("r-1"));
        assert_eq!(first.attributes["order_id"], 42);
        let second = &d.batch.logs[1];
        assert_eq!(
            (second.ts_ms, second.level, second.version.as_str()),
            (1_000, Level::Info, "$LATEST")
        );
        assert_eq!(d.batch.metrics.len(), 2, "the EMF line's two values");
        assert_eq!(d.batch.metrics[0].function.as_deref(), Some("f"));
        let reasons: Vec<(usize, &str)> = d.rejected.iter().map(|r| (r.index, r.reason)).collect();
        assert_eq!(
            reasons,
            [
                (3, "invalid_json"),
                (4, "not_an_object"),
                (5, "invalid_function"),
                (6, "invalid_field"),
                (7, "invalid_field"),
                (8, "missing_field"),
                (9, "invalid_emf"),
            ]
        );
    }
}
