//! In-process micro-benchmarks of two costs too small to see end to end: a contract's check of
//! one answer, and what the shared knowledge adds to each attempt.

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
    let median = |f: &dyn Fn()| {
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
    };
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
