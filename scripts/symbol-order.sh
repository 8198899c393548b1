#!/usr/bin/env bash
# Regenerates crates/sidecar/symbol-order.txt: the sidecar's functions that run when it starts
# and serves, hottest first, for the linker to lay out together (`--symbol-ordering-file`, lld).
#
# Why: the kernel maps a binary's code 64 KiB around every page first touched (fault-around), so
# a process's resident code is set by how scattered the functions it runs are, not by how much
# of them it runs. Laid out together, the code a sidecar runs idle and under traffic fits in a
# few hundred KiB of pages instead of ~6 MB spread over the 13 MB of .text.
#
# How: the release sidecar as shipped (optimised by a profile of its serving, `scripts/pgo.sh`) runs under callgrind in front of the simulator three times: twice it
# starts, answers its probes and stops, first with one plain route, then with routes as
# production sets them (a contract, HTTPS upstreams, Azure, a compatible server, retries, a
# breaker, a last resort: loaded at start, never asked); once it starts, serves a mix of what
# real traffic asks (OpenAI and Anthropic clients, whole and streamed, a failover across
# families, a contract, embeddings, the Responses API, metrics and health), drains and exits.
# The functions of the plain start come first, then those only the richer start runs (an idle
# sidecar's resident code is only those), then those only serving runs; each group by
# instructions spent in it, hottest first.
# Symbols the file names that a later build no longer has are skipped by the linker, so a stale
# file costs memory, never correctness: rerun this after large changes (`make symbol-order`).
#
# `--check [binary]` only says whether the file still fits a release build: a symbol's name
# carries a hash of its crate's dependencies and features, so adding a dependency to the sidecar
# renames every one of its functions, and a file that names too few of the build's functions
# leaves its code scattered again (2026-12-03: half the names gone, idle RSS 7.3 -> 9.4 MB).
# `make bench` runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
order=crates/sidecar/symbol-order.txt
if [ "${1:-}" = --check ]; then
  bin=${2:-$target/pgo/release/plumb-sidecar}
  command -v nm >/dev/null || { echo "symbol-order: --check needs nm (apt-get install binutils)" >&2; exit 69; }
  named=$(sort -u "$order" | wc -l)
  found=$(nm "$bin" | awk '{print $NF}' | sort -u | comm -12 - <(sort -u "$order") | wc -l)
  if [ $((found * 100)) -lt $((named * 95)) ]; then
    echo "symbol-order: $bin has only $found of the $named functions $order names: the code layout is stale (the sidecar's code or dependencies changed); run \`make symbol-order\` and rebuild" >&2
    exit 1
  fi
  echo "symbol-order: $bin has $found of the $named functions of its code layout"
  exit 0
fi
command -v valgrind >/dev/null || { echo "symbol-order: needs valgrind (apt-get install valgrind)" >&2; exit 69; }
command -v nm >/dev/null || { echo "symbol-order: needs nm (apt-get install binutils)" >&2; exit 69; }
# The sidecar as its Dockerfile and `make bench` build it: alone (built with other packages, its
# dependencies' features, and so their symbols' hashes, would differ from the shipped binary's)
# and optimised by a profile of its serving (`scripts/pgo.sh`, whose inlining decides which
# functions exist). SIDECAR=path lays out another build instead.
sidecar_bin=${SIDECAR:-}
if [ -z "$sidecar_bin" ]; then
  scripts/pgo.sh --build
  sidecar_bin=$target/pgo/release/plumb-sidecar
fi
cargo build --release --locked --quiet -p plumb-simulator
# traffic_routes, traffic_round and traffic_post: the mix the sidecar's profile (scripts/pgo.sh) saw.
source scripts/traffic.sh
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

"$target/release/plumb-simulator" --listen 127.0.0.1:0 --addr-file "$work/sim" >/dev/null 2>&1 &
for _ in $(seq 100); do [ -s "$work/sim" ] && break; sleep 0.1; done
sim=$(cat "$work/sim")
# The mix's routes (scripts/traffic.sh), and one as production sets it.
{ traffic_routes "$sim"; cat <<YAML; } >"$work/routes.yaml"
---
# Never asked in the serving run: what loading the settings a production route sets runs at start
# (HTTPS upstreams, Azure, a compatible server, a last resort, per-class retries, a breaker, a budget).
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: chat}
spec:
  match: {models: [chat]}
  targets:
    - {name: openai, provider: openai, baseUrl: 'https://api.openai.com/v1', model: gpt-4o, credentials: {env: PLUMB_PROFILE_KEY}, capabilities: {contextWindow: 128000}}
    - {name: azure, provider: azure-openai, baseUrl: 'https://example.openai.azure.com', model: gpt-4o-prod, apiVersion: "2024-10-21", credentials: {env: PLUMB_PROFILE_KEY}, priority: 1}
    - {name: local, provider: openai-compatible, baseUrl: 'http://vllm.inference.svc:8000/v1', model: llama, credentials: {none: true}, capabilities: {contextWindow: 32768, vision: false}}
  deadlines: {total: 60s, connect: 2s, firstByte: 30s, firstToken: 10s, streamIdle: 15s}
  classes:
    rateLimited: {retries: 1, backoff: {initial: 1s, max: 8s}}
    serverError: {retries: 2}
  breaker: {consecutiveFailures: 5, failureRate: 0.5, window: 30s, cooldown: 15s}
  retryBudget: {ratio: 0.2, minPerSecond: 5}
  lastResort: {mode: target, target: local}
YAML
cat >"$work/plain.yaml" <<YAML
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: plain}
spec:
  match: {models: [plain]}
  targets:
    - {name: primary, provider: openai, baseUrl: '$sim/v1', model: sim-gpt, credentials: {env: PLUMB_PROFILE_KEY}}
    - {name: fallback, provider: openai, baseUrl: '$sim/v1', model: sim-gpt-mini, credentials: {env: PLUMB_PROFILE_KEY}, priority: 1}
YAML
# The sidecar under callgrind with the routes of $work/${2:-routes}.yaml; its URLs in $url and $admin.
profile() {
  PLUMB_PROFILE_KEY=sk-profile RUST_LOG=info valgrind --tool=callgrind --demangle=no \
    --callgrind-out-file="$work/$1.cg" "$sidecar_bin" --routes "$work/${2:-routes}.yaml" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$work/$1.out" 2>"$work/$1.err" &
  sidecar=$!
  for _ in $(seq 600); do grep -q "listening on" "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o 'listening on http://[^ ]*' "$work/$1.out" | head -1 | cut -d' ' -f3)
  admin=$(grep -o 'admin http://[^ ]*' "$work/$1.out" | head -1 | cut -d' ' -f2)
  [ -n "$url" ] || { echo "symbol-order: the sidecar did not start:" >&2; cat "$work/$1.err" >&2; exit 1; }
}
stop() { kill -TERM "$sidecar"; wait "$sidecar" || true; }
# The binary's own functions in a callgrind profile (Rust, and the C of mimalloc and ring it
# links; not libc's), by the instructions spent in each, hottest first.
# "fn=(id) name" (or "cfn=(id) name", a callee) defines a function's id, "fn=(id)" repeats it;
# the cost lines after fn= (position and instructions) are its own, except the line after
# "calls=", which is the inclusive cost of that call.
functions() {
  awk -v q="'" '
    /^fn=/ { spec = substr($0, 4); if (match(spec, /^\([0-9]+\) /)) { id = substr(spec, 1, RLENGTH - 1); name = substr(spec, RLENGTH + 1); names[id] = name; cur = name } else if (spec ~ /^\([0-9]+\)$/) { cur = names[spec] } else { cur = spec }; next }
    /^cfn=\([0-9]+\) / { spec = substr($0, 5); match(spec, /^\([0-9]+\) /); names[substr(spec, 1, RLENGTH - 1)] = substr(spec, RLENGTH + 1); next }
    /^(cfn|cfi|cfl|calls|fl|fi|fe|ob|cob)=/ { if ($0 ~ /^calls=/) skip = 1; next }
    /^[0-9+*-]/ { if (skip) { skip = 0; next } if (cur != "") cost[cur] += $2; next }
    END { for (n in cost) { m = n; sub(q "[0-9]+$", "", m); total[m] += cost[n] } for (m in total) printf "%d %s\n", total[m], m }
  ' "$1" | sort -rn | awk 'NR == FNR { own[$NF] = 1; next } own[$2] { print $2 }' <(nm --defined-only "$sidecar_bin" | awk '$2 ~ /^[tTwW]$/') -
}

# First what a sidecar runs to start and wait: an idle sidecar's resident code is only that.
# "listening on" is printed before the routes are applied and the listeners, the reload watch
# and the signal handlers start: wait for those (readiness answers once the routes are in), and
# answer the kubelet's probes as a pod's idle sidecar does, before stopping it. Stopped at the
# first line, the profile missed them, and their code (~1 MB of pages) lay scattered among the
# serving functions (2026-12-04: idle RSS 8.9 MB, 4.1 MB of it code).
idle() {
  profile "$@"
  for _ in $(seq 600); do curl -sf -o /dev/null -m 5 "$admin/readyz" && break; sleep 0.1; done
  curl -s -o /dev/null -m 5 "$admin/healthz" || true
  sleep 3
  stop
}
# Twice: with one plain route (two OpenAI targets, nothing else set), then with the routes
# above. What the plain one runs comes first, so that a sidecar whose routes set little maps
# only that, not the contracts' and HTTPS upstreams' start-up code laid among it.
idle plain plain
idle start
# Then what it runs to serve.
profile serve
for _ in 1 2 3; do
  traffic_round
  curl -s -o /dev/null -m 20 "$admin/metrics" || true
  curl -s -o /dev/null -m 20 "$admin/readyz" || true
done
stop
functions "$work/plain.cg" >"$work/plain.txt"
functions "$work/start.cg" | grep -vxFf "$work/plain.txt" >"$work/start.txt" || true
functions "$work/serve.cg" >"$work/serve.txt"
# Starting plain, starting the rest, then serving's own functions: hot ones together within each.
{ cat "$work/plain.txt" "$work/start.txt"; grep -vxFf <(cat "$work/plain.txt" "$work/start.txt") "$work/serve.txt" || true; } >crates/sidecar/symbol-order.txt
echo "symbol-order: $(wc -l <crates/sidecar/symbol-order.txt) functions in crates/sidecar/symbol-order.txt"
