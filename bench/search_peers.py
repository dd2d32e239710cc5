#!/usr/bin/env python3
"""Search benchmark: the same questions asked of fnlens (HTTP), ripgrep (over the flat NDJSON
lines) and SQLite FTS5 (Python's sqlite3, over the same lines), in one run.

    python3 bench/search_peers.py --url http://127.0.0.1:PORT --lines bench/out/lines.ndjson

Every answer is "the newest 100 matching lines and how many match" (or a histogram, or facet
counts). The script checks that the three systems agree on the counts before it prints times.
"""
import argparse
import collections
import heapq
import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round((len(xs) - 1) * p))]


def timed(fn, reps):
    times, answer = [], None
    for _ in range(reps):
        t = time.perf_counter()
        answer = fn()
        times.append((time.perf_counter() - t) * 1000)
    return times, answer


class Fnlens:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port)
        self.took = []  # the server's own time of each answer (took_ms)

    def get(self, path, **params):
        self.conn.request("GET", path + "?" + urllib.parse.urlencode(params))
        r = self.conn.getresponse()
        body = json.loads(r.read())
        if r.status != 200:
            raise RuntimeError(f"{path} {params}: {r.status} {body}")
        self.took.append(body["took_ms"])
        return body


def build_sqlite(db_path, lines_path):
    if os.path.exists(db_path):
        return
    tmp = db_path + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    db = sqlite3.connect(tmp)
    db.executescript(
        """
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
        CREATE TABLE lines(id INTEGER PRIMARY KEY, ts_ms INTEGER, function TEXT, version TEXT,
                           level TEXT, request_id TEXT, source TEXT, message TEXT);
        CREATE VIRTUAL TABLE fts USING fts5(message, content='lines', content_rowid='id');
        """
    )
    t = time.time()
    with open(lines_path) as f:
        rows = (
            (r["ts_ms"], r["function"], r["version"], r["level"], r["request_id"], r["source"], r["message"])
            for r in map(json.loads, f)
        )
        db.executemany(
            "INSERT INTO lines(ts_ms, function, version, level, request_id, source, message) VALUES (?,?,?,?,?,?,?)",
            rows,
        )
    db.execute("INSERT INTO fts(fts) VALUES ('rebuild')")
    db.execute("CREATE INDEX lines_ts ON lines(ts_ms)")
    db.execute("CREATE INDEX lines_fn_level_ts ON lines(function, level, ts_ms)")
    db.commit()
    db.close()
    os.rename(tmp, db_path)
    print(f"sqlite: built {db_path} in {time.time() - t:.0f} s", file=sys.stderr)


def rg_newest(args, lines_path):
    """Runs ripgrep, keeps the newest 100 matching lines and counts them all."""
    p = subprocess.Popen(["rg", "--no-filename", *args, lines_path], stdout=subprocess.PIPE)
    newest, n = [], 0
    for line in p.stdout:
        n += 1
        ts = int(line[9:line.index(b",")])  # {"ts_ms":<ts>,...
        if len(newest) < 100:
            heapq.heappush(newest, ts)
        elif ts > newest[0]:
            heapq.heapreplace(newest, ts)
    p.wait()
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--lines", required=True)
    ap.add_argument("--sqlite", default=None)
    ap.add_argument("--reps", type=int, default=100, help="fnlens repetitions")
    ap.add_argument("--peer-reps", type=int, default=5, help="ripgrep and SQLite repetitions")
    ap.add_argument("--function", default="payments-webhook")
    args = ap.parse_args()
    lines = args.lines
    db_path = args.sqlite or lines + ".sqlite"
    build_sqlite(db_path, lines)
    db = sqlite3.connect(db_path)
    fn = Fnlens(args.url)

    lo, hi = db.execute("SELECT min(ts_ms), max(ts_ms) FROM lines").fetchone()
    n_lines = db.execute("SELECT count(*) FROM lines").fetchone()[0]
    rng = {"start": lo, "end": hi + 1}
    interval = fn.get("/api/v1/logs/histogram", q="*", **rng)["interval_ms"]

    def fts_newest(match):
        def run():
            rows = db.execute(
                "SELECT l.* FROM fts JOIN lines l ON l.id = fts.rowid WHERE fts MATCH ? ORDER BY l.ts_ms DESC LIMIT 100",
                (match,),
            ).fetchall()
            n = db.execute("SELECT count(*) FROM fts WHERE fts MATCH ?", (match,)).fetchone()[0]
            return n
        return run

    def fn_search(q):
        return lambda: fn.get("/api/v1/logs/search", q=q, limit=100, **rng)["total"]

    rare, common = "zanzibar", "processing"
    phrase = "upstream timeout after 3 retries"
    f = args.function
    questions = [
        (
            f"rare term ({rare}), newest 100",
            fn_search(rare),
            lambda: rg_newest(["-i", "-w", rare], lines),
            fts_newest(rare),
        ),
        (
            f"common term ({common}), newest 100",
            fn_search(common),
            lambda: rg_newest(["-i", "-w", common], lines),
            fts_newest(common),
        ),
        (
            f"level:ERROR AND function:{f}, newest 100",
            fn_search(f"level:ERROR AND function:{f}"),
            lambda: rg_newest([f'"function":"{f}","version":"[^"]*","level":"ERROR"'], lines),
            lambda: (
                db.execute(
                    "SELECT * FROM lines WHERE function = ? AND level = 'ERROR' ORDER BY ts_ms DESC LIMIT 100", (f,)
                ).fetchall(),
                db.execute("SELECT count(*) FROM lines WHERE function = ? AND level = 'ERROR'", (f,)).fetchone()[0],
            )[1],
        ),
        (
            f'phrase "{phrase}", newest 100',
            fn_search(f'"{phrase}"'),
            lambda: rg_newest(["-i", "-F", phrase], lines),
            fts_newest(f'"{phrase}"'),
        ),
        (
            "histogram of all lines, full range",
            lambda: sum(b["count"] for b in fn.get("/api/v1/logs/histogram", q="*", interval=interval, **rng)["buckets"]),
            lambda: rg_histogram(lines, lo, interval),
            lambda: sum(
                c
                for _, c in db.execute(
                    "SELECT (ts_ms - ?) / ? AS b, count(*) FROM lines GROUP BY b", (lo - lo % interval, interval)
                )
            ),
        ),
        (
            "facets (function, level, version) of all lines",
            lambda: fn.get("/api/v1/logs/facets", q="*", **rng)["total"],
            lambda: rg_facets(lines),
            lambda: sq_facets(db, ""),
        ),
        (
            "facets of level:ERROR",
            lambda: fn.get("/api/v1/logs/facets", q="level:ERROR", **rng)["total"],
            lambda: rg_facets(lines, "ERROR"),
            lambda: sq_facets(db, "WHERE level = 'ERROR'"),
        ),
    ]

    print(f"lines: {n_lines:,} ({os.path.getsize(lines) / 1e9:.2f} GB of NDJSON); histogram interval {interval} ms")
    print(f"machine: {os.cpu_count()} cores; fnlens over HTTP (client-side wall time), {args.reps} runs; "
          f"ripgrep and SQLite FTS5 {args.peer_reps} runs each (after one warm-up)")
    print()
    print("fnlens: client-side wall time over HTTP (request, JSON of 100 hits, parse in Python); in")
    print("brackets the server's own took_ms. SQLite runs in this process, so it pays no HTTP or JSON.")
    print()
    header = "| question | matches | fnlens p50 / p99 ms [server p50] | ripgrep p50 / p99 ms | SQLite FTS5 p50 / p99 ms | vs ripgrep (p50) | vs SQLite (p50) |"
    print(header)
    print("|" + "---|" * 7)
    for name, fnl, rg, sq in questions:
        fnl()  # warm-up
        rg()
        sq()
        fn.took.clear()
        t_fn, a_fn = timed(fnl, args.reps)
        server = statistics.median(fn.took)
        t_rg, a_rg = timed(rg, args.peer_reps)
        t_sq, a_sq = timed(sq, args.peer_reps)
        agree = "" if a_fn == a_rg == a_sq else f" (DISAGREE: fnlens {a_fn}, rg {a_rg}, sqlite {a_sq})"
        p50 = statistics.median
        print(
            f"| {name} | {a_fn:,}{agree} | {p50(t_fn):.1f} / {pct(t_fn, 0.99):.1f} [{server:.2f}] | "
            f"{p50(t_rg):.0f} / {pct(t_rg, 0.99):.0f} | {p50(t_sq):.1f} / {pct(t_sq, 0.99):.1f} | "
            f"{p50(t_rg) / p50(t_fn):.0f}x | {p50(t_sq) / p50(t_fn):.1f}x |",
            flush=True,
        )


def sq_facets(db, where):
    """The value counts of function, level and version; returns how many lines were counted."""
    counts = [
        db.execute(f"SELECT {col}, count(*) FROM lines {where} GROUP BY 1 ORDER BY 2 DESC").fetchall()
        for col in ("function", "level", "version")
    ]
    return sum(c for _, c in counts[0])


def rg_histogram(lines, lo, interval):
    p = subprocess.Popen(["rg", "-o", "--no-filename", r'^\{"ts_ms":(\d+)', "-r", "$1", lines], stdout=subprocess.PIPE)
    counts = collections.Counter(int(x) // interval for x in p.stdout)
    p.wait()
    return sum(counts.values())


def rg_facets(lines, level=None):
    level_re = level if level else '[^"]*'
    p = subprocess.Popen(
        ["rg", "-o", "--no-filename", r'"function":"[^"]*","version":"[^"]*","level":"' + level_re + '"', lines],
        stdout=subprocess.PIPE,
    )
    counts = [collections.Counter(), collections.Counter(), collections.Counter()]
    for line in p.stdout:
        parts = line.split(b'"')
        counts[0][parts[3]] += 1
        counts[1][parts[11]] += 1
        counts[2][parts[7]] += 1
    p.wait()
    return sum(counts[0].values())


if __name__ == "__main__":
    main()
