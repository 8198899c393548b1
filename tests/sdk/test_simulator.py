"""The official OpenAI and Anthropic SDKs against the simulator: its wire formats are the real
ones if the SDKs parse its answers, its streams and its errors into their own types."""

import json
import time
import urllib.request

import anthropic
import openai
import pytest


def attempts(sim, model=None):
    url = f"{sim.url}/_sim/attempts" + (f"?model={model}" if model else "")
    with urllib.request.urlopen(url) as r:
        return json.load(r)["attempts"]


def set_plan(sim, model, plan):
    req = urllib.request.Request(
        f"{sim.url}/_sim/plans/{model}",
        data=json.dumps(plan).encode(),
        method="PUT",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 200


def oai(sim, **kw):
    return openai.OpenAI(base_url=f"{sim.url}/v1", api_key="sk-sdk-test-0001", **kw)


def ant(sim, **kw):
    return anthropic.Anthropic(base_url=sim.url, api_key="sk-ant-sdk-0002", **kw)


MESSAGES = [{"role": "user", "content": "what is six times seven"}]


def test_openai_completion_is_parsed_with_usage(simulator):
    r = oai(simulator).chat.completions.create(model="sim-gpt", messages=MESSAGES)
    assert r.model == "sim-gpt"
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content.endswith("End of answer.")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_openai_stream_yields_the_same_text_and_usage(simulator):
    client = oai(simulator)
    whole = client.chat.completions.create(model="sim-gpt", messages=MESSAGES)
    chunks = list(
        client.chat.completions.create(
            model="sim-gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_openai_tools_and_structured_output(simulator):
    client = oai(simulator)
    r = client.chat.completions.create(
        model="sim-gpt",
        messages=MESSAGES,
        tools=[{"type": "function", "function": {"name": "calc", "parameters": {
            "type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"]}}}],
    )
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "calc"
    assert json.loads(call.function.arguments) == {"expr": "forty-two"}
    r = client.chat.completions.create(
        model="sim-gpt",
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {
            "type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 100}},
            "required": ["n"]}}},
    )
    assert json.loads(r.choices[0].message.content) == {"n": 75}


def test_openai_embeddings_decode_from_the_sdks_default_base64(simulator):
    r = oai(simulator).embeddings.create(model="sim-embed", input=["the cat sat", "the cat sat"])
    assert len(r.data) == 2
    assert len(r.data[0].embedding) == 256
    assert r.data[0].embedding == r.data[1].embedding


def test_openai_rate_limit_is_the_sdks_typed_error(simulator):
    client = oai(simulator, max_retries=0)
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="sim-rate-limited", messages=MESSAGES)
    assert e.value.status_code == 429
    assert e.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="sim-unauthorized", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="sim-model-not-found", messages=MESSAGES)


def test_openai_sdk_retries_honour_retry_after(simulator):
    set_plan(simulator, "sim-gpt", {"fault": "rate_limited:retry_after=1", "first": 1})
    r = oai(simulator, max_retries=2).chat.completions.create(model="sim-gpt", messages=MESSAGES)
    assert r.choices[0].finish_reason == "stop"
    log = attempts(simulator, "sim-gpt")
    assert [a["status"] for a in log] == [429, 200]
    assert log[1]["at_ms"] - log[0]["at_ms"] >= 1000


def test_azure_client_speaks_the_deployment_shape(simulator):
    client = openai.AzureOpenAI(
        azure_endpoint=simulator.url, api_key="azure-sdk-key-7777", api_version="2024-10-21"
    )
    r = client.chat.completions.create(model="sim-gpt", messages=MESSAGES)
    assert r.choices[0].message.content.endswith("End of answer.")
    log = attempts(simulator)
    assert log[-1]["api"] == "azure" and log[-1]["key_hint"] == "7777"


def test_anthropic_message_is_parsed_with_usage(simulator):
    m = ant(simulator).messages.create(model="sim-claude", max_tokens=256, messages=MESSAGES)
    assert m.model == "sim-claude"
    assert m.stop_reason == "end_turn"
    assert m.content[0].text.endswith("End of answer.")
    assert m.usage.output_tokens > 10


def test_anthropic_stream_helper_rebuilds_the_message(simulator):
    client = ant(simulator)
    whole = client.messages.create(model="sim-claude", max_tokens=256, messages=MESSAGES)
    with client.messages.stream(model="sim-claude", max_tokens=256, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == whole.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_anthropic_tool_use(simulator):
    m = ant(simulator).messages.create(
        model="sim-claude",
        max_tokens=256,
        messages=MESSAGES,
        tools=[{"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
    )
    assert m.stop_reason == "tool_use"
    assert m.content[0].type == "tool_use"
    assert m.content[0].input == {"q": "forty-two"}


def test_anthropic_errors_are_the_sdks_typed_errors(simulator):
    client = ant(simulator, max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="sim-rate-limited", max_tokens=10, messages=MESSAGES)
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model="sim-overloaded", max_tokens=10, messages=MESSAGES)
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="sim-context-length", max_tokens=10, messages=MESSAGES)
    assert "prompt is too long" in str(e.value)


def test_anthropic_stream_error_event_raises(simulator):
    client = ant(simulator, max_retries=0)
    start = time.monotonic()
    with pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(
            model="sim-claude", max_tokens=256, messages=MESSAGES,
            extra_headers={"x-sim-fault": "stream_error:after=2"},
        ) as s:
            for _ in s.text_stream:
                pass
    assert time.monotonic() - start < 30
