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
        title: "every target failing",
        model: "all-down",
        stream: false,
        plan: None,
    },
];

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
    println!(
        "Metrics: curl {admin}/metrics   (plumb_requests_total, plumb_attempts_total, plumb_breaker_state, …)"
    );
    let _ = child.kill();
    let _ = child.wait();
}
