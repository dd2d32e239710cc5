//! Reading one runtime log line: the Node and Python text formats and the JSON log format
//! (formats.md section 2). Shared by every decoder that meets Lambda's own log lines.

use fnlens_model::{Level, parse_rfc3339_ms};
use serde_json::{Map, Value};

/// What a runtime line says about itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedLine {
    pub ts_ms: Option<i64>,
    pub request_id: Option<String>,
    pub level: Option<Level>,
    pub message: String,
    pub attributes: Map<String, Value>,
}

/// Cleans a message: trailing newlines go, `\r` (Lambda's in-event line break) becomes `\n`.
pub fn clean_message(s: &str) -> String {
    s.trim_end_matches(['\n', '\r']).replace('\r', "\n")
}

fn request_id(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s == "undefined" || s == "null" {
        None
    } else {
        Some(s.to_owned())
    }
}

/// Parses a text line written by a runtime.
pub fn parse_text_line(line: &str) -> ParsedLine {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{')
        && let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(trimmed)
    {
        return parse_json_line(obj);
    }
    // Node: ISO \t requestId \t LEVEL \t message
    let mut parts = line.splitn(4, '\t');
    if let (Some(a), Some(b), Some(c), Some(d)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    {
        if let Some(ts) = parse_rfc3339_ms(a)
            && let Some(level) = Level::parse(c)
        {
            return ParsedLine {
                ts_ms: Some(ts),
                request_id: request_id(b),
                level: Some(level),
                message: clean_message(d),
                attributes: Map::new(),
            };
        }
        // Python: [LEVEL] \t ISO \t requestId \t message
        if let Some(level) = bracketed_level(a)
            && let Some(ts) = parse_rfc3339_ms(b)
        {
            return ParsedLine {
                ts_ms: Some(ts),
                request_id: request_id(c),
                level: Some(level),
                message: clean_message(d),
                attributes: Map::new(),
            };
        }
    }
    // `[LEVEL] message` without the rest.
    if let Some(rest) = trimmed.strip_prefix('[')
        && let Some((lvl, msg)) = rest.split_once(']')
        && let Some(level) = Level::parse(lvl)
    {
        return ParsedLine {
            level: Some(level),
            message: clean_message(msg.trim_start()),
            ..ParsedLine::default()
        };
    }
    ParsedLine {
        message: clean_message(line),
        ..ParsedLine::default()
    }
}

/// The time a runtime line gives itself (Node's first field, Python's second, a JSON line's
/// `timestamp`), without reading the rest.
pub fn parse_text_line_time(line: &str) -> Option<i64> {
    if line.starts_with('{') {
        return parse_text_line(line).ts_ms;
    }
    let mut parts = line.splitn(3, '\t');
    let first = parts.next()?;
    if first.starts_with('[') {
        return parse_rfc3339_ms(parts.next()?);
    }
    parse_rfc3339_ms(first)
}

fn bracketed_level(s: &str) -> Option<Level> {
    s.strip_prefix('[')?
        .strip_suffix(']')
        .and_then(Level::parse)
}

/// Keys of a JSON log line that fnlens reads into its own columns.
const REQUEST_ID_KEYS: &[&str] = &[
    "requestId",
    "AWSRequestId",
    "function_request_id",
    "aws_request_id",
];

/// Parses a JSON log object (Lambda's JSON log format, Powertools, any structured logger).
/// Keys other than the timestamp, level, message and request id become attributes.
pub fn parse_json_line(mut obj: Map<String, Value>) -> ParsedLine {
    let level = obj
        .remove("level")
        .or_else(|| obj.remove("levelname"))
        .and_then(|v| v.as_str().and_then(Level::parse));
    let ts_ms = obj
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339_ms);
    if ts_ms.is_some() {
        obj.remove("timestamp");
    }
    let mut req = None;
    for key in REQUEST_ID_KEYS {
        if let Some(Value::String(s)) = obj.get(*key) {
            req = request_id(s);
            if req.is_some() {
                // Powertools' key stays an attribute too: users search by it.
                if *key != "function_request_id" {
                    obj.remove(*key);
                }
                break;
            }
        }
    }
    let message = match obj.remove("message").or_else(|| obj.remove("msg")) {
        Some(Value::String(s)) => clean_message(&s),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    ParsedLine {
        ts_ms,
        request_id: req,
        level,
        message,
        attributes: obj,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_line() {
        let p = parse_text_line(
            "2022-10-21T14:05:03.300Z\t459921b5-681c-4a96-beb0-81e0aa586026\tINFO\tcharging card\n",
        );
        assert_eq!(p.level, Some(Level::Info));
        assert_eq!(
            p.request_id.as_deref(),
            Some("459921b5-681c-4a96-beb0-81e0aa586026")
        );
        assert_eq!(p.message, "charging card");
        assert!(p.ts_ms.is_some());
    }

    #[test]
    fn node_init_line_has_no_request_id() {
        let p = parse_text_line("2025-11-26T09:14:02.249Z\tundefined\tINFO\tLoading function\n");
        assert_eq!(p.request_id, None);
        assert_eq!(p.message, "Loading function");
    }

    #[test]
    fn python_line_with_multiline_traceback() {
        let p = parse_text_line(
            "[ERROR]\t2022-10-21T14:05:03.300Z\tabc-123\tTraceback (most recent call last):\r  File \"x.py\"\n",
        );
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.request_id.as_deref(), Some("abc-123"));
        assert_eq!(
            p.message,
            "Traceback (most recent call last):\n  File \"x.py\""
        );
    }

    #[test]
    fn bracketed_level_only() {
        let p = parse_text_line("[WARNING] disk almost full");
        assert_eq!(p.level, Some(Level::Warn));
        assert_eq!(p.message, "disk almost full");
    }

    #[test]
    fn plain_text() {
        let p = parse_text_line("hello world");
        assert_eq!(p.level, None);
        assert_eq!(p.message, "hello world");
    }

    #[test]
    fn json_line_keeps_other_keys() {
        let p = parse_text_line(
            r#"{"timestamp":"2026-01-01T00:00:00Z","level":"error","requestId":"r1","message":{"a":1},"user_id":42}"#,
        );
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.request_id.as_deref(), Some("r1"));
        assert_eq!(p.message, r#"{"a":1}"#);
        assert_eq!(p.attributes.get("user_id"), Some(&Value::from(42)));
        assert!(!p.attributes.contains_key("timestamp"));
    }
}
