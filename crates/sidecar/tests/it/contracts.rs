//! Contracts: every answer checked before it counts as a success — repaired, failed over, or
//! refused with the rule that failed — whole or streamed, whichever target produced it.

use serde_json::{Value, json};

use crate::support::{
    Sidecar, attempts, header, metrics, parse_sse, plan, read_all, route, simulator, target,
};

/// The simulator's default structured answer: `{answer: string, score: 0..1}`.
const CONTRACT: &str = r#"  contract:
    schema:
      inline:
        type: object
        required: [answer, score]
        properties:
          answer: {type: string}
          score: {type: number}
    rules:
      - expression: "answer.score >= 0.0 && answer.score <= 1.0"
        message: score must be between 0 and 1
"#;

fn routes(sim: &plumb_simulator::Simulator, primary: &str, fallback: &str, extra: &str) -> String {
    let base = format!("{}/v1", sim.base_url());
    route(
        "chat",
        &[
            target("primary", "openai", &base, primary, ""),
            target("fallback", "openai", &base, fallback, "      priority: 1\n"),
        ],
        &format!("{CONTRACT}{extra}"),
    )
}

fn structured(stream: bool) -> Value {
    json!({"model": "chat", "stream": stream, "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "rate the answer"}]})
}

fn score_of(body: &Value) -> f64 {
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    let v: Value = serde_json::from_str(text).unwrap();
    v["score"].as_f64().unwrap()
}

#[tokio::test]
async fn a_schema_violation_is_repaired_when_the_second_answer_complies() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "schema_violation", "first": 1}),
    );
    let sc = Sidecar::start(&routes(&sim, "sim-gpt", "sim-gpt-mini", ""));
    let r = sc.openai(structured(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
    assert_eq!(header(&r, "x-plumb-attempts"), "2");
    assert_eq!(header(&r, "x-plumb-failure-classes"), "schema_violation");
    let body: Value = r.json().await.unwrap();
    assert!((0.0..=1.0).contains(&score_of(&body)));
    assert_eq!(
        attempts(&sim, "sim-gpt").await.len(),
        2,
        "one answer, one repair"
    );
    assert!(sim.attempts(Some("sim-gpt-mini")).is_empty());
    let m = metrics(&sc.admin).await;
    assert!(
        m.contains(r#"plumb_repairs_total{route="test/r",target="primary",outcome="repaired"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"plumb_contract_failures_total{route="test/r",target="primary",class="schema_violation",check="schema"} 1"#), "{m}");
}

#[tokio::test]
async fn a_schema_violation_that_survives_its_repair_fails_over() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "schema_violation", "share": 1.0}),
    );
    let sc = Sidecar::start(&routes(&sim, "sim-gpt", "sim-gpt-mini", ""));
    let r = sc.openai(structured(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    assert_eq!(header(&r, "x-plumb-attempts"), "3");
    assert_eq!(
        header(&r, "x-plumb-failure-classes"),
        "schema_violation,schema_violation"
    );
    let body: Value = r.json().await.unwrap();
    assert!((0.0..=1.0).contains(&score_of(&body)));
    assert_eq!(attempts(&sim, "sim-gpt").await.len(), 2);
}

#[tokio::test]
async fn an_out_of_bounds_answer_never_reaches_the_client_and_the_error_names_the_rule() {
    let sim = simulator().await;
    // Every target answers out of bounds.
    let sc = Sidecar::start(&routes(&sim, "sim-out-of-bounds", "sim-out-of-bounds", ""));
    let r = sc.openai(structured(false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-plumb-served-by"), "");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "out_of_bounds");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("contract.rules[0]: score must be between 0 and 1"),
        "{msg}"
    );
    // Answer, repair, and the same on the fallback: four answers, none served.
    assert_eq!(attempts(&sim, "sim-out-of-bounds").await.len(), 4);
}

#[tokio::test]
async fn a_route_without_repairs_or_failover_answers_with_the_rule_at_once() {
    let sim = simulator().await;
    let extra = "  classes:\n    outOfBounds: {repairs: 0, failover: false}\n";
    let sc = Sidecar::start(&routes(&sim, "sim-out-of-bounds", "sim-gpt-mini", extra));
    let r = sc.openai(structured(false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-plumb-attempts"), "1");
    assert!(sim.attempts(Some("sim-gpt-mini")).is_empty());
}

#[tokio::test]
async fn a_stream_checked_before_commit_fails_over_invisibly() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "out_of_bounds", "share": 1.0}),
    );
    let sc = Sidecar::start(&routes(&sim, "sim-gpt", "sim-gpt-mini", ""));
    let r = sc.openai(structured(true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    assert_eq!(
        header(&r, "x-plumb-failure-classes"),
        "out_of_bounds,out_of_bounds"
    );
    let events = parse_sse(&read_all(r).await.0);
    let text = crate::support::openai_text(&events);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(
        (0.0..=1.0).contains(&v["score"].as_f64().unwrap()),
        "{text}"
    );
    assert!(events.iter().all(|e| !e.data.contains("\"error\"")));
    assert_eq!(events.last().unwrap().data, "[DONE]");
}

#[tokio::test]
async fn a_stream_checked_after_commit_ends_with_an_error_event_not_a_success() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "out_of_bounds", "share": 1.0}),
    );
    let extra = "    streams: afterCommit\n";
    let sc = Sidecar::start(&routes(&sim, "sim-gpt", "sim-gpt-mini", extra));
    let r = sc.openai(structured(true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
    let (raw, _) = read_all(r).await;
    let events = parse_sse(&raw);
    let last = events.iter().rev().find(|e| !e.data.is_empty()).unwrap();
    let err = last.json().unwrap_or_else(|| panic!("{raw}"));
    assert_eq!(err["error"]["code"], "out_of_bounds", "{raw}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("score must be between 0 and 1")
    );
    assert!(!raw.contains("[DONE]"), "{raw}");
    assert!(raw.contains(": plumb out_of_bounds target=primary check=rules[0]"));
    // A compliant answer streams to its normal end.
    sim.reset();
    let r = sc.openai(structured(true)).send().await.unwrap();
    let (raw, _) = read_all(r).await;
    assert!(raw.trim_end().ends_with("data: [DONE]"), "{raw}");
}

#[tokio::test]
async fn a_substituted_model_is_recorded_and_fails_over_when_the_route_says_so() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "model_substituted:model=sim-other", "share": 1.0}),
    );
    let sc = Sidecar::start(&routes(&sim, "sim-gpt", "sim-gpt-mini", ""));
    let r = sc.openai(structured(false)).send().await.unwrap();
    assert_eq!(
        header(&r, "x-plumb-served-by"),
        "primary",
        "accepted by default"
    );
    let m = metrics(&sc.admin).await;
    assert!(
        m.contains(r#"plumb_model_substitutions_total{route="test/r",target="primary"} 1"#),
        "{m}"
    );
    let strict = routes(
        &sim,
        "sim-gpt",
        "sim-gpt-mini",
        "    modelSubstitution: fail\n",
    );
    let sc = Sidecar::start(&strict);
    let r = sc.openai(structured(false)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    assert_eq!(header(&r, "x-plumb-failure-classes"), "model_substituted");
}

#[tokio::test]
async fn anthropic_clients_and_targets_are_held_to_the_same_contract() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-claude",
        json!({"fault": "out_of_bounds", "first": 1}),
    );
    let sc = Sidecar::start(&route(
        "chat",
        &[target(
            "claude",
            "anthropic",
            &sim.base_url(),
            "sim-claude",
            "",
        )],
        "  contract:\n    rules:\n      - expression: \"text.contains('End of answer.')\"\n        message: the answer must be complete\n",
    ));
    let r = sc
        .anthropic(json!({"model": "chat", "max_tokens": 200,
            "messages": [{"role": "user", "content": "what is six times seven"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "out_of_bounds");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("End of answer.")
    );
}

#[tokio::test]
async fn a_route_without_a_contract_still_follows_the_schema_the_client_asked_for() {
    let sim = simulator().await;
    let schema = json!({"type": "object", "required": ["answer", "score"],
        "properties": {"answer": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1}}});
    let ask = |stream: bool| {
        json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "rate the answer"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "rating", "schema": schema}}})
    };
    let base = format!("{}/v1", sim.base_url());
    let routes = route(
        "chat",
        &[
            target("primary", "openai", &base, "sim-gpt", ""),
            target(
                "fallback",
                "openai",
                &base,
                "sim-gpt-mini",
                "      priority: 1\n",
            ),
        ],
        "",
    );
    // Out of the client's bounds (every number 7), or breaking its schema: repaired or failed
    // over, streamed or not, never served. (A sidecar each: the primary's breaker opens.)
    for fault in ["out_of_bounds", "schema_violation"] {
        let sc = Sidecar::start(&routes);
        for stream in [false, true] {
            sim.reset();
            plan(&sim, "sim-gpt", json!({"fault": fault, "first": 10}));
            let r = sc.openai(ask(stream)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{fault} stream={stream}");
            assert_eq!(
                header(&r, "x-plumb-served-by"),
                "fallback",
                "{fault} {stream}"
            );
            let classes = header(&r, "x-plumb-failure-classes").to_owned();
            assert!(
                !classes.is_empty() && classes.split(',').all(|c| c == "schema_violation"),
                "{fault}: {classes}"
            );
            let text = if stream {
                crate::support::openai_text(&parse_sse(&read_all(r).await.0))
            } else {
                let v: Value = r.json().await.unwrap();
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(
                (0.0..=1.0).contains(&v["score"].as_f64().unwrap()),
                "{text}"
            );
        }
    }
    // Without a schema from the client, nothing is checked or held.
    sim.reset();
    let sc = Sidecar::start(&routes);
    let r = sc
        .openai(json!({"model": "chat", "stream": true,
            "messages": [{"role": "user", "content": "what is six times seven"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
}
