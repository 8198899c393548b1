//! `make demo`: simulated failing providers behind a standalone sidecar, scene by scene.
//!
//! Starts the simulator in this process, writes a routes file of `LlmRoute`s, runs the real
//! `plumb-sidecar` binary on it, and plays one scene per failure family, printing what the
//! sidecar detected, what it did and who answered.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use plumb_simulator::{PlanSpec, SimConfig, Simulator};
use serde_json::{Value, json};
use tokio::time::Instant;

struct Scene {
    title: &'static str,
    model: &'static str,
    stream: bool,
    plan: Option<(&'static str, Value)>,
}

fn routes(sim: &str) -> String {
    let v1 = format!("{sim}/v1");
    let route = |name: &str, targets: &[(&str, &str, &str, u32)], extra: &str| {
        let mut s = format!(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  match: {{models: [{name}]}}\n  targets:\n"
        );
        for (t, model, key, prio) in targets {
            s.push_str(&format!("    - {{name: {t}, provider: openai, baseUrl: '{v1}', model: {model}, priority: {prio}, credentials: {{env: {key}}}}}\n"));
        }
        s.push_str(extra);
        s
    };
    [
        route(
            "healthy",
            &[
                ("openai", "sim-gpt", "KEY_MAIN", 0),
                ("backup", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            "",
        ),
        route(
            "rate-limit",
            &[
                ("openai", "sim-gpt", "KEY_MAIN", 0),
                ("backup", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            "",
        ),
        route(
            "outage",
            &[
                ("openai", "sim-unavailable", "KEY_MAIN", 0),
                ("backup", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            "  breaker: {consecutiveFailures: 2, cooldown: 30s}\n",
        ),
        route(
            "bad-key",
            &[
                ("openai", "sim-unauthorized", "KEY_MAIN", 0),
                ("backup", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            "",
        ),
        route(
            "missing-model",
            &[
                ("openai", "sim-model-not-found", "KEY_MAIN", 0),
                ("backup", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            "",
        ),
        route(
            "broken-json",
            &[
                ("openai", "sim-broken-json", "KEY_MAIN", 0),
                ("backup", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            "",
        ),
        route(
            "silent",
            &[
                ("openai", "sim-hang", "KEY_MAIN", 0),
                ("backup", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            "  deadlines: {firstByte: 1s}\n",
        ),
        route("cut-stream", &[("openai", "sim-gpt", "KEY_MAIN", 0)], ""),
        // An Anthropic fallback takes up a cut stream (prefill), by default.
        format!(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: cut-continued, namespace: demo}}\nspec:\n  match: {{models: [cut-continued]}}\n  targets:\n    - {{name: openai, provider: openai, baseUrl: '{v1}', model: sim-gpt-continued, credentials: {{env: KEY_MAIN}}}}\n    - {{name: claude, provider: anthropic, baseUrl: '{sim}', model: sim-claude, priority: 1, credentials: {{env: KEY_BACKUP}}}}\n"
        ),
        // A Responses API client whose OpenAI target is down: Claude answers, translated.
        format!(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: responses, namespace: demo}}\nspec:\n  match: {{models: [responses]}}\n  targets:\n    - {{name: openai, provider: openai, baseUrl: '{v1}', model: sim-unavailable, credentials: {{env: KEY_MAIN}}}}\n    - {{name: claude, provider: anthropic, baseUrl: '{sim}', model: sim-claude, priority: 1, credentials: {{env: KEY_BACKUP}}}}\n"
        ),
        // A reasoning model thinks for 2 s before its first word: its thinking is progress.
        route(
            "reasoning",
            &[
                ("openai", "sim-gpt-reasoner", "KEY_MAIN", 0),
                ("backup", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            "  deadlines: {firstToken: 1s}\n",
        ),
        route(
            "contract",
            &[
                ("openai", "sim-gpt-structured", "KEY_MAIN", 0),
                ("backup", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            CONTRACT,
        ),
        route(
            "correct-a",
            &[
                ("openai", "sim-gpt-primary", "KEY_MAIN", 0),
                ("mirror", "sim-gpt-mini", "KEY_BACKUP", 1),
            ],
            &equivalence("observe"),
        ),
        route(
            "correct-b",
            &[
                ("openai", "sim-gpt-primary", "KEY_MAIN", 0),
                ("cheap", "sim-gpt-alt", "KEY_BACKUP", 1),
            ],
            &equivalence("observe"),
        ),
        route(
            "correct-b-enforced",
            &[
                ("openai", "sim-gpt-primary", "KEY_MAIN", 0),
                ("cheap", "sim-gpt-alt", "KEY_BACKUP", 1),
            ],
            &equivalence("enforce"),
        ),
        route(
            "all-down",
            &[
                ("openai", "sim-overloaded", "KEY_MAIN", 0),
                ("backup", "sim-server-error", "KEY_BACKUP", 1),
            ],
            "",
        ),
    ]
    .join("---\n")
}

/// The `contract` route's contract: the simulator's structured answer `{answer, score}`.
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

/// Shadow sampling of every healthy answer, certified from 20 samples with a lower bound of
/// at least 0.85, compared as exact text.
fn equivalence(mode: &str) -> String {
    format!(
        "  equivalence:\n    mode: {mode}\n    threshold: 0.85\n    minSamples: 20\n    method: {{kind: exact}}\n    shadow: {{rate: 1.0, maxConcurrent: 4, requestsPerMinute: 600}}\n"
    )
}

const SCENES: &[Scene] = &[
    Scene {
        title: "healthy",
        model: "healthy",
        stream: false,
        plan: None,
    },
    Scene {
        title: "rate limit, retry-after: 1",
        model: "rate-limit",
        stream: false,
        plan: Some(("sim-gpt", Value::Null)),
    },
    Scene {
        title: "outage (503) with failover",
        model: "outage",
        stream: false,
        plan: None,
    },
    Scene {
        title: "outage again: breaker open",
        model: "outage",
        stream: false,
        plan: None,
    },
    Scene {
        title: "outage, streamed",
        model: "outage",
        stream: true,
        plan: None,
    },
    Scene {
        title: "bad key (401)",
        model: "bad-key",
        stream: false,
        plan: None,
    },
    Scene {
        title: "model not found (404)",
        model: "missing-model",
        stream: false,
        plan: None,
    },
    Scene {
        title: "HTTP 200 with broken JSON",
        model: "broken-json",
        stream: false,
        plan: None,
    },
    Scene {
        title: "silent provider",
        model: "silent",
        stream: false,
        plan: None,
    },
    Scene {
        title: "stream cut after commit",
        model: "cut-stream",
        stream: true,
        plan: Some(("sim-gpt", Value::Null)),
    },
    Scene {
        title: "cut, a fallback continues it",
        model: "cut-continued",
        stream: true,
        plan: Some(("sim-gpt-continued", Value::Null)),
    },
    Scene {
        title: "reasoning 2 s, firstToken 1s",
        model: "reasoning",
        stream: true,
        plan: None,
    },
    Scene {
        title: "every target failing",
        model: "all-down",
        stream: false,
        plan: None,
    },
];

fn plan(sim: &Simulator, model: &str, fault: &str, how: Value) {
    let mut spec = json!({"fault": fault});
    for (k, v) in how.as_object().unwrap() {
        spec[k] = v.clone();
    }
    sim.set_plan(model, serde_json::from_value::<PlanSpec>(spec).unwrap())
        .unwrap();
}

fn first_line(text: &str, n: usize) -> String {
    let t: String = text.chars().take(n).collect();
    if text.chars().count() > n {
        format!("{t}…")
    } else {
        t
    }
}

/// Answers that break the route's contract, repaired, failed over, or refused.
/// OpenAI's Responses API, whole and streamed, failing over from OpenAI to Claude.
async fn responses(client: &reqwest::Client, url: &str) {
    println!(
        "\nThe Responses API (POST /v1/responses): the OpenAI target is down, Claude answers in the Responses format"
    );
    for stream in [false, true] {
        let resp = client
            .post(format!("{url}/v1/responses"))
            .bearer_auth("sk-app-key")
            .json(&json!({"model": "responses", "stream": stream, "input": "What is six times seven?"}))
            .send()
            .await
            .unwrap();
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (status, served, classes) = (
            resp.status().as_u16(),
            h("x-plumb-served-by"),
            h("x-plumb-failure-classes"),
        );
        let text = resp.text().await.unwrap_or_default();
        let said = if stream {
            let kinds: Vec<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("event: "))
                .map(str::to_owned)
                .collect();
            format!(
                "{} events, {} … {}",
                kinds.len(),
                kinds.first().map_or("", String::as_str),
                kinds.last().map_or("", String::as_str)
            )
        } else {
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            format!(
                "a `response` ({}, model {}): {}",
                v["status"].as_str().unwrap_or("?"),
                v["model"].as_str().unwrap_or("?"),
                first_line(
                    v["output"][0]["content"][0]["text"].as_str().unwrap_or(""),
                    60
                )
            )
        };
        let before = if classes.is_empty() {
            "the OpenAI target skipped (its breaker opened)".to_owned()
        } else {
            format!("after {classes}")
        };
        println!(
            "  {:<9} {status}  served by {served}, {before} → {said}",
            if stream { "streamed" } else { "whole" }
        );
    }
}

async fn contracts(sim: &Simulator, client: &reqwest::Client, url: &str) {
    println!(
        "\nContracts: every answer is checked before it reaches the client (schema + CEL rule: 0 ≤ score ≤ 1)\n"
    );
    println!(
        "{:<42} {:>6}  {:<8} {:<9} failure classes → outcome",
        "scene", "status", "served", "attempts"
    );
    println!("{}", "-".repeat(118));
    let scenes = [
        (
            "score out of bounds once → repaired",
            "out_of_bounds",
            json!({"first": 1}),
        ),
        (
            "schema broken twice → failed over",
            "schema_violation",
            json!({"share": 1.0}),
        ),
        (
            "every target out of bounds → refused",
            "out_of_bounds",
            json!({"share": 1.0}),
        ),
    ];
    for (i, (title, fault, how)) in scenes.into_iter().enumerate() {
        sim.reset();
        plan(sim, "sim-gpt-structured", fault, how);
        if i == 2 {
            plan(sim, "sim-gpt-mini", fault, json!({"share": 1.0}));
        }
        let r = client
            .post(format!("{url}/v1/chat/completions"))
            .json(
                &json!({"model": "contract", "response_format": {"type": "json_object"},
                "messages": [{"role": "user", "content": "Rate this answer from 0 to 1."}]}),
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .unwrap_or("-")
                .to_owned()
        };
        let (served, attempts, classes) = (
            h("x-plumb-served-by"),
            h("x-plumb-attempts"),
            h("x-plumb-failure-classes"),
        );
        let v: Value = r.json().await.unwrap_or_default();
        let outcome = if status == 200 {
            format!(
                "answer {}",
                v["choices"][0]["message"]["content"].as_str().unwrap_or("")
            )
        } else {
            let msg = v["error"]["message"].as_str().unwrap_or("");
            let rule = msg.find("contract.").map_or(msg, |i| &msg[i..]);
            let rule = rule.split(')').next().unwrap_or(rule);
            format!("error names the rule: {}", first_line(rule, 60))
        };
        println!("{title:<42} {status:>6}  {served:<8} {attempts:<9} {classes} → {outcome}");
    }
    sim.reset();
}

/// The same outage, failed over to a fallback that answers like the primary and to one that
/// does not: shadow sampling tells them apart before the outage.
async fn correctover(sim: &Simulator, client: &reqwest::Client, url: &str, admin: &str) {
    println!("\nCorrectover: a failover is a recovery only if the answer is still right\n");
    let ask = |model: &'static str| {
        client
            .post(format!("{url}/v1/chat/completions"))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "What is six times seven?"}]}))
            .send()
    };
    let routes = ["correct-a", "correct-b", "correct-b-enforced"];
    let mut healthy = 0;
    for _ in 0..200 {
        let records: Value = client
            .get(format!("{admin}/equivalence"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        let enough = routes.iter().all(|r| {
            records.as_array().is_some_and(|a| {
                a.iter().any(|p| {
                    p["route"] == format!("demo/{r}") && p["samples"].as_u64().unwrap_or(0) >= 24
                })
            })
        });
        if enough {
            break;
        }
        for r in routes {
            let _ = ask(r).await;
        }
        healthy += 1;
    }
    println!(
        "While the primary was healthy, {healthy} requests per route were shadowed to the fallbacks and compared (exact text)."
    );
    plan(sim, "sim-gpt-primary", "unavailable", json!({"share": 1.0}));
    println!("Now the primary is down (503 on every request):\n");
    println!(
        "{:<20} {:<8} {:>6}  {:<8} {:<46} answer",
        "route", "mode", "status", "served", "x-plumb-equivalence"
    );
    println!("{}", "-".repeat(130));
    for (route, mode) in [
        ("correct-a", "observe"),
        ("correct-b", "observe"),
        ("correct-b-enforced", "enforce"),
    ] {
        let r = ask(route).await.unwrap();
        let status = r.status().as_u16();
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .unwrap_or("-")
                .to_owned()
        };
        let (served, equivalence) = (h("x-plumb-served-by"), h("x-plumb-equivalence"));
        let v: Value = r.json().await.unwrap_or_default();
        let answer = if status == 200 {
            let text = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
            let said = text.split(": ").nth(1).unwrap_or(text);
            format!("{:?}", first_line(said, 44))
        } else {
            let msg = v["error"]["message"].as_str().unwrap_or("");
            let why = msg.find("cheap: skipped").map_or(msg, |i| &msg[i..]);
            format!("error: {}", first_line(why, 110))
        };
        println!("{route:<20} {mode:<8} {status:>6}  {served:<8} {equivalence:<46} {answer}");
    }
    println!(
        "\n`observe` fails over either way and says which answers to trust; `enforce` never serves the fallback that answers differently."
    );
    sim.reset();
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, routes(&sim.base_url())).unwrap();
    let bin = std::env::var("PLUMB_SIDECAR_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::current_exe()
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("plumb-sidecar")
        });
    let mut child = Command::new(&bin)
        .arg("--routes")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("KEY_MAIN", "sk-demo-main-0001")
        .env("KEY_BACKUP", "sk-demo-backup-0002")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (build it with `cargo build -p plumb-sidecar`)",
                bin.display()
            )
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let (url, admin) = (words[3].to_owned(), words[5].to_owned());
    println!(
        "Plumb demo: simulated failing providers at {} behind plumb-sidecar at {url}",
        sim.base_url()
    );
    println!(
        "Routes: {} (LlmRoute YAML, the same documents a cluster accepts)\n",
        path.display()
    );
    println!(
        "{:<30} {:>6} {:>8}  {:<10} {:<9} failure classes → outcome",
        "scene", "status", "time", "served by", "attempts"
    );
    println!("{}", "-".repeat(118));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap();
    for scene in SCENES {
        if let Some((model, _)) = &scene.plan {
            let fault = if scene.stream {
                "stream_cut:after=4"
            } else {
                "rate_limited:retry_after=1"
            };
            let spec: PlanSpec =
                serde_json::from_value(json!({"fault": fault, "first": 1})).unwrap();
            sim.set_plan(model, spec).unwrap();
        }
        let start = Instant::now();
        let resp = client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth("sk-app-key")
            .json(&json!({"model": scene.model, "stream": scene.stream, "messages": [{"role": "user", "content": "What is six times seven?"}]}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (served, attempts, classes) = (
            h("x-plumb-served-by"),
            h("x-plumb-attempts"),
            h("x-plumb-failure-classes"),
        );
        let text = resp.text().await.unwrap_or_default();
        let outcome = if scene.stream {
            if text.contains("stream_interrupted") {
                "stream ended with an explicit stream_interrupted event, never passed off as complete".to_owned()
            } else if text.contains("[DONE]") {
                "complete stream".to_owned()
            } else {
                "stream".to_owned()
            }
        } else if status == 200 {
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            format!("answer from {}", v["model"].as_str().unwrap_or("?"))
        } else {
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            let msg: String = v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(70)
                .collect();
            format!("error: {msg}…")
        };
        let classes = if classes.is_empty() {
            "-".to_owned()
        } else {
            classes
        };
        println!(
            "{:<30} {:>6} {:>6}ms  {:<10} {:<9} {classes} → {outcome}",
            scene.title,
            status,
            start.elapsed().as_millis(),
            if served.is_empty() { "-" } else { &served },
            attempts,
        );
    }
    println!(
        "\nThe simulator saw {} attempts; the applications saw none of the failures that had a healthy fallback.",
        sim.attempts(None).len()
    );
    responses(&client, &url).await;
    contracts(&sim, &client, &url).await;
    correctover(&sim, &client, &url, &admin).await;
    println!(
        "\nMetrics: curl {admin}/metrics   (plumb_requests_total, plumb_attempts_total, plumb_breaker_state, plumb_contract_failures_total, …)"
    );
    println!(
        "Certifications: curl {admin}/equivalence   (agreements and samples per route and (primary, candidate) pair)"
    );
    println!(
        "Traces and GenAI metrics: run it with OTEL_EXPORTER_OTLP_ENDPOINT=http://COLLECTOR:4318 (or :4317 and OTEL_EXPORTER_OTLP_PROTOCOL=grpc) to export over OTLP"
    );
    let _ = child.kill();
    let _ = child.wait();
}
