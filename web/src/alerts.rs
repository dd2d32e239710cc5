//! The alerts API (`/api/v1/alerts/...`), and the glue between the alert engine and the rest:
//! the [`Sources`] log and SQL rules read through, the pipeline observer that feeds streaming
//! rules, and the load of recent invocations at start.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMillisecondType};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fnlens_alerts::rule::{Metric, Target};
use fnlens_alerts::{AlertError, Engine, Rule, RuleStatus, Sample, Sources};
use fnlens_model::TimeRange;
use fnlens_query::{SqlEngine, SqlLimits};
use fnlens_store::LogStore;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::read_body;

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::Invalid(d) => ApiError::bad_request("invalid_rule", d),
            AlertError::NotFound(d) => ApiError::new(StatusCode::NOT_FOUND, "not_found", d),
            AlertError::Conflict(d) => ApiError::new(StatusCode::CONFLICT, "conflict", d),
            AlertError::Io(d) => ApiError::internal(d),
        }
    }
}

/// Log search and SQL, for log and SQL rules.
pub struct QuerySources {
    pub logs: Arc<LogStore>,
    pub sql: SqlEngine,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `$start` and `$end` become timestamp literals.
fn bind_window(sql: &str, start_ms: i64, end_ms: i64) -> String {
    sql.replace("$start", &format!("TIMESTAMP '{}'", rfc3339(start_ms)))
        .replace("$end", &format!("TIMESTAMP '{}'", rfc3339(end_ms)))
}

#[async_trait::async_trait]
impl Sources for QuerySources {
    async fn log_counts(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(String, u64)>, String> {
        let range = TimeRange::new(start_ms, end_ms).map_err(|e| e.to_string())?;
        let logs = self.logs.clone();
        let query = query.to_owned();
        let facets = tokio::task::spawn_blocking(move || {
            fnlens_query::facets(&logs, &query, range, 100_000)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        Ok(facets
            .fields
            .into_iter()
            .find(|(field, _)| *field == "function")
            .map(|(_, values)| values)
            .unwrap_or_default())
    }

    async fn sql_values(
        &self,
        sql: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(String, f64)>, String> {
        let result = self
            .sql
            .execute(&bind_window(sql, start_ms, end_ms))
            .await
            .map_err(|e| e.to_string())?;
        let schema = result.schema.clone();
        let (Ok(f_idx), Ok(v_idx)) = (schema.index_of("function"), schema.index_of("value")) else {
            return Err("the query must return the columns function and value".into());
        };
        let mut out = Vec::new();
        for batch in &result.batches {
            let cast = |i: usize, to: &DataType| {
                arrow::compute::cast(batch.column(i), to)
                    .map_err(|e| format!("column {}: {e}", schema.field(i).name()))
            };
            let functions = cast(f_idx, &DataType::Utf8)?;
            let values = cast(v_idx, &DataType::Float64)?;
            let (Some(functions), Some(values)) = (
                functions.as_string_opt::<i32>(),
                values.as_primitive_opt::<Float64Type>(),
            ) else {
                return Err("the function and value columns could not be read".into());
            };
            for row in 0..batch.num_rows() {
                if functions.is_valid(row) && values.is_valid(row) {
                    out.push((functions.value(row).to_owned(), values.value(row)));
                }
            }
        }
        Ok(out)
    }

    async fn check(&self, metric: &Metric) -> Result<(), String> {
        match metric {
            Metric::Logs(q) => fnlens_query::LogQuery::parse(self.logs.schema(), q)
                .map(|_| ())
                .map_err(|e| format!("the logs query: {e}")),
            Metric::Sql(sql) => {
                let now = chrono::Utc::now().timestamp_millis();
                self.sql_values(sql, now - 1, now)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the sql query: {e}"))
            }
            _ => Ok(()),
        }
    }
}

/// Loads the invocations the streaming rules look back over into the engine, registers it
/// as a pipeline observer and starts its loops. Call it before the server takes requests, so
/// that no batch is both loaded and observed.
pub async fn start_alerts(state: &AppState) -> Result<(), String> {
    let Some(engine) = state.alerts.clone() else {
        return Ok(());
    };
    let started = std::time::Instant::now();
    let now = chrono::Utc::now().timestamp_millis();
    let from = now - engine.lookback_ms();
    let scan = state.sql.with_limits(SqlLimits {
        memory_bytes: 1 << 30,
        timeout: std::time::Duration::from_secs(600),
        max_rows: usize::MAX,
    });
    // Ten minutes at a time, to bound the memory of one answer. `ts` bounds the scan (and
    // prunes partitions); an invocation lasts at most 15 minutes.
    let mut loaded = 0;
    let mut slice_start = from;
    while slice_start <= now + 60_000 {
        let slice_end = slice_start + 600_000;
        let sql = format!(
            "SELECT end_ts, function, version, status, duration_ms, init_duration_ms, cold_start, \
             max_memory_used_mb, memory_size_mb FROM invocations \
             WHERE ts >= TIMESTAMP '{}' AND end_ts >= TIMESTAMP '{}' AND end_ts < TIMESTAMP '{}'",
            rfc3339(slice_start - 900_000),
            rfc3339(slice_start),
            rfc3339(slice_end),
        );
        let result = scan.execute(&sql).await.map_err(|e| e.to_string())?;
        let samples = samples_from(&result.batches)?;
        loaded += samples.len();
        engine.add_samples(&samples);
        slice_start = slice_end;
    }
    let observer = engine.clone();
    state
        .pipeline
        .observe(Arc::new(move |_lsn, batch| observer.observe(batch)));
    engine.start(
        Arc::new(QuerySources {
            logs: state.pipeline.stores().logs.clone(),
            sql: state.sql.clone(),
        }),
        reqwest::Client::builder()
            .user_agent(concat!("fnlens/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?,
    );
    tracing::info!(
        invocations = loaded,
        took_ms = started.elapsed().as_millis() as u64,
        "alert engine started"
    );
    Ok(())
}

fn samples_from(batches: &[arrow::array::RecordBatch]) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for b in batches {
        let col = |i: usize| b.column(i);
        let end = col(0)
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or("end_ts is not a timestamp")?;
        let as_str =
            |i: usize| arrow::compute::cast(col(i), &DataType::Utf8).map_err(|e| e.to_string());
        let function = as_str(1)?;
        let version = as_str(2)?;
        let status = as_str(3)?;
        let (Some(function), Some(version), Some(status)) = (
            function.as_string_opt::<i32>(),
            version.as_string_opt::<i32>(),
            status.as_string_opt::<i32>(),
        ) else {
            return Err("the invocations table's text columns could not be read".into());
        };
        let unexpected = |name: &str| format!("the invocations table's {name} has another type");
        let duration = col(4)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| unexpected("duration_ms"))?;
        let init = col(5)
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| unexpected("init_duration_ms"))?;
        let cold = col(6)
            .as_boolean_opt()
            .ok_or_else(|| unexpected("cold_start"))?;
        let used = col(7)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| unexpected("max_memory_used_mb"))?;
        let size = col(8)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| unexpected("memory_size_mb"))?;
        for r in 0..b.num_rows() {
            out.push(Sample {
                end_ms: end.value(r),
                function: function.value(r).to_owned(),
                version: version.value(r).to_owned(),
                failed: status.value(r) != "success",
                cold_start: cold.value(r),
                duration_ms: duration.value(r),
                init_duration_ms: init.is_valid(r).then(|| init.value(r)),
                memory_pct: fnlens_alerts::window::memory_pct(used.value(r), size.value(r)),
            });
        }
    }
    Ok(out)
}

fn engine(state: &AppState) -> Result<&Arc<Engine>, ApiError> {
    state.alerts.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "alerts_disabled",
            "this server runs without the alert engine",
        )
    })
}

fn parse_rule(bytes: &[u8]) -> Result<Rule, ApiError> {
    serde_json::from_slice::<Rule>(bytes)
        .map_err(|e| ApiError::bad_request("invalid_rule", format!("the rule: {e}")))
}

async fn checked(state: &AppState, rule: &Rule) -> Result<(), ApiError> {
    rule.compile()
        .map_err(|e| ApiError::bad_request("invalid_rule", e.to_string()))?;
    let sources = QuerySources {
        logs: state.pipeline.stores().logs.clone(),
        sql: state.sql.clone(),
    };
    sources
        .check(&rule.metric)
        .await
        .map_err(|e| ApiError::bad_request("invalid_rule", format!("rule {:?}: {e}", rule.name)))
}

/// Stands for a webhook secret in answers. Sent back in a `PUT`, it keeps the stored secret of
/// the target with the same URL.
const SECRET_PLACEHOLDER: &str = "<redacted>";

/// A rule as the API shows it: webhook secrets are never echoed.
fn redacted(mut rule: Rule) -> Rule {
    for target in &mut rule.notify {
        if let Target::Webhook {
            secret: Some(secret),
            ..
        } = target
        {
            *secret = SECRET_PLACEHOLDER.into();
        }
    }
    rule
}

/// Puts back the stored secrets where a `PUT` sent the placeholder.
fn restore_secrets(rule: &mut Rule, stored: Option<&Rule>) -> Result<(), ApiError> {
    for target in &mut rule.notify {
        if let Target::Webhook {
            url,
            secret: Some(secret),
        } = target
            && secret == SECRET_PLACEHOLDER
        {
            let old = stored
                .into_iter()
                .flat_map(|r| &r.notify)
                .find_map(|t| match t {
                    Target::Webhook {
                        url: u,
                        secret: Some(s),
                    } if u == url => Some(s.clone()),
                    _ => None,
                });
            *secret = old.ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_rule",
                    format!("the webhook {url} has no stored secret to keep; send the secret"),
                )
            })?;
        }
    }
    Ok(())
}

pub(crate) async fn list_rules(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rules: Vec<RuleStatus> = engine(&state)?
        .rules()
        .into_iter()
        .map(|mut r| {
            r.rule = redacted(r.rule);
            r
        })
        .collect();
    Ok(Json(json!({ "rules": rules })))
}

pub(crate) async fn get_rule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rule = engine(&state)?.rule(&name).ok_or_else(|| {
        ApiError::from(AlertError::NotFound(format!("no rule is named {name:?}")))
    })?;
    Ok(Json(json!(redacted(rule))))
}

pub(crate) async fn create_rule(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    let engine = engine(&state)?.clone();
    let rule = parse_rule(&read_body(body, state.config.max_body_bytes).await?)?;
    checked(&state, &rule).await?;
    let rule = tokio::task::spawn_blocking(move || engine.put_rule(rule, false))
        .await
        .map_err(ApiError::internal)??;
    Ok((StatusCode::CREATED, Json(json!(redacted(rule)))).into_response())
}

pub(crate) async fn replace_rule(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let engine = engine(&state)?.clone();
    let mut rule = parse_rule(&read_body(body, state.config.max_body_bytes).await?)?;
    if rule.name != name {
        return Err(ApiError::bad_request(
            "invalid_rule",
            format!(
                "the body names the rule {:?} but the path {name:?}; rules are not renamed",
                rule.name
            ),
        ));
    }
    restore_secrets(&mut rule, engine.rule(&name).as_ref())?;
    checked(&state, &rule).await?;
    let rule = tokio::task::spawn_blocking(move || engine.put_rule(rule, true))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(json!(redacted(rule))))
}

pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let engine = engine(&state)?.clone();
    tokio::task::spawn_blocking(move || engine.delete_rule(&name))
        .await
        .map_err(ApiError::internal)??;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/alerts`: every instance, filtered by `state`, `rule` or `function`.
pub(crate) async fn list_alerts(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let engine = engine(&state)?;
    let alerts: Vec<Value> = engine
        .instances()
        .into_iter()
        .filter(|(i, _)| params.get("state").is_none_or(|s| i.state.as_str() == s))
        .filter(|(i, _)| params.get("rule").is_none_or(|r| &i.rule == r))
        .filter(|(i, _)| params.get("function").is_none_or(|f| &i.function == f))
        .map(|(i, silenced)| {
            json!({
                "rule": i.rule,
                "function": i.function,
                "state": i.state,
                "value": i.value,
                "datapoints": i.datapoints,
                "since": rfc3339(i.since_ms),
                "since_ms": i.since_ms,
                "alarm_since": i.alarm_since_ms.map(rfc3339),
                "evaluated": rfc3339(i.evaluated_ms),
                "silenced": silenced,
                "notified": i.notified_ms.map(rfc3339),
                "fingerprint": i.fingerprint,
            })
        })
        .collect();
    Ok(Json(json!({ "alerts": alerts })))
}

/// `GET /api/v1/alerts/history`: transitions and notification attempts, newest first.
pub(crate) async fn history(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let engine = engine(&state)?;
    let limit = match params.get("limit") {
        None => 200,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 20_000)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("limit={l:?} must be 0 to 20000"),
                )
            })?,
    };
    let kind = params.get("kind").map(String::as_str);
    if let Some(k) = kind
        && !matches!(k, "transition" | "notification")
    {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("kind={k:?} must be transition or notification"),
        ));
    }
    let entries = engine.history(
        limit,
        params.get("rule").map(String::as_str),
        params.get("function").map(String::as_str),
        kind,
    );
    Ok(Json(json!({
        "entries": entries,
        "pending_deliveries": engine.pending_deliveries().len(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    rule: Option<String>,
    function: Option<String>,
    /// RFC 3339, epoch ms or `now+1h`.
    until: Option<String>,
    /// Or a duration from now: `2h`.
    duration: Option<String>,
    #[serde(default)]
    comment: String,
}

pub(crate) async fn create_silence(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    let engine = engine(&state)?.clone();
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let req: SilenceBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_silence", format!("the silence: {e}")))?;
    let now = chrono::Utc::now().timestamp_millis();
    let until_ms = match (&req.until, &req.duration) {
        (Some(u), None) => fnlens_model::parse_time_param(u, now).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_silence",
                format!("until {u:?} is not a time (RFC 3339, epoch ms or now+1h)"),
            )
        })?,
        (None, Some(d)) => {
            now + fnlens_model::parse_duration_ms(d)
                .filter(|d| *d > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_silence",
                        format!("duration {d:?} is not a duration like 30m or 2h"),
                    )
                })?
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_silence",
                "give either until (a time) or duration (from now)",
            ));
        }
    };
    let silence = tokio::task::spawn_blocking(move || {
        engine.add_silence(req.rule, req.function, until_ms, req.comment)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        AlertError::Invalid(d) => ApiError::bad_request("invalid_silence", d),
        other => other.into(),
    })?;
    Ok((StatusCode::CREATED, Json(silence_json(&silence))).into_response())
}

fn silence_json(s: &fnlens_alerts::Silence) -> Value {
    json!({
        "id": s.id,
        "rule": s.rule,
        "function": s.function,
        "until": rfc3339(s.until_ms),
        "comment": s.comment,
        "created": rfc3339(s.created_ms),
    })
}

pub(crate) async fn list_silences(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let silences: Vec<Value> = engine(&state)?
        .silences()
        .iter()
        .map(silence_json)
        .collect();
    Ok(Json(json!({ "silences": silences })))
}

pub(crate) async fn delete_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let engine = engine(&state)?.clone();
    tokio::task::spawn_blocking(move || engine.delete_silence(&id))
        .await
        .map_err(ApiError::internal)??;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_binds_as_timestamps() {
        assert_eq!(
            bind_window("WHERE ts >= $start AND ts < $end", 0, 1_000),
            "WHERE ts >= TIMESTAMP '1970-01-01T00:00:00.000Z' AND ts < TIMESTAMP '1970-01-01T00:00:01.000Z'"
        );
    }
}
