#!/usr/bin/env bash
# The SQL benchmark: a deterministic dataset of 10M invocations (and their log lines), written
# through the store layer, queried on a running fnlens and with DuckDB over the same files.
#   bash bench/sql.sh            (INVOCATIONS=... RUNS=... to change the size and repetitions)
set -euo pipefail
cd "$(dirname "$0")/.."
INVOCATIONS=${INVOCATIONS:-10000000}
RUNS=${RUNS:-10}
PORT=${PORT:-7071}
OUT=bench/out/sql-$INVOCATIONS
python3 -c "import duckdb" 2> /dev/null || pip install --quiet duckdb
cargo build --release --quiet
BIN=target/release/fnlens
if [ ! -d "$OUT/data" ]; then
  mkdir -p "$OUT"
  "$BIN" bench sql-data --data-dir "$OUT/data" --logs-parquet "$OUT/logs.parquet" \
    --invocations "$INVOCATIONS"
fi
"$BIN" serve --data-dir "$OUT/data" --listen "127.0.0.1:$PORT" --retention off \
  > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2> /dev/null; wait $SERVER 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$PORT/healthz" > /dev/null && break
  sleep 0.2
done
# Wait for compaction and segment merges to settle, so that they do not run during the timings.
last=""
for _ in $(seq 1 60); do
  now=$(curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^fnlens_(parquet_files|log_segments)' | tr '\n' ' ')
  [ "$now" = "$last" ] && break
  last=$now
  sleep 12
done
echo "settled: $last"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
python3 bench/sql_peers.py --url "http://127.0.0.1:$PORT" --data-dir "$OUT/data" \
  --logs-parquet "$OUT/logs.parquet" --runs "$RUNS"
