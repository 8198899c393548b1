#!/usr/bin/env bash
# Builds the release sidecar optimised by a profile of its own serving (PGO): the compiler then
# knows which branches and calls a request takes, lays each function's hot path out straight and
# its cold paths away, and inlines where calls are hot. A request's path runs through hyper,
# tokio, serde and the sidecar's own code; the profile covers all of it.
#
# Why: a stream's first byte is served by code the core has not run lately (it idles between
# requests), so its time follows how many distinct lines of code and data a request touches more
# than how many instructions it runs (BENCHMARKS.md, "Instructions per request"). A profile-laid
# binary touches fewer.
#
# How:
#   1. an instrumented sidecar is built (`-Cprofile-generate`, its own target directory);
#   2. it serves a mix of what real traffic asks, in front of the simulator: OpenAI and
#      Anthropic clients, whole and streamed, failovers after a server error and a rate limit,
#      a contract, embeddings, the Responses API, unknown models, conversations of ~18 KB,
#      and a closed loop of whole answers and streams on 16 connections; then it drains and
#      exits, writing its counts;
#   3. the counts are merged (`llvm-profdata`, from rustup's `llvm-tools`, whose LLVM is
#      rustc's) into $target/pgo/sidecar.profdata;
#   4. with `--build`, the release sidecar is built with it (`-Cprofile-use`) into
#      $target/pgo/release/plumb-sidecar.
#
# The sidecar's Dockerfile builds this way (`--build-arg PGO=0` skips it), and `make bench`,
# `make bench-instructions` and `make symbol-order` measure and lay out this binary.
# `PGO_ROUNDS` sets how many times the mix is sent (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
target=$(realpath -m "$target")
rounds=${PGO_ROUNDS:-20}
out=$target/pgo
host=$(rustc -vV | awk '/^host:/ { print $2 }')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$profdata" ]; then
  rustup component add llvm-tools >/dev/null 2>&1 || true
fi
[ -x "$profdata" ] || { echo "pgo: needs llvm-profdata from rustc's LLVM: rustup component add llvm-tools" >&2; exit 69; }
command -v curl >/dev/null || { echo "pgo: needs curl" >&2; exit 69; }
# traffic_routes, traffic_round and traffic_post: the mix this profile and the code layout's see.
source scripts/traffic.sh
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# Serves the mix with the instrumented binary and merges what it counted.
train() {
  cargo build --release --locked --quiet -p plumb-simulator -p plumb-loadgen
  rm -rf "$out/raw"
  cat >"$work/sim.yaml" <<'YAML'
models:
  sim-gpt: {}
  sim-gpt-mini: {}
  sim-claude: {}
  sim-embed: {}
  sim-stream: {token_rate: 2000}
  sim-stream-fallback: {token_rate: 2000}
YAML
  "$target/release/plumb-simulator" --listen 127.0.0.1:0 --config "$work/sim.yaml" \
    --addr-file "$work/sim" >/dev/null 2>&1 &
  for _ in $(seq 100); do [ -s "$work/sim" ] && break; sleep 0.1; done
  sim=$(cat "$work/sim")
  # The mix's routes, and two as the benchmark's (a primary and a fallback, no contract).
  { traffic_routes "$sim"; cat <<YAML; } >"$work/routes.yaml"
---
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: chat}
spec:
  match: {models: [chat]}
  targets:
    - {name: primary, provider: openai, baseUrl: '$sim/v1', model: sim-gpt, credentials: {none: true}}
    - {name: fallback, provider: openai, baseUrl: '$sim/v1', model: sim-gpt-mini, credentials: {none: true}, priority: 1}
---
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: chat-stream}
spec:
  match: {models: [chat-stream]}
  targets:
    - {name: primary, provider: openai, baseUrl: '$sim/v1', model: sim-stream, credentials: {none: true}}
    - {name: fallback, provider: openai, baseUrl: '$sim/v1', model: sim-stream-fallback, credentials: {none: true}, priority: 1}
YAML
  PLUMB_PROFILE_KEY=sk-profile RUST_LOG=warn "$out/generate/release/plumb-sidecar" --routes "$work/routes.yaml" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$work/sidecar.out" 2>"$work/sidecar.err" &
  sidecar=$!
  for _ in $(seq 600); do grep -q "listening on" "$work/sidecar.out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o 'listening on http://[^ ]*' "$work/sidecar.out" | head -1 | cut -d' ' -f3)
  admin=$(grep -o 'admin http://[^ ]*' "$work/sidecar.out" | head -1 | cut -d' ' -f2)
  [ -n "$url" ] || { echo "pgo: the instrumented sidecar did not start:" >&2; cat "$work/sidecar.err" >&2; exit 1; }
  for _ in $(seq 600); do curl -sf -o /dev/null -m 5 "$admin/readyz" && break; sleep 0.1; done

  for _ in $(seq "$rounds"); do
    traffic_round
    traffic_post /v1/chat/completions "{\"model\":\"chat\",$msgs}"
    traffic_post /v1/chat/completions "{\"model\":\"chat-stream\",\"stream\":true,\"max_tokens\":1,$msgs}"
    traffic_post /v1/chat/completions "{\"model\":\"chat-stream\",\"stream\":true,\"stream_options\":{\"include_usage\":true},$msgs}"
    traffic_post /v1/chat/completions "{\"model\":\"chat\",$long}"
  done
  curl -s -o /dev/null -m 20 "$admin/metrics" || true
  # Many requests at once, as a busy pod sends them: whole answers, then streams.
  for model in chat chat-stream; do
    stream=false
    [ "$model" = chat-stream ] && stream=true
    "$target/release/plumb-loadgen" --url "$url/v1/chat/completions" -H 'content-type: application/json' \
      --body "{\"model\":\"$model\",\"stream\":$stream,$msgs}" --connections 16 --duration 3s \
      --warmup 500ms >/dev/null
  done
  kill -TERM "$sidecar"
  wait "$sidecar" || true
  ls "$out/raw"/*.profraw >/dev/null 2>&1 || { echo "pgo: the instrumented sidecar wrote no profile" >&2; exit 1; }
  "$profdata" merge -o "$out/sidecar.profdata" "$out/raw"
  echo "pgo: $out/sidecar.profdata ($(du -h "$out/sidecar.profdata" | cut -f1))"
}
mkdir -p "$out"
# The instrumented build, apart: its flags would otherwise rebuild the release target's every crate.
CARGO_TARGET_DIR=$out/generate RUSTFLAGS="-Cprofile-generate=$out/raw" \
  cargo build --release --locked --quiet -p plumb-sidecar --bin plumb-sidecar
# The profile of this instrumented binary and this mix, when an earlier run made it: the
# optimised build is then already up to date (a new profile rebuilds every crate).
current=1
for input in "$out/generate/release/plumb-sidecar" scripts/pgo.sh scripts/traffic.sh scripts/conversation.sh; do
  [ "$out/sidecar.profdata" -nt "$input" ] || current=
done
if [ -n "$current" ]; then
  echo "pgo: $out/sidecar.profdata is the profile of the current code and mix"
else
  train
fi
if [ "${1:-}" = --build ]; then
  # Named by its content: cargo does not look into the file a flag names, so a new profile must
  # change the flags for every crate to be rebuilt with it.
  sum=$(sha256sum "$out/sidecar.profdata" | cut -c1-16)
  rm -f "$out"/sidecar-*.profdata
  cp "$out/sidecar.profdata" "$out/sidecar-$sum.profdata"
  CARGO_TARGET_DIR=$out RUSTFLAGS="-Cprofile-use=$out/sidecar-$sum.profdata" \
    cargo build --release --locked --quiet -p plumb-sidecar --bin plumb-sidecar
  echo "pgo: $out/release/plumb-sidecar"
fi
