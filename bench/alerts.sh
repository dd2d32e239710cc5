#!/usr/bin/env bash
# Alert benchmark: ack -> webhook latency, and ingest throughput with 100 rules against none.
#
#   bash bench/alerts.sh [seconds-of-simulated-traffic] [rate] [trials]
#
# Builds the release binary and writes the same deterministic corpus as bench/ingest.sh. Then:
# 1. starts a server and runs `fnlens bench alerts` (a local receiver; each trial tips a fresh
#    instance into ALARM), idle and while a corpus is being posted;
# 2. posts a corpus to a fresh server with no rules and to one with 100 streaming rules over
#    every function (error rate, duration percentiles, cold starts, memory, invocations, in
#    1 to 5 evaluation periods), twice each, alternating. Each of these corpora is written just
#    before it is posted, starting at that time, so the rules' windows hold its invocations
#    (they are the same bytes but for the times). Three rounds; each prints the throughput and
#    the server's CPU time (user + system) for the whole run, which is steadier than throughput
#    on a machine the load generator shares.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
rate=${2:-5000}
trials=${3:-60}
cargo build --release --quiet
bin=target/release/fnlens
out=bench/out
mkdir -p "$out"
corpus="$out/corpus-${secs}s-${rate}.ndjson"
[ -s "$corpus" ] || "$bin" simulate --out "$corpus" --duration "${secs}s" --rate "$rate" --functions 20 --seed 7 --quiet
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; corpus $(du -h "$corpus" | cut -f1)"

# 100 rules over every function, a mix of every streaming metric.
rules="$tmp/rules.toml"
metrics=(error_rate duration cold_start_rate memory_utilization invocations errors init_duration)
for i in $(seq 1 100); do
  m=${metrics[$((i % ${#metrics[@]}))]}
  stat=""
  case $m in duration|init_duration) stat="statistic = \"p$(( (i % 2) ? 99 : 90 ))\"";; esac
  case $m in
    error_rate) threshold=$(( 2 + i % 10 ));;
    duration|init_duration) threshold=$(( 100 + i * 10 ));;
    cold_start_rate) threshold=$(( 1 + i % 5 ));;
    memory_utilization) threshold=$(( 40 + i % 50 ));;
    *) threshold=$(( 20 + i * 5 ));;
  esac
  n=$(( i % 5 + 1 ))
  cat >> "$rules" <<RULE
[[rule]]
name = "rule-$i"
metric = "$m"
$stat
comparison = ">"
threshold = $threshold
window = "$(( (i % 3 + 1) * 20 ))s"
evaluation_periods = $n
datapoints_to_alarm = $(( (n + 1) / 2 ))

RULE
done

start() { # data-dir [serve args...]
  local dir=$1; shift
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir" --flush-interval-secs 5 "$@" > "$tmp/serve.out" 2> "$out/serve-alerts.err" &
  pid=$!
  for _ in $(seq 300); do grep -q listening "$tmp/serve.out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^fnlens listening on //p' "$tmp/serve.out")
  [ -n "$url" ] || { echo "the server did not start; see $out/serve-alerts.err" >&2; exit 1; }
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

echo "== ack -> webhook, idle"
start "$tmp/latency"
"$bin" bench alerts --target "$url" --trials "$trials"
echo "== ack -> webhook, while a corpus is posted (100 rules loaded)"
stop
fresh="$tmp/corpus-now.ndjson"
fresh_corpus() {
  "$bin" simulate --out "$fresh" --duration "${secs}s" --rate "$rate" --functions 20 --seed 7 --quiet \
    --start "$(date -u -d '+20 seconds' +%Y-%m-%dT%H:%M:%SZ)" > /dev/null
}
fresh_corpus
start "$tmp/latency-load" --rules "$rules"
"$bin" simulate --from "$fresh" --target "$url" --concurrency 8 --quiet > /dev/null &
load=$!
sleep 1
"$bin" bench alerts --target "$url" --trials "$trials"
wait $load || true
stop

for round in 1 2 3; do
  for mode in none 100-rules; do
    args=()
    [ "$mode" = 100-rules ] && args=(--rules "$rules")
    fresh_corpus
    start "$tmp/tp-$mode-$round" "${args[@]}"
    echo "== throughput, $mode, round $round"
    "$bin" simulate --from "$fresh" --target "$url" --concurrency 16 --quiet
    curl -s "$url/metrics" | grep -E '^fnlens_alert_(evaluations_total|evaluation_seconds_total|persist_seconds_total|instances|window_buckets)' || true
    echo "server cpu: $(awk '{printf "%.1f s", ($14 + $15) / '"$(getconf CLK_TCK)"'}' /proc/$pid/stat)"
    curl -s "$url/api/v1/alerts/history?kind=transition&limit=20000" | python3 -c 'import json,sys; print("transitions:", len(json.load(sys.stdin)["entries"]))'
    stop
    rm -f "$fresh"
  done
done
