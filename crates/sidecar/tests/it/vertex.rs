//! Google Vertex AI as a target: Gemini and Claude models at Vertex's paths, behind OAuth
//! access tokens from a service-account key (a signed JWT exchanged at the key's token_uri)
//! or the metadata server; failover to and from it for every client family, whole and
//! streamed; Google's error shapes classified with one attempt; tokens refreshed before they
//! expire, and a failed refresh riding on the unexpired token. The simulator's attempt log
//! and its token counts are the witnesses.

use std::time::Duration;

use plumb_simulator::google_auth::{GoogleSettings, test_service_account};
use serde_json::{Value, json};

use crate::gemini::{ask, told};
use crate::support::{Sidecar, attempts, header, plan, route, simulator, target};

const GEMINI: &str = "gemini-2.5-pro";
const CLAUDE: &str = "claude-sonnet-4-5";

/// The sidecar's log once it holds `needle` (or after a while, whatever it holds).
pub(crate) async fn logs_with(sc: &Sidecar, needle: &str) -> String {
    let read = || String::from_utf8_lossy(&sc.logs.lock()).into_owned();
    crate::support::eventually(|| async { read().contains(needle) }).await;
    read()
}

/// A vertex-ai target on the simulator with `credentials`.
pub(crate) fn vertex(
    sim: &plumb_simulator::Simulator,
    name: &str,
    model: &str,
    credentials: &str,
    extra: &str,
) -> String {
    target(
        name,
        "vertex-ai",
        &sim.base_url(),
        model,
        &format!("      project: sim-project\n      region: us-east5\n{extra}"),
    )
    .replace("{none: true}", credentials)
}

/// A sidecar whose `PLUMB_VERTEX_SA` holds the test service account's key.
pub(crate) fn with_key(sim: &plumb_simulator::Simulator, routes: &str) -> Sidecar {
    let key = test_service_account(&format!("{}/token", sim.base_url()));
    Sidecar::start_with_env_and_args(routes, &[("PLUMB_VERTEX_SA", &key)], &[])
}

/// A sidecar whose Application Default Credentials are the simulator's metadata server.
fn with_metadata(sim: &plumb_simulator::Simulator, routes: &str) -> Sidecar {
    let host = sim.base_url().trim_start_matches("http://").to_owned();
    Sidecar::start_with_env_and_args(routes, &[("GCE_METADATA_HOST", &host)], &[])
}

fn counts(sim: &plumb_simulator::Simulator) -> (u64, u64, u64) {
    let c = sim.google().counts();
    let n = |k: &str| c[k].as_u64().unwrap();
    (n("exchanges"), n("metadata"), n("refused"))
}

#[tokio::test]
async fn every_client_family_fails_over_to_gemini_on_vertex_with_a_service_account_key() {
    let sim = simulator().await;
    let routes = route(
        "chat",
        &[
            target(
                "gpt",
                "openai",
                &format!("{}/v1", sim.base_url()),
                "sim-gpt",
                "",
            ),
            vertex(
                &sim,
                "vertex",
                GEMINI,
                "{env: PLUMB_VERTEX_SA}",
                "      priority: 1\n",
            ),
        ],
        "  classes: {overloaded: {retries: 0}}\n",
    );
    let sc = with_key(&sim, &routes);
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
            assert_eq!(header(&r, "x-plumb-served-by"), "vertex");
            let (text, model, _) = told(family, stream, r).await;
            assert!(text.ends_with("End of answer."), "{family}: {text}");
            assert_eq!(model, GEMINI);
            asked += 1;
        }
    }
    let log = attempts(&sim, GEMINI).await;
    assert_eq!(log.len(), asked);
    for (i, a) in log.iter().enumerate() {
        assert_eq!(a.api, plumb_simulator::Api::Gemini, "Gemini's wire format");
        let method = if i % 2 == 1 {
            "streamGenerateContent"
        } else {
            "generateContent"
        };
        assert_eq!(
            a.path.as_deref(),
            Some(format!("/v1/projects/sim-project/locations/us-east5/publishers/google/models/{GEMINI}:{method}").as_str())
        );
        assert_eq!(a.status, 200, "a token the simulator issued");
    }
    assert_eq!(
        counts(&sim),
        (1, 0, 0),
        "one token exchange served every request"
    );
}

#[tokio::test]
async fn anthropic_clients_fail_over_to_claude_on_vertex_as_the_same_model_and_back() {
    let sim = simulator().await;
    let anthropic = target("anthropic", "anthropic", &sim.base_url(), "sim-claude", "");
    let routes = route(
        "chat",
        &[
            anthropic.clone(),
            vertex(
                &sim,
                "vertex-claude",
                CLAUDE,
                "{env: PLUMB_VERTEX_SA}",
                "      priority: 1\n",
            ),
        ],
        "  classes: {overloaded: {retries: 0}}\n  equivalence: {mode: enforce}\n  sameModel: [[anthropic, vertex-claude]]\n",
    );
    let sc = with_key(&sim, &routes);
    plan(
        &sim,
        "sim-claude",
        json!({"fault": "overloaded", "first": 100}),
    );
    for family in ["anthropic", "openai", "responses"] {
        for stream in [false, true] {
            let r = ask(&sc, family, stream, json!({})).send().await.unwrap();
            assert_eq!(r.status(), 200, "{family}, stream={stream}");
            assert_eq!(header(&r, "x-plumb-served-by"), "vertex-claude");
            assert_eq!(header(&r, "x-plumb-equivalence"), "same-model");
            let (text, model, tokens) = told(family, stream, r).await;
            assert!(text.ends_with("End of answer."), "{family}: {text}");
            assert_eq!(model, CLAUDE);
            // An OpenAI stream carries usage only when asked for.
            assert!(tokens > 10 || family == "openai" && stream, "usage counted");
        }
    }
    let log = attempts(&sim, CLAUDE).await;
    assert_eq!(log.len(), 6);
    for (i, a) in log.iter().enumerate() {
        assert_eq!(a.api, plumb_simulator::Api::Anthropic);
        let method = if i % 2 == 1 {
            "streamRawPredict"
        } else {
            "rawPredict"
        };
        assert_eq!(
            a.path.as_deref(),
            Some(format!("/v1/projects/sim-project/locations/us-east5/publishers/anthropic/models/{CLAUDE}:{method}").as_str())
        );
        // The simulator refuses a body with a model or without Vertex's anthropic_version.
        assert_eq!(a.status, 200);
    }

    // And back: Claude on Vertex failing, Anthropic's API answers.
    let back = route(
        "chat",
        &[
            vertex(&sim, "vertex-claude", CLAUDE, "{env: PLUMB_VERTEX_SA}", ""),
            anthropic.replace("      credentials", "      priority: 1\n      credentials"),
        ],
        "  classes: {overloaded: {retries: 0}}\n  sameModel: [[anthropic, vertex-claude]]\n",
    );
    for stream in [false, true] {
        let sc = with_key(&sim, &back);
        plan(&sim, CLAUDE, json!({"fault": "overloaded", "first": 1}));
        plan(
            &sim,
            "sim-claude",
            json!({"fault": "overloaded", "first": 0}),
        );
        let r = ask(&sc, "anthropic", stream, json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-plumb-served-by"), "anthropic");
        assert_eq!(header(&r, "x-plumb-failure-classes"), "overloaded");
        let (text, _, _) = told("anthropic", stream, r).await;
        assert!(text.ends_with("End of answer."));
    }
}

/// One route per case (`case-N`), each with its own Vertex model, so one case's breaker or
/// rate window cannot touch another.
fn cases(sim: &plumb_simulator::Simulator, models: &[String]) -> String {
    models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            route(
                &format!("case-{i}"),
                &[vertex(sim, "vertex", m, "{env: PLUMB_VERTEX_SA}", "")],
                "  classes: {rateLimited: {retries: 0}, overloaded: {retries: 0}, serverError: {retries: 0}, malformedResponse: {retries: 0}}\n",
            )
            .replace("name: r,", &format!("name: case-{i},"))
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[tokio::test]
async fn every_vertex_error_shape_gets_its_class_with_one_attempt() {
    let sim = simulator().await;
    // (publisher model prefix, fault, streamed, class, status the simulator sent)
    let table = [
        ("gemini", "rate_limited", false, "rate_limited", 429),
        ("gemini", "unavailable", false, "overloaded", 503),
        ("gemini", "context_length", false, "context_length", 400),
        ("gemini", "forbidden", false, "auth", 403),
        ("gemini", "model_not_found", false, "invalid_model", 404),
        ("gemini", "content_filter", false, "content_filter", 200),
        ("gemini", "content_filter", true, "content_filter", 200),
        ("gemini", "server_error", true, "server_error", 500),
        // Streamed calls get their errors wrapped in an array, `[{"error": …}]`.
        ("gemini", "rate_limited", true, "rate_limited", 429),
        ("gemini", "context_length", true, "context_length", 400),
        ("gemini", "model_not_found", true, "invalid_model", 404),
        ("gemini", "stream_error:after=0", true, "overloaded", 200),
        ("claude", "overloaded", false, "overloaded", 529),
        ("claude", "rate_limited", true, "rate_limited", 429),
        ("claude", "context_length", false, "context_length", 400),
        ("claude", "stream_error:after=0", true, "overloaded", 200),
    ];
    let models: Vec<String> = table
        .iter()
        .enumerate()
        .map(|(i, (p, ..))| format!("{p}-case-{i}"))
        .collect();
    let sc = with_key(&sim, &cases(&sim, &models));
    for (i, (_, fault, stream, class, status)) in table.iter().enumerate() {
        let model = &models[i];
        plan(&sim, model, json!({"fault": fault, "first": 1}));
        let r = sc
            .openai(
                json!({"model": format!("case-{i}"), "stream": stream, "max_tokens": 100,
                "messages": [{"role": "user", "content": "what is six times seven"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 200, "{model} {fault}");
        assert_eq!(
            header(&r, "x-plumb-failure-classes"),
            *class,
            "{model} {fault}"
        );
        let log = attempts(&sim, model).await;
        assert_eq!(log.len(), 1, "{model} {fault}: no retry");
        assert_eq!(log[0].status, *status, "{model} {fault}");
    }
}

#[tokio::test]
async fn a_bad_service_account_is_an_auth_failure_naming_its_source_and_never_the_key() {
    let sim = simulator().await;
    let routes = route(
        "chat",
        &[vertex(&sim, "vertex", GEMINI, "{env: PLUMB_VERTEX_SA}", "")],
        "",
    );
    // Signed by the test key but claiming another account: the token endpoint refuses it.
    let key = test_service_account(&format!("{}/token", sim.base_url()))
        .replace("plumb-test@", "someone-else@");
    let sc = Sidecar::start_with_env_and_args(&routes, &[("PLUMB_VERTEX_SA", &key)], &[]);
    let r = ask(&sc, "openai", false, json!({})).send().await.unwrap();
    assert_ne!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "auth");
    let body = r.text().await.unwrap();
    assert!(attempts(&sim, GEMINI).await.is_empty(), "never asked");
    assert_eq!(counts(&sim), (0, 0, 1), "the exchange was refused");
    let logs = logs_with(&sc, "invalid_grant").await;
    assert!(
        logs.contains("credentials.env PLUMB_VERTEX_SA") && logs.contains("invalid_grant"),
        "the failure names the source and Google's reason: {logs}"
    );
    for line in plumb_simulator::google_auth::TEST_KEY_PEM
        .lines()
        .skip(1)
        .take(3)
    {
        assert!(
            !body.contains(line) && !logs.contains(line),
            "the key leaks"
        );
    }
    assert!(!logs.contains("eyJhbGciOiJSUzI1NiIs"), "the JWT leaks");
}

#[tokio::test]
async fn metadata_server_tokens_are_refreshed_before_they_expire_and_a_failed_refresh_keeps_the_old_one()
 {
    let sim = simulator().await;
    // Eight seconds of life: refreshed after four (half its life, being shorter than the
    // five-minute margin), which leaves four seconds of slack on a busy machine.
    sim.google().set(&GoogleSettings {
        token_lifetime_s: Some(8),
        fail_next: None,
    });
    let routes = route(
        "chat",
        &[vertex(&sim, "vertex", CLAUDE, "{google: true}", "")],
        "",
    );
    let sc = with_metadata(&sim, &routes);
    let ok = |r: &reqwest::Response| assert_eq!(r.status(), 200, "{r:?}");
    // Concurrent first requests share one fetch.
    let (a, b, c) = tokio::join!(
        ask(&sc, "anthropic", false, json!({})).send(),
        ask(&sc, "anthropic", true, json!({})).send(),
        ask(&sc, "openai", false, json!({})).send(),
    );
    for r in [a.unwrap(), b.unwrap(), c.unwrap()] {
        ok(&r);
    }
    assert_eq!(counts(&sim), (0, 1, 0), "one token for three requests");
    tokio::time::sleep(Duration::from_millis(4_300)).await;
    // Within the refresh margin: a new token is fetched.
    ok(&ask(&sc, "anthropic", false, json!({}))
        .send()
        .await
        .unwrap());
    assert_eq!(counts(&sim).1, 2, "refreshed before expiry");
    // The next refresh fails; the token in hand still works, so requests go on.
    sim.google().set(&GoogleSettings {
        token_lifetime_s: None,
        fail_next: Some(1),
    });
    tokio::time::sleep(Duration::from_millis(4_300)).await;
    ok(&ask(&sc, "anthropic", false, json!({}))
        .send()
        .await
        .unwrap());
    assert_eq!(
        counts(&sim),
        (0, 2, 1),
        "the refresh failed, the old token served"
    );
    let logs = logs_with(&sc, "could not be refreshed").await;
    assert!(
        logs.contains("could not be refreshed") && logs.contains("metadata server"),
        "{logs}"
    );
    let log = attempts(&sim, CLAUDE).await;
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|a| a.status == 200), "{log:?}");
    assert!(!logs.contains("ya29.sim-"), "no access token in the logs");
}

#[tokio::test]
async fn the_token_endpoint_goes_through_the_proxy_and_the_metadata_server_never_does() {
    let sim = simulator().await;
    let proxy = crate::support::TestProxy::start(None, None).await.unwrap();
    let host = format!("localhost:{}", sim.addr().port());
    let base = format!("http://{host}");
    let one = |credentials: &str| {
        route(
            "chat",
            &[target(
                "vertex",
                "vertex-ai",
                &base,
                GEMINI,
                "      project: sim-project\n      region: us-east5\n",
            )
            .replace("{none: true}", credentials)],
            "",
        )
    };
    let key = test_service_account(&format!("{base}/token"));
    let sc = Sidecar::start_with_env_and_args(
        &one("{env: PLUMB_VERTEX_SA}"),
        &[("HTTP_PROXY", &proxy.url()), ("PLUMB_VERTEX_SA", &key)],
        &[],
    );
    let r = ask(&sc, "openai", false, json!({})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let lines: Vec<String> = proxy.seen().into_iter().map(|p| p.line).collect();
    assert_eq!(
        lines,
        [
            format!("POST {base}/token HTTP/1.1"),
            format!(
                "POST {base}/v1/projects/sim-project/locations/us-east5/publishers/google/models/{GEMINI}:generateContent HTTP/1.1"
            ),
        ],
        "the token exchange, then the request, both through the proxy"
    );
    drop(sc);
    let sc = Sidecar::start_with_env_and_args(
        &one("{google: true}"),
        &[("HTTP_PROXY", &proxy.url()), ("GCE_METADATA_HOST", &host)],
        &[],
    );
    let r = ask(&sc, "openai", true, json!({})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let lines: Vec<String> = proxy.seen().into_iter().map(|p| p.line).collect();
    assert_eq!(
        lines.len(),
        3,
        "only the model request was proxied: {lines:?}"
    );
    assert!(
        lines[2].contains(":streamGenerateContent?alt=sse"),
        "{lines:?}"
    );
    assert_eq!(
        counts(&sim),
        (1, 1, 0),
        "the metadata server was asked directly"
    );
}

#[tokio::test]
async fn application_default_credentials_read_the_key_file_google_application_credentials_names() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sa.json");
    std::fs::write(
        &path,
        test_service_account(&format!("{}/token", sim.base_url())),
    )
    .unwrap();
    let routes = route(
        "chat",
        &[vertex(&sim, "vertex", CLAUDE, "{google: true}", "")],
        "",
    );
    let sc = Sidecar::start_with_env_and_args(
        &routes,
        &[("GOOGLE_APPLICATION_CREDENTIALS", path.to_str().unwrap())],
        &[],
    );
    for stream in [false, true] {
        let r = ask(&sc, "anthropic", stream, json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (text, model, _) = told("anthropic", stream, r).await;
        assert!(text.ends_with("End of answer."));
        assert_eq!(model, CLAUDE);
    }
    assert_eq!(
        counts(&sim),
        (2 - 1, 0, 0),
        "one exchange, no metadata server"
    );
}

#[tokio::test]
async fn a_claude_stream_cut_after_commit_is_continued_by_claude_on_vertex_and_arrives_once() {
    let sim = simulator().await;
    let body = json!({"model": "chat", "max_tokens": 200, "stream": true,
        "messages": [{"role": "user", "content": "what is six times seven"}]});
    let whole: Value = crate::support::client()
        .post(format!("{}/v1/messages", sim.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "sim-claude", "max_tokens": 200,
            "messages": [{"role": "user", "content": "what is six times seven"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let full = whole["content"][0]["text"].as_str().unwrap().to_owned();
    plan(
        &sim,
        "sim-claude",
        json!({"fault": "stream_cut:after=5", "first": 10}),
    );
    let routes = route(
        "chat",
        &[
            target("claude", "anthropic", &sim.base_url(), "sim-claude", ""),
            vertex(
                &sim,
                "vertex-claude",
                CLAUDE,
                "{env: PLUMB_VERTEX_SA}",
                "      priority: 1\n",
            ),
        ],
        "  streaming: {continuation: true}\n  sameModel: [[claude, vertex-claude]]\n",
    );
    let sc = with_key(&sim, &routes);
    let r = sc.anthropic(body).send().await.unwrap();
    assert_eq!(
        header(&r, "x-plumb-served-by"),
        "claude",
        "committed on Anthropic"
    );
    let (text, err) = crate::support::read_all(r).await;
    assert!(err.is_none());
    assert!(!text.contains("stream_interrupted"), "{text}");
    let events = crate::support::parse_sse(&text);
    assert_eq!(
        crate::support::anthropic_stream_text(&events),
        full,
        "the whole answer, exactly once"
    );
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
    let log = attempts(&sim, CLAUDE).await;
    assert_eq!(log.len(), 1, "one continuation request");
    assert!(
        log[0]
            .path
            .as_deref()
            .is_some_and(|p| p.ends_with(":streamRawPredict")),
        "{log:?}"
    );
    assert_eq!(
        log[0].status, 200,
        "Vertex's body rules held for the prefill"
    );
}

#[tokio::test]
async fn vertex_answers_are_held_to_the_routes_contract_whole_and_streamed() {
    let sim = simulator().await;
    let contract = r#"  contract:
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
    let routes = route(
        "chat",
        &[
            vertex(&sim, "vertex", GEMINI, "{env: PLUMB_VERTEX_SA}", ""),
            target(
                "gpt",
                "openai",
                &format!("{}/v1", sim.base_url()),
                "sim-gpt-mini",
                "      priority: 1\n",
            ),
        ],
        contract,
    );
    let sc = with_key(&sim, &routes);
    let ask = |stream: bool| {
        sc.openai(json!({"model": "chat", "stream": stream,
            "response_format": {"type": "json_schema", "json_schema": {"name": "rating", "schema": {
                "type": "object", "required": ["answer", "score"],
                "properties": {"answer": {"type": "string"}, "score": {"type": "number"}}}}},
            "messages": [{"role": "user", "content": "rate the answer"}]}))
    };
    // A compliant Vertex answer is served.
    let r = ask(false).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-plumb-served-by"),
        "vertex",
        "{}",
        header(&r, "x-plumb-failure-classes")
    );
    // An answer out of bounds, whole or streamed, never reaches the client: it fails over.
    plan(
        &sim,
        GEMINI,
        json!({"fault": "out_of_bounds", "share": 1.0}),
    );
    for stream in [false, true] {
        let r = ask(stream).send().await.unwrap();
        assert_eq!(r.status(), 200, "stream={stream}");
        assert_eq!(header(&r, "x-plumb-served-by"), "gpt", "stream={stream}");
        assert!(
            header(&r, "x-plumb-failure-classes").starts_with("out_of_bounds"),
            "stream={stream}"
        );
    }
}
