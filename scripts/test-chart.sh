#!/usr/bin/env bash
# The Helm chart with the real tools: helm lint --strict with Helm 3 and Helm 4, helm template
# for Kubernetes 1.29 to 1.33 validated with kubernetes-validate --strict, every optional part
# rendered, bad values refused by values.schema.json, the operator's args accepted by the
# operator, and the webhook's golden injected Pod validated too. (The chart's CRD against the real API server is a Rust test.)
set -euo pipefail
cd "$(dirname "$0")/.."
helm=$(scripts/helm.sh 4)
helm3=$(scripts/helm.sh 3)
venv=$(scripts/sdk-venv.sh tests/chart/requirements.txt)
chart=charts/plumb
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for h in "$helm3" "$helm"; do
  "$h" lint --strict "$chart" >/dev/null
  "$h" lint --strict "$chart" --set tls.mode=helm >/dev/null
  "$h" template plumb "$chart" --namespace plumb-system --include-crds --kube-version 1.29.0 >"$out/h.yaml"
  "$venv/bin/kubernetes-validate" -k 1.29.0 --strict --quiet "$out/h.yaml"
done
"$helm" lint --strict "$chart" --set tls.mode=certManager --set metrics.serviceMonitor.enabled=true \
  --set networkPolicy.enabled=true >/dev/null
for v in 1.29.0 1.30.0 1.31.0 1.32.0 1.33.0; do
  "$helm" template plumb "$chart" --namespace plumb-system --include-crds --kube-version "$v" >"$out/default-$v.yaml"
  "$venv/bin/kubernetes-validate" -k "$v" --strict --quiet "$out/default-$v.yaml"
  "$helm" template plumb "$chart" --namespace plumb-system --kube-version "$v" --set tls.mode=helm >"$out/helm-$v.yaml"
  "$venv/bin/kubernetes-validate" -k "$v" --strict --quiet "$out/helm-$v.yaml"
  "$helm" template plumb "$chart" --namespace plumb-system --kube-version "$v" \
    --set tls.mode=certManager --set metrics.serviceMonitor.enabled=true --set networkPolicy.enabled=true \
    --set webhook.failurePolicy=Fail --set dashboard.enabled=true \
    --set sidecar.proxy.https=http://proxy.corp:3128 --set sidecar.proxy.http=http://proxy.corp:3128 >"$out/all-$v.yaml"
  "$venv/bin/kubernetes-validate" -k "$v" --strict --quiet --no-warn "$out/all-$v.yaml"
done
# Bad values are refused with the value named.
for bad in webhook.failurePolicy=Sometimes operator.replicas=0 sidecar.cpu=lots tls.mode=manual \
    sidecar.proxy.https=https://proxy.corp:3128; do
  if err=$("$helm" template plumb "$chart" --set "$bad" 2>&1); then
    echo "test-chart: --set $bad was accepted" >&2
    exit 1
  fi
  grep -q "${bad%%=*}" <<<"$err" || { echo "test-chart: the error for $bad does not name it: $err" >&2; exit 1; }
done
# The Pod the webhook's golden test produces is a valid Pod for every version.
for v in 1.29.0 1.33.0; do
  "$venv/bin/kubernetes-validate" -k "$v" --strict --quiet \
    crates/operator/tests/golden/webhook/deployment-web.injected.json
done
# The operator accepts every flag the chart gives it, in every TLS mode (a typo would be a crash
# loop): its argument parser reads the rendered args, then --help stops it before it starts.
cargo build --locked --quiet -p plumb-operator
for f in "$out/default-1.33.0.yaml" "$out/helm-1.33.0.yaml" "$out/all-1.33.0.yaml"; do
  mapfile -t args < <("$venv/bin/python" - "$f" <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "Deployment":
        for c in doc["spec"]["template"]["spec"]["containers"]:
            if c["name"] == "operator":
                print("\n".join(c["args"]))
PY
)
  [ "${#args[@]}" -gt 5 ] || { echo "test-chart: no operator args found in $f" >&2; exit 1; }
  "${CARGO_TARGET_DIR:-target}/debug/plumb-operator" "${args[@]}" --help >/dev/null \
    || { echo "test-chart: plumb-operator refuses the chart's args in $f: ${args[*]}" >&2; exit 1; }
done
# The CRD in the chart is the generated one.
cmp -s crds/plumb.dev_llmroutes.yaml "$chart/crds/plumb.dev_llmroutes.yaml" \
  || { echo "test-chart: $chart/crds differs from crds/: run make crds" >&2; exit 1; }
echo "test-chart: Helm 3 and 4 lint and render; manifests and the injected Pod valid for Kubernetes 1.29–1.33"
