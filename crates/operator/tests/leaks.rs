//! The control plane's side of the secret-leak tier: canary keys in Secrets, a provider that
//! echoes them in every shape, routes the operator refuses for their credentials (a Secret not
//! labelled for routes, a password in a base URL, a key the Secret lacks) — and no canary, nor a
//! recognisable part of one, in any LlmRoute's status, any Event, the operator's or the
//! sidecar's log (text and JSON), their `/metrics`, or the sidecar's `/fleet`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const ROUTES: &str = "/apis/plumb.dev/v1alpha1/namespaces/team-a/llmroutes";

/// The keys routes may use (in a labelled Secret).
const OPENAI_CANARY: &str = "sk-CANARYoperatorOpenAI0123456789xyz";
const ANTHROPIC_CANARY: &str = "sk-ant-CANARYoperatorAnthropic987654";
/// A Secret no route may borrow (not labelled for routes).
const BORROWED_CANARY: &str = "CANARYdbPasswordNotForRoutes0123";
/// A password written into a route's base URL.
const URL_CANARY: &str = "CANARYurlPasswordInBaseUrl4567";

/// The texts that must never appear: each canary, its first twelve characters, its last ten.
fn forbidden() -> Vec<&'static str> {
    [OPENAI_CANARY, ANTHROPIC_CANARY, BORROWED_CANARY, URL_CANARY]
        .into_iter()
        .flat_map(|k| [k, &k[..12], &k[k.len() - 10..]])
        .collect()
}

fn assert_clean(what: &str, text: &str) {
    for f in forbidden() {
        if let Some(at) = text.find(f) {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(300)
                .map_or(0, |(i, _)| i);
            panic!(
                "{what} leaks {f:?}:\n{}",
                text[from..].chars().take(600).collect::<String>()
            );
        }
    }
}

fn routes(env: &Env) -> Vec<Value> {
    let sim = env.sim.base_url();
    let secret = |key: &str| json!({"secretRef": {"name": "llm-keys", "key": key}});
    let mut chat = env.route(
        "team-a",
        "chat",
        "chat",
        json!({
            "streaming": {"continuation": true},
            "equivalence": {"mode": "observe",
                "shadow": {"rate": 1.0, "maxConcurrent": 4, "requestsPerMinute": 1000}},
        }),
    );
    chat["spec"]["targets"] = json!([
        {"name": "primary", "provider": "openai", "baseUrl": format!("{sim}/v1"),
         "model": "sim-gpt", "credentials": secret("openai")},
        {"name": "claude", "provider": "anthropic", "baseUrl": sim, "priority": 1,
         "model": "sim-claude", "credentials": secret("anthropic")},
    ]);
    let mut borrowed = env.route("team-a", "borrowed", "borrowed", json!({}));
    borrowed["spec"]["targets"][0]["credentials"] =
        json!({"secretRef": {"name": "db-password", "key": "password"}});
    let mut userinfo = env.route("team-a", "userinfo", "userinfo", json!({}));
    userinfo["spec"]["targets"][0]["baseUrl"] =
        json!(format!("http://plumb:{URL_CANARY}@127.0.0.1:9/v1"));
    let mut keyless = env.route("team-a", "keyless", "keyless", json!({}));
    keyless["spec"]["targets"][0]["credentials"] = secret("absent");
    vec![chat, borrowed, userinfo, keyless]
}

fn plan(env: &Env, model: &str, json: Value) {
    env.sim
        .set_plan(model, serde_json::from_value(json).unwrap())
        .unwrap();
}

/// A request through the sidecar, streamed or not; everything the client saw, as text.
async fn call(env: &Env, sidecar: &Proc, stream: bool) -> String {
    let r = env
        .client
        .post(format!("{}/v1/chat/completions", sidecar.words[3]))
        .json(&json!({"model": "chat", "stream": stream,
            "messages": [{"role": "user", "content": "what is six times seven"}]}))
        .send()
        .await
        .unwrap();
    let mut seen = format!("{}\n", r.status());
    for (k, v) in r.headers() {
        seen.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("")));
    }
    seen.push_str(&r.text().await.unwrap_or_default());
    seen
}

async fn fetch(env: &Env, url: &str) -> String {
    env.client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn operator_e2e_no_canary_key_reaches_status_events_logs_or_metrics() {
    for log_format in ["text", "json"] {
        let env = env().await;
        env.fake.put_secret(
            "team-a",
            "llm-keys",
            CREDENTIALS,
            &[("openai", OPENAI_CANARY), ("anthropic", ANTHROPIC_CANARY)],
        );
        env.fake.put_secret(
            "team-a",
            "db-password",
            &[("app", "db")],
            &[("password", BORROWED_CANARY)],
        );
        env.fake
            .add_token("tok-a", "team-a", "web", "web-1", AUDIENCE);
        let port = free_port();
        let debug = "plumb_operator=debug,plumb_knowledge=debug,plumb_sidecar=debug,warn";
        let (operator, operator_logs) = spawn_logged(
            env.operator_command(
                port,
                &format!("operator-{port}"),
                &[
                    "--log-format",
                    log_format,
                    "--knowledge-status-min-interval",
                    "200ms",
                    "--knowledge-status-interval",
                    "500ms",
                ],
            ),
            debug,
        );
        for route in routes(&env) {
            let (status, body) = env.send(Method::POST, ROUTES, Some(&route)).await;
            assert_eq!(status, 201, "{body}");
        }
        let mut cmd = env.sidecar_command(
            &format!("https://127.0.0.1:{port}"),
            "team-a",
            "web-1",
            "tok-a",
            None,
        );
        cmd.args(["--log-format", log_format, "--report-interval", "200ms"]);
        let (sidecar, sidecar_logs) = spawn_logged(cmd, debug);
        eventually("the sidecar serves the route", || async {
            env.chat(&sidecar, "chat").await.0 == 200
        })
        .await;

        // Healthy answers, shadowed to the fallback (which then echoes its key), then both
        // providers echoing their keys before and after a stream commits.
        plan(
            &env,
            "sim-gpt",
            json!({"fault": "server_error", "first": 0}),
        );
        plan(
            &env,
            "sim-claude",
            json!({"fault": "server_error", "first": 0}),
        );
        for stream in [false, true] {
            assert_clean("a healthy answer", &call(&env, &sidecar, stream).await);
        }
        for how in ["whole", "head", "json", "newline"] {
            plan(
                &env,
                "sim-gpt",
                json!({"fault": "server_error", "first": 0}),
            );
            plan(
                &env,
                "sim-claude",
                json!({"fault": format!("key_echo:how={how}"), "first": 1}),
            );
            assert_clean(
                "an answer whose shadow echoes",
                &call(&env, &sidecar, false).await,
            );
            for after in [0, 2] {
                let fault =
                    json!({"fault": format!("key_echo:how={how},after={after}"), "first": 10});
                plan(&env, "sim-gpt", fault.clone());
                plan(&env, "sim-claude", fault);
                for stream in [false, true] {
                    assert_clean(
                        &format!("echo {how} after {after}, stream={stream}"),
                        &call(&env, &sidecar, stream).await,
                    );
                }
            }
        }
        assert!(
            env.sim.attempts(Some("sim-gpt")).iter().any(|a| a
                .fault
                .as_deref()
                .is_some_and(|f| f.starts_with("key_echo"))),
            "the echoing faults ran"
        );

        // What the operator made of it: every refused route says why, and the fleet's view of
        // the failing providers reached the route's status.
        let written = |list: &Value| {
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let reason = |name: &str, kind: &str| {
                items
                    .iter()
                    .find(|r| r["metadata"]["name"] == name)
                    .map(|r| condition(r, kind)["reason"].clone())
                    .unwrap_or(Value::Null)
            };
            reason("borrowed", "Accepted") == "SecretNotLabelled"
                && reason("userinfo", "Accepted") == "Invalid"
                && reason("keyless", "Programmed") == "Rejected"
                && items.iter().any(|r| {
                    r["metadata"]["name"] == "chat"
                        && r["status"]["targets"]
                            .as_array()
                            .is_some_and(|ts| ts.iter().any(|t| t["state"] == "Open"))
                })
        };
        eventually("every route's status is written", || async {
            written(&env.get(ROUTES).await)
        })
        .await;
        let list = env.get(ROUTES).await;
        // The spec holds what its author wrote (the URL's password included); the status is
        // what the operator wrote.
        for r in list["items"].as_array().unwrap() {
            assert_clean(
                &format!("the status of {}", r["metadata"]["name"]),
                &r["status"].to_string(),
            );
        }
        let events = env.fake.events();
        assert!(
            events.iter().any(|e| e["reason"] == "Invalid"),
            "an Event says a route was refused: {events:?}"
        );
        assert_clean("the Events", &Value::Array(events).to_string());
        assert_clean(
            "the operator's /metrics",
            &fetch(&env, &format!("{}/metrics", operator.words[4])).await,
        );
        assert_clean(
            "the sidecar's /metrics",
            &fetch(&env, &format!("{}/metrics", sidecar.words[5])).await,
        );
        assert_clean(
            "the sidecar's /fleet",
            &fetch(&env, &format!("{}/fleet", sidecar.words[5])).await,
        );
        let logs = sidecar_logs.text();
        assert!(
            logs.contains("attempt failed") && logs.contains("shadow request failed"),
            "the failures were logged (so the check below means something)"
        );
        assert_clean(&format!("the sidecar's {log_format} log"), &logs);
        let logs = operator_logs.text();
        assert!(!logs.is_empty(), "the operator logged at debug level");
        assert_clean(&format!("the operator's {log_format} log"), &logs);
        drop((sidecar, operator));
    }
}
