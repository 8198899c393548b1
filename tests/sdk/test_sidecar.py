"""The official SDKs through the sidecar: nothing changes for the client but its base URL; a
failover is invisible; a request no target can answer raises the SDK's own typed error, once."""

import json
import urllib.request

import anthropic
import openai
import pytest

from conftest import Process, binary

MESSAGES = [{"role": "user", "content": "what is six times seven"}]


def routes(sim_url):
    def target(name, provider, base, model, priority=0):
        return (f"    - {{name: {name}, provider: {provider}, baseUrl: '{base}', model: {model}, "
                f"priority: {priority}, credentials: {{none: true}}}}\n")

    def route(name, model, targets):
        return ("apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\n"
                f"metadata: {{name: {name}}}\nspec:\n  match: {{models: [{model}]}}\n  targets:\n"
                + "".join(targets))

    v1 = f"{sim_url}/v1"
    return "---\n".join([
        route("chat", "chat", [target("primary", "openai", v1, "sim-gpt")]),
        route("failover", "failover", [
            target("primary", "openai", v1, "sim-unavailable"),
            target("fallback", "openai", v1, "sim-gpt-mini", 1)]),
        route("doomed", "doomed", [
            target("a", "openai", v1, "sim-rate-limited-bare"),
            target("b", "openai", v1, "sim-rate-limited-bare", 1)]),
        route("claude", "claude", [target("claude", "anthropic", sim_url, "sim-claude")]),
        route("claude-failover", "claude-failover", [
            target("primary", "anthropic", sim_url, "sim-overloaded"),
            target("fallback", "anthropic", sim_url, "sim-claude-alt", 1)]),
        route("claude-doomed", "claude-doomed", [target("only", "anthropic", sim_url, "sim-overloaded")]),
        route("gpt-to-claude", "gpt-to-claude", [
            target("gpt", "openai", v1, "sim-unavailable"),
            target("claude", "anthropic", sim_url, "sim-claude", 1)]),
        route("claude-to-gpt", "claude-to-gpt", [
            target("claude", "anthropic", sim_url, "sim-overloaded"),
            target("gpt", "openai", v1, "sim-gpt", 1)]),
        route("bounded", "bounded", [
            target("primary", "openai", v1, "sim-out-of-bounds"),
            target("fallback", "openai", v1, "sim-gpt-mini", 1)]) + CONTRACT,
        route("unbounded", "unbounded", [
            target("only", "openai", v1, "sim-out-of-bounds")]) + CONTRACT,
        route("checked-late", "checked-late", [
            target("only", "openai", v1, "sim-out-of-bounds")]) + CONTRACT + "    streams: afterCommit\n",
        route("claude-bounded", "claude-bounded", [
            target("only", "anthropic", sim_url, "sim-out-of-bounds")]) + CONTRACT,
    ])


# The simulator's structured answer is {answer, score}; out_of_bounds models answer score 7.
CONTRACT = (
    "  contract:\n"
    "    rules:\n"
    "      - expression: \"answer.score >= 0.0 && answer.score <= 1.0\"\n"
    "        message: score must be between 0 and 1\n"
)
STRUCTURED = {"response_format": {"type": "json_object"}}


@pytest.fixture
def sidecar(simulator, tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(routes(simulator.url))
    p = Process([binary("plumb-sidecar"), "--routes", str(path),
                 "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
    p.simulator = simulator
    yield p
    p.stop()


def attempts(sim, model):
    with urllib.request.urlopen(f"{sim.url}/_sim/attempts?model={model}") as r:
        return json.load(r)["attempts"]


def oai(sc, **kw):
    return openai.OpenAI(base_url=f"{sc.url}/v1", api_key="sk-app-key-0001", **kw)


def ant(sc, **kw):
    return anthropic.Anthropic(base_url=sc.url, api_key="sk-ant-app-0002", **kw)


def test_openai_completion_and_stream_through_the_sidecar(sidecar):
    client = oai(sidecar)
    whole = client.chat.completions.create(model="chat", messages=MESSAGES)
    assert whole.model == "sim-gpt"
    assert whole.choices[0].message.content.endswith("End of answer.")
    chunks = list(client.chat.completions.create(
        model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_openai_failover_is_invisible_to_the_client(sidecar):
    raw = oai(sidecar).chat.completions.with_raw_response.create(model="failover", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content.endswith("End of answer.")
    assert completion.model == "sim-gpt-mini"
    assert raw.headers["x-plumb-served-by"] == "fallback"
    assert raw.headers["x-plumb-failure-classes"].startswith("overloaded")
    stream = oai(sidecar).chat.completions.create(model="failover", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).endswith("End of answer.")


def test_openai_all_targets_failed_raises_the_typed_error_once(sidecar):
    with pytest.raises(openai.RateLimitError) as e:
        oai(sidecar).chat.completions.create(model="doomed", messages=MESSAGES)
    assert e.value.status_code == 429
    assert "no target of the route could answer" in e.value.message
    assert e.value.response.headers["x-should-retry"] == "false"
    # The SDK's own retries stayed off: two targets, one try and one retry each.
    assert len(attempts(sidecar.simulator, "sim-rate-limited-bare")) == 4


def test_anthropic_message_stream_and_failover_through_the_sidecar(sidecar):
    client = ant(sidecar)
    m = client.messages.create(model="claude", max_tokens=256, messages=MESSAGES)
    assert m.model == "sim-claude" and m.stop_reason == "end_turn"
    with client.messages.stream(model="claude", max_tokens=256, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
    assert text == m.content[0].text
    m = client.messages.create(model="claude-failover", max_tokens=256, messages=MESSAGES)
    assert m.model == "sim-claude-alt"
    assert m.content[0].text.endswith("End of answer.")


def test_anthropic_all_targets_failed_raises_the_typed_error(sidecar):
    with pytest.raises(anthropic.OverloadedError) as e:
        ant(sidecar).messages.create(model="claude-doomed", max_tokens=10, messages=MESSAGES)
    assert e.value.status_code == 529
    with pytest.raises(anthropic.NotFoundError):
        ant(sidecar).messages.create(model="no-such-route", max_tokens=10, messages=MESSAGES)


WEATHER_TOOL_OPENAI = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
WEATHER_TOOL_ANTHROPIC = [{"name": "get_weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def test_openai_sdk_failover_to_an_anthropic_target(sidecar):
    client = oai(sidecar)
    raw = client.chat.completions.with_raw_response.create(model="gpt-to-claude", messages=MESSAGES)
    c = raw.parse()
    assert raw.headers["x-plumb-served-by"] == "claude"
    assert c.model == "sim-claude"
    assert c.choices[0].message.content.endswith("End of answer.")
    assert c.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(
        model="gpt-to-claude", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == c.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == c.usage.completion_tokens
    # Tool calls, whole and streamed.
    c = client.chat.completions.create(model="gpt-to-claude", messages=MESSAGES, tools=WEATHER_TOOL_OPENAI)
    call = c.choices[0].message.tool_calls[0]
    assert c.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "forty-two"}
    args = "".join(
        ch.choices[0].delta.tool_calls[0].function.arguments or ""
        for ch in client.chat.completions.create(
            model="gpt-to-claude", messages=MESSAGES, tools=WEATHER_TOOL_OPENAI, stream=True)
        if ch.choices and ch.choices[0].delta.tool_calls)
    assert json.loads(args) == {"city": "forty-two"}


def test_anthropic_sdk_failover_to_an_openai_target(sidecar):
    client = ant(sidecar)
    m = client.messages.create(model="claude-to-gpt", max_tokens=256, messages=MESSAGES)
    assert m.model == "sim-gpt"
    assert m.stop_reason == "end_turn"
    assert m.content[0].text.endswith("End of answer.")
    with client.messages.stream(model="claude-to-gpt", max_tokens=256, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == m.content[0].text
    assert final.usage.output_tokens == m.usage.output_tokens
    m = client.messages.create(model="claude-to-gpt", max_tokens=256, messages=MESSAGES, tools=WEATHER_TOOL_ANTHROPIC)
    assert m.stop_reason == "tool_use"
    assert m.content[0].type == "tool_use" and m.content[0].input == {"city": "forty-two"}
    with client.messages.stream(model="claude-to-gpt", max_tokens=256, messages=MESSAGES,
                                tools=WEATHER_TOOL_ANTHROPIC) as s:
        final = s.get_final_message()
    assert final.content[-1].type == "tool_use"
    assert final.content[-1].input == {"city": "forty-two"}


def test_an_answer_that_breaks_the_contract_is_failed_over_invisibly(sidecar):
    raw = oai(sidecar).chat.completions.with_raw_response.create(
        model="bounded", messages=MESSAGES, **STRUCTURED)
    assert raw.headers["x-plumb-served-by"] == "fallback"
    assert raw.headers["x-plumb-failure-classes"] == "out_of_bounds,out_of_bounds"
    score = json.loads(raw.parse().choices[0].message.content)["score"]
    assert 0 <= score <= 1


def test_an_answer_no_target_can_make_valid_raises_the_typed_error_naming_the_rule(sidecar):
    with pytest.raises(openai.APIStatusError) as e:
        oai(sidecar, max_retries=0).chat.completions.create(
            model="unbounded", messages=MESSAGES, **STRUCTURED)
    assert e.value.status_code == 502
    assert "contract.rules[0]: score must be between 0 and 1" in e.value.message
    with pytest.raises(anthropic.APIStatusError) as e:
        ant(sidecar, max_retries=0).messages.create(
            model="claude-bounded", max_tokens=100, messages=MESSAGES)
    assert "score must be between 0 and 1" in e.value.message


def test_a_stream_checked_after_commit_raises_in_the_sdk_instead_of_ending_as_a_success(sidecar):
    stream = oai(sidecar).chat.completions.create(
        model="checked-late", messages=MESSAGES, stream=True, **STRUCTURED)
    text = ""
    with pytest.raises(openai.APIError) as e:
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    assert '"score":7' in text.replace(" ", "")
    assert "score must be between 0 and 1" in str(e.value)
