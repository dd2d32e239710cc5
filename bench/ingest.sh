#!/usr/bin/env bash
# Ingest benchmark: throughput through HTTP with fsync on, and ack -> searchable / SQL latency.
#
#   bash bench/ingest.sh [seconds-of-simulated-traffic] [rate]
#   TAIL_CLIENTS=100 bash bench/ingest.sh 60 5000     # the same with 100 live-tail streams open
#
# Builds the release binary, writes a deterministic corpus with `fnlens simulate --out`, starts a
# server on a temp data dir, posts the corpus as fast as the server acknowledges it, and reads the
# server's own /metrics. Then measures visibility latency, idle and under load.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
rate=${2:-5000}
cargo build --release --quiet
bin=target/release/fnlens
out=bench/out
mkdir -p "$out"
corpus="$out/corpus-${secs}s-${rate}.ndjson"
[ -s "$corpus" ] || "$bin" simulate --out "$corpus" --duration "${secs}s" --rate "$rate" --functions 20 --seed 7 --quiet
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
# Flush Parquet every 5 s so the run writes both stores, not only the Arrow buffer.
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data/dir" --flush-interval-secs 5 > "$data/serve.out" 2> "$out/serve.err" &
pid=$!
for _ in $(seq 300); do grep -q listening "$data/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^fnlens listening on //p' "$data/serve.out")
[ -n "$url" ] || { echo "the server did not start; see $out/serve.err" >&2; exit 1; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; corpus $(du -h "$corpus" | cut -f1) ($corpus)"

tails=()
queries=("level:ERROR" "timeout" "function:checkout" "declined OR refused" "*")
for i in $(seq 1 "${TAIL_CLIENTS:-0}"); do
  q=${queries[$((i % ${#queries[@]}))]}
  curl -sN --get "$url/api/v1/logs/tail" --data-urlencode "q=$q" > /dev/null &
  tails+=($!)
done
[ ${#tails[@]} -gt 0 ] && sleep 1 && curl -s "$url/metrics" | grep '^fnlens_tail_clients '
echo "== throughput (16 requests in flight)"
"$bin" simulate --from "$corpus" --target "$url" --concurrency 16 --quiet
curl -s "$url/metrics" | grep -E '^fnlens_(process_peak_resident_memory_bytes|wal_fsyncs_total|ingest_batches_total|log_commits_total|parquet_flushes_total) ' \
  | awk '{ if ($1 ~ /memory/) printf "%s %.0f MiB\n", $1, $2/1048576; else print }'

echo "== visibility, idle"
"$bin" bench latency --target "$url" --trials 100
echo "== visibility, under load"
"$bin" simulate --from "$corpus" --target "$url" --concurrency 8 --quiet > /dev/null &
load=$!
sleep 1
"$bin" bench latency --target "$url" --trials 100
wait $load || true
[ ${#tails[@]} -gt 0 ] && curl -s "$url/metrics" | grep -E '^fnlens_tail_(clients|lines_sent_total|lines_dropped_total|batches_missed_total) '
for t in "${tails[@]}"; do kill "$t" 2>/dev/null || true; done
