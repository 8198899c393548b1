"""The official openai SDK's Responses API through the sidecar: `responses.create`, `.stream`,
`.parse` and a function-calling round trip, passed through to an OpenAI target or translated for
Chat Completions and Anthropic targets; a failover from OpenAI to Claude the client does not
notice; and each typed error."""

import json
import urllib.request

import openai
import pytest
from pydantic import BaseModel

from conftest import Process, binary

QUESTION = "what is six times seven"
WEATHER = [{"type": "function", "name": "get_weather", "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"], "additionalProperties": False}, "strict": True}]


def routes(sim_url):
    def target(name, provider, base, model, priority=0):
        return (f"    - {{name: {name}, provider: {provider}, baseUrl: '{base}', model: {model}, "
                f"priority: {priority}, credentials: {{none: true}}}}\n")

    def route(name, targets):
        return ("apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\n"
                f"metadata: {{name: {name}}}\nspec:\n  match: {{models: [{name}]}}\n  targets:\n"
                + "".join(targets))

    v1 = f"{sim_url}/v1"
    return "---\n".join([
        # Passed through as it is.
        route("gpt", [target("gpt", "openai", v1, "sim-gpt")]),
        # A failing OpenAI target, then Claude: translated both ways.
        route("gpt-to-claude", [
            target("gpt", "openai", v1, "sim-unavailable"),
            target("claude", "anthropic", sim_url, "sim-claude", 1)]),
        # An OpenAI-compatible server (Chat Completions) with a reasoning model.
        route("compatible", [target("vllm", "openai-compatible", v1, "sim-gpt-reasoner")]),
        route("claude-only", [target("claude", "anthropic", sim_url, "sim-claude")]),
        route("doomed", [target("only", "openai", v1, "sim-rate-limited-bare")]),
        route("overloaded", [target("only", "openai", v1, "sim-overloaded")]),
        route("too-long", [target("only", "openai", v1, "sim-context-length")]),
        route("cut", [target("only", "openai", v1, "sim-stream-cut")]),
        route("hangs", [target("only", "openai", v1, "sim-hang")])
        + "  deadlines: {firstByte: 1s, total: 2s}\n",
        route("own-key", [
            "    - {name: own, provider: openai, baseUrl: '" + v1 + "', model: sim-unauthorized, "
            "credentials: {passthrough: true}}\n"]),
    ])


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


def client(sc):
    return openai.OpenAI(base_url=f"{sc.url}/v1", api_key="sk-app-key-0001")


@pytest.mark.parametrize("model", ["gpt", "gpt-to-claude", "compatible"])
def test_responses_create(sidecar, model):
    raw = client(sidecar).responses.with_raw_response.create(
        model=model, input=QUESTION, instructions="Answer briefly.")
    r = raw.parse()
    assert r.status == "completed"
    assert r.output_text.endswith("End of answer.")
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert raw.headers["x-plumb-route"] == f"default/{model}"
    if model == "gpt-to-claude":
        # The failover is invisible but for the headers.
        assert raw.headers["x-plumb-served-by"] == "claude"
        assert raw.headers["x-plumb-failure-classes"].startswith("overloaded")
        assert r.model == "sim-claude"
        assert r.instructions == "Answer briefly."
    if model == "compatible":
        # A reasoning model's thinking is a reasoning item before the message.
        assert [o.type for o in r.output] == ["reasoning", "message"]
        assert r.output[0].content[0].text.startswith("Thinking it over")


@pytest.mark.parametrize("model", ["gpt", "gpt-to-claude", "compatible"])
def test_responses_stream_events_and_final_response(sidecar, model):
    whole = client(sidecar).responses.create(model=model, input=QUESTION)
    types = []
    with client(sidecar).responses.stream(model=model, input=QUESTION) as stream:
        for event in stream:
            types.append(event.type)
        final = stream.get_final_response()
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    for kind in ["response.output_item.added", "response.content_part.added",
                 "response.output_text.delta", "response.output_text.done",
                 "response.content_part.done", "response.output_item.done"]:
        assert kind in types, (kind, types)
    assert final.output_text == whole.output_text
    assert final.usage.output_tokens == whole.usage.output_tokens


class Answer(BaseModel):
    answer: str
    score: float


@pytest.mark.parametrize("model", ["gpt", "gpt-to-claude", "compatible"])
def test_responses_parse_with_a_pydantic_model(sidecar, model):
    r = client(sidecar).responses.parse(model=model, input=QUESTION, text_format=Answer)
    assert isinstance(r.output_parsed, Answer)
    assert r.output_parsed.answer
    # The schema reached the simulator, which answered to it.
    sim_model = {"gpt": "sim-gpt", "gpt-to-claude": "sim-claude", "compatible": "sim-gpt-reasoner"}[model]
    assert attempts(sidecar.simulator, sim_model)[-1]["status"] == 200


@pytest.mark.parametrize("model", ["gpt", "gpt-to-claude", "compatible"])
def test_a_function_calling_round_trip(sidecar, model):
    c = client(sidecar)
    first = c.responses.create(model=model, input=[{"role": "user", "content": "weather in Paris?"}],
                               tools=WEATHER)
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert set(json.loads(calls[0].arguments)) == {"city"}
    # The call and its output go back as input items, as an agent loop sends them.
    second = c.responses.create(
        model=model, tools=WEATHER,
        input=[{"role": "user", "content": "weather in Paris?"}, *[o.model_dump(exclude_none=True) for o in first.output],
               {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"}])
    assert second.output_text.endswith("End of answer.")
    # Streamed: the arguments arrive as deltas and the final response holds the call.
    with c.responses.stream(model=model, input="weather in Paris?", tools=WEATHER) as stream:
        deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    call = next(o for o in final.output if o.type == "function_call")
    assert "".join(deltas) == call.arguments


def test_a_failover_from_openai_to_claude_is_not_noticed_streamed(sidecar):
    c = client(sidecar)
    with c.responses.stream(model="gpt-to-claude", input=QUESTION) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text.endswith("End of answer.")
    assert final.output_text == text
    assert final.model == "sim-claude"
    assert len(attempts(sidecar.simulator, "sim-unavailable")) >= 1


def test_each_typed_error(sidecar):
    c = client(sidecar)
    with pytest.raises(openai.RateLimitError) as e:
        c.responses.create(model="doomed", input=QUESTION)
    assert e.value.status_code == 429
    assert e.value.response.headers["x-should-retry"] == "false"
    assert "no target of the route could answer" in e.value.message
    with pytest.raises(openai.InternalServerError) as e:
        c.responses.create(model="overloaded", input=QUESTION)
    assert e.value.status_code == 503
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="too-long", input=QUESTION)
    assert e.value.code == "context_length"
    with pytest.raises(openai.AuthenticationError) as e:
        c.responses.create(model="own-key", input=QUESTION)
    assert e.value.status_code == 401
    with pytest.raises(openai.InternalServerError) as e:
        c.responses.create(model="hangs", input=QUESTION)
    assert e.value.status_code == 504 and e.value.code == "timeout"
    with pytest.raises(openai.NotFoundError) as e:
        c.responses.create(model="no-such-route", input=QUESTION)
    assert "no-such-route" in e.value.message
    # A built-in tool runs on OpenAI's servers: a Claude-only route cannot take it, and says so.
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="claude-only", input=QUESTION, tools=[{"type": "web_search"}])
    assert "web_search" in e.value.message and "claude" in e.value.message
    # A response Plumb translated was never stored: continuing it by id is refused clearly.
    translated = c.responses.create(model="gpt-to-claude", input=QUESTION)
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="gpt-to-claude", input="and seven times six?",
                           previous_response_id=translated.id)
    assert "send the conversation so far" in e.value.message
    # State an OpenAI account keeps never fails over to a target that cannot see it.
    with pytest.raises(openai.InternalServerError) as e:
        c.responses.create(model="gpt-to-claude", input="and more?", previous_response_id="resp_abc123")
    assert "claude: skipped (the request's previous_response_id is state an OpenAI account keeps" in e.value.message
    assert not [a for a in attempts(sidecar.simulator, "sim-claude") if a.get("api") == "responses"]


def test_stored_responses_are_retrieved_from_the_openai_account_that_holds_them(simulator, tmp_path):
    # Two OpenAI accounts (two simulators): a response lives in one; Plumb asks each in turn.
    other = Process([binary("plumb-simulator"), "--listen", "127.0.0.1:0"])
    try:
        path = tmp_path / "routes.yaml"
        path.write_text(
            routes(simulator.url) + "---\n"
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: second}\n"
            f"spec:\n  match: {{models: [second]}}\n  targets:\n"
            f"    - {{name: account-b, provider: openai, baseUrl: '{other.url}/v1', model: sim-gpt, credentials: {{none: true}}}}\n")
        sc = Process([binary("plumb-sidecar"), "--routes", str(path),
                      "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        try:
            c = client(sc)
            made = c.responses.create(model="second", input=QUESTION)
            raw = c.responses.with_raw_response.retrieve(made.id)
            got = raw.parse()
            assert got.id == made.id and got.output_text == made.output_text
            assert raw.headers["x-plumb-served-by"] == "account-b"
            # Background mode: queued at once, polled until done, through the same endpoint.
            job = c.responses.create(model="second", input=QUESTION, background=True)
            assert job.status == "queued"
            assert c.responses.retrieve(job.id).status == "completed"
            assert c.responses.delete(made.id) is None
            with pytest.raises(openai.NotFoundError) as e:
                c.responses.retrieve(made.id)
            assert "no OpenAI account of the routes answered" in e.value.message
            # A response Plumb translated was stored nowhere, and says so.
            translated = c.responses.create(model="gpt-to-claude", input=QUESTION)
            with pytest.raises(openai.NotFoundError) as e:
                c.responses.retrieve(translated.id)
            assert "no provider stored it" in e.value.message
        finally:
            sc.stop()
    finally:
        other.stop()


def test_a_stream_cut_after_commit_ends_as_a_failure_the_sdk_sees_never_as_a_success(sidecar):
    with client(sidecar).responses.stream(model="cut", input=QUESTION) as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match="response.completed"):
            stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"], kinds
    assert events[-2].code == "stream_interrupted"
    assert events[-1].response.error.code == "stream_interrupted"
    assert "response.completed" not in kinds
