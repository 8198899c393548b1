//! Gemini as a target: OpenAI, Anthropic and Responses clients fail over to it and back,
//! whole and streamed, tool calls and structured output included; every Google error shape
//! gets its class; the simulator's attempt log is the witness (the Gemini wire, the key in
//! `x-goog-api-key`, how many attempts, how far apart).

use serde_json::{Value, json};

use crate::support::{
    Sidecar, anthropic_stream_text, attempts, client, header, openai_text, parse_sse, plan,
    read_all, route, simulator, target,
};

/// The Gemini target's key, in Google's shape.
const GEMINI_KEY: &str = "AIzaSyPlumbTest-0123456789abcdefghijk";

const QUESTION: &str = "what is six times seven";

fn gemini(sim: &plumb_simulator::Simulator, name: &str, model: &str, extra: &str) -> String {
    target(name, "gemini", &sim.base_url(), model, extra)
        .replace("{none: true}", "{env: PLUMB_GEMINI_KEY}")
}

fn start(routes: &str) -> Sidecar {
    Sidecar::start_with_env_and_args(routes, &[("PLUMB_GEMINI_KEY", GEMINI_KEY)], &[])
}

/// An OpenAI primary (`sim-gpt`, failing as planned) and Gemini behind it.
fn openai_then_gemini(sim: &plumb_simulator::Simulator) -> String {
    route(
        "chat",
        &[
            target(
                "gpt",
                "openai",
                &format!("{}/v1", sim.base_url()),
                "sim-gpt",
                "",
            ),
            gemini(sim, "gemini", "sim-gemini", "      priority: 1\n"),
        ],
        "  classes: {overloaded: {retries: 0}}\n",
    )
}

/// A request of `family` (`openai`, `anthropic` or `responses`) with `extra` fields.
pub(crate) fn ask(
    sc: &Sidecar,
    family: &str,
    stream: bool,
    extra: Value,
) -> reqwest::RequestBuilder {
    let mut body = match family {
        "openai" => json!({"model": "chat", "stream": stream,
            "messages": [{"role": "user", "content": QUESTION}]}),
        "anthropic" => json!({"model": "chat", "stream": stream, "max_tokens": 300,
            "messages": [{"role": "user", "content": QUESTION}]}),
        _ => json!({"model": "chat", "stream": stream, "input": QUESTION}),
    };
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    match family {
        "openai" => sc.openai(body),
        "anthropic" => sc.anthropic(body),
        _ => client()
            .post(format!("{}/v1/responses", sc.url))
            .bearer_auth("sk-caller-key-1111")
            .json(&body),
    }
}

/// What a client was told, read from its own format: the text, the model, the output tokens.
pub(crate) async fn told(
    family: &str,
    stream: bool,
    r: reqwest::Response,
) -> (String, String, u64) {
    if !stream {
        let v: Value = r.json().await.unwrap();
        return match family {
            "openai" => {
                assert_eq!(v["object"], "chat.completion");
                (
                    v["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    v["model"].as_str().unwrap().to_owned(),
                    v["usage"]["completion_tokens"].as_u64().unwrap(),
                )
            }
            "anthropic" => {
                assert_eq!(v["type"], "message");
                (
                    v["content"][0]["text"].as_str().unwrap().to_owned(),
                    v["model"].as_str().unwrap().to_owned(),
                    v["usage"]["output_tokens"].as_u64().unwrap(),
                )
            }
            _ => {
                assert_eq!(v["status"], "completed");
                (
                    v["output"][0]["content"][0]["text"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    v["model"].as_str().unwrap().to_owned(),
                    v["usage"]["output_tokens"].as_u64().unwrap(),
                )
            }
        };
    }
    let (text, err) = read_all(r).await;
    assert!(err.is_none(), "{family}: {err:?}");
    let events = parse_sse(&text);
    let json: Vec<Value> = events.iter().filter_map(|e| e.json()).collect();
    match family {
        "openai" => {
            assert_eq!(events.last().unwrap().data, "[DONE]");
            // Usage only when the client asked for it.
            let usage = json.iter().rev().find(|c| c["usage"].is_object());
            (
                openai_text(&events),
                json[0]["model"].as_str().unwrap().to_owned(),
                usage.map_or(0, |u| u["usage"]["completion_tokens"].as_u64().unwrap()),
            )
        }
        "anthropic" => {
            assert_eq!(
                events.last().unwrap().event.as_deref(),
                Some("message_stop")
            );
            let delta = json.iter().find(|e| e["type"] == "message_delta").unwrap();
            (
                anthropic_stream_text(&events),
                json[0]["message"]["model"].as_str().unwrap().to_owned(),
                delta["usage"]["output_tokens"].as_u64().unwrap(),
            )
        }
        _ => {
            let done = json.last().unwrap();
            assert_eq!(done["type"], "response.completed", "{text}");
            let deltas: String = json
                .iter()
                .filter(|e| e["type"] == "response.output_text.delta")
                .filter_map(|e| e["delta"].as_str())
                .collect();
            (
                deltas,
                done["response"]["model"].as_str().unwrap().to_owned(),
                done["response"]["usage"]["output_tokens"].as_u64().unwrap(),
            )
        }
    }
}

#[tokio::test]
async fn every_client_family_fails_over_to_gemini_whole_and_streamed() {
    let sim = simulator().await;
    let sc = start(&openai_then_gemini(&sim));
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "unavailable", "first": 100}),
    );
    let mut asked = 0;
    for family in ["openai", "anthropic", "responses"] {
        for stream in [false, true] {
            let extra = if family == "openai" && stream {
                json!({"stream_options": {"include_usage": true}})
            } else {
                json!({})
            };
            let r = ask(&sc, family, stream, extra).send().await.unwrap();
            assert_eq!(r.status(), 200, "{family}, stream={stream}");
            assert_eq!(header(&r, "x-plumb-served-by"), "gemini");
            // The first request finds the primary overloaded; the next ones skip it while it
            // backs off.
            if asked == 0 {
                assert_eq!(header(&r, "x-plumb-failure-classes"), "overloaded");
            }
            let (text, model, tokens) = told(family, stream, r).await;
            assert!(
                text.ends_with("End of answer."),
                "{family}, stream={stream}: {text}"
            );
            assert_eq!(model, "sim-gemini", "{family}, stream={stream}");
            assert!(tokens > 10, "{family}, stream={stream}: usage counted");
            asked += 1;
        }
    }
    let log = attempts(&sim, "sim-gemini").await;
    assert_eq!(log.len(), asked);
    for (i, a) in log.iter().enumerate() {
        assert_eq!(a.api, plumb_simulator::Api::Gemini, "translated to Gemini");
        assert_eq!(a.stream, i % 2 == 1, "streamGenerateContent for streams");
        assert_eq!(
            a.key_hint.as_deref(),
            Some(&GEMINI_KEY[GEMINI_KEY.len() - 4..]),
            "the target's key, in x-goog-api-key"
        );
    }
}

#[tokio::test]
async fn gemini_failing_fails_over_back_to_openai() {
    let sim = simulator().await;
    let routes = route(
        "chat",
        &[
            gemini(&sim, "gemini", "sim-gemini", ""),
            target(
                "gpt",
                "openai",
                &format!("{}/v1", sim.base_url()),
                "sim-gpt",
                "      priority: 1\n",
            ),
        ],
        "  classes: {serverError: {retries: 0}}\n",
    );
    for family in ["openai", "anthropic", "responses"] {
        for stream in [false, true] {
            // A fresh sidecar each time: one that saw Gemini fail prefers the other target
            // for a while, and would not ask it at all.
            let sc = start(&routes);
            plan(
                &sim,
                "sim-gemini",
                json!({"fault": "server_error", "first": 1}),
            );
            let r = ask(&sc, family, stream, json!({})).send().await.unwrap();
            assert_eq!(r.status(), 200, "{family}, stream={stream}");
            assert_eq!(header(&r, "x-plumb-served-by"), "gpt");
            assert_eq!(header(&r, "x-plumb-failure-classes"), "server_error");
            let (text, model, _) = told(family, stream, r).await;
            assert!(text.ends_with("End of answer."));
            assert_eq!(model, "sim-gpt");
        }
    }
    let log = attempts(&sim, "sim-gemini").await;
    assert_eq!(log.len(), 6);
    assert!(log.iter().all(|a| a.status == 500));
}

#[tokio::test]
async fn tool_calls_and_structured_output_come_back_from_gemini_in_each_clients_format() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "unavailable", "first": 100}),
    );
    let sc = start(&openai_then_gemini(&sim));
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let weather = |v: &str| {
        let args: Value = serde_json::from_str(v).unwrap();
        assert!(args["city"].is_string(), "{args}");
    };
    // OpenAI: a forced function, whole and streamed.
    let tools =
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": schema}}]);
    let v: Value = ask(
        &sc,
        "openai",
        false,
        json!({"tools": tools, "tool_choice": "required"}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    weather(call["function"]["arguments"].as_str().unwrap());
    let (text, _) = read_all(
        ask(
            &sc,
            "openai",
            true,
            json!({"tools": tools, "tool_choice": "required"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let chunks: Vec<Value> = parse_sse(&text).iter().filter_map(|e| e.json()).collect();
    let args: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments"))
        .filter_map(Value::as_str)
        .collect();
    weather(&args);
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    // Anthropic: tool_choice any.
    let v: Value = ask(
        &sc,
        "anthropic",
        false,
        json!({"tools": [{"name": "get_weather", "input_schema": schema}], "tool_choice": {"type": "any"}}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    assert_eq!(block["name"], "get_weather");
    weather(&block["input"].to_string());
    // Responses: a function call item.
    let v: Value = ask(
        &sc,
        "responses",
        false,
        json!({"tools": [{"type": "function", "name": "get_weather", "parameters": schema}], "tool_choice": "required"}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let item = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap();
    assert_eq!(item["name"], "get_weather");
    weather(item["arguments"].as_str().unwrap());
    // Structured output, asked in each family's words, answered by Gemini's responseJsonSchema.
    let n = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": false});
    let number = |text: &str| {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(v["n"].is_i64(), "{v}");
    };
    for (family, extra) in [
        (
            "openai",
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": n, "strict": true}}}),
        ),
        (
            "anthropic",
            json!({"output_format": {"type": "json_schema", "schema": n}}),
        ),
        (
            "responses",
            json!({"text": {"format": {"type": "json_schema", "name": "n", "schema": n}}}),
        ),
    ] {
        for stream in [false, true] {
            let r = ask(&sc, family, stream, extra.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(header(&r, "x-plumb-served-by"), "gemini");
            let (text, _, _) = told(family, stream, r).await;
            number(&text);
        }
    }
    let log = attempts(&sim, "sim-gemini").await;
    assert_eq!(log.len(), 10);
    assert!(
        log.iter()
            .all(|a| a.api == plumb_simulator::Api::Gemini && a.status == 200)
    );
}

/// One route per case (`case-N`), each with its own Gemini model `g-N`, so one case's rate
/// window or open breaker cannot touch another.
fn cases(sim: &plumb_simulator::Simulator, n: usize) -> String {
    (0..n)
        .map(|i| {
            route(
                &format!("case-{i}"),
                &[gemini(sim, "gemini", &format!("g-{i}"), "")],
                "  classes: {rateLimited: {retries: 0}, overloaded: {retries: 0}, serverError: {retries: 0}, malformedResponse: {retries: 0}}\n",
            )
            .replace("name: r,", &format!("name: case-{i},"))
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[tokio::test]
async fn every_google_error_shape_gets_its_class_with_one_attempt() {
    let sim = simulator().await;
    // (fault, streamed, class, status the simulator sent)
    let table = [
        ("rate_limited:retry_after=30", false, "rate_limited", 429),
        ("unauthorized", false, "auth", 400),
        ("forbidden", false, "auth", 403),
        ("model_not_found", false, "invalid_model", 404),
        ("context_length", false, "context_length", 400),
        ("server_error", false, "server_error", 500),
        ("unavailable", false, "overloaded", 503),
        ("overloaded", true, "overloaded", 503),
        ("content_filter", false, "content_filter", 200),
        ("content_filter", true, "content_filter", 200),
        ("empty_content", false, "malformed_response", 200),
        ("broken_json", false, "malformed_response", 200),
        ("stream_error:after=0", true, "overloaded", 200),
        ("malformed_event:at=0", true, "malformed_response", 200),
        ("stream_cut:after=0", true, "malformed_response", 200),
    ];
    let sc = start(&cases(&sim, table.len()));
    for (i, (fault, stream, class, status)) in table.iter().enumerate() {
        let model = format!("g-{i}");
        plan(&sim, &model, json!({"fault": fault, "first": 1}));
        let r = sc
            .openai(json!({"model": format!("case-{i}"), "stream": stream,
                "messages": [{"role": "user", "content": QUESTION}]}))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 200, "{fault}");
        assert_eq!(header(&r, "x-plumb-failure-classes"), *class, "{fault}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{fault}: {v}"
        );
        let log = attempts(&sim, &model).await;
        assert_eq!(log.len(), 1, "{fault}: no retry");
        assert_eq!(log[0].status, *status, "{fault}");
        assert_eq!(log[0].api, plumb_simulator::Api::Gemini);
    }
}

#[tokio::test]
async fn googles_retry_delay_is_honoured_before_asking_again() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gemini",
        json!({"fault": "rate_limited:retry_after=2", "first": 1}),
    );
    let sc = start(&route(
        "chat",
        &[gemini(&sim, "gemini", "sim-gemini", "")],
        "",
    ));
    let r = ask(&sc, "openai", false, json!({})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-attempts"), "2");
    assert_eq!(header(&r, "x-plumb-failure-classes"), "rate_limited");
    let log = attempts(&sim, "sim-gemini").await;
    assert_eq!(log.len(), 2);
    assert!(
        log[1].at_ms - log[0].at_ms >= 2000.0,
        "asked again {} ms after a 2 s RetryInfo",
        log[1].at_ms - log[0].at_ms
    );
}

#[tokio::test]
async fn a_gemini_stream_cut_after_commit_ends_with_an_error_event_never_as_complete() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gemini",
        json!({"fault": "stream_cut:after=5", "first": 1}),
    );
    let sc = start(&route(
        "chat",
        &[gemini(&sim, "gemini", "sim-gemini", "")],
        "  streaming: {holdEvents: 1}\n",
    ));
    let (text, _) = read_all(ask(&sc, "openai", true, json!({})).send().await.unwrap()).await;
    let events = parse_sse(&text);
    assert!(
        !openai_text(&events).is_empty(),
        "the start reached the client"
    );
    assert!(events.iter().all(|e| e.data != "[DONE]"), "{text}");
    let last = events.iter().rev().find_map(|e| e.json()).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{text}");
    let (text, _) = read_all(ask(&sc, "anthropic", true, json!({})).send().await.unwrap()).await;
    // Healthy again: the whole answer, then the end.
    assert!(anthropic_stream_text(&parse_sse(&text)).ends_with("End of answer."));
}
