#!/usr/bin/env bash
# The UI benchmark: the size of the embedded assets, and the time to a meaningful paint of the
# logs page (result lines and histogram) with about a million log lines stored.
#   bash bench/ui.sh            (INVOCATIONS=... RUNS=... to change the size and repetitions)
set -euo pipefail
cd "$(dirname "$0")/.."
INVOCATIONS=${INVOCATIONS:-2000000}
RUNS=${RUNS:-10}
PORT=${PORT:-7074}
OUT=bench/out/ui-$INVOCATIONS
bash scripts/setup-browser-tests.sh
cargo build --release --quiet
BIN=target/release/fnlens

echo "== embedded assets (web/ui)"
total=0
gz=0
while IFS= read -r f; do
  n=$(wc -c < "$f")
  z=$(gzip -9c "$f" | wc -c)
  total=$((total + n))
  gz=$((gz + z))
  printf '  %-22s %7d bytes (%6d gzipped)\n' "${f#web/ui/}" "$n" "$z"
done < <(find web/ui -type f | sort)
echo "  total: $total bytes uncompressed, $gz gzipped (target: under 300 KB uncompressed)"

if [ ! -d "$OUT/data" ]; then
  mkdir -p "$OUT"
  # Two invocations per log line, plus an ERROR line per failure: about 1M lines over 48 h.
  "$BIN" bench sql-data --data-dir "$OUT/data" --logs-parquet "$OUT/logs.parquet" \
    --invocations "$INVOCATIONS" --invocations-per-log 2
fi
"$BIN" serve --data-dir "$OUT/data" --listen "127.0.0.1:$PORT" --retention off \
  > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2> /dev/null; wait $SERVER 2> /dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$PORT/healthz" > /dev/null && break
  sleep 0.2
done
sleep 5 # let start-up merges settle
echo "== logs page, $(curl -fs "http://127.0.0.1:$PORT/api/v1/logs/search?start=0&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])') lines stored"
# The dataset spans 2026-01-01T00:00Z..2026-01-03T00:00Z.
RANGE="start=2026-01-01T00:00:00Z&end=2026-01-03T00:00:00Z"
node bench/ui-paint.mjs "http://127.0.0.1:$PORT" "#/logs?$RANGE" "$RUNS"
node bench/ui-paint.mjs "http://127.0.0.1:$PORT" "#/logs?q=level:ERROR&$RANGE" "$RUNS"
node bench/ui-paint.mjs "http://127.0.0.1:$PORT" "#/logs?q=upstream&$RANGE" "$RUNS"
