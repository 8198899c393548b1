#!/usr/bin/env bash
# The instructions each proxy runs per request, counted by callgrind: the floor (a bare hyper
# reverse proxy) and the release sidecar with the benchmark's default route, one request at a
# time, each proxy on one CPU as `make bench` pins it.
#
# Why: a stream's first byte is served by cold code (the proxy's core idles between streams), so
# its time on a core follows how much code it runs; timing it on this machine moves by tens of
# microseconds from run to run, while an instruction count does not move at all. This is the
# figure to compare two builds by; `make bench` says what the instructions cost in time.
#
# Prints, per proxy: instructions per short stream (one token, so the path to the first byte
# is most of it) and per whole answer, and the sidecar's over the floor's; with KEEP=1, the
# callgrind profiles stay in the directory it names (`callgrind_annotate --inclusive=yes`).
# SIDECAR=path measures another sidecar binary (a build to compare) instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
n=${INSTRUCTIONS_REQUESTS:-20}
command -v valgrind >/dev/null || { echo "bench-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 69; }
command -v callgrind_control >/dev/null || { echo "bench-instructions: needs callgrind_control (valgrind)" >&2; exit 69; }
# The sidecar alone, as shipped (see `make bench`).
sidecar=${SIDECAR:-}
if [ -z "$sidecar" ]; then
  cargo build --release --locked --quiet -p plumb-sidecar --bin plumb-sidecar
  sidecar=$target/release/plumb-sidecar
fi
cargo build --release --locked --quiet -p plumb-simulator -p plumb-loadgen
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "profiles in $work" || rm -rf "$work"' EXIT
# One CPU for the proxy, as the pinned layout gives it (and so one worker thread).
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)

cat >"$work/sim.yaml" <<'YAML'
models:
  sim-gpt: {}
  sim-gpt-fallback: {}
  sim-stream: {token_rate: 200}
  sim-stream-fallback: {token_rate: 200}
YAML
"$target/release/plumb-simulator" --listen 127.0.0.1:0 --workers 1 --config "$work/sim.yaml" \
  --addr-file "$work/sim" >/dev/null 2>&1 &
for _ in $(seq 100); do [ -s "$work/sim" ] && break; sleep 0.1; done
sim=$(cat "$work/sim")
# The benchmark's routes (crates/loadgen/src/bin/bench/main.rs): a primary and a fallback, every
# default on, no contract.
for r in "bench sim-gpt" "bench-stream sim-stream"; do
  set -- $r
  cat <<YAML
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: $1}
spec:
  match: {models: [$1]}
  targets:
    - {name: primary, provider: openai, baseUrl: '$sim/v1', model: $2, credentials: {none: true}}
    - {name: fallback, provider: openai, baseUrl: '$sim/v1', model: $2-fallback, credentials: {none: true}, priority: 1}
---
YAML
done >"$work/routes.yaml"

# Runs a proxy under callgrind; its URL in $url, its pid in $proxy.
start() {
  local name=$1
  shift
  RUST_LOG=error "${pin[@]}" valgrind --tool=callgrind --callgrind-out-file="$work/$name.cg" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  proxy=$!
  for _ in $(seq 600); do grep -q "listening on" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o 'listening on http://[^ ]*' "$work/$name.out" | head -1 | cut -d' ' -f3)
  [ -n "$url" ] || { echo "bench-instructions: $name did not start:" >&2; cat "$work/$name.err" >&2; exit 1; }
}
msgs='"messages":[{"role":"user","content":"what is six times seven"}]'
ask() { # model, stream: one request, which must succeed
  local body="{\"model\":\"$1\",$msgs}"
  [ "$2" = stream ] && body="{\"model\":\"$1\",\"stream\":true,\"max_tokens\":1,$msgs}"
  curl -sf -o /dev/null -m 60 "$url/v1/chat/completions" -H 'content-type: application/json' -d "$body" \
    || { echo "bench-instructions: a request to $url failed" >&2; exit 1; }
}
# Instructions counted since the last zeroing, dumped now.
counted() {
  callgrind_control -d "$proxy" >/dev/null
  sleep 0.5
  local last
  last=$(ls -t "$work/$1.cg".* | head -1)
  awk '/^summary:/ {print $2}' "$last"
}
# Instructions per request of one kind through a proxy, after warm-up requests.
per() { # name model kind
  for _ in 1 2 3 4 5; do ask "$2" "$3"; done
  callgrind_control -z "$proxy" >/dev/null
  for _ in $(seq "$n"); do ask "$2" "$3"; sleep 0.05; done
  echo $(($(counted "$1") / n))
}
measure() { # name model stream-model: sets whole and stream
  whole=$(per "$1" "$2" whole)
  stream=$(per "$1" "$3" stream)
  kill -TERM "$proxy"
  wait "$proxy" 2>/dev/null || true
}
start floor "$target/release/plumb-floor" --listen 127.0.0.1:0 --upstream "$sim"
measure floor sim-gpt sim-stream
floor_stream=$stream floor_whole=$whole
start sidecar "$sidecar" --routes "$work/routes.yaml" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
measure sidecar bench bench-stream
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "Instructions per request, $n requests one at a time after 5 to warm up (callgrind):"
printf '  %-38s %10s %10s %7s\n' "" floor sidecar ratio
printf '  %-38s %10d %10d %6sx\n' "stream of one token (to its first byte)" "$floor_stream" "$stream" "$(ratio "$stream" "$floor_stream")"
printf '  %-38s %10d %10d %6sx\n' "whole answer" "$floor_whole" "$whole" "$(ratio "$whole" "$floor_whole")"
