#!/usr/bin/env python3
"""The SQL benchmark's suite: each typical query on a running fnlens (HTTP, POST /api/v1/sql) and
on DuckDB over the same Parquet files (the log lines from the Parquet copy that
`fnlens bench sql-data` writes beside the data directory). Prints p50/p99 per system, the
ratio fnlens/DuckDB, and checks that both agree on the answer's groups and counts."""
import argparse
import glob
import json
import statistics
import time
import urllib.request

import duckdb

H1 = ("2026-01-02T23:00:00Z", "2026-01-03 00:00:00+00", "2026-01-02 23:00:00+00")
QUERIES = [
    (
        "p99 by function per minute, 1 h",
        """SELECT date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS minute, function,
             approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99
           FROM invocations WHERE ts >= TIMESTAMP '2026-01-02T23:00:00Z' AND ts < TIMESTAMP '2026-01-03T00:00:00Z'
           GROUP BY 1, 2 ORDER BY 1, 2""",
        """SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, function,
             approx_quantile(duration_ms, 0.99) AS p99
           FROM inv WHERE ts >= TIMESTAMPTZ '2026-01-02 23:00:00+00' AND ts < TIMESTAMPTZ '2026-01-03 00:00:00+00'
           GROUP BY 1, 2 ORDER BY 1, 2""",
    ),
    (
        "p99 by function per minute, 24 h",
        """SELECT date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS minute, function,
             approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99
           FROM invocations WHERE ts >= TIMESTAMP '2026-01-02T00:00:00Z' AND ts < TIMESTAMP '2026-01-03T00:00:00Z'
           GROUP BY 1, 2 ORDER BY 1, 2""",
        """SELECT time_bucket(INTERVAL '1 minute', ts) AS minute, function,
             approx_quantile(duration_ms, 0.99) AS p99
           FROM inv WHERE ts >= TIMESTAMPTZ '2026-01-02 00:00:00+00' AND ts < TIMESTAMPTZ '2026-01-03 00:00:00+00'
           GROUP BY 1, 2 ORDER BY 1, 2""",
    ),
    (
        "error rate by version",
        """SELECT function, version, count(*) AS n, error_rate(status) AS error_rate
           FROM invocations GROUP BY 1, 2 ORDER BY 1, 2""",
        """SELECT function, version, count(*) AS n,
             avg(CASE WHEN status <> 'success' THEN 1.0 ELSE 0.0 END) AS error_rate
           FROM inv GROUP BY 1, 2 ORDER BY 1, 2""",
    ),
    (
        "cold-start share by memory size",
        """SELECT memory_size_mb, count(*) AS n, avg(CASE WHEN cold_start THEN 1.0 ELSE 0.0 END) AS cold_share,
             avg(init_duration_ms) AS init_avg_ms
           FROM invocations GROUP BY 1 ORDER BY 1""",
        """SELECT memory_size_mb, count(*) AS n, avg(CASE WHEN cold_start THEN 1.0 ELSE 0.0 END) AS cold_share,
             avg(init_duration_ms) AS init_avg_ms
           FROM inv GROUP BY 1 ORDER BY 1""",
    ),
    (
        "top functions by GB-seconds",
        """SELECT function, count(*) AS n, sum(gb_seconds(billed_duration_ms, memory_size_mb)) AS gb_seconds
           FROM invocations GROUP BY 1 ORDER BY 3 DESC LIMIT 10""",
        """SELECT function, count(*) AS n, sum(billed_duration_ms / 1000.0 * memory_size_mb / 1024.0) AS gb_seconds
           FROM inv GROUP BY 1 ORDER BY 3 DESC LIMIT 10""",
    ),
    (
        "ERROR logs per function per hour (logs)",
        """SELECT date_trunc('hour', ts) AS hour, function, count(*) AS n
           FROM logs WHERE level = 'ERROR' GROUP BY 1, 2 ORDER BY 1, 2""",
        """SELECT date_trunc('hour', ts) AS hour, function, count(*) AS n
           FROM logs WHERE level = 'ERROR' GROUP BY 1, 2 ORDER BY 1, 2""",
    ),
]


def fnlens(url, sql):
    body = json.dumps({"sql": sql, "format": "json"}).encode()
    req = urllib.request.Request(url + "/api/v1/sql", data=body, headers={"content-type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        answer = json.load(resp)
    return (time.perf_counter() - t) * 1000, answer["took_ms"], answer["rows"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:7071")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--logs-parquet", required=True)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    files = sorted(glob.glob(f"{args.data_dir}/invocations/*/*.parquet"))
    con.execute(f"CREATE VIEW inv AS SELECT * FROM read_parquet({files!r})")
    con.execute(f"CREATE VIEW logs AS SELECT * FROM read_parquet('{args.logs_parquet}')")
    n = con.execute("SELECT count(*) FROM inv").fetchone()[0]
    nl = con.execute("SELECT count(*) FROM logs").fetchone()[0]
    print(f"dataset: {n:,} invocations in {len(files)} Parquet files, {nl:,} log lines")
    _, _, rows = fnlens(args.url, "SELECT count(*) AS n FROM invocations")
    assert rows[0]["n"] == n, f"fnlens counts {rows[0]['n']} invocations, DuckDB {n}"

    results = []
    for name, ours, theirs in QUERIES:
        for _ in range(2):  # warm both caches
            fnlens(args.url, ours)
            con.execute(theirs).fetchall()
        wall, server, duck = [], [], []
        for _ in range(args.runs):
            w, s, rows = fnlens(args.url, ours)
            wall.append(w)
            server.append(s)
            t = time.perf_counter()
            peer = con.execute(theirs).fetchall()
            duck.append((time.perf_counter() - t) * 1000)
        # Same groups and counts (approximate percentiles may differ in their values).
        assert len(rows) == len(peer), f"{name}: fnlens {len(rows)} rows, DuckDB {len(peer)}"
        if "n" in rows[0]:
            ours_n = sorted(r["n"] for r in rows)
            theirs_n = sorted(p[[d[0] for d in con.description].index("n")] for p in peer)
            assert ours_n == theirs_n, f"{name}: the counts differ"
        results.append((name, pct(wall, 50), pct(wall, 99), pct(server, 50), pct(duck, 50), pct(duck, 99), len(rows)))

    print(f"{'query':42} {'fnlens p50/p99 ms [server]':>30} {'DuckDB p50/p99 ms':>20} {'fnlens/DuckDB':>14} rows")
    for name, w50, w99, s50, d50, d99, nrows in results:
        print(f"{name:42} {w50:>12.1f}/{w99:<7.1f} [{s50:7.1f}] {d50:>11.1f}/{d99:<8.1f} {w50 / d50:>13.2f}x {nrows}")
    med = statistics.median(r[1] for r in results)
    print(f"median fnlens query: {med:.1f} ms; worst ratio {max(r[1] / r[4] for r in results):.2f}x")


if __name__ == "__main__":
    main()
