//! The secret-leak tier: recognisable canary keys, providers that echo the key they received in
//! every shape (whole, its head, inside JSON, after a newline, masked, in a stream's error event
//! after commit), both client families, streamed and not, failover, continuation and shadow
//! sampling — and no canary, nor a recognisable part of one, in any response body or header,
//! any log line (text and JSON), `/metrics`, `/fleet`, `/equivalence`, or the spans and metrics
//! an OTLP receiver got.

use serde_json::{Value, json};

use crate::support::{Sidecar, client, plan, route, simulator, target};

/// The OpenAI target's key: no provider's shape, so only knowing it finds it.
const OPENAI_CANARY: &str = "CANARYopenai0123456789abcdefXYZ";
/// The Anthropic target's key, in Anthropic's shape.
const ANTHROPIC_CANARY: &str = "sk-ant-CANARYanthropic9876543210zyx";

/// The caller's own key, which passthrough targets forward: no provider's shape either.
const CALLER_CANARY: &str = "CANARYcaller5432109876fedcbaQRS";

/// The texts that must never appear: each key, its first twelve characters, its last ten.
fn forbidden() -> Vec<&'static str> {
    [OPENAI_CANARY, ANTHROPIC_CANARY, CALLER_CANARY]
        .into_iter()
        .flat_map(|k| [k, &k[..12], &k[k.len() - 10..]])
        .collect()
}

fn assert_clean(what: &str, text: &str) {
    for f in forbidden() {
        assert!(
            !text.contains(f),
            "{what} leaks {f:?}:\n{}",
            &text[text.find(f).unwrap_or(0).saturating_sub(300)..]
                .chars()
                .take(600)
                .collect::<String>()
        );
    }
}

/// An OpenAI primary and an Anthropic fallback that continues cut streams; every healthy
/// answer of the primary shadowed to the fallback.
fn routes(sim: &plumb_simulator::Simulator) -> String {
    route(
        "chat",
        &[
            target(
                "primary",
                "openai",
                &format!("{}/v1", sim.base_url()),
                "sim-gpt",
                "",
            )
            .replace("{none: true}", "{env: PLUMB_CANARY_OPENAI}"),
            target(
                "claude",
                "anthropic",
                &sim.base_url(),
                "sim-claude",
                "      priority: 1\n",
            )
            .replace("{none: true}", "{env: PLUMB_CANARY_ANTHROPIC}"),
        ],
        "  streaming: {continuation: true}\n  equivalence:\n    mode: observe\n    shadow: {rate: 1.0, maxConcurrent: 4, requestsPerMinute: 1000}\n",
    ) + "---\n"
        // The caller's own key, forwarded to both targets; the second continues cut streams.
        + &route(
            "own",
            &["sim-gpt", "sim-gpt-mini"]
                .iter()
                .enumerate()
                .map(|(i, model)| {
                    target(
                        &format!("own-{i}"),
                        "openai",
                        &format!("{}/v1", sim.base_url()),
                        model,
                        &format!("      priority: {i}\n"),
                    )
                    .replace("{none: true}", "{passthrough: true}")
                })
                .collect::<Vec<_>>(),
            "  streaming: {continuation: true}\n",
        )
        .replace("name: r,", "name: own,")
}

/// One request; everything the client saw, as text.
async fn call(sc: &Sidecar, family: &str, stream: bool) -> String {
    let r = match family {
        "openai" => sc.openai(json!({"model": "chat", "stream": stream,
            "messages": [{"role": "user", "content": "what is six times seven"}]})),
        _ => sc.anthropic(json!({"model": "chat", "max_tokens": 200, "stream": stream,
            "messages": [{"role": "user", "content": "what is six times seven"}]})),
    };
    let r = r.send().await.unwrap();
    let mut seen = format!("{}\n", r.status());
    for (k, v) in r.headers() {
        seen.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("")));
    }
    seen.push_str(&r.text().await.unwrap_or_default());
    seen
}

/// Shadow samples ended so far, whatever their outcome.
async fn shadow_samples(sc: &Sidecar) -> u64 {
    admin(sc, "/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with("plumb_shadow_comparisons_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

async fn admin(sc: &Sidecar, path: &str) -> String {
    client()
        .get(format!("{}{path}", sc.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn no_canary_key_leaves_the_sidecar_whatever_the_providers_echo() {
    let sim = simulator().await;
    let echoes = ["whole", "head", "json", "newline"];
    let (otlp, endpoint) = crate::otlp::grpc_receiver().await;
    for log_format in ["text", "json"] {
        let sc = Sidecar::start_with_env_and_args(
            &routes(&sim),
            &[
                ("PLUMB_CANARY_OPENAI", OPENAI_CANARY),
                ("PLUMB_CANARY_ANTHROPIC", ANTHROPIC_CANARY),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ],
            &["--log-format", log_format],
        );
        // Shadow samples first, while the fallback's breaker is closed (the echoing cases
        // below open it, and a sample never asks a target known to be down): the primary
        // answers, its answer is shadowed to the fallback, which answers or echoes its key.
        let mut shadowed: Vec<(String, Value, Value)> = vec![(
            "healthy, shadowed".to_owned(),
            json!({"fault": "server_error", "first": 0}),
            json!({"fault": "server_error", "first": 0}),
        )];
        for how in echoes {
            shadowed.push((
                format!("the shadow candidate echoes ({how})"),
                json!({"fault": "server_error", "first": 0}),
                json!({"fault": format!("key_echo:how={how}"), "first": 1}),
            ));
        }
        for (name, primary, fallback) in &shadowed {
            for family in ["openai", "anthropic"] {
                plan(&sim, "sim-gpt", primary.clone());
                plan(&sim, "sim-claude", fallback.clone());
                let before = shadow_samples(&sc).await;
                let seen = call(&sc, family, false).await;
                assert_clean(&format!("{name}, {family}: the response"), &seen);
                // One sample at a time, so each candidate answer is the one planned.
                assert!(
                    crate::support::eventually(|| async { shadow_samples(&sc).await > before })
                        .await,
                    "{name}, {family}: the answer was shadowed to the fallback"
                );
            }
        }
        let metrics = admin(&sc, "/metrics").await;
        for outcome in ["agree", "error"] {
            assert!(
                metrics
                    .lines()
                    .any(|l| l.starts_with("plumb_shadow_comparisons_total")
                        && l.contains(&format!("outcome=\"{outcome}\""))),
                "a shadow sample ended {outcome:?}:\n{metrics}"
            );
        }
        let mut cases: Vec<(String, Value, Value)> = Vec::new();
        for how in echoes {
            // The primary echoes its key; the fallback answers.
            cases.push((
                format!("primary echoes ({how})"),
                json!({"fault": format!("key_echo:how={how}"), "first": 10}),
                json!({"fault": "server_error", "first": 0}),
            ));
            // Both echo: the client's error carries both providers' words.
            cases.push((
                format!("both echo ({how})"),
                json!({"fault": format!("key_echo:how={how}"), "first": 10}),
                json!({"fault": format!("key_echo:how={how}"), "first": 10}),
            ));
            // A stream that fails after commit with the key in its error event; the fallback
            // continues it, or (echoing too) the client gets the error event.
            cases.push((
                format!("mid-stream echo ({how})"),
                json!({"fault": format!("key_echo:how={how},after=2"), "first": 10}),
                json!({"fault": format!("key_echo:how={how},after=2"), "first": 10}),
            ));
        }
        cases.push((
            "masked echo of a refused key".to_owned(),
            json!({"fault": "unauthorized", "first": 10}),
            json!({"fault": "unauthorized", "first": 10}),
        ));
        for (name, primary, fallback) in &cases {
            for family in ["openai", "anthropic"] {
                for stream in [false, true] {
                    plan(&sim, "sim-gpt", primary.clone());
                    plan(&sim, "sim-claude", fallback.clone());
                    let seen = call(&sc, family, stream).await;
                    assert_clean(
                        &format!("{name}, {family}, stream={stream}: the response"),
                        &seen,
                    );
                }
            }
        }
        // The caller's own key, echoed by both passthrough targets, in every shape.
        for how in echoes {
            for after in [0, 2] {
                let fault =
                    json!({"fault": format!("key_echo:how={how},after={after}"), "first": 10});
                plan(&sim, "sim-gpt", fault.clone());
                plan(&sim, "sim-gpt-mini", fault);
                for stream in [false, true] {
                    let r = client()
                        .post(format!("{}/v1/chat/completions", sc.url))
                        .bearer_auth(CALLER_CANARY)
                        .json(&json!({"model": "own", "stream": stream,
                            "messages": [{"role": "user", "content": "what is six times seven"}]}))
                        .send()
                        .await
                        .unwrap();
                    let mut seen = format!("{}\n", r.status());
                    for (k, v) in r.headers() {
                        seen.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("")));
                    }
                    seen.push_str(&r.text().await.unwrap_or_default());
                    assert_clean(
                        &format!("the caller's key echoed ({how}, after {after}, stream={stream})"),
                        &seen,
                    );
                }
            }
        }
        assert!(
            sim.attempts(Some("sim-gpt-mini")).iter().any(|a| a
                .fault
                .as_deref()
                .is_some_and(|f| f.starts_with("key_echo"))),
            "the passthrough targets echoed the caller's key"
        );
        // Read everything the sidecar exposes (samples were waited for above).
        for path in ["/metrics", "/fleet", "/equivalence"] {
            assert_clean(path, &admin(&sc, path).await);
        }
        let logs = String::from_utf8_lossy(&sc.logs.lock()).into_owned();
        assert!(
            logs.contains("attempt failed"),
            "the failures were logged (so the check below means something)"
        );
        assert!(
            logs.contains("shadow request failed"),
            "the shadow candidate's echoing failures were logged"
        );
        assert_clean(&format!("the {log_format} log"), &logs);
        assert!(
            crate::support::eventually(|| async { otlp.dump().contains("plumb.failure_class") })
                .await,
            "spans of failed attempts reached the receiver"
        );
        assert_clean("the OTLP spans and metrics", &otlp.dump());
        assert!(
            sim.attempts(Some("sim-gpt")).iter().any(|a| a
                .fault
                .as_deref()
                .is_some_and(|f| f.starts_with("key_echo"))),
            "the echoing faults ran"
        );
    }
}

/// The egress proxy's password: no provider's shape, so only knowing it finds it.
const PROXY_CANARY: &str = "CANARYproxyPass13579bdfACE";

#[tokio::test]
async fn the_egress_proxys_credentials_never_leave_the_sidecar() {
    let forbidden = [
        PROXY_CANARY,
        &PROXY_CANARY[..12],
        &PROXY_CANARY[PROXY_CANARY.len() - 10..],
    ];
    let clean = |what: &str, text: &str| {
        for f in forbidden {
            assert!(!text.contains(f), "{what} leaks {f:?}: {text}");
        }
    };
    let sim = simulator().await;
    // The proxy refuses every request (its credentials are "wrong"), then one that accepts:
    // failures and successes both pass the checks.
    for refuse in [Some(407), Some(502), None] {
        let proxy = crate::support::TestProxy::start(None, refuse)
            .await
            .unwrap();
        let url = format!("http://svc-user:{PROXY_CANARY}@{}", proxy.addr);
        let routes = route(
            "chat",
            &[target(
                "up",
                "openai",
                &format!("http://localhost:{}/v1", sim.addr().port()),
                "sim-gpt",
                "",
            )],
            "",
        );
        let sc = Sidecar::start_with_env_and_args(
            &routes,
            &[
                ("HTTP_PROXY", url.as_str()),
                ("HTTPS_PROXY", url.as_str()),
                ("RUST_LOG", "trace"),
            ],
            &["--log-format", "json"],
        );
        for stream in [false, true] {
            clean("a response", &call(&sc, "openai", stream).await);
        }
        for path in ["/metrics", "/fleet", "/equivalence"] {
            clean(path, &admin(&sc, path).await);
        }
        clean("the logs", &String::from_utf8_lossy(&sc.logs.lock()));
        assert!(!proxy.seen().is_empty(), "the proxy was used");
    }
}

/// The Gemini target's key, in Google's shape (`AIza` and 35 more characters).
const GEMINI_CANARY: &str = "AIzaSyCANARYgemini0123456789abcdefghi";

#[tokio::test]
async fn no_gemini_key_leaves_the_sidecar_whatever_gemini_echoes() {
    let sim = simulator().await;
    let routes = route(
        "chat",
        &[
            target("gemini", "gemini", &sim.base_url(), "sim-gemini", "")
                .replace("{none: true}", "{env: PLUMB_CANARY_GEMINI}"),
            target(
                "fallback",
                "openai",
                &format!("{}/v1", sim.base_url()),
                "sim-gpt",
                "      priority: 1\n",
            ),
        ],
        "",
    );
    let forbidden = [
        GEMINI_CANARY,
        &GEMINI_CANARY[..12],
        &GEMINI_CANARY[GEMINI_CANARY.len() - 10..],
    ];
    let clean = |what: &str, text: &str| {
        for f in forbidden {
            assert!(!text.contains(f), "{what} leaks {f:?}:\n{text}");
        }
    };
    for log_format in ["text", "json"] {
        let sc = Sidecar::start_with_env_and_args(
            &routes,
            &[("PLUMB_CANARY_GEMINI", GEMINI_CANARY)],
            &["--log-format", log_format],
        );
        for how in ["whole", "head", "json", "newline"] {
            for after in [0, 2] {
                for family in ["openai", "anthropic"] {
                    for stream in [false, true] {
                        plan(
                            &sim,
                            "sim-gemini",
                            json!({"fault": format!("key_echo:how={how},after={after}"), "first": 10}),
                        );
                        plan(
                            &sim,
                            "sim-gpt",
                            json!({"fault": format!("key_echo:how={how}"), "first": 10}),
                        );
                        let seen = call(&sc, family, stream).await;
                        clean(
                            &format!(
                                "{how}, after {after}, {family}, stream={stream}: the response"
                            ),
                            &seen,
                        );
                    }
                }
            }
        }
        for path in ["/metrics", "/fleet"] {
            clean(path, &admin(&sc, path).await);
        }
        let logs = String::from_utf8_lossy(&sc.logs.lock()).into_owned();
        assert!(logs.contains("attempt failed"), "the failures were logged");
        clean(&format!("the {log_format} log"), &logs);
    }
    let echoed = sim.attempts(Some("sim-gemini"));
    assert!(
        echoed.iter().any(|a| a.api == plumb_simulator::Api::Gemini
            && a.key_hint.as_deref() == Some(&GEMINI_CANARY[GEMINI_CANARY.len() - 4..])
            && a.fault
                .as_deref()
                .is_some_and(|f| f.starts_with("key_echo"))),
        "Gemini got its key and echoed it"
    );
}

/// A Bedrock API key (a bearer token).
const BEDROCK_KEY_CANARY: &str = "ABSKCANARYbedrockApiKey0123456789abcdefXYZ";
/// An AWS session token, sent in `x-amz-security-token` with every signed request.
const SESSION_TOKEN_CANARY: &str = "IQoJCANARYsessionToken0123456789abcdefghijkl";
/// The web identity token (IRSA) and the container-credentials token (EKS Pod Identity).
const CONTAINER_TOKEN_CANARY: &str = "CANARYcontainerToken0123456789abcdefghij";

#[tokio::test]
async fn no_aws_secret_nor_bedrock_key_leaves_the_sidecar_whatever_bedrock_echoes() {
    use plumb_simulator::aws::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, WEB_IDENTITY_TOKEN};
    let sim = simulator().await;
    let secrets = [
        BEDROCK_KEY_CANARY,
        SESSION_TOKEN_CANARY,
        CONTAINER_TOKEN_CANARY,
        SECRET_ACCESS_KEY,
        WEB_IDENTITY_TOKEN,
    ];
    let forbidden: Vec<&str> = secrets
        .iter()
        .flat_map(|k| [*k, &k[..12], &k[k.len() - 10..]])
        .collect();
    let clean = |what: &str, text: &str| {
        for f in &forbidden {
            assert!(!text.contains(f), "{what} leaks {f:?}:\n{text}");
        }
    };
    let bedrock = |credentials: &str| {
        route(
            "chat",
            &[target(
                "bedrock",
                "bedrock",
                &sim.base_url(),
                "anthropic.sim-claude-v1:0",
                "      region: us-east-1\n",
            )
            .replace("{none: true}", credentials)],
            "",
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity");
    std::fs::write(&identity, WEB_IDENTITY_TOKEN).unwrap();
    let container = dir.path().join("container");
    std::fs::write(&container, CONTAINER_TOKEN_CANARY).unwrap();
    let container_uri = format!("{}{}", sim.base_url(), plumb_simulator::aws::CONTAINER_PATH);
    let sts = sim.base_url();
    let setups: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "{env: PLUMB_CANARY_BEDROCK}",
            vec![("PLUMB_CANARY_BEDROCK", BEDROCK_KEY_CANARY)],
        ),
        (
            "{aws: true}",
            vec![
                ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
                ("AWS_SESSION_TOKEN", SESSION_TOKEN_CANARY),
            ],
        ),
        (
            "{aws: true}",
            vec![
                ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/plumb"),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", identity.to_str().unwrap()),
                ("AWS_ENDPOINT_URL_STS", &sts),
            ],
        ),
        (
            "{aws: true}",
            vec![
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &container_uri),
                // The endpoint refuses it: the failure names the source, never the token.
                ("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN_CANARY),
            ],
        ),
    ];
    for (credentials, env) in setups {
        for log_format in ["text", "json"] {
            let sc = Sidecar::start_with_env_and_args(
                &bedrock(credentials),
                &env,
                &["--log-format", log_format],
            );
            for how in ["whole", "head", "json", "newline"] {
                for after in [0, 2] {
                    for family in ["openai", "anthropic"] {
                        for stream in [false, true] {
                            plan(
                                &sim,
                                "anthropic.sim-claude-v1:0",
                                json!({"fault": format!("key_echo:how={how},after={after}"), "first": 1}),
                            );
                            let seen = call(&sc, family, stream).await;
                            clean(
                                &format!(
                                    "{credentials} {how}, after {after}, {family}, stream={stream}: the response"
                                ),
                                &seen,
                            );
                        }
                    }
                }
            }
            for path in ["/metrics", "/fleet"] {
                clean(path, &admin(&sc, path).await);
            }
            let logs = String::from_utf8_lossy(&sc.logs.lock()).into_owned();
            clean(&format!("{credentials}: the {log_format} log"), &logs);
        }
    }
    let echoed = sim.attempts(Some("anthropic.sim-claude-v1:0"));
    for hint in [
        &BEDROCK_KEY_CANARY[BEDROCK_KEY_CANARY.len() - 4..],
        &ACCESS_KEY_ID[ACCESS_KEY_ID.len() - 4..],
    ] {
        assert!(
            echoed.iter().any(|a| a.key_hint.as_deref() == Some(hint)
                && a.fault
                    .as_deref()
                    .is_some_and(|f| f.starts_with("key_echo"))),
            "Bedrock got the credentials ({hint}) and echoed them"
        );
    }
}

/// A Vertex AI target's secrets: the access tokens the simulator issues (`ya29.sim-…`), the
/// service account's signed JWT (its header, `eyJhbGciOiJSUzI1NiIs…`) and its private key.
#[tokio::test]
async fn no_access_token_leaves_the_sidecar_whatever_vertex_echoes() {
    let sim = simulator().await;
    let routes = route(
        "chat",
        &[
            crate::vertex::vertex(
                &sim,
                "vertex",
                "gemini-2.5-pro",
                "{env: PLUMB_VERTEX_SA}",
                "",
            ),
            crate::vertex::vertex(
                &sim,
                "vertex-claude",
                "claude-sonnet-4-5",
                "{env: PLUMB_VERTEX_SA}",
                "      priority: 1\n",
            ),
        ],
        "",
    );
    let sc = crate::vertex::with_key(&sim, &routes);
    let forbidden = ["ya29.sim-", "eyJhbGciOiJSUzI1NiIs"];
    let pem: Vec<&str> = plumb_simulator::google_auth::TEST_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let clean = |what: &str, text: &str| {
        for f in forbidden.iter().chain(pem.iter()) {
            assert!(!text.contains(f), "{what} leaks {f:?}:\n{text}");
        }
    };
    for how in ["whole", "head", "json", "newline"] {
        for after in [0, 2] {
            for stream in [false, true] {
                let fault = format!("key_echo:how={how},after={after}");
                plan(&sim, "gemini-2.5-pro", json!({"fault": fault, "first": 10}));
                plan(
                    &sim,
                    "claude-sonnet-4-5",
                    json!({"fault": fault, "first": 10}),
                );
                let r = crate::gemini::ask(&sc, "openai", stream, json!({}))
                    .send()
                    .await
                    .unwrap();
                let head = format!("{:?}", r.headers());
                let seen = format!("{head} {}", r.text().await.unwrap_or_default());
                clean(&format!("{how}, after {after}, stream={stream}"), &seen);
            }
        }
    }
    let metrics = crate::support::metrics(&sc.admin).await;
    clean("/metrics", &metrics);
    let logs = crate::vertex::logs_with(&sc, "attempt failed").await;
    assert!(logs.contains("attempt failed"), "the failures were logged");
    clean("the log", &logs);
    let echoed: Vec<Value> = crate::support::attempts(&sim, "gemini-2.5-pro")
        .await
        .iter()
        .map(|a| json!(a.key_hint))
        .collect();
    assert!(!echoed.is_empty(), "Vertex got a token and echoed it");
}
