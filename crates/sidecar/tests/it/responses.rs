//! The Responses API as a client surface: streams cut after commit, continued from an OpenAI
//! upstream's own events or from a translation, arrive as one consistent event sequence (one
//! response id, consecutive sequence numbers, every item closed); a cut nothing continues ends
//! with `error` and `response.failed`; the simulator's attempt log is the witness.

use serde_json::{Value, json};

use crate::support::{
    Sidecar, attempts, client, parse_sse, plan, read_all, route, simulator, target,
};

const QUESTION: &str = "what is six times seven";

fn ask(sc: &Sidecar, body: Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/v1/responses", sc.url))
        .bearer_auth("sk-caller-key-1111")
        .json(&body)
}

/// The stream's events as JSON, checked to be one well-formed Responses sequence: numbered
/// from 0 without a gap, one response id throughout.
fn events(text: &str) -> Vec<Value> {
    let events: Vec<Value> = parse_sse(text).iter().filter_map(|e| e.json()).collect();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(i), "event {i} of {text}");
    }
    let ids: Vec<&Value> = events
        .iter()
        .filter_map(|e| e.get("response").map(|r| &r["id"]))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one response id: {ids:?}"
    );
    events
}

fn deltas(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect()
}

async fn whole_text(sim: &plumb_simulator::Simulator, model: &str) -> String {
    let r: Value = client()
        .post(format!("{}/v1/responses", sim.base_url()))
        .json(&json!({"model": model, "input": QUESTION}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_passed_through_stream_cut_after_commit_is_continued_by_claude_in_the_same_message() {
    let sim = simulator().await;
    let full = whole_text(&sim, "sim-gpt").await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "stream_cut:after=5", "first": 10}),
    );
    let v1 = format!("{}/v1", sim.base_url());
    let routes = route(
        "m",
        &[
            target("gpt", "openai", &v1, "sim-gpt", ""),
            target(
                "claude",
                "anthropic",
                &sim.base_url(),
                "sim-claude",
                "      priority: 1\n",
            ),
        ],
        "",
    );
    let sc = Sidecar::start(&routes);
    let r = ask(
        &sc,
        json!({"model": "m", "input": QUESTION, "stream": true}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let (text, err) = read_all(r).await;
    assert!(err.is_none());
    let events = events(&text);
    let said = deltas(&events);
    assert!(said.starts_with(&full[..10]), "{said}");
    assert!(said.ends_with("End of answer."), "{said}");
    assert_eq!(said.matches("forty-two").count(), 1, "once: {said}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed", "{text}");
    // The final output is the one message the client saw open, with the whole text.
    let output = last["response"]["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{output:?}");
    assert_eq!(output[0]["content"][0]["text"], json!(said));
    let added: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "response.output_item.added")
        .collect();
    assert_eq!(added.len(), 1, "no second message item");
    assert_eq!(output[0]["id"], added[0]["item"]["id"]);
    let claude = attempts(&sim, "sim-claude").await;
    assert_eq!(claude.len(), 1, "one continuation request");
}

#[tokio::test]
async fn a_translated_stream_cut_after_commit_goes_on_in_the_writers_open_message() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-claude",
        json!({"fault": "stream_cut:after=5", "first": 10}),
    );
    let routes = route(
        "m",
        &[
            target("claude", "anthropic", &sim.base_url(), "sim-claude", ""),
            target(
                "backup",
                "anthropic",
                &sim.base_url(),
                "sim-claude-backup",
                "      priority: 1\n",
            ),
        ],
        "",
    );
    let sc = Sidecar::start(&routes);
    let r = ask(
        &sc,
        json!({"model": "m", "input": QUESTION, "stream": true}),
    )
    .send()
    .await
    .unwrap();
    let (text, _) = read_all(r).await;
    let events = events(&text);
    let said = deltas(&events);
    assert!(said.ends_with("End of answer."), "{said}");
    assert_eq!(said.matches("forty-two").count(), 1, "once: {said}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        json!(said)
    );
    assert_eq!(attempts(&sim, "sim-claude-backup").await.len(), 1);
}

#[tokio::test]
async fn a_cut_nothing_can_continue_ends_with_error_and_response_failed_in_sequence() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "stream_cut:after=5", "first": 10}),
    );
    let routes = route(
        "m",
        &[target(
            "gpt",
            "openai",
            &format!("{}/v1", sim.base_url()),
            "sim-gpt",
            "",
        )],
        "",
    );
    let sc = Sidecar::start(&routes);
    let r = ask(
        &sc,
        json!({"model": "m", "input": QUESTION, "stream": true}),
    )
    .send()
    .await
    .unwrap();
    let (text, _) = read_all(r).await;
    let events = events(&text);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["error", "response.failed"],
        "{kinds:?}"
    );
    let failed = events.last().unwrap();
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(failed["response"]["error"]["code"], "stream_interrupted");
    assert_eq!(failed["response"]["id"], events[0]["response"]["id"]);
    assert!(text.contains(": plumb stream_interrupted target=gpt"));
}

#[tokio::test]
async fn built_in_tools_and_server_state_go_only_to_openai_targets_and_the_rest_are_named() {
    let sim = simulator().await;
    let v1 = format!("{}/v1", sim.base_url());
    let routes = route(
        "m",
        &[
            target("gpt", "openai", &v1, "sim-unavailable", ""),
            target(
                "vllm",
                "openai-compatible",
                &v1,
                "sim-gpt",
                "      priority: 1\n",
            ),
        ],
        "",
    );
    let sc = Sidecar::start(&routes);
    let r = ask(
        &sc,
        json!({"model": "m", "input": QUESTION, "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}),
    )
    .send()
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("vllm: skipped (speaks the other API family, which cannot express tools[0] (the built-in tool file_search))"),
        "{message}"
    );
    let r = ask(
        &sc,
        json!({"model": "m", "input": QUESTION, "previous_response_id": "resp_123"}),
    )
    .send()
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "vllm: skipped (the request's previous_response_id is state an OpenAI account keeps"
        ),
        "{message}"
    );
    assert!(
        attempts(&sim, "sim-gpt").await.is_empty(),
        "the compatible server was never asked"
    );
}

#[tokio::test]
async fn openai_account_headers_reach_openai_as_the_credentials_say() {
    let sim = simulator().await;
    let v1 = format!("{}/v1", sim.base_url());
    let routes = route(
        "m",
        &[target(
            "gpt",
            "openai",
            &v1,
            "sim-gpt",
            "      organization: org-plumb\n      project: proj_plumb\n",
        )],
        "",
    ) + "---\n"
        + &route(
            "p",
            &[format!(
                "    - name: own\n      provider: openai\n      baseUrl: {v1}\n      model: sim-gpt-mini\n      credentials: {{passthrough: true}}\n"
            )],
            "",
        )
        .replace("name: r,", "name: p,");
    let sc = Sidecar::start(&routes);
    for (model, sim_model, org, project) in [
        ("m", "sim-gpt", "org-plumb", "proj_plumb"),
        ("p", "sim-gpt-mini", "org-caller", "proj_caller"),
    ] {
        for path in ["/v1/responses", "/v1/chat/completions"] {
            let body = if path == "/v1/responses" {
                json!({"model": model, "input": QUESTION})
            } else {
                json!({"model": model, "messages": [{"role": "user", "content": QUESTION}]})
            };
            let r = client()
                .post(format!("{}{path}", sc.url))
                .bearer_auth("sk-caller-key-1111")
                .header("openai-organization", "org-caller")
                .header("openai-project", "proj_caller")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{model} {path}");
            let seen = attempts(&sim, sim_model).await;
            let last = seen.last().unwrap();
            assert_eq!(last.organization.as_deref(), Some(org), "{model} {path}");
            assert_eq!(last.project.as_deref(), Some(project), "{model} {path}");
        }
    }
}

#[tokio::test]
async fn a_reasoning_model_thinking_past_the_first_token_deadline_is_not_cut_for_a_responses_client()
 {
    let sim = simulator().await;
    let base = sim.base_url();
    let routes = route(
        "m",
        &[
            target(
                "gpt",
                "openai",
                &format!("{base}/v1"),
                "sim-gpt-reasoner",
                "",
            ),
            target(
                "claude",
                "anthropic",
                &base,
                "sim-claude-thinker",
                "      priority: 1\n",
            ),
        ],
        "  deadlines: {firstToken: 1s}\n",
    );
    let sc = Sidecar::start(&routes);
    // Passed through from the OpenAI reasoner, then (its target down) translated from Claude.
    for (primary_down, served, model) in [
        (false, "gpt", "sim-gpt-reasoner"),
        (true, "claude", "sim-claude-thinker"),
    ] {
        sim.reset();
        if primary_down {
            plan(
                &sim,
                "sim-gpt-reasoner",
                json!({"fault": "unavailable", "first": 10}),
            );
        }
        let r = ask(
            &sc,
            json!({"model": "m", "input": QUESTION, "stream": true}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(crate::support::header(&r, "x-plumb-served-by"), served);
        let (text, err) = read_all(r).await;
        assert!(err.is_none(), "{text}");
        let events = events(&text);
        let thoughts = events
            .iter()
            .filter(|e| e["type"] == "response.reasoning_text.delta")
            .count();
        assert_eq!(thoughts, 8, "served by {served}");
        assert!(deltas(&events).ends_with("End of answer."));
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        let kinds: Vec<&Value> = last["response"]["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| &o["type"])
            .collect();
        assert_eq!(kinds, [&json!("reasoning"), &json!("message")]);
        // One paid request: nothing was cut and retried.
        assert_eq!(attempts(&sim, model).await.len(), 1, "served by {served}");
    }
}

/// The simulator's structured answer is `{answer, score}`; out-of-bounds models answer score 7.
const CONTRACT: &str = "  contract:\n    rules:\n      - expression: \"answer.score >= 0.0 && answer.score <= 1.0\"\n        message: score must be between 0 and 1\n";

#[tokio::test]
async fn the_contract_checks_a_responses_answer_whole_and_after_commit() {
    let sim = simulator().await;
    let v1 = format!("{}/v1", sim.base_url());
    let bounded = route(
        "m",
        &[
            target("primary", "openai", &v1, "sim-out-of-bounds", ""),
            target(
                "fallback",
                "openai",
                &v1,
                "sim-gpt-mini",
                "      priority: 1\n",
            ),
        ],
        CONTRACT,
    );
    let sc = Sidecar::start(&bounded);
    let json_out = json!({"format": {"type": "json_object"}});
    let r = ask(
        &sc,
        json!({"model": "m", "input": QUESTION, "text": json_out}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(crate::support::header(&r, "x-plumb-served-by"), "fallback");
    // Repaired once on the primary (told what was wrong), then failed over.
    assert_eq!(
        crate::support::header(&r, "x-plumb-failure-classes"),
        "out_of_bounds,out_of_bounds"
    );
    assert_eq!(attempts(&sim, "sim-out-of-bounds").await.len(), 2);
    let body: Value = r.json().await.unwrap();
    let answer: Value =
        serde_json::from_str(body["output"][0]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(answer["score"].as_f64().unwrap() <= 1.0, "{answer}");
    // Checked after commit: the stream ends with the violation, never as a completed response.
    let late = route(
        "m",
        &[target("only", "openai", &v1, "sim-out-of-bounds", "")],
        &format!("{CONTRACT}    streams: afterCommit\n"),
    );
    let sc = Sidecar::start(&late);
    let r = ask(
        &sc,
        json!({"model": "m", "input": QUESTION, "text": json_out, "stream": true}),
    )
    .send()
    .await
    .unwrap();
    let (text, _) = read_all(r).await;
    let events = events(&text);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["error", "response.failed"],
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"response.completed"));
    assert_eq!(
        events.last().unwrap()["response"]["error"]["code"],
        "out_of_bounds"
    );
}

#[tokio::test]
async fn a_previous_response_is_looked_for_in_each_openai_account_without_tripping_a_breaker() {
    let (a, b) = (simulator().await, simulator().await);
    // The conversation's first turn was answered by account B.
    let first: Value = client()
        .post(format!("{}/v1/responses", b.base_url()))
        .json(&json!({"model": "sim-gpt", "input": QUESTION}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    let routes = route(
        "m",
        &[
            target(
                "account-a",
                "openai",
                &format!("{}/v1", a.base_url()),
                "sim-gpt",
                "",
            ),
            target(
                "account-b",
                "openai",
                &format!("{}/v1", b.base_url()),
                "sim-gpt",
                "      priority: 1\n",
            ),
            target(
                "claude",
                "anthropic",
                &a.base_url(),
                "sim-claude",
                "      priority: 2\n",
            ),
        ],
        "",
    );
    let sc = Sidecar::start(&routes);
    let next = json!({"model": "m", "input": "and seven times six?", "previous_response_id": id});
    let r = ask(&sc, next.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(crate::support::header(&r, "x-plumb-served-by"), "account-b");
    assert_eq!(
        crate::support::header(&r, "x-plumb-failure-classes"),
        "bad_request"
    );
    // Account A said it does not hold it (once, not retried) and its breaker stays closed:
    // the next turns of other conversations go to A as before.
    for _ in 0..6 {
        let _ = ask(&sc, next.clone()).send().await.unwrap();
    }
    let r = ask(&sc, json!({"model": "m", "input": QUESTION}))
        .send()
        .await
        .unwrap();
    assert_eq!(crate::support::header(&r, "x-plumb-served-by"), "account-a");
    assert_eq!(crate::support::header(&r, "x-plumb-attempts"), "1");
    // Claude never saw a request that depends on OpenAI's state.
    assert!(attempts(&a, "sim-claude").await.is_empty());
    // No account holds it: the caller's 404, as OpenAI says it.
    let r = ask(
        &sc,
        json!({"model": "m", "input": "x", "previous_response_id": "resp_nowhere"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Previous response with id 'resp_nowhere' not found"),
        "{body}"
    );
}
