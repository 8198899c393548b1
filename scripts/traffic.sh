# Sourced by the scripts that profile the sidecar to build and lay it out (scripts/pgo.sh,
# scripts/symbol-order.sh): the routes and one round of the requests that stand for what real
# traffic asks. Both profiles must see the same traffic: the profile decides what the compiler
# inlines, and so which functions the code layout has to name.
# shellcheck shell=bash
# msgs (a short question) and long (a conversation of ~18 KB).
source scripts/conversation.sh

# The routes the mix asks, as YAML documents, for a simulator at $1: a failover across families
# (OpenAI, then Anthropic) with held events and continuation, a contract (schema, a CEL rule, a
# length bound) over two targets, and embeddings. Upstream keys from $PLUMB_PROFILE_KEY.
traffic_routes() {
  local sim=$1
  cat <<YAML
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: assistant}
spec:
  match: {models: [assistant]}
  targets:
    - {name: gpt, provider: openai, baseUrl: '$sim/v1', model: sim-gpt, credentials: {env: PLUMB_PROFILE_KEY}}
    - {name: claude, provider: anthropic, baseUrl: '$sim', model: sim-claude, priority: 1, credentials: {env: PLUMB_PROFILE_KEY}, capabilities: {prefill: true}}
  streaming: {holdEvents: 2, continuation: true}
---
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: extract}
spec:
  match: {models: [extract]}
  targets:
    - {name: gpt, provider: openai, baseUrl: '$sim/v1', model: sim-gpt, credentials: {env: PLUMB_PROFILE_KEY}}
    - {name: mini, provider: openai, baseUrl: '$sim/v1', model: sim-gpt-mini, priority: 1, credentials: {env: PLUMB_PROFILE_KEY}}
  contract:
    schema: {inline: {type: object, required: [answer], properties: {answer: {type: string}}}}
    rules: [{expression: "size(answer.answer) >= 1", message: the answer must not be empty}]
    maxLength: 2000
---
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: embed}
spec:
  match: {models: [embed]}
  targets:
    - {name: a, provider: openai, baseUrl: '$sim/v1', model: sim-embed, credentials: {env: PLUMB_PROFILE_KEY}}
YAML
}

# One request to the sidecar at $url: path, body, then curl's extra arguments. A failed request
# is part of the mix (an unknown model), not an error.
traffic_post() { curl -s -o /dev/null -m 60 "$url$1" -H 'content-type: application/json' "${@:3}" -d "$2" || true; }

# One round of the mix, through the routes above: OpenAI and Anthropic clients, whole and
# streamed; failovers after a server error and a rate limit; a contract; the Responses API;
# embeddings; a model no route serves.
traffic_round() {
  traffic_post /v1/chat/completions "{\"model\":\"assistant\",$msgs}" -H 'authorization: Bearer x'
  traffic_post /v1/chat/completions "{\"model\":\"assistant\",\"stream\":true,$msgs}"
  traffic_post /v1/chat/completions "{\"model\":\"assistant\",$msgs}" -H 'x-sim-fault: server_error'
  traffic_post /v1/chat/completions "{\"model\":\"assistant\",\"stream\":true,$msgs}" -H 'x-sim-fault: rate_limited'
  traffic_post /v1/messages "{\"model\":\"assistant\",\"max_tokens\":64,$msgs}" -H 'anthropic-version: 2023-06-01'
  traffic_post /v1/messages "{\"model\":\"assistant\",\"max_tokens\":64,\"stream\":true,$msgs}" -H 'anthropic-version: 2023-06-01'
  traffic_post /v1/chat/completions "{\"model\":\"extract\",\"response_format\":{\"type\":\"json_object\"},$msgs}"
  traffic_post /v1/responses '{"model":"assistant","input":"what is six times seven"}'
  traffic_post /v1/responses '{"model":"assistant","input":"what is six times seven","stream":true}'
  traffic_post /v1/embeddings '{"model":"embed","input":"six times seven"}'
  traffic_post /v1/chat/completions '{"model":"nope","messages":[]}'
}
