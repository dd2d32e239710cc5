#!/usr/bin/env bash
# Search benchmark: fnlens against ripgrep and SQLite FTS5 on the same >= 5M log lines.
#
#   bash bench/search.sh [simulated-seconds] [invocations-per-second]
#
# Builds the release binary; writes a deterministic corpus with `fnlens simulate --out` (starting
# 2025-12-31T23:00Z, so it spans two daily partitions); decodes it into one JSON line per log
# record (`fnlens bench flatten`) for the peers; ingests the corpus into a fresh server; then
# bench/search_peers.py asks the same questions of the three and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-7200}
rate=${2:-220}
bash bench/setup.sh > /dev/null
cargo build --release --quiet
bin=target/release/fnlens
out=bench/out
mkdir -p "$out"
corpus="$out/search-corpus-${secs}s-${rate}.ndjson"
lines="$out/search-lines-${secs}s-${rate}.ndjson"
[ -s "$corpus" ] || "$bin" simulate --out "$corpus" --duration "${secs}s" --rate "$rate" --functions 20 --seed 11 --start 2025-12-31T23:00:00Z --quiet
[ -s "$lines" ] || "$bin" bench flatten --from "$corpus" --out "$lines"
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data/dir" --retention off > "$data/serve.out" 2> "$out/search-serve.err" &
pid=$!
for _ in $(seq 300); do grep -q listening "$data/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^fnlens listening on //p' "$data/serve.out")
[ -n "$url" ] || { echo "the server did not start; see $out/search-serve.err" >&2; exit 1; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
echo "== ingest"
"$bin" simulate --from "$corpus" --target "$url" --concurrency 16 --quiet
# Let the merges that follow a burst of ingest finish: wait until the segment count holds for 20 s.
prev=""; stable=0
for _ in $(seq 120); do
  cur=$(curl -s "$url/metrics" | sed -n 's/^fnlens_log_segments //p')
  if [ "$cur" = "$prev" ]; then stable=$((stable + 1)); else stable=0; prev=$cur; fi
  [ $stable -ge 4 ] && break
  sleep 5
done
curl -s "$url/metrics" | grep -E '^fnlens_(log_segments|partitions|process_peak_resident_memory_bytes) '
echo "== search"
python3 bench/search_peers.py --url "$url" --lines "$lines"
curl -s "$url/metrics" | grep -E '^fnlens_(log_segments|process_peak_resident_memory_bytes) '
