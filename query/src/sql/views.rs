//! Views every session has: the per-function metrics a Lambda user knows from CloudWatch.

/// `(name, SQL)` of each view.
pub const VIEWS: &[(&str, &str)] = &[
    (
        "lambda_metrics",
        // One row per function and minute. Filter on `minute`; for a whole range per function,
        // run the same aggregates on `invocations` with a `ts` filter (see the README).
        //
        // Functions with no invocation rows (instrumented with OpenTelemetry only) get their rows
        // from the FaaS metrics: cumulative series (per function, name and dimensions, which
        // include the instance) are turned into per-point deltas, a drop being a restart;
        // durations come from the histograms' sums and counts (seconds unless the unit is ms).
        // Percentiles, memory utilisation and GB-seconds need the invocation rows: null there.
        "WITH inv AS (
            SELECT
                date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS minute,
                function,
                count(*) AS invocations,
                count(*) FILTER (WHERE status <> 'success') AS errors,
                count(*) FILTER (WHERE status = 'timeout') AS timeouts,
                error_rate(status) AS error_rate,
                avg(duration_ms) AS duration_avg_ms,
                approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS duration_p50_ms,
                approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY duration_ms) AS duration_p90_ms,
                approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS duration_p99_ms,
                max(duration_ms) AS duration_max_ms,
                count(*) FILTER (WHERE cold_start) AS cold_starts,
                avg(init_duration_ms) AS init_duration_avg_ms,
                max(init_duration_ms) AS init_duration_max_ms,
                max(max_memory_used_mb) AS max_memory_used_mb,
                max(CAST(max_memory_used_mb AS DOUBLE) / memory_size_mb) AS memory_utilization_max,
                sum(gb_seconds(billed_duration_ms, memory_size_mb)) AS gb_seconds
            FROM invocations
            GROUP BY 1, 2
        ), points AS (
            SELECT function, name, ts, temporality, value,
                coalesce(value, CAST(count AS DOUBLE)) AS n,
                sum AS s,
                CASE WHEN unit = 'ms' THEN 1.0 ELSE 1000.0 END AS to_ms,
                max AS max_value,
                array_to_string(map_keys(dimensions), ',') || '=' ||
                    array_to_string(map_values(dimensions), ',') AS series
            FROM metrics
            WHERE function IS NOT NULL AND name IN ('faas.invocations', 'faas.errors',
                'faas.timeouts', 'faas.coldstarts', 'faas.invoke_duration', 'faas.init_duration',
                'faas.mem_usage')
        ), lagged AS (
            SELECT *,
                lag(n) OVER (PARTITION BY function, name, series ORDER BY ts) AS prev_n,
                lag(s) OVER (PARTITION BY function, name, series ORDER BY ts) AS prev_s
            FROM points
        ), deltas AS (
            SELECT function, name, ts, value, to_ms, max_value,
                CASE WHEN temporality = 'cumulative' AND prev_n IS NOT NULL AND n >= prev_n
                    THEN n - prev_n ELSE n END AS dn,
                CASE WHEN temporality = 'cumulative' AND prev_n IS NOT NULL AND n >= prev_n
                    THEN s - prev_s ELSE s END * to_ms AS ds_ms
            FROM lagged
        ), otel AS (
            SELECT
                date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS minute,
                function,
                CAST(sum(dn) FILTER (WHERE name = 'faas.invocations') AS BIGINT) AS invocations,
                CAST(coalesce(sum(dn) FILTER (WHERE name IN ('faas.errors', 'faas.timeouts')), 0)
                    AS BIGINT) AS errors,
                CAST(coalesce(sum(dn) FILTER (WHERE name = 'faas.timeouts'), 0) AS BIGINT)
                    AS timeouts,
                coalesce(sum(dn) FILTER (WHERE name IN ('faas.errors', 'faas.timeouts')), 0)
                    / nullif(sum(dn) FILTER (WHERE name = 'faas.invocations'), 0) AS error_rate,
                sum(ds_ms) FILTER (WHERE name = 'faas.invoke_duration')
                    / nullif(sum(dn) FILTER (WHERE name = 'faas.invoke_duration'), 0)
                    AS duration_avg_ms,
                CAST(NULL AS DOUBLE) AS duration_p50_ms,
                CAST(NULL AS DOUBLE) AS duration_p90_ms,
                CAST(NULL AS DOUBLE) AS duration_p99_ms,
                max(max_value * to_ms) FILTER (WHERE name = 'faas.invoke_duration')
                    AS duration_max_ms,
                CAST(coalesce(sum(dn) FILTER (WHERE name = 'faas.coldstarts'), 0) AS BIGINT)
                    AS cold_starts,
                sum(ds_ms) FILTER (WHERE name = 'faas.init_duration')
                    / nullif(sum(dn) FILTER (WHERE name = 'faas.init_duration'), 0)
                    AS init_duration_avg_ms,
                max(max_value * to_ms) FILTER (WHERE name = 'faas.init_duration')
                    AS init_duration_max_ms,
                CAST(max(value) FILTER (WHERE name = 'faas.mem_usage') / 1048576 AS BIGINT)
                    AS max_memory_used_mb,
                CAST(NULL AS DOUBLE) AS memory_utilization_max,
                CAST(NULL AS DOUBLE) AS gb_seconds
            FROM deltas
            GROUP BY 1, 2
            HAVING sum(dn) FILTER (WHERE name = 'faas.invocations') IS NOT NULL
        )
        SELECT * FROM inv
        UNION ALL
        SELECT * FROM otel
        WHERE function NOT IN (SELECT function FROM invocations GROUP BY function)",
    ),
    (
        "lambda_concurrency",
        // Peak concurrent executions per function and minute: a running sum of +1 at each start
        // and -1 at each end (ends first at equal times: back-to-back calls do not overlap).
        "WITH edges AS (
            SELECT function, ts AS t, 1 AS d FROM invocations
            UNION ALL
            SELECT function, end_ts AS t, -1 AS d FROM invocations
        ), running AS (
            SELECT function, t,
                sum(d) OVER (PARTITION BY function ORDER BY t, d
                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS concurrent
            FROM edges
        )
        SELECT date_bin(INTERVAL '1 minute', t, TIMESTAMP '1970-01-01T00:00:00Z') AS minute,
            function, max(concurrent) AS concurrent_executions
        FROM running
        GROUP BY 1, 2",
    ),
];
