# Sourced by the scripts that measure or profile the sidecar: the requests' messages, as JSON
# members to put in a chat request's body.
# msgs: one short question. long: a conversation as an application sends one after a few turns,
# a system prompt and 30 turns, ~18 KB (the proxy's work per request grows with it).
# shellcheck shell=bash
msgs='"messages":[{"role":"user","content":"what is six times seven"}]'
turn="You are a careful assistant. Answer with the facts the user asked for and nothing else."
turn="$turn $turn $turn $turn $turn $turn"
long="\"messages\":[{\"role\":\"system\",\"content\":\"$turn\"}"
for i in $(seq 30); do
  role=user
  [ $((i % 2)) = 0 ] && role=assistant
  long="$long,{\"role\":\"$role\",\"content\":\"turn $i: $turn\"}"
done
long="$long]"
