//! A tour of the fault families as a plain client experiences them, with no Plumb in between.
//! Run with `cargo run -p plumb-simulator --example tour` (or `make demo` until the sidecar
//! demo replaces it).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;
use tokio::time::Instant;

use plumb_simulator::{SimConfig, Simulator};
use serde_json::{Value, json};

struct Scene {
    family: &'static str,
    fault: &'static str,
    stream: bool,
    anthropic: bool,
}

const SCENES: &[Scene] = &[
    Scene {
        family: "healthy",
        fault: "",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "healthy stream",
        fault: "",
        stream: true,
        anthropic: true,
    },
    Scene {
        family: "rate limit",
        fault: "rate_limited:retry_after=2",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "rate limit (HTTP-date)",
        fault: "rate_limited_date",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "rate limit (no hints)",
        fault: "rate_limited_bare",
        stream: false,
        anthropic: true,
    },
    Scene {
        family: "bad key",
        fault: "unauthorized",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "forbidden",
        fault: "forbidden",
        stream: false,
        anthropic: true,
    },
    Scene {
        family: "model not found",
        fault: "model_not_found",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "context too long",
        fault: "context_length",
        stream: false,
        anthropic: true,
    },
    Scene {
        family: "content filter",
        fault: "content_filter",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "server error",
        fault: "server_error",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "unavailable",
        fault: "unavailable",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "overloaded",
        fault: "overloaded",
        stream: false,
        anthropic: true,
    },
    Scene {
        family: "connection reset",
        fault: "connection_reset",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "silent provider",
        fault: "hang",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "slow first byte",
        fault: "slow_first_byte:delay=800ms",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "slow first token",
        fault: "slow_first_token:delay=800ms",
        stream: true,
        anthropic: true,
    },
    Scene {
        family: "stream cut",
        fault: "stream_cut:after=4",
        stream: true,
        anthropic: false,
    },
    Scene {
        family: "stream stall",
        fault: "stream_stall:after=4,stall=1s",
        stream: true,
        anthropic: true,
    },
    Scene {
        family: "error event mid-stream",
        fault: "stream_error:after=3",
        stream: true,
        anthropic: true,
    },
    Scene {
        family: "malformed event",
        fault: "malformed_event:at=3",
        stream: true,
        anthropic: false,
    },
    Scene {
        family: "missing [DONE]",
        fault: "missing_done",
        stream: true,
        anthropic: false,
    },
    Scene {
        family: "200 with broken JSON",
        fault: "broken_json",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "200 with empty answer",
        fault: "empty_content",
        stream: false,
        anthropic: true,
    },
    Scene {
        family: "200 breaking the schema",
        fault: "schema_violation",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "200 out of bounds",
        fault: "out_of_bounds",
        stream: false,
        anthropic: false,
    },
    Scene {
        family: "model substituted",
        fault: "model_substituted",
        stream: false,
        anthropic: false,
    },
];

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .expect("start the simulator");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .no_proxy()
        .build()
        .unwrap();
    println!(
        "plumb-simulator at {}: what a plain client sees, with no Plumb in between\n",
        sim.base_url()
    );
    println!(
        "{:<26} {:<10} {:>8}  what the client got",
        "fault family", "format", "time"
    );
    println!("{}", "-".repeat(110));
    for scene in SCENES {
        let schema = json!({"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]});
        let (url, mut body) = if scene.anthropic {
            (
                format!("{}/v1/messages", sim.base_url()),
                json!({"model": "sim-claude", "max_tokens": 200, "messages": [{"role": "user", "content": "rate this answer"}]}),
            )
        } else {
            (
                format!("{}/v1/chat/completions", sim.base_url()),
                json!({"model": "sim-gpt", "messages": [{"role": "user", "content": "rate this answer"}],
                       "response_format": {"type": "json_schema", "json_schema": {"name": "rating", "schema": schema}}}),
            )
        };
        body["stream"] = json!(scene.stream);
        if scene.stream {
            // Streams show their tokens: ask for prose, not a one-token JSON object.
            body.as_object_mut().map(|b| b.remove("response_format"));
        }
        let mut req = client
            .post(url)
            .bearer_auth("sk-demo-key-0001")
            .header("x-api-key", "sk-demo-key-0001")
            .header("anthropic-version", "2023-06-01")
            .json(&body);
        if !scene.fault.is_empty() {
            req = req.header("x-sim-fault", scene.fault);
        }
        let start = Instant::now();
        let account = describe(req.send().await, scene.stream).await;
        println!(
            "{:<26} {:<10} {:>6}ms  {}",
            scene.family,
            if scene.anthropic {
                "anthropic"
            } else {
                "openai"
            },
            start.elapsed().as_millis(),
            account
        );
    }
    println!(
        "\n{} attempts recorded; GET {}/_sim/attempts shows them.",
        sim.attempts(None).len(),
        sim.base_url()
    );
    println!(
        "Every one of these reached the client unchanged: nothing classified, retried, failed over or verified it."
    );
}

async fn describe(result: Result<reqwest::Response, reqwest::Error>, stream: bool) -> String {
    let resp = match result {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return "no answer at all: the client gave up after 3 s".to_owned();
        }
        Err(e) => return format!("transport error, no status: {}", root_cause(&e)),
    };
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| format!(" retry-after: {}", v.to_str().unwrap_or("?")))
        .unwrap_or_default();
    if status != 200 {
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        let err = &v["error"];
        let kind = err["code"].as_str().or(err["type"].as_str()).unwrap_or("?");
        let msg: String = err["message"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(50)
            .collect();
        return format!("HTTP {status} {kind}{retry}: {msg}…");
    }
    if stream {
        let mut resp = resp;
        let mut text = String::new();
        let mut cut = None;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => text.push_str(&String::from_utf8_lossy(&c)),
                Ok(None) => break,
                Err(e) => {
                    cut = Some(root_cause(&e));
                    break;
                }
            }
        }
        let events: Vec<&str> = text
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .collect();
        let bad = events
            .iter()
            .filter(|e| {
                e.lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .any(|d| d != "[DONE]" && serde_json::from_str::<Value>(d).is_err())
            })
            .count();
        let errors = events.iter().filter(|e| e.contains("\"error\"")).count();
        let done = text.contains("[DONE]") || text.contains("message_stop");
        let mut out = format!("HTTP 200 stream, {} events", events.len());
        if bad > 0 {
            out.push_str(&format!(", {bad} not JSON"));
        }
        if errors > 0 {
            out.push_str(", an error event");
        }
        out.push_str(if done {
            ", terminated"
        } else {
            ", no terminator"
        });
        if let Some(c) = cut {
            out.push_str(&format!(", then the connection broke ({c})"));
        }
        return out;
    }
    let text = resp.text().await.unwrap_or_default();
    match serde_json::from_str::<Value>(&text) {
        Err(_) => format!(
            "HTTP 200 but the body is not JSON: {}…",
            text.chars().take(40).collect::<String>()
        ),
        Ok(v) => {
            let content = v["choices"][0]["message"]["content"]
                .as_str()
                .or(v["content"][0]["text"].as_str())
                .unwrap_or("");
            let shown: String = content.chars().take(48).collect();
            format!(
                "HTTP 200 from model {}: {:?}{}",
                v["model"],
                shown,
                if content.len() > 48 { "…" } else { "" }
            )
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
