//! Alert rules: what users write (in the API's JSON, a TOML or a YAML file), and the checked,
//! compiled form the engine evaluates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The resolution of the rolling windows: invocations are counted in buckets this wide.
pub const BUCKET_MS: i64 = 5_000;

/// The longest a rule may look back (`window + (evaluation_periods - 1) * period`): the
/// windows keep one bucket per function and 5 s for this long.
pub const MAX_LOOKBACK_MS: i64 = 6 * 3_600_000;

/// A rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique; also the `alertname` label of its notifications.
    pub name: String,
    /// A function name, or a glob over function names (`checkout-*`); `*`, the default, is every
    /// function. Each matching function is one alert instance.
    #[serde(default = "every_function")]
    pub function: String,
    /// Only invocations of this version count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub metric: Metric,
    /// For `duration`, `init_duration` and `memory_utilization`: avg, p50, p90, p95, p99 or max.
    /// Defaults: p99 for durations, max for memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<Statistic>,
    pub comparison: Comparison,
    pub threshold: f64,
    /// Each datapoint aggregates this much time, e.g. `1m`.
    #[serde(default = "default_window")]
    pub window: String,
    /// Datapoints are this far apart; defaults to the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// How many datapoints are considered (N).
    #[serde(default = "one")]
    pub evaluation_periods: u32,
    /// How many of them must breach to alarm (M); defaults to N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<u32>,
    #[serde(default)]
    pub missing_data: MissingData,
    /// A datapoint with fewer invocations than this counts as missing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_invocations: u64,
    #[serde(default = "default_severity")]
    pub severity: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Where notifications go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Target>,
    /// While in ALARM, notify again this often; `None` notifies once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<String>,
    /// For log and SQL rules: how often they run [default: 10s].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

fn every_function() -> String {
    "*".into()
}
fn default_window() -> String {
    "1m".into()
}
fn one() -> u32 {
    1
}
fn default_severity() -> String {
    "warning".into()
}
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a rule measures. Rates are percentages (0 to 100).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Metric {
    /// Errors plus timeouts, as a percentage of invocations.
    ErrorRate,
    /// Invocations that did not succeed (timeouts included).
    Errors,
    Invocations,
    /// Duration in ms, with a statistic.
    Duration,
    /// Cold starts as a percentage of invocations.
    ColdStartRate,
    /// Init duration of cold starts in ms, with a statistic.
    InitDuration,
    /// Max memory used over memory size, in percent, with a statistic (max or avg).
    MemoryUtilization,
    /// The number of log lines matching a search query: `{"logs": "level:ERROR AND timeout"}`.
    Logs(String),
    /// An SQL query returning `function` and `value` columns. `$start` and `$end` stand for the
    /// datapoint's window, as timestamps.
    Sql(String),
}

impl Metric {
    /// Whether the rule is evaluated from the ingest stream (otherwise on a schedule).
    pub fn is_streaming(&self) -> bool {
        !matches!(self, Metric::Logs(_) | Metric::Sql(_))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Metric::ErrorRate => "error_rate",
            Metric::Errors => "errors",
            Metric::Invocations => "invocations",
            Metric::Duration => "duration",
            Metric::ColdStartRate => "cold_start_rate",
            Metric::InitDuration => "init_duration",
            Metric::MemoryUtilization => "memory_utilization",
            Metric::Logs(_) => "logs",
            Metric::Sql(_) => "sql",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    Avg,
    P50,
    P90,
    P95,
    P99,
    Max,
}

impl Statistic {
    /// The quantile a percentile statistic stands for.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Statistic::P50 => Some(0.5),
            Statistic::P90 => Some(0.9),
            Statistic::P95 => Some(0.95),
            Statistic::P99 => Some(0.99),
            Statistic::Avg | Statistic::Max => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Comparison {
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
        }
    }
}

/// How datapoints without data count, as CloudWatch alarms' `TreatMissingData`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingData {
    /// Not counted either way; with no data at all the alarm is INSUFFICIENT_DATA.
    #[default]
    Missing,
    NotBreaching,
    Breaching,
    /// The alarm keeps its state when there is too little data to decide.
    Ignore,
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A JSON POST in Alertmanager's webhook shape, signed when a secret is set.
    Webhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// An Alertmanager: `POST {url}/api/v2/alerts`.
    Alertmanager { url: String },
}

impl Target {
    pub fn url(&self) -> &str {
        match self {
            Target::Webhook { url, .. } | Target::Alertmanager { url } => url,
        }
    }
}

/// A rule that passed its checks, with its durations in ms.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub rule: Rule,
    pub function: FunctionMatcher,
    pub statistic: Statistic,
    pub window_ms: i64,
    pub period_ms: i64,
    pub n: usize,
    pub m: usize,
    pub repeat_ms: Option<i64>,
    pub schedule_ms: i64,
}

impl Compiled {
    /// How far back the oldest datapoint reaches.
    pub fn lookback_ms(&self) -> i64 {
        self.window_ms + (self.n as i64 - 1) * self.period_ms
    }
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("rule {name:?}: {reason}")]
pub struct RuleError {
    pub name: String,
    pub reason: String,
}

fn duration_field(name: &str, field: &str, value: &str) -> Result<i64, RuleError> {
    match fnlens_model::parse_duration_ms(value) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(RuleError {
            name: name.into(),
            reason: format!("{field} {value:?} is not a duration like 30s, 5m or 1h"),
        }),
    }
}

impl Rule {
    /// Checks the rule and computes what the engine needs.
    pub fn compile(&self) -> Result<Compiled, RuleError> {
        let err = |reason: String| RuleError {
            name: self.name.clone(),
            reason,
        };
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(err("the name must be 1 to 200 characters".into()));
        }
        if self.name.chars().any(|c| c.is_control() || c == '/') {
            return Err(err(
                "the name must not contain / or control characters (it is part of the rule's URL)"
                    .into(),
            ));
        }
        let function = FunctionMatcher::new(&self.function).map_err(err)?;
        if !self.threshold.is_finite() {
            return Err(err("the threshold must be a finite number".into()));
        }
        let window_ms = duration_field(&self.name, "window", &self.window)?;
        let period_ms = match &self.period {
            Some(p) => duration_field(&self.name, "period", p)?,
            None => window_ms,
        };
        if self.metric.is_streaming() {
            let period = self.period.as_deref().unwrap_or(&self.window);
            for (field, text, ms) in [
                ("window", self.window.as_str(), window_ms),
                ("period", period, period_ms),
            ] {
                if ms % BUCKET_MS != 0 {
                    return Err(err(format!(
                        "the {field} {text:?} must be a multiple of {} s",
                        BUCKET_MS / 1000
                    )));
                }
            }
        }
        let n = self.evaluation_periods as usize;
        if !(1..=100).contains(&n) {
            return Err(err("evaluation_periods must be 1 to 100".into()));
        }
        let m = self.datapoints_to_alarm.map_or(n, |m| m as usize);
        if m == 0 || m > n {
            return Err(err(format!(
                "datapoints_to_alarm must be 1 to evaluation_periods ({n}), not {m}"
            )));
        }
        let statistic = match (&self.metric, self.statistic) {
            (Metric::Duration | Metric::InitDuration, s) => s.unwrap_or(Statistic::P99),
            (Metric::MemoryUtilization, None) => Statistic::Max,
            (Metric::MemoryUtilization, Some(s @ (Statistic::Max | Statistic::Avg))) => s,
            (Metric::MemoryUtilization, Some(_)) => {
                return Err(err(
                    "memory_utilization takes the statistic max or avg".into()
                ));
            }
            (metric, Some(_)) => {
                return Err(err(format!(
                    "{} takes no statistic; only duration, init_duration and memory_utilization do",
                    metric.name()
                )));
            }
            (_, None) => Statistic::Avg,
        };
        match &self.metric {
            Metric::Logs(q) if q.trim().is_empty() => {
                return Err(err("the logs query is empty".into()));
            }
            Metric::Sql(q) if q.trim().is_empty() => {
                return Err(err("the sql query is empty".into()));
            }
            Metric::Sql(_) if self.version.is_some() => {
                return Err(err(
                    "an sql rule filters versions in its own query; remove version".into(),
                ));
            }
            _ => {}
        }
        let repeat_ms = self
            .repeat_interval
            .as_deref()
            .map(|r| duration_field(&self.name, "repeat_interval", r))
            .transpose()?;
        let schedule_ms = match &self.schedule {
            Some(s) => duration_field(&self.name, "schedule", s)?,
            None => 10_000,
        };
        for target in &self.notify {
            let url = target.url();
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return Err(err(format!(
                        "the notification url {url:?} is not an http(s) URL"
                    )));
                }
            }
        }
        let compiled = Compiled {
            rule: self.clone(),
            function,
            statistic,
            window_ms,
            period_ms,
            n,
            m,
            repeat_ms,
            schedule_ms,
        };
        if compiled.lookback_ms() > MAX_LOOKBACK_MS {
            return Err(err(format!(
                "window + (evaluation_periods - 1) * period reaches back {} s; the limit is 6h",
                compiled.lookback_ms() / 1000
            )));
        }
        Ok(compiled)
    }
}

/// Which functions a rule covers: one name, a glob, or all.
#[derive(Debug, Clone)]
pub struct FunctionMatcher(glob::Pattern);

impl FunctionMatcher {
    pub fn new(pattern: &str) -> Result<FunctionMatcher, String> {
        if pattern.is_empty() {
            return Err("function is empty; use * for every function".into());
        }
        glob::Pattern::new(pattern)
            .map(FunctionMatcher)
            .map_err(|e| format!("function {pattern:?} is not a valid glob: {e}"))
    }

    pub fn matches(&self, function: &str) -> bool {
        self.0.matches(function)
    }
}

/// A rules file: `[[rule]]` tables in TOML, or a `rules:` list in YAML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default, alias = "rules")]
    rule: Vec<Rule>,
}

/// Reads a rules file, TOML or YAML by its extension, and checks every rule.
pub fn load_rules_file(path: &std::path::Path) -> Result<Vec<Rule>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading rules file {}: {e}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let file: RulesFile = if yaml {
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    let mut seen = std::collections::HashSet::new();
    for rule in &file.rule {
        rule.compile()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if !seen.insert(rule.name.clone()) {
            return Err(format!(
                "{}: two rules are named {:?}",
                path.display(),
                rule.name
            ));
        }
    }
    Ok(file.rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: serde_json::Value) -> Result<Compiled, String> {
        let rule: Rule = serde_json::from_value(json).map_err(|e| e.to_string())?;
        rule.compile().map_err(|e| e.to_string())
    }

    #[test]
    fn a_minimal_rule_takes_the_defaults() {
        let c = rule(serde_json::json!({
            "name": "errors", "metric": "error_rate", "comparison": ">", "threshold": 5
        }))
        .unwrap();
        assert_eq!((c.window_ms, c.period_ms, c.n, c.m), (60_000, 60_000, 1, 1));
        assert!(c.function.matches("anything"));
        assert_eq!(c.rule.missing_data, MissingData::Missing);
        assert_eq!(c.rule.severity, "warning");
    }

    #[test]
    fn metrics_read_as_names_or_tagged_queries() {
        let c = rule(serde_json::json!({
            "name": "t", "metric": {"logs": "level:ERROR AND timeout"}, "comparison": ">=",
            "threshold": 1, "function": "checkout-*", "window": "5m", "period": "1m",
            "evaluation_periods": 5, "datapoints_to_alarm": 3, "missing_data": "notBreaching"
        }))
        .unwrap();
        assert_eq!(
            c.rule.metric,
            Metric::Logs("level:ERROR AND timeout".into())
        );
        assert!(c.function.matches("checkout-api") && !c.function.matches("cart"));
        assert_eq!((c.n, c.m, c.lookback_ms()), (5, 3, 9 * 60_000));
        let d = rule(serde_json::json!({
            "name": "slow", "metric": "duration", "comparison": ">", "threshold": 800
        }))
        .unwrap();
        assert_eq!(d.statistic, Statistic::P99);
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let base = serde_json::json!({
            "name": "r", "metric": "error_rate", "comparison": ">", "threshold": 5
        });
        let with = |k: &str, v: serde_json::Value| {
            let mut r = base.clone();
            r[k] = v;
            rule(r).unwrap_err()
        };
        assert!(with("window", "soon".into()).contains("window \"soon\""));
        assert!(with("window", "7s".into()).contains("multiple of 5 s"));
        assert!(with("evaluation_periods", 0.into()).contains("evaluation_periods"));
        assert!(with("datapoints_to_alarm", 2.into()).contains("datapoints_to_alarm"));
        assert!(with("statistic", "p99".into()).contains("takes no statistic"));
        assert!(with("comparison", "=".into()).contains("unknown variant"));
        assert!(with("metric", "latency".into()).contains("unknown variant"));
        assert!(with("function", "[".into()).contains("not a valid glob"));
        assert!(with("name", "".into()).contains("name"));
        assert!(with("name", "a/b".into()).contains("must not contain /"));
        assert!(with("window", "7h".into()).contains("limit is 6h"));
        assert!(with("colour", "red".into()).contains("unknown field"));
        assert!(
            with(
                "notify",
                serde_json::json!([{"type": "webhook", "url": "ftp://x"}])
            )
            .contains("not an http(s) URL")
        );
    }

    #[test]
    fn rules_files_load_from_toml_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("rules.toml");
        std::fs::write(
            &toml_path,
            r#"
[[rule]]
name = "checkout errors"
function = "checkout-*"
metric = "error_rate"
comparison = ">"
threshold = 5
window = "1m"
evaluation_periods = 3
datapoints_to_alarm = 2
min_invocations = 20
notify = [{ type = "webhook", url = "http://127.0.0.1:9/hook", secret = "s3cret" }]

[[rule]]
name = "timeouts in logs"
metric = { logs = "level:ERROR AND timeout" }
comparison = ">="
threshold = 1
"#,
        )
        .unwrap();
        let rules = load_rules_file(&toml_path).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].min_invocations, 20);
        assert_eq!(
            rules[1].metric,
            Metric::Logs("level:ERROR AND timeout".into())
        );

        let yaml_path = dir.path().join("rules.yaml");
        std::fs::write(
            &yaml_path,
            "rules:\n  - name: slow\n    metric: duration\n    statistic: p95\n    comparison: '>'\n    threshold: 900\n    window: 5m\n",
        )
        .unwrap();
        let rules = load_rules_file(&yaml_path).unwrap();
        assert_eq!(rules[0].statistic, Some(Statistic::P95));

        std::fs::write(&yaml_path, "rules:\n  - name: a\n    metric: errors\n    comparison: '>'\n    threshold: 1\n  - name: a\n    metric: errors\n    comparison: '>'\n    threshold: 1\n").unwrap();
        assert!(
            load_rules_file(&yaml_path)
                .unwrap_err()
                .contains("two rules")
        );
    }
}
