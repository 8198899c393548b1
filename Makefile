# Plumb — the two commands a newcomer runs are `make demo` and `make test`.
#
# Everything the tests need beyond the Rust toolchain is installed idempotently into
# $(PLUMB_CACHE) (outside the repository) and reused on later runs.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PLUMB_CACHE ?= $(HOME)/.cache/plumb
export PLUMB_CACHE
CARGO ?= cargo
NEXTEST_PROFILE ?= $(if $(CI),ci,default)
# Where cargo puts what it builds (CARGO_TARGET_DIR when set).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

## crds: regenerate crds/ from the Rust types (CI fails when they drift)
crds:
	PLUMB_UPDATE_CRDS=1 $(CARGO) test --quiet -p plumb-api --test crd

## bench-control: a route change propagated to connected sidecars (SIDECARS=100 over NAMESPACES=1, ROUNDS=30); operator memory per sidecar; shared knowledge with every sidecar reporting
SIDECARS ?= 100
NAMESPACES ?= 1
ROUNDS ?= 30
BENCH_TARGET = $(or $(CARGO_TARGET_DIR),target)
bench-control: tools
	$(CARGO) build --release --locked --quiet -p plumb-operator --bin plumb-operator --example propagation
	ulimit -n $$(ulimit -Hn) && $(BENCH_TARGET)/release/examples/propagation --sidecars $(SIDECARS) --namespaces $(NAMESPACES) --rounds $(ROUNDS) | tee $(BENCH_TARGET)/bench-control.md

## bench-control-scale: the same with 1,000 sidecars over 10 namespaces, then 10,000 over 100 (each stream its own TLS connection: needs `ulimit -Hn` above 10,000)
bench-control-scale: tools
	$(CARGO) build --release --locked --quiet -p plumb-operator --bin plumb-operator --example propagation
	ulimit -n $$(ulimit -Hn) && $(BENCH_TARGET)/release/examples/propagation --sidecars 1000 --namespaces 10 --rounds $(ROUNDS) | tee $(BENCH_TARGET)/bench-control-1000.md
	ulimit -n $$(ulimit -Hn) && $(BENCH_TARGET)/release/examples/propagation --sidecars 10000 --namespaces 100 --rounds $(ROUNDS) | tee $(BENCH_TARGET)/bench-control-10000.md

.PHONY: release-sidecar bench-instructions install-cli scorecard scorecard-quick e2e-kind test-chart bench-control bench-control-scale symbol-order bench-burst bench-attack crds check-deps all demo demo-raw bench-smoke test lint fmt-check clippy doc test-rust test-sdk tools bench bench-simulator clean-cache fuzz

all: test

## install-cli: install `plumb` into $(PREFIX)/bin (default ~/.local), with the kubectl plugin name `kubectl-plumb` beside it
PREFIX ?= $(HOME)/.local
install-cli:
	$(CARGO) install --locked --path crates/cli --root $(PREFIX)
	ln -sf plumb $(PREFIX)/bin/kubectl-plumb
	@echo "install-cli: $(PREFIX)/bin/plumb and $(PREFIX)/bin/kubectl-plumb (kubectl plumb …)"

## demo: a standalone sidecar with example routes in front of simulated failing providers
demo:
	$(CARGO) build --quiet -p plumb-sidecar
	$(CARGO) run --quiet -p plumb-sidecar --example demo

## demo-raw: the simulator's fault families as a plain client sees them, without Plumb
demo-raw:
	$(CARGO) run --quiet -p plumb-simulator --example tour

## test: formatting, lints, docs, every Rust test tier and the SDK compatibility tests
test: lint test-rust test-sdk test-chart bench-smoke scorecard-quick
	@echo "make test: all tiers passed"

lint: fmt-check clippy doc check-deps

## check-deps: the sidecar links no Kubernetes client or runtime (only kube's derive, for the CRD types)
check-deps:
	@deps=$$($(CARGO) tree --locked -p plumb-sidecar -e normal --prefix none); \
	if grep -E '^(kube-client|kube-runtime) ' <<<"$$deps"; then \
	  echo 'check-deps: plumb-sidecar must not depend on the Kubernetes client or runtime'; exit 1; fi
	@echo 'check-deps: plumb-sidecar links no Kubernetes client or runtime'

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked --quiet

## tools: what the tests need beyond Rust, installed once: promtool (Debian's prometheus package)
## and a real Kubernetes API server for custom resources (scripts/k8s-testenv/build.sh, ~5 min once)
tools:
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest
	@command -v promtool >/dev/null || { \
	  echo "tools: installing promtool (Debian package prometheus)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  pkill -x prometheus 2>/dev/null || true; }
	@scripts/k8s-testenv/build.sh

test-rust: tools
	$(CARGO) nextest run --workspace --locked --profile $(NEXTEST_PROFILE)

test-sdk:
	$(CARGO) build --locked --quiet -p plumb-simulator -p plumb-sidecar
	venv=$$(scripts/sdk-venv.sh) && "$$venv/bin/python" -m pytest -q -p no:cacheprovider tests/sdk

## symbol-order: regenerate crates/sidecar/symbol-order.txt (the release sidecar's code layout) from a callgrind run of it
symbol-order:
	scripts/symbol-order.sh

## release-sidecar: the sidecar as shipped: a release build optimised by a profile of its own serving (PGO), in
## $(TARGET_DIR)/pgo/release/plumb-sidecar; needs rustup's llvm-tools (installed when missing)
release-sidecar:
	scripts/pgo.sh --build

## fuzz: every fuzz target in crates/fuzz (cargo-fuzz, libFuzzer, nightly) for FUZZ_SECONDS each (default 60),
## from corpora seeded by the simulator, the golden files and the examples; prints executions per target
FUZZ_SECONDS ?= 60
# A unit slower than this many seconds is reported as a timeout (libFuzzer's default is 20 minutes).
FUZZ_TIMEOUT ?= 10
FUZZ_CARGO ?= cargo +nightly
fuzz:
	@rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	$(FUZZ_CARGO) run --quiet --locked --manifest-path crates/fuzz/Cargo.toml --example seed
	@mkdir -p crates/fuzz/logs; failed=(); \
	targets=$$($(FUZZ_CARGO) fuzz list --fuzz-dir crates/fuzz); \
	for t in $$targets; do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s (log: crates/fuzz/logs/$$t.log)"; \
	  dict=crates/fuzz/dicts/$$t.dict; [ -f "$$dict" ] || dict=crates/fuzz/dicts/json.dict; \
	  $(FUZZ_CARGO) fuzz run --fuzz-dir crates/fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=$(FUZZ_TIMEOUT) -dict="$$dict" -print_final_stats=1 >crates/fuzz/logs/$$t.log 2>&1 || failed+=("$$t"); \
	done; \
	printf '\n%-20s %12s %8s  %s\n' target executions exec/s result; \
	for t in $$targets; do \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' crates/fuzz/logs/$$t.log | tail -1); \
	  rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' crates/fuzz/logs/$$t.log | tail -1); \
	  artifact=$$({ grep -o 'Test unit written to .*' crates/fuzz/logs/$$t.log || true; } | tail -1 | sed 's/Test unit written to //'); \
	  printf '%-20s %12s %8s  %s\n' "$$t" "$${runs:-?}" "$${rate:-?}" "$${artifact:-ok}"; \
	done; \
	if [ $${#failed[@]} -gt 0 ]; then \
	  echo "fuzz: $${failed[*]} failed; minimise with: $(FUZZ_CARGO) fuzz tmin --fuzz-dir crates/fuzz TARGET ARTIFACT"; exit 1; fi

## e2e-kind: on a real cluster (kind; needs docker, kind, kubectl, helm): install, label, apply, call, see the failover
e2e-kind:
	scripts/e2e-kind.sh

## test-chart: the Helm chart with the real helm and kubernetes-validate (Kubernetes 1.29–1.33)
test-chart:
	scripts/test-chart.sh

## bench: the data-plane benchmark (release build): direct, through the floor (a bare hyper reverse proxy) and
## through the sidecar, in one run, pinned (each proxy on a core of its own) and shared (nothing pinned);
## BENCH_SECONDS (10), BENCH_REPEAT (3 alternating repetitions, medians kept), BENCH_LAYOUT (pinned|shared|both)
bench: bench-simulator
	@# perf reads each proxy's own time before a stream's first byte; without it that row is left out, said why
	command -v perf >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; } || true
	scripts/pgo.sh --build  # as shipped: alone, optimised by a profile of its serving
	scripts/symbol-order.sh --check $(TARGET_DIR)/pgo/release/plumb-sidecar  # a stale code layout mismeasures memory
	$(CARGO) build --release --locked --quiet -p plumb-simulator -p plumb-loadgen
	mkdir -p target
	ulimit -n $$(ulimit -Hn) && $(TARGET_DIR)/release/plumb-bench --sidecar $(TARGET_DIR)/pgo/release/plumb-sidecar \
	  --simulator $(TARGET_DIR)/release/plumb-simulator --floor $(TARGET_DIR)/release/plumb-floor \
	  --layout $${BENCH_LAYOUT:-both} --seconds $${BENCH_SECONDS:-10} --repeat $${BENCH_REPEAT:-3} --out target/bench-report.md

## bench-instructions: the instructions the floor and the release sidecar run per request (callgrind), one at a
## time: a noise-free figure to compare two builds by (SIDECAR=path measures a given binary)
bench-instructions:
	command -v valgrind >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
	scripts/bench-instructions.sh

## bench-smoke: a short run of the benchmark, floor included, to keep it working (CI runs this)
bench-smoke:
	$(CARGO) build --locked --quiet -p plumb-sidecar -p plumb-simulator -p plumb-loadgen
	ulimit -n $$(ulimit -Hn) && $(TARGET_DIR)/debug/plumb-bench --sidecar $(TARGET_DIR)/debug/plumb-sidecar \
	  --simulator $(TARGET_DIR)/debug/plumb-simulator --floor $(TARGET_DIR)/debug/plumb-floor \
	  --layout shared --seconds 0.5 --repeat 1 --streams 5 --in-flight 50 --smoke

bench-simulator:
	scripts/bench-simulator.sh

## scorecard: every fault of the simulator's catalogue through a sidecar with default routes, both client
## families, streamed and not, reasoning models, a flapping outage, a slow degradation, against calling the
## provider directly: rescued, safe error or unsafe (a few minutes; fails on anything unsafe through Plumb)
scorecard:
	$(CARGO) build --locked --quiet -p plumb-sidecar --bin plumb-sidecar -p plumb-loadgen --bin plumb-scorecard
	$(TARGET_DIR)/debug/plumb-scorecard --sidecar $(TARGET_DIR)/debug/plumb-sidecar --out target/scorecard.md

## scorecard-quick: the quick card (part of `make test`, about 30 s): the OpenAI client's route, every
## fault but hang, a short flapping outage; fails on anything unsafe through Plumb, printing the card
scorecard-quick:
	$(CARGO) build --locked --quiet -p plumb-sidecar --bin plumb-sidecar -p plumb-loadgen --bin plumb-scorecard
	$(TARGET_DIR)/debug/plumb-scorecard --sidecar $(TARGET_DIR)/debug/plumb-sidecar --quick \
	  --out target/scorecard-quick.md >/dev/null || { cat target/scorecard-quick.md; exit 1; }

## bench-burst: a burst of maximum-size requests against the release sidecar; its peak memory against the pod's default limit
bench-burst:
	$(CARGO) build --release --locked --quiet -p plumb-sidecar -p plumb-simulator
	python3 scripts/bench-burst.py target/release/plumb-sidecar target/release/plumb-simulator

## bench-attack: legitimate clients and /healthz, alone and while the release sidecar is attacked (slowloris,
## oversized, trickled and malformed bodies, a schema bomb, an endless upstream SSE line); its peak memory
bench-attack:
	$(CARGO) build --release --locked --quiet -p plumb-sidecar -p plumb-simulator
	ulimit -n $$(ulimit -Hn) && python3 scripts/bench-attack.py $${CARGO_TARGET_DIR:-target}/release/plumb-sidecar \
	  $${CARGO_TARGET_DIR:-target}/release/plumb-simulator

clean-cache:
	rm -rf "$(PLUMB_CACHE)"
