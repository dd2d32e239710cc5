//! CloudWatch Embedded Metric Format: metric points inside a JSON log line (formats.md §4).
//!
//! An EMF document stays a log line; this adds one [`MetricPoint`] per value of each metric of
//! each directive, with the directive's dimensions (the union of its dimension sets) as
//! dimensions. A document that claims to be EMF (`_aws.CloudWatchMetrics`) but breaks the
//! specification is rejected as a whole, naming the problem.

use std::collections::BTreeMap;

use fnlens_model::MetricPoint;
use serde_json::{Map, Value};

use super::Rejection;

/// The units EMF allows.
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Where the document was logged.
#[derive(Debug, Clone, Default)]
pub struct EmfContext<'a> {
    pub function: Option<&'a str>,
    pub version: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

/// Whether a JSON log object is an EMF document.
pub fn is_emf(doc: &Map<String, Value>) -> bool {
    doc.get("_aws")
        .and_then(Value::as_object)
        .is_some_and(|aws| aws.contains_key("CloudWatchMetrics"))
}

fn bad(detail: impl Into<String>) -> Rejection {
    Rejection::new("invalid_emf", detail)
}

/// The metric points of an EMF document.
pub fn extract(
    doc: &Map<String, Value>,
    ctx: &EmfContext<'_>,
) -> Result<Vec<MetricPoint>, Rejection> {
    let aws = doc
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("_aws must be an object"))?;
    let ts_ms = match aws.get("Timestamp") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or_else(|| bad("_aws.Timestamp is not a valid epoch time in ms"))?,
        Some(_) => return Err(bad("_aws.Timestamp must be a number (epoch ms)")),
        None => return Err(bad("_aws.Timestamp is missing")),
    };
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("_aws.CloudWatchMetrics must be an array"))?;
    let mut points = Vec::new();
    for (d, directive) in directives.iter().enumerate() {
        let at = format!("_aws.CloudWatchMetrics[{d}]");
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{at}.Namespace is missing or not a string")))?;
        if namespace.is_empty() || namespace.chars().count() > 1024 {
            return Err(bad(format!("{at}.Namespace must be 1 to 1024 characters")));
        }
        let mut dimensions = BTreeMap::new();
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("{at}.Dimensions must be an array of arrays")))?;
        for set in sets {
            let names = set
                .as_array()
                .ok_or_else(|| bad(format!("{at}.Dimensions must be an array of arrays")))?;
            if names.len() > 30 {
                return Err(bad(format!(
                    "{at}.Dimensions has a set of more than 30 names"
                )));
            }
            for name in names {
                let name = name
                    .as_str()
                    .ok_or_else(|| bad(format!("{at}.Dimensions holds a non-string name")))?;
                let value = match doc.get(name) {
                    Some(Value::String(s)) => s.clone(),
                    Some(_) => {
                        return Err(bad(format!("dimension {name:?} must be a string")));
                    }
                    None => {
                        return Err(bad(format!(
                            "dimension {name:?} has no value in the document"
                        )));
                    }
                };
                dimensions.insert(name.to_owned(), value);
            }
        }
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("{at}.Metrics must be an array")))?;
        if metrics.len() > 100 {
            return Err(bad(format!("{at}.Metrics has more than 100 definitions")));
        }
        for m in metrics {
            let name = m
                .get("Name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad(format!("{at}.Metrics holds a definition without a Name")))?;
            let unit = match m.get("Unit") {
                None | Some(Value::Null) => "None",
                Some(Value::String(u)) if UNITS.contains(&u.as_str()) => u,
                Some(other) => {
                    return Err(bad(format!("metric {name:?} has an unknown Unit {other}")));
                }
            };
            match m.get("StorageResolution") {
                None => {}
                Some(v) if v.as_i64() == Some(1) || v.as_i64() == Some(60) => {}
                Some(v) => {
                    return Err(bad(format!(
                        "metric {name:?}: StorageResolution must be 1 or 60, not {v}"
                    )));
                }
            }
            let values: Vec<f64> = match doc.get(name) {
                None => {
                    return Err(bad(format!(
                        "metric {name:?} has no target: the document has no {name:?} key"
                    )));
                }
                Some(Value::Number(n)) => vec![n.as_f64().unwrap_or(f64::NAN)],
                Some(Value::Array(a)) if a.len() <= 100 => a
                    .iter()
                    .map(|v| {
                        v.as_f64().ok_or_else(|| {
                            bad(format!("metric {name:?} has a non-numeric value {v}"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(Value::Array(_)) => {
                    return Err(bad(format!("metric {name:?} has more than 100 values")));
                }
                Some(other) => {
                    return Err(bad(format!(
                        "metric {name:?} must be a number or an array of numbers, not {other}"
                    )));
                }
            };
            if values.iter().any(|v| !v.is_finite()) {
                return Err(bad(format!("metric {name:?} has a value out of range")));
            }
            for value in values {
                let mut p = MetricPoint::gauge(ts_ms, namespace, name, unit, value);
                p.function = ctx.function.map(str::to_owned);
                p.version = ctx.version.map(str::to_owned);
                p.request_id = ctx.request_id.map(str::to_owned);
                p.dimensions = dimensions.clone();
                points.push(p);
            }
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Map<String, Value> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn formats_md_example() {
        let d = doc(
            r#"{"_aws":{"Timestamp":1574109732004,"CloudWatchMetrics":[{"Namespace":"shop","Dimensions":[["service","functionVersion"]],"Metrics":[{"Name":"latency","Unit":"Milliseconds","StorageResolution":60}]}]},
 "service":"checkout","functionVersion":"$LATEST","latency":[100,120],"requestId":"989ffbf8-..."}"#,
        );
        assert!(is_emf(&d));
        let points = extract(&d, &EmfContext::default()).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].value, Some(100.0));
        assert_eq!(points[1].value, Some(120.0));
        assert_eq!(points[0].ts_ms, 1574109732004);
        assert_eq!(points[0].unit, "Milliseconds");
        assert_eq!(points[0].dimensions["service"], "checkout");
        assert_eq!(points[0].dimensions["functionVersion"], "$LATEST");
    }

    #[test]
    fn broken_documents_are_rejected_with_the_reason() {
        let cases = [
            (
                r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"x"}]}]}}"#,
                "no target",
            ),
            (
                r#"{"_aws":{"CloudWatchMetrics":[]}}"#,
                "Timestamp is missing",
            ),
            (
                r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"","Dimensions":[],"Metrics":[]}]}}"#,
                "1 to 1024",
            ),
            (
                r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[["svc"]],"Metrics":[]}]}}"#,
                "\"svc\" has no value",
            ),
            (
                r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"x","Unit":"Parsecs"}]}]},"x":1}"#,
                "unknown Unit",
            ),
            (
                r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[{"Name":"x"}]}]},"x":"fast"}"#,
                "number or an array",
            ),
        ];
        for (input, expected) in cases {
            let err = extract(&doc(input), &EmfContext::default()).unwrap_err();
            assert!(err.detail.contains(expected), "{input}: {}", err.detail);
            assert_eq!(err.reason, "invalid_emf");
        }
    }
}
