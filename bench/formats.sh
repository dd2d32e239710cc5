#!/usr/bin/env bash
# Ingest throughput per wire format through HTTP (fsync on): the simulated fleet's traffic sent as
# Telemetry API batches (the reference), OTLP/HTTP protobuf, OTLP/HTTP JSON and CloudWatch text.
#
#   bash bench/formats.sh [seconds-of-simulated-traffic] [invocations-per-second]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
rate=${2:-2000}
cargo build --release --quiet
bin=target/release/fnlens
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data/dir" > "$data/serve.out" 2> "$data/serve.err" &
pid=$!
for _ in $(seq 300); do grep -q listening "$data/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^fnlens listening on //p' "$data/serve.out")
[ -n "$url" ] || { cat "$data/serve.err" >&2; exit 1; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $secs s of traffic at $rate invocations/s per format"
"$bin" bench formats --target "$url" --seconds "$secs" --rate "$rate"
curl -s "$url/metrics" | grep -E '^fnlens_(process_peak_resident_memory_bytes|wal_fsyncs_total) '
