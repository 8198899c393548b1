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
# is most of it), per whole answer and per whole answer to a conversation of ~18 KB (the size
# of request a chat application sends after a few turns; the proxy's work per request grows
# with it), and the sidecar's over the floor's; with KEEP=1, the
# callgrind profiles stay in the directory it names (`callgrind_annotate --inclusive=yes`).
#
# And the same requests' cache misses, from callgrind's cache simulation (not this machine's
# caches, which a VM does not count), with the sizes of this project's build machines' cores
# (AMD EPYC, `lscpu`: L1i 64 KiB, L1d 32 KiB, L2 512 KiB): lines of code fetched from beyond
# the L1 instruction cache, and lines of code and data missing from the L2. They say how much memory a request runs through, its working set:
# when the proxy shares its cores with the client and the upstream (the shared layout), what
# it touched is evicted between its turns, and it pays each of those lines again, so its time
# per request follows its working set more than its instruction count.
# SIDECAR=path measures another sidecar binary (a build to compare) instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
n=${INSTRUCTIONS_REQUESTS:-20}
command -v valgrind >/dev/null || { echo "bench-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 69; }
command -v callgrind_control >/dev/null || { echo "bench-instructions: needs callgrind_control (valgrind)" >&2; exit 69; }
# The sidecar as shipped (see `make bench`): alone, optimised by a profile of its serving.
sidecar=${SIDECAR:-}
if [ -z "$sidecar" ]; then
  scripts/pgo.sh --build
  sidecar=$target/pgo/release/plumb-sidecar
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
  RUST_LOG=error "${pin[@]}" valgrind --tool=callgrind --cache-sim=yes --I1=65536,4,64 \
    --D1=32768,8,64 --LL=524288,8,64 --callgrind-out-file="$work/$name.cg" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  proxy=$!
  for _ in $(seq 600); do grep -q "listening on" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o 'listening on http://[^ ]*' "$work/$name.out" | head -1 | cut -d' ' -f3)
  [ -n "$url" ] || { echo "bench-instructions: $name did not start:" >&2; cat "$work/$name.err" >&2; exit 1; }
}
# msgs (a short question) and long (a conversation of ~18 KB).
source scripts/conversation.sh
ask() { # model, kind (whole, stream or conversation): one request, which must succeed
  local body="{\"model\":\"$1\",$msgs}"
  [ "$2" = stream ] && body="{\"model\":\"$1\",\"stream\":true,\"max_tokens\":1,$msgs}"
  [ "$2" = conversation ] && body="{\"model\":\"$1\",$long}"
  curl -sf -o /dev/null -m 60 "$url/v1/chat/completions" -H 'content-type: application/json' -d "$body" \
    || { echo "bench-instructions: a request to $url failed" >&2; exit 1; }
}
# Counted since the last zeroing, dumped now: instructions, L1 instruction-cache misses and
# L2 misses (code and data), per request of the `n` sent.
counted() {
  callgrind_control -d "$proxy" >/dev/null
  sleep 0.5
  local last
  last=$(ls -t "$work/$1.cg".* | head -1)
  # events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
  awk -v n="$n" '/^summary:/ { printf "%d %d %d", $2 / n, $5 / n, ($8 + $9 + $10) / n }' "$last"
}
# Per request of one kind through a proxy, after warm-up requests.
per() { # name model kind
  for _ in 1 2 3 4 5; do ask "$2" "$3"; done
  callgrind_control -z "$proxy" >/dev/null
  for _ in $(seq "$n"); do ask "$2" "$3"; sleep 0.05; done
  counted "$1"
}
measure() { # name model stream-model: sets whole, stream, conversation ("instructions l1 l2" each)
  whole=$(per "$1" "$2" whole)
  stream=$(per "$1" "$3" stream)
  conversation=$(per "$1" "$2" conversation)
  kill -TERM "$proxy"
  wait "$proxy" 2>/dev/null || true
}
start floor "$target/release/plumb-floor" --listen 127.0.0.1:0 --upstream "$sim"
measure floor sim-gpt sim-stream
floor_stream=$stream floor_whole=$whole floor_conversation=$conversation
start sidecar "$sidecar" --routes "$work/routes.yaml" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
measure sidecar bench bench-stream
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
row() { # label, field (1 instructions, 2 L1i misses, 3 L2 misses), floor's, sidecar's
  local f s
  f=$(echo "$3" | cut -d' ' -f"$2")
  s=$(echo "$4" | cut -d' ' -f"$2")
  printf '  %-46s %10d %10d %6sx\n' "$1" "$f" "$s" "$(ratio "$s" "$f")"
}
echo "Per request, $n requests one at a time after 5 to warm up (callgrind; the caches simulated):"
printf '  %-46s %10s %10s %7s\n' "" floor sidecar ratio
row "instructions, stream of one token (first byte)" 1 "$floor_stream" "$stream"
row "instructions, whole answer" 1 "$floor_whole" "$whole"
row "instructions, whole answer to a conversation" 1 "$floor_conversation" "$conversation"
row "L1 instruction-cache misses, stream" 2 "$floor_stream" "$stream"
row "L1 instruction-cache misses, whole answer" 2 "$floor_whole" "$whole"
row "L1 instruction-cache misses, conversation" 2 "$floor_conversation" "$conversation"
row "L2 misses (code and data), stream" 3 "$floor_stream" "$stream"
row "L2 misses, whole answer" 3 "$floor_whole" "$whole"
row "L2 misses, conversation" 3 "$floor_conversation" "$conversation"
