//! In-process micro-benchmarks of costs too small to see end to end: a contract's check of one
//! answer, what the shared knowledge adds to each attempt, reading one stream event, and
//! reading a conversation's request and writing it for its target.

/// A typical contract for the simulator's structured answer (`{answer, score}`): a schema with
/// bounds and three CEL rules.
const CONTRACT: &str = r#"  contract:
    schema:
      inline:
        type: object
        required: [answer, score]
        additionalProperties: false
        properties:
          answer: {type: string, minLength: 1, maxLength: 4000}
          score: {type: number, minimum: 0, maximum: 1}
    rules:
      - expression: "answer.score >= 0.0 && answer.score <= 1.0"
        message: score must be between 0 and 1
      - expression: "size(answer.answer) > 0 && size(answer.answer) <= 4000"
        message: the answer must not be empty or longer than 4000 characters
      - expression: "!answer.answer.contains('As an AI')"
        message: no boilerplate disclaimers
"#;
/// The structured request the answer is checked against.
const JSON_CONTRACT: &[u8] = br#"{"model":"bench-contract","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"rate the answer"}]}"#;

/// Median nanoseconds per contract check of a typical answer, and per plain JSON parse of it,
/// over batches of `n` in this process.
pub fn contract_micro(n: usize) -> anyhow::Result<(f64, f64)> {
    let yaml = format!(
        "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: c}}\nspec:\n  match: {{models: [c]}}\n  targets:\n    - {{name: t, provider: openai, baseUrl: 'http://h/v1', model: m, credentials: {{none: true}}}}\n{CONTRACT}"
    );
    let set = plumb_policy::parse_routes_file(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let route = set.lookup("c").ok_or_else(|| anyhow::anyhow!("no route"))?;
    let contract = route
        .contract
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no contract"))?;
    let text = r#"{"answer":"The answer is forty-two. It was computed carefully, checked twice, and agrees with the reference table.","score":0.82}"#;
    let request: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(JSON_CONTRACT)?;
    let answer = plumb_policy::contract::Answer {
        text,
        tools: &[],
        request: &request,
        request_schema: None,
    };
    contract
        .check(&answer)
        .map_err(|v| anyhow::anyhow!("the benchmark's answer breaks its contract: {v}"))?;
    let median = |f: &dyn Fn()| median_ns(n, f);
    let check = median(&|| {
        std::hint::black_box(contract.check(std::hint::black_box(&answer)).is_ok());
    });
    let parse = median(&|| {
        std::hint::black_box(
            serde_json::from_str::<serde_json::Value>(std::hint::black_box(text)).is_ok(),
        );
    });
    Ok((check, parse))
}

/// Median nanoseconds per attempt of what the shared knowledge adds to the request path: the
/// fleet's gate before the attempt and the outcome counted for the next report after it (a
/// sidecar with a control plane; standalone only the gate runs).
pub fn fleet_micro(n: usize) -> anyhow::Result<f64> {
    let yaml = "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: c}\nspec:\n  match: {models: [c]}\n  targets:\n    - {name: t, provider: openai, baseUrl: 'http://h/v1', model: m, credentials: {none: true}}\n";
    let set = plumb_policy::parse_routes_file(yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let route = set.lookup("c").ok_or_else(|| anyhow::anyhow!("no route"))?;
    let target = &route.targets[0];
    let fleet = plumb_sidecar::fleet::Fleet::new();
    fleet.set_pod("bench-0");
    let mut per: Vec<f64> = (0..11)
        .map(|i| {
            let start = tokio::time::Instant::now();
            for j in 0..n {
                std::hint::black_box(fleet.gate(&target.upstream));
                fleet.record(
                    "c",
                    target,
                    None,
                    plumb_sidecar::fleet::Outcome {
                        latency: std::time::Duration::from_micros(200 + (j % 1000) as u64),
                        breaker: plumb_sidecar::breaker::BreakerState::Closed,
                        cooldown: std::time::Duration::from_secs(10),
                        probe: false,
                        retry_after: None,
                    },
                );
            }
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            // A report drains what accumulated, as the control stream does every second.
            std::hint::black_box(fleet.report(i, None, Vec::new()));
            ns
        })
        .collect();
    per.sort_by(f64::total_cmp);
    Ok(per[per.len() / 2])
}

/// An OpenAI chunk as the simulator (and OpenAI) sends it.
const OPENAI_EVENT: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\" forty-two\"},\"finish_reason\":null,\"index\":0,\"logprobs\":null}],\"created\":1796080052,\"id\":\"chatcmpl-sim-1\",\"model\":\"sim-stream\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_plumb_sim\",\"usage\":null}\n\n";
/// An Anthropic text delta as Anthropic sends it.
const ANTHROPIC_EVENT: &[u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" forty-two\"}}\n\n";

/// Median nanoseconds per stream event read as the relay reads every event (the SSE reader,
/// then the event typed once): an OpenAI chunk, an Anthropic delta; and, for scale, a plain
/// parse of the OpenAI chunk's data into a JSON value.
pub fn event_micro(n: usize) -> (f64, f64, f64) {
    use plumb_sidecar::event::{Event, SseReader};
    use plumb_sidecar::payload::Api;
    let read = |family: Api, bytes: &[u8]| {
        let mut sse = SseReader::default();
        sse.push(bytes);
        if let Some(raw) = sse.next_event() {
            std::hint::black_box(Event::parse(family, &raw));
        }
    };
    let data = &OPENAI_EVENT[6..OPENAI_EVENT.len() - 2];
    let median = |f: &dyn Fn()| median_ns(n, f);
    (
        median(&|| read(Api::Openai, std::hint::black_box(OPENAI_EVENT))),
        median(&|| read(Api::Anthropic, std::hint::black_box(ANTHROPIC_EVENT))),
        median(&|| {
            std::hint::black_box(
                serde_json::from_slice::<serde_json::Value>(std::hint::black_box(data)).is_ok(),
            );
        }),
    )
}

/// A conversation as a chat application sends one after a few turns: a system prompt and 30
/// turns, ~18 KB (the same as `make bench-instructions` sends).
fn conversation() -> Vec<u8> {
    let turn =
        ["You are a careful assistant. Answer with the facts the user asked for and nothing else.";
            6]
            .join(" ");
    let mut messages = vec![serde_json::json!({"role": "system", "content": turn})];
    for i in 1..=30 {
        let role = if i % 2 == 0 { "assistant" } else { "user" };
        messages.push(serde_json::json!({"role": role, "content": format!("turn {i}: {turn}")}));
    }
    serde_json::to_vec(&serde_json::json!({"model": "bench", "messages": messages}))
        .unwrap_or_default()
}

/// Median nanoseconds to read a conversation's request (`ClientRequest::parse`) and write its
/// body for a target of the client's family (`body_for`), as the sidecar does for every
/// request; and, for scale, to parse the same bytes into a JSON value; and the body's size.
pub fn request_micro(n: usize) -> anyhow::Result<(f64, f64, usize)> {
    use plumb_sidecar::payload::{Api, ClientRequest, Operation};
    let yaml = "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: bench}\nspec:\n  match: {models: [bench]}\n  targets:\n    - {name: t, provider: openai, baseUrl: 'http://h/v1', model: sim-gpt, credentials: {none: true}}\n";
    let set = plumb_policy::parse_routes_file(yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let route = set
        .lookup("bench")
        .ok_or_else(|| anyhow::anyhow!("no route"))?;
    let target = route
        .targets
        .first()
        .ok_or_else(|| anyhow::anyhow!("no target"))?;
    let body = conversation();
    // Once outside the timing, so that a request it refuses fails here, not silently there.
    ClientRequest::parse(Api::Openai, Operation::Chat, &body)?.body_for(target)?;
    let median = |f: &dyn Fn()| median_ns(n, f);
    Ok((
        median(&|| {
            if let Ok(r) =
                ClientRequest::parse(Api::Openai, Operation::Chat, std::hint::black_box(&body))
            {
                std::hint::black_box(r.body_for(target).is_ok());
            }
        }),
        median(&|| {
            std::hint::black_box(
                serde_json::from_slice::<serde_json::Value>(std::hint::black_box(&body)).is_ok(),
            );
        }),
        body.len(),
    ))
}

/// Median nanoseconds per call of `f`, over 11 batches of `n` calls.
fn median_ns(n: usize, f: &dyn Fn()) -> f64 {
    let mut per: Vec<f64> = (0..11)
        .map(|_| {
            let start = tokio::time::Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    per.sort_by(f64::total_cmp);
    per[per.len() / 2]
}
