#!/usr/bin/env bash
# The simulator's maximum non-streamed request rate on one core: the simulator pinned to core
# 0 with one worker thread, the load harness pinned to core 1, closed loop, zero latency.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${BENCH_DURATION:-10s}"
cargo build --release --locked --quiet -p plumb-simulator -p plumb-loadgen
out=$(mktemp)
taskset -c 0 target/release/plumb-simulator --listen 127.0.0.1:0 --workers 1 >"$out" 2>/dev/null &
sim=$!
trap 'kill $sim 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
url=$(awk '{print $4}' "$out")
body='{"model":"sim-gpt","messages":[{"role":"user","content":"what is six times seven"}]}'
for c in 16 64; do
  echo "== simulator on 1 core, $c connections, $duration"
  taskset -c 1 target/release/plumb-loadgen --url "$url/v1/chat/completions" --body "$body" \
    -H 'content-type: application/json' --connections "$c" --duration "$duration" --threads 1
done
