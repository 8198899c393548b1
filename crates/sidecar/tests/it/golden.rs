//! Golden translations, checked field by field: requests and answers in both directions, and
//! recorded streams, tool calls and structured output included; and Gemini and Bedrock, asked
//! in every client family's stead and answering back into each.

use plumb_sidecar::event::{Event, SseReader};
use plumb_sidecar::payload::Api;
use plumb_sidecar::translate::Conversation;
use plumb_sidecar::translate::answer;
use plumb_sidecar::translate::events::Translator;
use serde_json::{Map, Value};

fn golden(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Compares two JSON values and names the first path where they differ.
fn same(path: &str, got: &Value, want: &Value) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let mut keys: Vec<&String> = g.keys().chain(w.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                same(
                    &format!("{path}.{k}"),
                    g.get(k).unwrap_or(&Value::Null),
                    w.get(k).unwrap_or(&Value::Null),
                );
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: length");
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                same(&format!("{path}[{i}]"), a, b);
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn openai_request_with_tools_images_and_tool_results_becomes_anthropic() {
    let g = golden("openai_tools_to_anthropic.json");
    let c = Conversation::from_openai(&object(&g["input"])).unwrap();
    let out = c.to_anthropic(g["model"].as_str().unwrap()).unwrap();
    same("", &Value::Object(out), &g["expected"]);
}

#[test]
fn anthropic_request_with_tools_and_structured_output_becomes_openai() {
    let g = golden("anthropic_tools_to_openai.json");
    let c = Conversation::from_anthropic(&object(&g["input"])).unwrap();
    let out = c.to_openai(g["model"].as_str().unwrap()).unwrap();
    same("", &Value::Object(out), &g["expected"]);
}

#[test]
fn translation_round_trips_keep_the_conversation() {
    let g = golden("openai_tools_to_anthropic.json");
    let c = Conversation::from_openai(&object(&g["input"])).unwrap();
    let back = Conversation::from_anthropic(&c.to_anthropic("m").unwrap()).unwrap();
    assert_eq!(back.turns, c.turns);
    assert_eq!(back.tools, c.tools);
    assert_eq!(back.system.join("\n\n"), c.system.join("\n\n"));
}

#[test]
fn what_the_other_family_cannot_express_is_refused_by_name() {
    let refused = |api: Api, body: Value| {
        let b = object(&body);
        let c = match api {
            Api::Openai => Conversation::from_openai(&b).and_then(|c| c.to_anthropic("m")),
            Api::Anthropic => Conversation::from_anthropic(&b).and_then(|c| c.to_openai("m")),
            Api::Responses => Conversation::from_responses(&b).and_then(|c| c.to_anthropic("m")),
            Api::Gemini | Api::Bedrock => panic!("no client speaks gemini or bedrock"),
        };
        c.err().map(|e| e.field).unwrap_or_default()
    };
    let msgs = serde_json::json!([{"role": "user", "content": "hi"}]);
    assert_eq!(
        refused(
            Api::Openai,
            serde_json::json!({"model": "m", "messages": msgs, "logprobs": true})
        ),
        "logprobs"
    );
    assert_eq!(
        refused(
            Api::Openai,
            serde_json::json!({"model": "m", "messages": msgs, "n": 3})
        ),
        "n"
    );
    assert_eq!(
        refused(
            Api::Openai,
            serde_json::json!({"model": "m", "messages": msgs, "temperature": 1.5})
        ),
        "temperature above 1"
    );
    assert_eq!(
        refused(
            Api::Openai,
            serde_json::json!({"model": "m", "messages": msgs, "response_format": {"type": "json_object"}})
        ),
        "response_format json_object"
    );
    assert_eq!(
        refused(
            Api::Anthropic,
            serde_json::json!({"model": "m", "max_tokens": 5, "messages": msgs, "top_k": 5})
        ),
        "top_k"
    );
    assert_eq!(
        refused(
            Api::Anthropic,
            serde_json::json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]})
        ),
        "messages[0].content[0]: document block"
    );
}

#[test]
fn answers_translate_both_ways() {
    let g = golden("answer_anthropic_to_openai.json");
    same(
        "",
        &answer::anthropic_to_openai(
            &serde_json::from_value(g["input"].clone()).unwrap(),
            1_700_000_000,
        ),
        &g["expected"],
    );
    let g = golden("answer_openai_to_anthropic.json");
    same(
        "",
        &answer::openai_to_anthropic(&serde_json::from_value(g["input"].clone()).unwrap()),
        &g["expected"],
    );
}

fn run(upstream: Api, client: Api, file: &str) -> Vec<(Option<String>, String)> {
    translate(Translator::new(upstream, client, true, 1_700_000_000), file)
}

/// A recorded stream through `t`, fed in awkward pieces; the client's events.
fn translate(mut t: Translator, file: &str) -> Vec<(Option<String>, String)> {
    let text = std::fs::read(format!(
        "{}/tests/golden/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut reader = SseReader::default();
    // Feed it in awkward pieces: event boundaries must not matter.
    let mut out = Vec::new();
    for piece in text.chunks(7) {
        reader.push(piece);
        while let Some(ev) = reader.next_event() {
            out.extend(t.event(&ev, &Event::parse(t.upstream(), &ev)).unwrap());
        }
    }
    out.extend(t.finish().unwrap());
    let mut client_reader = SseReader::default();
    for b in out {
        client_reader.push(&b);
    }
    std::iter::from_fn(|| client_reader.next_event())
        .map(|e| (e.name, e.data))
        .collect()
}

#[test]
fn anthropic_stream_with_text_and_a_tool_call_becomes_openai_chunks() {
    let events = run(Api::Anthropic, Api::Openai, "stream_anthropic_tool.sse");
    let want = golden("stream_anthropic_tool.expected.json");
    let want = want.as_array().unwrap();
    assert_eq!(events.len(), want.len());
    for (i, ((name, data), w)) in events.iter().zip(want).enumerate() {
        assert!(name.is_none());
        if let Some(done) = w.as_str() {
            assert_eq!(data, done);
            continue;
        }
        let mut got: Value = serde_json::from_str(data).unwrap();
        assert_eq!(got["created"], 1_700_000_000);
        got.as_object_mut().unwrap().remove("created");
        same(&format!("[{i}]"), &got, w);
    }
}

#[test]
fn openai_stream_with_text_and_a_tool_call_becomes_anthropic_events() {
    let events = run(Api::Openai, Api::Anthropic, "stream_openai_tool.sse");
    let want = golden("stream_openai_tool.expected.json");
    let want = want.as_array().unwrap();
    assert_eq!(events.len(), want.len(), "{events:#?}");
    for (i, ((name, data), w)) in events.iter().zip(want).enumerate() {
        assert_eq!(name.as_deref(), w[0].as_str(), "[{i}] event name");
        same(
            &format!("[{i}]"),
            &serde_json::from_str(data).unwrap(),
            &w[1],
        );
    }
}

#[test]
fn a_stream_without_its_terminator_is_finalised_only_when_the_answer_finished() {
    let full = std::fs::read_to_string(format!(
        "{}/tests/golden/stream_openai_tool.sse",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let without_done = full.replace("data: [DONE]\n\n", "");
    let mut t = Translator::new(Api::Openai, Api::Openai, true, 0);
    let mut r = SseReader::default();
    r.push(without_done.as_bytes());
    while let Some(ev) = r.next_event() {
        t.event(&ev, &Event::parse(t.upstream(), &ev)).unwrap();
    }
    assert_eq!(
        t.finish().unwrap(),
        vec![bytes::Bytes::from_static(b"data: [DONE]\n\n")]
    );
    // Cut before the finish reason: not complete, no terminator invented.
    let cut: String = full
        .split("\n\n")
        .take(4)
        .map(|e| format!("{e}\n\n"))
        .collect();
    let mut t = Translator::new(Api::Openai, Api::Anthropic, true, 0);
    let mut r = SseReader::default();
    r.push(cut.as_bytes());
    while let Some(ev) = r.next_event() {
        t.event(&ev, &Event::parse(t.upstream(), &ev)).unwrap();
    }
    assert!(t.finish().is_err());
}

/// Ids Plumb makes up (`resp_plumb_…`, `msg_…`, `fc_…`, `rs_…`) and clocks, as placeholders.
fn placeholders(v: &mut Value) {
    match v {
        Value::String(s) => {
            let made_up = ["resp", "msg", "fc", "rs", "call"].iter().any(|kind| {
                let p = format!("{kind}_plumb_");
                s.strip_prefix(&p)
                    .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            });
            if made_up {
                *s = format!("{}<id>", &s[..s.rfind('_').unwrap_or(0) + 1]);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(placeholders),
        Value::Object(m) => m.values_mut().for_each(placeholders),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Compares with a golden file, or (with `PLUMB_BLESS=1`) writes it.
fn matches_golden(name: &str, got: &Value) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("PLUMB_BLESS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(got).unwrap() + "\n").unwrap();
    }
    same("", got, &golden(name));
}

#[test]
fn a_responses_request_becomes_chat_completions_and_anthropic_messages() {
    let g = golden("responses_request.json");
    let c = Conversation::from_responses(&object(&g["input"])).unwrap();
    let model = g["model"].as_str().unwrap();
    let both = serde_json::json!({
        "openai": c.to_openai(model).unwrap(),
        "anthropic": c.to_anthropic(model).unwrap(),
    });
    matches_golden("responses_request.expected.json", &both);
    // What depends on OpenAI's servers is refused by name.
    let refused = |extra: Value| {
        let mut body = object(&serde_json::json!({"model": "m", "input": "hi"}));
        body.extend(object(&extra));
        Conversation::from_responses(&body).err().map(|e| e.field)
    };
    for (extra, field) in [
        (
            serde_json::json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            serde_json::json!({"conversation": "conv_1"}),
            "conversation",
        ),
        (serde_json::json!({"background": true}), "background"),
        (
            serde_json::json!({"tools": [{"type": "web_search"}]}),
            "tools[0] (the built-in tool web_search)",
        ),
        (
            serde_json::json!({"include": ["file_search_call.results"]}),
            "include[0] file_search_call.results",
        ),
    ] {
        assert_eq!(refused(extra).as_deref(), Some(field));
    }
}

#[test]
fn whole_answers_of_both_families_become_responses() {
    use plumb_sidecar::translate::responses::{Echo, outgoing};
    let echo = Echo::of(&object(
        &serde_json::json!({"instructions": "Be brief.", "max_output_tokens": 300}),
    ));
    let chat = golden("answer_openai_to_anthropic.json");
    let anthropic = golden("answer_anthropic_to_openai.json");
    let mut got = serde_json::json!({
        "from_chat": outgoing::from_chat(&serde_json::from_value(chat["input"].clone()).unwrap(), &echo, 1_700_000_000),
        "from_anthropic": outgoing::from_anthropic(&serde_json::from_value(anthropic["input"].clone()).unwrap(), &echo, 1_700_000_000),
    });
    placeholders(&mut got);
    matches_golden("answers_to_responses.expected.json", &got);
}

#[test]
fn streams_of_both_families_become_the_responses_event_sequence() {
    use plumb_sidecar::translate::responses::Echo;
    let mut got = serde_json::Map::new();
    for (upstream, file) in [
        (Api::Openai, "stream_openai_tool.sse"),
        (Api::Anthropic, "stream_anthropic_tool.sse"),
    ] {
        let t = Translator::to_responses(upstream, Echo::default(), 1_700_000_000);
        let events: Vec<Value> = translate(t, file)
            .into_iter()
            .enumerate()
            .map(|(i, (name, data))| {
                let data: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(
                    name.as_deref(),
                    data["type"].as_str(),
                    "[{i}] named by its type"
                );
                assert_eq!(
                    data["sequence_number"],
                    serde_json::json!(i),
                    "[{i}] numbered in order"
                );
                data
            })
            .collect();
        got.insert(file.to_owned(), Value::Array(events));
    }
    let mut got = Value::Object(got);
    placeholders(&mut got);
    matches_golden("streams_to_responses.expected.json", &got);
}

#[test]
fn requests_of_every_client_family_become_gemini_requests() {
    let mut got = serde_json::Map::new();
    for (file, api) in [
        ("openai_tools_to_anthropic.json", Api::Openai),
        ("anthropic_tools_to_openai.json", Api::Anthropic),
        ("responses_request.json", Api::Responses),
    ] {
        let input = object(&golden(file)["input"]);
        let c = match api {
            Api::Openai => Conversation::from_openai(&input),
            Api::Anthropic => Conversation::from_anthropic(&input),
            Api::Responses => Conversation::from_responses(&input),
            Api::Gemini | Api::Bedrock => panic!("no client speaks gemini or bedrock"),
        }
        .unwrap();
        // What Gemini cannot say is named, as for the other families.
        let out = match c.to_gemini() {
            Ok(body) => Value::Object(body),
            Err(e) => serde_json::json!({"refused": e.field}),
        };
        got.insert(file.to_owned(), out);
    }
    // The OpenAI request without what Gemini refuses in it.
    let mut input = object(&golden("openai_tools_to_anthropic.json")["input"]);
    input.remove("parallel_tool_calls");
    input.remove("user");
    let c = Conversation::from_openai(&input).unwrap();
    got.insert(
        "openai_tools_to_anthropic.json without parallel_tool_calls and user".to_owned(),
        Value::Object(c.to_gemini().unwrap()),
    );
    matches_golden("gemini_requests.expected.json", &Value::Object(got));
}

#[test]
fn a_gemini_answer_becomes_each_client_familys_answer() {
    use plumb_sidecar::translate::gemini;
    use plumb_sidecar::translate::responses::{Echo, outgoing};
    let g: plumb_sidecar::event::gemini::Response =
        serde_json::from_value(golden("answer_gemini.json")).unwrap();
    let chat = gemini::to_chat(&g, 1_700_000_000);
    let echo = Echo::of(&object(&serde_json::json!({"max_output_tokens": 300})));
    let mut got = serde_json::json!({
        "openai": serde_json::to_value(&chat).unwrap(),
        "anthropic": answer::openai_to_anthropic(&chat),
        "responses": outgoing::from_chat(&chat, &echo, 1_700_000_000),
    });
    placeholders(&mut got);
    matches_golden("answer_gemini.expected.json", &got);
}

#[test]
fn a_recorded_gemini_stream_becomes_each_client_familys_stream() {
    use plumb_sidecar::translate::responses::Echo;
    let mut got = serde_json::Map::new();
    for (client, t) in [
        (
            "openai",
            Translator::new(Api::Gemini, Api::Openai, true, 1_700_000_000),
        ),
        (
            "anthropic",
            Translator::new(Api::Gemini, Api::Anthropic, false, 1_700_000_000),
        ),
        (
            "responses",
            Translator::to_responses(Api::Gemini, Echo::default(), 1_700_000_000),
        ),
    ] {
        let events: Vec<Value> = translate(t, "stream_gemini_tool.sse")
            .into_iter()
            .map(|(name, data)| {
                serde_json::json!({
                    "event": name,
                    "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::String(data)),
                })
            })
            .collect();
        got.insert(client.to_owned(), Value::Array(events));
    }
    let mut got = Value::Object(got);
    placeholders(&mut got);
    matches_golden("stream_gemini_tool.expected.json", &got);
}

#[test]
fn requests_of_every_client_family_become_bedrock_converse_requests() {
    const CLAUDE: &str = "us.anthropic.claude-sonnet-4-20250514-v1:0";
    let mut got = serde_json::Map::new();
    for (file, api) in [
        ("openai_tools_to_anthropic.json", Api::Openai),
        ("anthropic_tools_to_openai.json", Api::Anthropic),
        ("responses_request.json", Api::Responses),
    ] {
        let input = object(&golden(file)["input"]);
        let c = match api {
            Api::Openai => Conversation::from_openai(&input),
            Api::Anthropic => Conversation::from_anthropic(&input),
            Api::Responses => Conversation::from_responses(&input),
            Api::Gemini | Api::Bedrock => panic!("no client speaks gemini or bedrock"),
        }
        .unwrap();
        // What Converse cannot say is named, as for the other families.
        let out = match c.to_bedrock(CLAUDE) {
            Ok(body) => Value::Object(body),
            Err(e) => serde_json::json!({"refused": e.field}),
        };
        got.insert(file.to_owned(), out);
    }
    // The requests without what Converse refuses in them.
    let mut input = object(&golden("openai_tools_to_anthropic.json")["input"]);
    input.remove("parallel_tool_calls");
    input.remove("user");
    let c = Conversation::from_openai(&input).unwrap();
    got.insert(
        "openai_tools_to_anthropic.json without parallel_tool_calls and user".to_owned(),
        c.to_bedrock(CLAUDE)
            .map_or_else(|e| serde_json::json!({"refused": e.field}), Value::Object),
    );
    let mut input = object(&golden("anthropic_tools_to_openai.json")["input"]);
    input.remove("output_format");
    let c = Conversation::from_anthropic(&input).unwrap();
    got.insert(
        "anthropic_tools_to_openai.json without output_format".to_owned(),
        c.to_bedrock(CLAUDE)
            .map_or_else(|e| serde_json::json!({"refused": e.field}), Value::Object),
    );
    matches_golden("bedrock_requests.expected.json", &Value::Object(got));
}

#[test]
fn a_converse_answer_becomes_each_client_familys_answer() {
    use plumb_sidecar::translate::bedrock;
    use plumb_sidecar::translate::responses::{Echo, outgoing};
    let b: plumb_sidecar::event::bedrock::Response =
        serde_json::from_value(golden("answer_bedrock.json")).unwrap();
    let chat = bedrock::to_chat(&b, "anthropic.claude-sonnet-4-20250514-v1:0", 1_700_000_000);
    let echo = Echo::of(&object(&serde_json::json!({"max_output_tokens": 300})));
    let mut got = serde_json::json!({
        "openai": serde_json::to_value(&chat).unwrap(),
        "anthropic": answer::openai_to_anthropic(&chat),
        "responses": outgoing::from_chat(&chat, &echo, 1_700_000_000),
    });
    placeholders(&mut got);
    matches_golden("answer_bedrock.expected.json", &got);
}

#[test]
fn a_recorded_converse_stream_becomes_each_client_familys_stream() {
    use plumb_sidecar::translate::responses::Echo;
    let model = "anthropic.claude-sonnet-4-20250514-v1:0";
    let mut got = serde_json::Map::new();
    for (client, t) in [
        (
            "openai",
            Translator::new(Api::Bedrock, Api::Openai, true, 1_700_000_000),
        ),
        (
            "anthropic",
            Translator::new(Api::Bedrock, Api::Anthropic, false, 1_700_000_000),
        ),
        (
            "responses",
            Translator::to_responses(Api::Bedrock, Echo::default(), 1_700_000_000),
        ),
    ] {
        let events: Vec<Value> = translate(t.naming(model), "stream_bedrock_tool.sse")
            .into_iter()
            .map(|(name, data)| {
                serde_json::json!({
                    "event": name,
                    "data": serde_json::from_str::<Value>(&data).unwrap_or(Value::String(data)),
                })
            })
            .collect();
        got.insert(client.to_owned(), Value::Array(events));
    }
    let mut got = Value::Object(got);
    placeholders(&mut got);
    matches_golden("stream_bedrock_tool.expected.json", &got);
}
