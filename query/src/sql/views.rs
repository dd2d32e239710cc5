//! Views every session has: the per-function metrics a Lambda user knows from CloudWatch.

/// `(name, SQL)` of each view.
pub const VIEWS: &[(&str, &str)] = &[
    (
        "lambda_metrics",
        // One row per function and minute. Filter on `minute`; for a whole range per function,
        // run the same aggregates on `invocations` with a `ts` filter (see the README).
        "SELECT
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
        GROUP BY 1, 2",
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
