#!/usr/bin/env bash
# `make e2e-kind`: Plumb on a real cluster (kind), from images built here to a failed-over
# request seen from inside an application pod. Needs docker, kind, kubectl and helm (3 or 4).
# KIND_CLUSTER picks the cluster (created if missing); KEEP=1 leaves everything in place.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${KIND_CLUSTER:-plumb}
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is needed" >&2; exit 1; }
done
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
kubectl config use-context "kind-$cluster" >/dev/null

echo "== images"
for c in operator sidecar simulator; do
  docker build -q -f "crates/$c/Dockerfile" -t "plumb-$c:dev" .
  kind load docker-image "plumb-$c:dev" --name "$cluster"
done

echo "== helm install"
helm upgrade --install plumb charts/plumb --namespace plumb-system --create-namespace --wait \
  --set operator.image.repository=plumb-operator --set operator.image.tag=dev \
  --set operator.image.pullPolicy=Never \
  --set sidecar.image.repository=plumb-sidecar --set sidecar.image.tag=dev \
  --set sidecar.image.pullPolicy=Never

echo "== a simulated provider (fails on purpose: model sim-unavailable answers 503)"
kubectl create namespace providers --dry-run=client -o yaml | kubectl apply -f -
kubectl -n providers create deployment simulator --image=plumb-simulator:dev --port=8080 \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n providers patch deployment simulator --type=json -p \
  '[{"op":"add","path":"/spec/template/spec/containers/0/args","value":["--listen","0.0.0.0:8080"]},
    {"op":"add","path":"/spec/template/spec/containers/0/imagePullPolicy","value":"Never"}]'
kubectl -n providers expose deployment simulator --port=8080 --dry-run=client -o yaml | kubectl apply -f -
kubectl -n providers rollout status deployment simulator --timeout=120s

echo "== an application namespace that opts in, a key and a route"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace demo plumb.dev/inject=enabled --overwrite
kubectl -n demo create secret generic llm-keys --from-literal=openai=sk-demo-0001 \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n demo label secret llm-keys plumb.dev/credentials=true --overwrite
kubectl apply -f - <<'YAML'
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: chat, namespace: demo}
spec:
  match: {models: [chat]}
  targets:
    - name: primary
      provider: openai
      baseUrl: http://simulator.providers.svc:8080/v1
      model: sim-unavailable
      credentials: {secretRef: {name: llm-keys, key: openai}}
    - name: fallback
      provider: openai
      baseUrl: http://simulator.providers.svc:8080/v1
      model: sim-gpt-mini
      priority: 1
      credentials: {secretRef: {name: llm-keys, key: openai}}
YAML
kubectl -n demo wait llmroute/chat --for=condition=Accepted --timeout=60s

echo "== an unmodified application pod (curl), injected"
kubectl -n demo run client --image=curlimages/curl:8.11.1 --restart=Never \
  --dry-run=client -o yaml --command -- sleep 3600 | kubectl apply -f -
kubectl -n demo wait pod/client --for=condition=Ready --timeout=120s
kubectl -n demo get pod client -o jsonpath='{.spec.initContainers[0].name}{"\n"}' | grep -qx plumb-sidecar
kubectl -n demo wait llmroute/chat --for=condition=Programmed --timeout=60s

echo "== a request from the application: the primary fails, the fallback answers"
kubectl -n demo exec client -c client -- sh -c 'curl -s -D - -o /dev/null \
  "$OPENAI_BASE_URL/chat/completions" -H "content-type: application/json" \
  -d "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"' \
  | tee /dev/stderr | grep -qi '^x-plumb-served-by: fallback'
kubectl -n demo get llmroutes
echo "e2e-kind: passed"
if [ "${KEEP:-0}" != 1 ]; then
  helm uninstall plumb --namespace plumb-system
  kubectl delete namespace demo providers plumb-system --wait=false
fi
