//! Bedrock as a target: OpenAI, Anthropic and Responses clients fail over to it and back,
//! whole and streamed (ConverseStream's binary event stream included); every Bedrock error
//! shape gets its class, in a head or mid-stream; a cut inside a frame never reaches a client
//! as a complete answer; structured output skips Bedrock by name; and every credential flow —
//! a Bedrock API key, SigV4 with environment keys, web identity through STS, the
//! container-credentials endpoint — works end to end against the simulator, refresh included.
//! The simulator's attempt log is the witness.

use std::time::Duration;

use plumb_simulator::aws::{ACCESS_KEY_ID, CONTAINER_PATH, CONTAINER_TOKEN, SECRET_ACCESS_KEY};
use serde_json::{Value, json};

use crate::support::{
    Sidecar, anthropic_stream_text, attempts, client, header, openai_text, parse_sse, plan,
    read_all, route, simulator, target,
};

/// The Bedrock target's API key.
const BEDROCK_KEY: &str = "ABSKQmVkcm9ja0FQSUtleS1wbHVtYi10ZXN0LWtleQ==";
const CLAUDE: &str = "anthropic.sim-claude-v1:0";
const QUESTION: &str = "what is six times seven";

/// A Bedrock target on the simulator with `credentials`.
fn bedrock(
    sim: &plumb_simulator::Simulator,
    name: &str,
    model: &str,
    credentials: &str,
    extra: &str,
) -> String {
    target(
        name,
        "bedrock",
        &sim.base_url(),
        model,
        &format!("      region: us-east-1\n{extra}"),
    )
    .replace("{none: true}", credentials)
}

fn start(routes: &str) -> Sidecar {
    Sidecar::start_with_env_and_args(routes, &[("PLUMB_BEDROCK_KEY", BEDROCK_KEY)], &[])
}

/// An OpenAI primary (`sim-gpt`, failing as planned) and Bedrock behind it.
fn openai_then_bedrock(sim: &plumb_simulator::Simulator, credentials: &str) -> String {
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
            bedrock(sim, "bedrock", CLAUDE, credentials, "      priority: 1\n"),
        ],
        "  classes: {overloaded: {retries: 0}}\n",
    )
}

/// A request of `family` (`openai`, `anthropic` or `responses`) with `extra` fields.
fn ask(sc: &Sidecar, family: &str, stream: bool, extra: Value) -> reqwest::RequestBuilder {
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

/// The text and model a client was told, read from its own format.
async fn told(family: &str, stream: bool, r: reqwest::Response) -> (String, String) {
    if !stream {
        let v: Value = r.json().await.unwrap();
        return match family {
            "openai" => (
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                v["model"].as_str().unwrap().to_owned(),
            ),
            "anthropic" => (
                v["content"][0]["text"].as_str().unwrap().to_owned(),
                v["model"].as_str().unwrap().to_owned(),
            ),
            _ => {
                assert_eq!(v["status"], "completed");
                (
                    v["output"][0]["content"][0]["text"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    v["model"].as_str().unwrap().to_owned(),
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
            assert_eq!(events.last().unwrap().data, "[DONE]", "{text}");
            (
                openai_text(&events),
                json[0]["model"].as_str().unwrap().to_owned(),
            )
        }
        "anthropic" => {
            assert_eq!(
                events.last().unwrap().event.as_deref(),
                Some("message_stop")
            );
            (
                anthropic_stream_text(&events),
                json[0]["message"]["model"].as_str().unwrap().to_owned(),
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
            )
        }
    }
}

#[tokio::test]
async fn every_client_family_fails_over_to_bedrock_whole_and_streamed() {
    let sim = simulator().await;
    let sc = start(&openai_then_bedrock(&sim, "{env: PLUMB_BEDROCK_KEY}"));
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "unavailable", "first": 100}),
    );
    let mut asked = 0;
    for family in ["openai", "anthropic", "responses"] {
        for stream in [false, true] {
            let r = ask(&sc, family, stream, json!({})).send().await.unwrap();
            assert_eq!(r.status(), 200, "{family}, stream={stream}");
            assert_eq!(header(&r, "x-plumb-served-by"), "bedrock");
            if asked == 0 {
                assert_eq!(header(&r, "x-plumb-failure-classes"), "overloaded");
            }
            let (text, model) = told(family, stream, r).await;
            assert!(
                text.ends_with("End of answer."),
                "{family}, stream={stream}: {text}"
            );
            assert_eq!(model, CLAUDE, "{family}, stream={stream}");
            asked += 1;
        }
    }
    let log = attempts(&sim, CLAUDE).await;
    assert_eq!(log.len(), asked);
    for (i, a) in log.iter().enumerate() {
        assert_eq!(
            a.api,
            plumb_simulator::Api::Bedrock,
            "translated to Converse"
        );
        assert_eq!(a.stream, i % 2 == 1, "converse-stream for streams");
        assert_eq!(a.status, 200);
        assert_eq!(
            a.key_hint.as_deref(),
            Some(&BEDROCK_KEY[BEDROCK_KEY.len() - 4..]),
            "the Bedrock API key, as a bearer token"
        );
    }
}

#[tokio::test]
async fn bedrock_failing_fails_over_back_to_openai() {
    let sim = simulator().await;
    let routes = route(
        "chat",
        &[
            bedrock(&sim, "bedrock", CLAUDE, "{env: PLUMB_BEDROCK_KEY}", ""),
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
            let sc = start(&routes);
            plan(&sim, CLAUDE, json!({"fault": "server_error", "first": 1}));
            let r = ask(&sc, family, stream, json!({})).send().await.unwrap();
            assert_eq!(r.status(), 200, "{family}, stream={stream}");
            assert_eq!(header(&r, "x-plumb-served-by"), "gpt");
            assert_eq!(header(&r, "x-plumb-failure-classes"), "server_error");
            let (text, model) = told(family, stream, r).await;
            assert!(text.ends_with("End of answer."));
            assert_eq!(model, "sim-gpt");
        }
    }
    let log = attempts(&sim, CLAUDE).await;
    assert_eq!(log.len(), 6);
    assert!(log.iter().all(|a| a.status == 500));
}

#[tokio::test]
async fn tool_calls_come_back_from_bedrock_and_structured_output_skips_it_by_name() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "unavailable", "first": 100}),
    );
    let sc = start(&openai_then_bedrock(&sim, "{env: PLUMB_BEDROCK_KEY}"));
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let weather = |v: &str| {
        let args: Value = serde_json::from_str(v).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert!(args["city"].is_string(), "{args}");
    };
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
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
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
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let block = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    weather(&block["input"].to_string());
    let v: Value = ask(
        &sc,
        "responses",
        true,
        json!({"tools": [{"type": "function", "name": "get_weather", "parameters": schema}], "tool_choice": "required"}),
    )
    .send()
    .await
    .unwrap()
    .text()
    .await
    .map(|t| json!(t))
    .unwrap();
    assert!(
        v.as_str()
            .unwrap()
            .contains("response.function_call_arguments"),
        "{v}"
    );
    let converse = attempts(&sim, CLAUDE).await.len();
    assert_eq!(converse, 4);
    // Structured output: Converse has none, so Bedrock is skipped by name and no request
    // reaches it; with the OpenAI target down the client is told why.
    let n = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
    let r = ask(
        &sc,
        "openai",
        false,
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": n}}}),
    )
    .send()
    .await
    .unwrap();
    assert_ne!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("response_format"), "{body}");
    assert_eq!(
        attempts(&sim, CLAUDE).await.len(),
        converse,
        "never sent to Bedrock"
    );
}

/// One route per case (`case-N`), each with its own Bedrock model `b-N`.
fn cases(sim: &plumb_simulator::Simulator, n: usize) -> String {
    (0..n)
        .map(|i| {
            route(
                &format!("case-{i}"),
                &[bedrock(sim, "bedrock", &format!("b-{i}"), "{env: PLUMB_BEDROCK_KEY}", "")],
                "  classes: {rateLimited: {retries: 0}, overloaded: {retries: 0}, serverError: {retries: 0}, malformedResponse: {retries: 0}}\n",
            )
            .replace("name: r,", &format!("name: case-{i},"))
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[tokio::test]
async fn every_bedrock_error_shape_gets_its_class_with_one_attempt() {
    // Any model name is served (each case has its own).
    let sim = simulator().await;
    // (fault, streamed, class, status the simulator sent)
    let table = [
        ("rate_limited", false, "rate_limited", 429),
        ("unauthorized", false, "auth", 403),
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
        // A ServiceUnavailableException frame before the first token.
        ("stream_error:after=0", true, "overloaded", 200),
        ("malformed_event:at=1", true, "malformed_response", 200),
        // Cut inside the first token's frame.
        ("stream_cut:after=0", true, "malformed_response", 200),
    ];
    let sc = start(&cases(&sim, table.len()));
    for (i, (fault, stream, class, status)) in table.iter().enumerate() {
        let model = format!("b-{i}");
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
        assert_eq!(log[0].api, plumb_simulator::Api::Bedrock);
    }
}

#[tokio::test]
async fn a_converse_stream_cut_inside_a_frame_after_commit_ends_with_an_error_event() {
    let sim = simulator().await;
    plan(
        &sim,
        CLAUDE,
        json!({"fault": "stream_cut:after=5", "first": 2}),
    );
    let sc = start(&route(
        "chat",
        &[bedrock(
            &sim,
            "bedrock",
            CLAUDE,
            "{env: PLUMB_BEDROCK_KEY}",
            "",
        )],
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
    let events = parse_sse(&text);
    assert!(
        events
            .iter()
            .all(|e| e.event.as_deref() != Some("message_stop")),
        "never complete: {text}"
    );
    assert!(
        events.iter().any(|e| e.event.as_deref() == Some("error")),
        "{text}"
    );
    let (text, _) = read_all(ask(&sc, "anthropic", true, json!({})).send().await.unwrap()).await;
    assert!(anthropic_stream_text(&parse_sse(&text)).ends_with("End of answer."));
}

#[tokio::test]
async fn an_exception_frame_after_commit_ends_the_stream_with_an_error_never_complete() {
    let sim = simulator().await;
    plan(
        &sim,
        CLAUDE,
        json!({"fault": "stream_error:after=5", "first": 1}),
    );
    let sc = start(&route(
        "chat",
        &[bedrock(
            &sim,
            "bedrock",
            CLAUDE,
            "{env: PLUMB_BEDROCK_KEY}",
            "",
        )],
        "  streaming: {holdEvents: 1}\n",
    ));
    let (text, _) = read_all(ask(&sc, "openai", true, json!({})).send().await.unwrap()).await;
    let events = parse_sse(&text);
    assert!(!openai_text(&events).is_empty());
    assert!(events.iter().all(|e| e.data != "[DONE]"), "{text}");
    assert!(
        events.iter().rev().find_map(|e| e.json()).unwrap()["error"].is_object(),
        "{text}"
    );
}

/// A route over one SigV4-signed Bedrock target.
fn signed(sim: &plumb_simulator::Simulator) -> String {
    route(
        "chat",
        &[bedrock(sim, "bedrock", CLAUDE, "{aws: true}", "")],
        "",
    )
}

/// The calls the simulator's AWS identity endpoints took.
fn identity_calls(
    sim: &plumb_simulator::Simulator,
    endpoint: &str,
) -> Vec<plumb_simulator::Attempt> {
    sim.attempts(None)
        .into_iter()
        .filter(|a| a.endpoint == endpoint)
        .collect()
}

#[tokio::test]
async fn environment_keys_sign_with_sigv4_and_a_wrong_secret_is_auth() {
    let sim = simulator().await;
    let sc = Sidecar::start_with_env_and_args(
        &signed(&sim),
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ],
        &[],
    );
    for stream in [false, true] {
        let r = ask(&sc, "openai", stream, json!({})).send().await.unwrap();
        assert_eq!(r.status(), 200, "stream={stream}");
        let (text, _) = told("openai", stream, r).await;
        assert!(text.ends_with("End of answer."));
    }
    let log = attempts(&sim, CLAUDE).await;
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|a| a.status == 200
        && a.key_hint.as_deref() == Some(&ACCESS_KEY_ID[ACCESS_KEY_ID.len() - 4..])));
    drop(sc);
    let sc = Sidecar::start_with_env_and_args(
        &signed(&sim),
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ],
        &[],
    );
    let r = ask(&sc, "openai", false, json!({})).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-failure-classes"), "auth");
    let body = r.text().await.unwrap();
    assert!(body.contains("signature"), "{body}");
    assert!(!body.contains("not-the-secret"));
    assert_eq!(attempts(&sim, CLAUDE).await.last().unwrap().status, 403);
}

#[tokio::test]
async fn web_identity_credentials_come_from_sts_once_for_concurrent_requests_and_are_refreshed_before_expiry()
 {
    let sim = simulator().await;
    // 304 s: inside the 5-minute refresh margin about four seconds after they are issued
    // (STS gives the expiry in whole seconds).
    sim.set_aws_expiry(Duration::from_secs(304));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, plumb_simulator::aws::WEB_IDENTITY_TOKEN).unwrap();
    let sc = Sidecar::start_with_env_and_args(
        &signed(&sim),
        &[
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/plumb"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
            ("AWS_ROLE_SESSION_NAME", "plumb-test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL_STS", &sim.base_url()),
        ],
        &[],
    );
    let asks = (0..4).map(|_| ask(&sc, "openai", false, json!({})).send());
    for r in futures_join(asks).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    assert_eq!(identity_calls(&sim, "sts").len(), 1, "one refresh shared");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let r = ask(&sc, "openai", true, json!({})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let sts = identity_calls(&sim, "sts");
    assert_eq!(sts.len(), 2, "refreshed within 5 minutes of expiry");
    assert!(sts.iter().all(|a| a.status == 200));
    let log = attempts(&sim, CLAUDE).await;
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|a| a.status == 200
        && a.key_hint.as_deref().is_some()
        && a.key_hint != Some(ACCESS_KEY_ID[ACCESS_KEY_ID.len() - 4..].to_owned())));
    // The token changes to one STS refuses: the refresh fails, and the credentials that have
    // not expired go on serving.
    std::fs::write(&token, "eyJnot-the-token").unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let r = ask(&sc, "openai", false, json!({})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let sts = identity_calls(&sim, "sts");
    assert_eq!(sts.len(), 3);
    assert_eq!(sts[2].status, 400);
}

#[tokio::test]
async fn the_container_credentials_endpoint_is_asked_with_its_token_and_a_refusal_is_auth() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, CONTAINER_TOKEN).unwrap();
    let uri = format!("{}{CONTAINER_PATH}", sim.base_url());
    let sc = Sidecar::start_with_env_and_args(
        &signed(&sim),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token.to_str().unwrap(),
            ),
        ],
        &[],
    );
    for stream in [false, true] {
        let r = ask(&sc, "anthropic", stream, json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "stream={stream}");
    }
    assert_eq!(identity_calls(&sim, "container-credentials").len(), 1);
    drop(sc);
    let sc = Sidecar::start_with_env_and_args(
        &signed(&sim),
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong-container-token"),
        ],
        &[],
    );
    let before = attempts(&sim, CLAUDE).await.len();
    let r = ask(&sc, "openai", false, json!({})).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-failure-classes"), "auth");
    let body = r.text().await.unwrap();
    assert!(body.contains("container credentials endpoint"), "{body}");
    assert!(!body.contains("wrong-container-token"), "{body}");
    assert_eq!(
        attempts(&sim, CLAUDE).await.len(),
        before,
        "nothing unsigned was sent"
    );
}

/// Runs the futures together and returns their outputs in order.
async fn futures_join<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
