//! Route compilation from YAML, as users write it: every example in the repository, and every
//! way a route can be invalid.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::wildcard_enum_match_arm,
    missing_docs
)]

use std::time::Duration;

use plumb_policy::{
    Credentials, FailureClass, InvalidRoute, InvalidRoutesFile, LastResort, parse_routes_file,
};

const BASE: &str = r#"
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: r}
spec:
  match: {models: [m]}
  targets:
    - name: a
      provider: openai
      baseUrl: http://127.0.0.1:1/v1
      model: up
      credentials: {none: true}
"#;

fn route_error(yaml: &str) -> InvalidRoute {
    match parse_routes_file(yaml) {
        Err(InvalidRoutesFile::Route { error, .. }) => error,
        Err(other) => panic!("expected a route error, got {other}"),
        Ok(_) => panic!("expected an error for\n{yaml}"),
    }
}

/// BASE with `extra` appended to the spec (indented two spaces) or one line replaced.
fn with(extra: &str) -> String {
    format!(
        "{BASE}{}",
        extra
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    )
}

fn replacing(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replace(from, to)
}

#[test]
fn every_example_in_the_repository_compiles() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/routes");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let set =
                plumb_policy::parse_routes_file_with(&text, &plumb_policy::Sources::in_dir(dir))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!set.is_empty());
            seen += 1;
        }
    }
    assert!(seen >= 2, "examples found: {seen}");
}

#[test]
fn the_embeddings_example_declares_its_same_model_pair_and_warns_about_the_other_model() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/routes/embeddings.yaml"
    ))
    .unwrap();
    let set = parse_routes_file(&text).unwrap();
    let route = set.lookup("text-embedding-3-small").unwrap();
    let [openai, azure, tei] = [&route.targets[0], &route.targets[1], &route.targets[2]];
    assert!(route.same_model(openai, azure));
    assert!(!route.same_model(openai, tei));
    assert_eq!(tei.egress, plumb_policy::Egress::Direct);
    assert_eq!(openai.egress, plumb_policy::Egress::Environment);
    let warnings: Vec<String> = route.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains(
            "[openai (text-embedding-3-small), azure (text-embedding-3-small-prod)] and [local-tei (nomic-embed-text)]"
        ),
        "{warnings:?}"
    );
}

#[test]
fn the_chat_example_compiles_to_what_it_says() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/routes/chat.yaml"
    ))
    .unwrap();
    let set = parse_routes_file(&text).unwrap();
    let route = set.lookup("gpt-4o").unwrap();
    assert_eq!(route.id.to_string(), "default/chat");
    assert_eq!(route.targets.len(), 2);
    assert_eq!(route.targets[1].priority, 1);
    assert_eq!(route.deadlines.total, Duration::from_secs(60));
    assert_eq!(
        route.deadlines.stream_max,
        Duration::from_secs(600),
        "defaults fill the rest"
    );
    let rl = route.plans[FailureClass::RateLimited.index()];
    assert_eq!(rl.backoff.initial, Duration::from_secs(1));
    assert_eq!(route.plans[FailureClass::ServerError.index()].retries, 2);
    assert_eq!(
        route.plans[FailureClass::BadRequest.index()],
        FailureClass::BadRequest.default_plan()
    );
    match &route.last_resort {
        LastResort::Target(t) => assert_eq!(t.name, "local-vllm"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        route.targets[0].credentials,
        Credentials::Env("OPENAI_API_KEY".into())
    );
    assert_eq!(route.targets[0].upstream.credential, "env:OPENAI_API_KEY");
    assert!(set.lookup("unknown").is_none());
}

#[test]
fn upstream_identity_is_shared_by_routes_using_the_same_upstream() {
    let two = format!(
        "{BASE}---{}",
        BASE.replace("name: r}", "name: r2}")
            .replace("models: [m]", "models: [m2]")
    );
    let set = parse_routes_file(&two).unwrap();
    assert_eq!(
        set.lookup("m").unwrap().targets[0].upstream,
        set.lookup("m2").unwrap().targets[0].upstream
    );
}

#[test]
fn wildcard_route_catches_unmatched_models() {
    let set = parse_routes_file(&replacing("models: [m]", "models: [\"*\"]")).unwrap();
    assert_eq!(set.lookup("anything").unwrap().id.name, "r");
}

#[test]
fn every_invalid_route_names_the_field_to_fix() {
    let cases: Vec<(String, &str)> = vec![
        (replacing("models: [m]", "models: []"), "spec.match.models"),
        (
            replacing("models: [m]", "models: [\"\"]"),
            "spec.match.models[0]",
        ),
        (
            replacing("name: a\n", "name: \"\"\n"),
            "spec.targets[0].name",
        ),
        (
            replacing("http://127.0.0.1:1/v1", "ftp://x/v1"),
            "spec.targets[0].baseUrl",
        ),
        (
            replacing("http://127.0.0.1:1/v1", "not a url"),
            "spec.targets[0].baseUrl",
        ),
        (
            replacing("http://127.0.0.1:1/v1", "http://h/v1?x=1"),
            "spec.targets[0].baseUrl",
        ),
        (
            replacing("model: up", "model: \"\""),
            "spec.targets[0].model",
        ),
        (
            replacing("provider: openai", "provider: azure-openai"),
            "spec.targets[0].apiVersion",
        ),
        (
            replacing("{none: true}", "{none: true, env: X}"),
            "spec.targets[0].credentials",
        ),
        (
            replacing("{none: true}", "{}"),
            "spec.targets[0].credentials",
        ),
        (with("deadlines: {total: 30}"), "spec.deadlines.total"),
        (with("deadlines: {total: 0}"), "spec.deadlines.total"),
        (
            with("deadlines: {total: 1s, connect: 2s}"),
            "spec.deadlines.connect",
        ),
        (
            with("breaker: {failureRate: 1.5}"),
            "spec.breaker.failureRate",
        ),
        (
            with("breaker: {halfOpenProbes: 0}"),
            "spec.breaker.halfOpenProbes",
        ),
        (with("retryBudget: {ratio: -1}"), "spec.retryBudget.ratio"),
        (
            with("classes: {serverError: {retries: 11}}"),
            "spec.classes.serverError.retries",
        ),
        (
            with("classes: {timeout: {backoff: {initial: 2s, max: 1s}}}"),
            "spec.classes.timeout.backoff.max",
        ),
        (with("lastResort: {mode: target}"), "spec.lastResort.target"),
        (
            with("lastResort: {mode: failFast, target: a}"),
            "spec.lastResort.target",
        ),
        (
            with("lastResort: {mode: target, target: nope}"),
            "spec.lastResort.target",
        ),
        (
            with("lastResort: {mode: target, target: a}"),
            "spec.lastResort.target",
        ),
    ];
    for (yaml, field) in cases {
        let err = route_error(&yaml).to_string();
        assert!(err.starts_with(field), "expected {field}: got {err}");
    }
}

#[test]
fn duplicate_targets_and_models_are_refused() {
    let dup = format!(
        "{BASE}    - name: a\n      provider: openai\n      baseUrl: http://h/v1\n      model: x\n      credentials: {{none: true}}\n"
    );
    assert!(matches!(
        route_error(&dup),
        InvalidRoute::DuplicateTarget { .. }
    ));
    let two = format!("{BASE}---{}", BASE.replace("name: r}", "name: r2}"));
    match route_error(&two) {
        InvalidRoute::ModelTaken { model, by } => {
            assert_eq!(model, "m");
            assert_eq!(by.name, "r");
        }
        other => panic!("{other:?}"),
    }
    let no_targets = "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: r}\nspec:\n  match: {models: [m]}\n  targets: []\n";
    assert!(matches!(route_error(no_targets), InvalidRoute::NoTargets));
}

#[test]
fn bad_documents_are_refused_with_a_reason() {
    for (yaml, needle) in [
        ("{{{", ""),
        (
            &BASE.replace("kind: LlmRoute", "kind: ConfigMap")[..],
            "kind LlmRoute",
        ),
        (
            &BASE.replace("metadata: {name: r}", "metadata: {}")[..],
            "metadata.name",
        ),
        (
            &BASE.replace("  match:", "  nonsense: 1\n  match:")[..],
            "nonsense",
        ),
        ("", "no LlmRoute"),
    ] {
        let err = parse_routes_file(yaml).err().unwrap().to_string();
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

#[test]
fn the_correctover_example_compiles_to_what_it_says() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/routes");
    let text = std::fs::read_to_string(format!("{dir}/correctover.yaml")).unwrap();
    let set =
        plumb_policy::parse_routes_file_with(&text, &plumb_policy::Sources::in_dir(dir)).unwrap();
    let route = set.lookup("triage").unwrap();
    assert!(route.contract.is_some());
    let e = &route.equivalence;
    assert_eq!(e.mode, plumb_policy::equivalence::EquivalenceMode::Enforce);
    assert_eq!(e.min_samples, 50);
    assert_eq!(e.shadow.rate, 0.05);
    assert_eq!(e.method.name(), "fields");
    assert_eq!(
        route.plans[FailureClass::SchemaViolation.index()].repairs,
        1
    );
    assert_eq!(route.primary().name, "openai");
    assert!(route.is_primary_grade(&route.targets[0]));
    assert!(!route.is_primary_grade(&route.targets[1]));
}

#[test]
fn the_gemini_example_compiles_to_a_gemini_fallback_without_prefill() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/routes");
    let text = std::fs::read_to_string(format!("{dir}/gemini.yaml")).unwrap();
    let set =
        plumb_policy::parse_routes_file_with(&text, &plumb_policy::Sources::in_dir(dir)).unwrap();
    let route = set.lookup("assistant-gemini").unwrap();
    let gemini = &route.targets[1];
    assert_eq!(gemini.provider, plumb_policy::Provider::Gemini);
    assert_eq!(gemini.model, "gemini-2.5-flash");
    let c = &gemini.capabilities;
    assert!(c.tools && c.json_schema && c.vision && !c.prefill);
    assert_eq!(c.context_window, Some(1_048_576));
}

#[test]
fn the_bedrock_example_compiles_to_signed_and_keyed_bedrock_fallbacks() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/routes");
    let text = std::fs::read_to_string(format!("{dir}/bedrock.yaml")).unwrap();
    let set =
        plumb_policy::parse_routes_file_with(&text, &plumb_policy::Sources::in_dir(dir)).unwrap();
    let route = set.lookup("assistant-bedrock").unwrap();
    let claude = &route.targets[1];
    assert_eq!(claude.provider, plumb_policy::Provider::Bedrock);
    assert_eq!(claude.region.as_deref(), Some("us-east-1"));
    assert_eq!(claude.credentials, plumb_policy::Credentials::Aws);
    assert!(!claude.capabilities.prefill);
    let nova = &route.targets[2];
    assert_eq!(nova.model, "amazon.nova-pro-v1:0");
    assert_eq!(
        nova.credentials,
        plumb_policy::Credentials::Env("AWS_BEARER_TOKEN_BEDROCK".into())
    );
}

#[test]
fn the_vertex_example_compiles_to_claude_and_gemini_on_vertex_with_the_same_model_declared() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/routes");
    let text = std::fs::read_to_string(format!("{dir}/vertex-ai.yaml")).unwrap();
    let set =
        plumb_policy::parse_routes_file_with(&text, &plumb_policy::Sources::in_dir(dir)).unwrap();
    let route = set.lookup("assistant-vertex").unwrap();
    let claude = &route.targets[1];
    assert_eq!(claude.provider, plumb_policy::Provider::VertexAi);
    assert_eq!(claude.publisher(), Some(plumb_policy::Publisher::Anthropic));
    assert_eq!(claude.region.as_deref(), Some("us-east5"));
    assert_eq!(claude.credentials, plumb_policy::Credentials::Google);
    assert!(claude.capabilities.prefill);
    assert!(route.same_model.same("claude", "claude-vertex"));
    let gemini = &route.targets[2];
    assert_eq!(gemini.publisher(), Some(plumb_policy::Publisher::Google));
    assert_eq!(gemini.region.as_deref(), Some("global"));
    assert!(!gemini.capabilities.prefill);
}

#[test]
fn equivalence_settings_that_cannot_work_are_refused_with_the_field() {
    let refused = |extra: &str| {
        let yaml = format!("{BASE}{extra}");
        match plumb_policy::parse_routes_file(&yaml) {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => e.to_string(),
        }
    };
    let e = refused("  equivalence:\n    method: {kind: judge, target: nowhere}\n");
    assert!(
        e.contains("spec.equivalence.method.target: no target is named \"nowhere\""),
        "{e}"
    );
    let e = refused("  equivalence:\n    method: {kind: fields, fields: [{path: verdict}]}\n");
    assert!(e.contains("is not a JSON Pointer"), "{e}");
    let e = refused("  classes:\n    timeout: {repairs: 1}\n");
    assert!(e.contains("spec.classes.timeout.repairs"), "{e}");
}
