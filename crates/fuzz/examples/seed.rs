//! Fills `crates/fuzz/corpus/<target>/` with real inputs for every fuzz target, so libFuzzer
//! starts from what Plumb actually reads rather than from nothing:
//!
//! | target | seeds |
//! | --- | --- |
//! | `sse_events` | every stream the simulator sends (both families, Azure, every stream fault), the golden streams |
//! | `classify` | every response the simulator gives (status, headers, body), faults included |
//! | `translate_request` | the requests sent to the simulator (text, tools, structured output), the golden requests |
//! | `translate_answer` | every whole answer the simulator gives, the golden answers |
//! | `compile_routes` | `examples/routes/*.yaml`, each route's spec as JSON, and rules nested as deep as their length allows |
//! | `decode_knowledge` | reports a sidecar makes of the example routes' traffic, and the knowledge the operator's store makes of them |
//! | `admission_review` | `seeds/review-create-pod.json`, the operator's golden deployment's pod, and variants (annotations, opted out, injected already, init containers, env) |
//!
//! Run by `make fuzz` (`cargo +nightly run --manifest-path crates/fuzz/Cargo.toml --example
//! seed`). It starts the simulator in-process on loopback. Files are named by what they hold
//! and rewritten on every run, so seeding is idempotent; libFuzzer adds its own files beside
//! them.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use plumb_fuzz::encode_response;
use plumb_policy::contract::Sources;
use plumb_policy::{FailureClass, RouteSet};
use plumb_proto::v1;
use plumb_sidecar::breaker::BreakerState;
use plumb_sidecar::fleet::Outcome;
use plumb_simulator::{SimConfig, Simulator};
use prost::Message as _;
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Where the seeds go, and how many each target got.
struct Corpus {
    dir: PathBuf,
    counts: BTreeMap<&'static str, usize>,
}

impl Corpus {
    fn add(&mut self, target: &'static str, name: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir)?;
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        *self.counts.entry(target).or_default() += 1;
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = fuzz.join("../..");
    let mut corpus = Corpus {
        dir: fuzz.join("corpus"),
        counts: BTreeMap::new(),
    };
    let routes = routes(&repo, &mut corpus)?;
    golden(&repo, &mut corpus)?;
    reviews(fuzz, &repo, &mut corpus)?;
    knowledge(&routes, &mut corpus)?;
    simulator(&mut corpus).await?;
    for (target, n) in &corpus.counts {
        println!("seed: {n:>4} seeds for {target}");
    }
    Ok(())
}

/// The example routes, as files and as JSON specs; returns them compiled.
fn routes(repo: &Path, corpus: &mut Corpus) -> Result<Vec<RouteSet>> {
    let dir = repo.join("examples/routes");
    let mut sets = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let name = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let text = std::fs::read_to_string(path)?;
        corpus.add("compile_routes", &format!("{name}.yaml"), text.as_bytes())?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)?;
        for (i, doc) in docs.iter().enumerate() {
            let spec = serde_json::to_vec_pretty(&doc["spec"])?;
            corpus.add("compile_routes", &format!("{name}.{i}.json"), &spec)?;
            let spec = serde_json::to_vec_pretty(&edges(&doc["spec"], u64::from(u32::MAX)))?;
            corpus.add("compile_routes", &format!("{name}.{i}.edges.json"), &spec)?;
        }
        sets.push(plumb_policy::parse_routes_file_with(
            &text,
            &Sources::in_dir(&dir),
        )?);
    }
    // Rules as deep as their length allows: CEL parses and evaluates them recursively.
    let deep = [
        ("chain", format!("{} > 0", vec!["1"; 1_400].join("+"))),
        ("relation", vec!["1"; 2_000].join("<")),
        ("member", format!("text{} == 1", ".a".repeat(2_000))),
        ("ternary", format!("{}true", "true?false:".repeat(300))),
        (
            "parens",
            format!("{}true{}", "(".repeat(100), ")".repeat(100)),
        ),
    ];
    for (name, expression) in deep {
        let spec = json!({
            "match": {"models": ["m"]},
            "targets": [{"name": "t", "provider": "openai", "baseUrl": "https://api.openai.com/v1",
                         "model": "gpt-4o", "credentials": {"none": true}}],
            "contract": {"rules": [{"expression": expression, "message": "m"}]},
        });
        corpus.add(
            "compile_routes",
            &format!("deep-{name}.json"),
            spec.to_string().as_bytes(),
        )?;
    }
    Ok(sets)
}

/// The sidecar's golden translations: requests, answers and recorded streams.
fn golden(repo: &Path, corpus: &mut Corpus) -> Result<()> {
    let dir = repo.join("crates/sidecar/tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let bytes = std::fs::read(&path)?;
        if name.ends_with(".sse") {
            for framing in [0u8, 7] {
                let mut seed = vec![framing];
                seed.extend_from_slice(&bytes);
                corpus.add("sse_events", &format!("golden-{name}-{framing}"), &seed)?;
            }
            let mut seed = vec![1];
            seed.extend(stream_edges(&bytes, u64::MAX));
            corpus.add("sse_events", &format!("golden-{name}-edges"), &seed)?;
            continue;
        }
        if name.ends_with(".expected.json") {
            continue;
        }
        let g: Value = serde_json::from_slice(&bytes)?;
        let target = if name.starts_with("answer_") {
            "translate_answer"
        } else {
            "translate_request"
        };
        for part in ["input", "expected"] {
            if let Some(v) = g.get(part) {
                corpus.add(
                    target,
                    &format!("golden-{name}-{part}"),
                    v.to_string().as_bytes(),
                )?;
                let edge = edges(v, u64::MAX).to_string();
                corpus.add(
                    target,
                    &format!("golden-{name}-{part}-edges"),
                    edge.as_bytes(),
                )?;
            }
        }
    }
    Ok(())
}

/// The committed review, the operator's golden deployment's pod, and variants of both.
fn reviews(fuzz: &Path, repo: &Path, corpus: &mut Corpus) -> Result<()> {
    let review: Value =
        serde_json::from_slice(&std::fs::read(fuzz.join("seeds/review-create-pod.json"))?)?;
    let deployment: Value = serde_json::from_slice(&std::fs::read(
        repo.join("crates/operator/tests/golden/webhook/deployment-web.json"),
    )?)?;
    let template = &deployment["spec"]["template"];
    let mut golden_pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-7d9c5b8f4-", "namespace": "shop",
                     "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    });
    golden_pod["metadata"]["labels"]["plumb.dev/inject"] = json!("enabled");
    let pods = [
        ("create-pod", review["request"]["object"].clone()),
        ("deployment-web", golden_pod),
    ];
    type Variant = (&'static str, fn(&mut Value));
    let variants: [Variant; 8] = [
        ("plain", |_| {}),
        ("annotated", |p| {
            p["metadata"]["annotations"] = json!({"plumb.dev/sidecar-cpu": "100m",
                "plumb.dev/sidecar-memory": "128Mi", "plumb.dev/override-base-urls": "true"});
        }),
        ("bad-annotation", |p| {
            p["metadata"]["annotations"] = json!({"plumb.dev/sidecar-cpu": "lots"});
        }),
        ("opted-out", |p| {
            p["metadata"]["labels"]["plumb.dev/inject"] = json!("disabled");
        }),
        ("injected", |p| {
            p["spec"]["initContainers"] = json!([{"name": "plumb-sidecar", "image": "x"}]);
        }),
        ("init-containers", |p| {
            p["spec"]["initContainers"] = json!([{"name": "migrate", "image": "migrate:1"}]);
            p["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
        }),
        ("env", |p| {
            p["spec"]["containers"][0]["env"] = json!([
                {"name": "OPENAI_BASE_URL", "value": "https://proxy.internal/v1"},
                {"name": "LOG", "value": "debug"}]);
        }),
        ("env-override", |p| {
            p["metadata"]["annotations"] = json!({"plumb.dev/override-base-urls": "true"});
            p["spec"]["containers"][0]["env"] = json!([
                {"name": "ANTHROPIC_BASE_URL", "value": "https://proxy.internal"}]);
        }),
    ];
    for (pod_name, pod) in &pods {
        for (variant, change) in &variants {
            let mut pod = pod.clone();
            change(&mut pod);
            let mut r = review.clone();
            r["request"]["object"] = pod;
            corpus.add(
                "admission_review",
                &format!("{pod_name}-{variant}.json"),
                &serde_json::to_vec_pretty(&r)?,
            )?;
        }
    }
    let mut update = review.clone();
    update["request"]["operation"] = json!("UPDATE");
    corpus.add(
        "admission_review",
        "update.json",
        &serde_json::to_vec(&update)?,
    )?;
    Ok(())
}

/// Reports a sidecar makes of traffic on the example routes, and the knowledge the operator's
/// store makes of them.
fn knowledge(routes: &[RouteSet], corpus: &mut Corpus) -> Result<()> {
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_millis(),
    )?;
    let mut store = plumb_knowledge::Fleet::new(plumb_knowledge::Settings::default());
    let ns = "default";
    for pod in ["web-1", "web-2"] {
        store.connected(ns, pod);
    }
    let outcome = |breaker, probe, retry_after| Outcome {
        latency: Duration::from_millis(420),
        breaker,
        cooldown: Duration::from_secs(15),
        probe,
        retry_after,
    };
    let mut sequence = 0;
    for set in routes {
        for route in set.routes() {
            let sidecar = plumb_sidecar::fleet::Fleet::new();
            sidecar.set_pod("web-1");
            let name = &route.id.name;
            let targets: Vec<_> = route.all_targets().collect();
            for (i, t) in targets.iter().enumerate() {
                sidecar.record(name, t, None, outcome(BreakerState::Closed, false, None));
                let (class, breaker, retry_after) = match i % 3 {
                    0 => (FailureClass::ServerError, BreakerState::Open, None),
                    1 => (
                        FailureClass::RateLimited,
                        BreakerState::Closed,
                        Some(Duration::from_secs(2)),
                    ),
                    _ => (FailureClass::Timeout, BreakerState::HalfOpen, None),
                };
                sidecar.record(
                    name,
                    t,
                    Some(class),
                    outcome(breaker, i % 2 == 1, retry_after),
                );
                sidecar.uncertified_failover(name, t);
            }
            let equivalence = match targets.as_slice() {
                [primary, candidate, ..] => vec![v1::EquivalenceSamples {
                    route: name.clone(),
                    primary: Some(plumb_knowledge::upstream_to_proto(&primary.upstream)),
                    candidate: Some(plumb_knowledge::upstream_to_proto(&candidate.upstream)),
                    agreements: 18,
                    samples: 20,
                }],
                _ => Vec::new(),
            };
            sequence += 1;
            let Some(report) = sidecar.report(sequence, None, equivalence) else {
                continue;
            };
            corpus.add(
                "decode_knowledge",
                &format!("report-{name}"),
                &report.encode_to_vec(),
            )?;
            store.report(ns, "web-1", &report, now_ms);
            let k = store.knowledge(ns, now_ms);
            corpus.add(
                "decode_knowledge",
                &format!("knowledge-{name}"),
                &k.encode_to_vec(),
            )?;
        }
    }
    let k = v1::Knowledge {
        sequence: 7,
        routes: vec![v1::RouteDirective {
            route: "chat".into(),
            retry_budget_scale: 0.1,
        }],
        ..store.knowledge(ns, now_ms)
    };
    corpus.add("decode_knowledge", "knowledge-incident", &k.encode_to_vec())?;
    Ok(())
}

/// Every fault the simulator answers at once (not the slow ones), for both families and Azure,
/// streamed and not, for requests of text, tools and structured output.
async fn simulator(corpus: &mut Corpus) -> Result<()> {
    const FAULTS: &[&str] = &[
        "",
        "rate_limited:retry_after=2",
        "rate_limited_date",
        "rate_limited_bare",
        "unauthorized",
        "forbidden",
        "model_not_found",
        "context_length",
        "content_filter",
        "server_error",
        "unavailable",
        "overloaded",
        "stream_cut:after=3",
        "stream_error:after=3",
        "malformed_event:at=2",
        "missing_done",
        "broken_json",
        "empty_content",
        "schema_violation",
        "out_of_bounds",
        "model_substituted",
    ];
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse()?, false).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let base = sim.base_url();
    for family in ["openai", "azure", "anthropic"] {
        for kind in ["text", "tools", "schema"] {
            for stream in [false, true] {
                let body = request(family, kind, stream);
                let label = format!(
                    "{family}-{kind}-{}",
                    if stream { "stream" } else { "whole" }
                );
                corpus.add(
                    "translate_request",
                    &format!("sim-{label}"),
                    body.to_string().as_bytes(),
                )?;
                for n in [u64::from(u32::MAX), u64::MAX] {
                    let edge = edges(&body, n).to_string();
                    corpus.add(
                        "translate_request",
                        &format!("sim-{label}-edges-{n}"),
                        edge.as_bytes(),
                    )?;
                }
                for (i, fault) in FAULTS.iter().enumerate() {
                    let url = match family {
                        "anthropic" => format!("{base}/v1/messages"),
                        "azure" => format!(
                            "{base}/openai/deployments/sim-gpt/chat/completions?api-version=2024-10-21"
                        ),
                        _ => format!("{base}/v1/chat/completions"),
                    };
                    let mut req = client.post(url).json(&body);
                    req = match family {
                        "anthropic" => req
                            .header("x-api-key", "sk-ant-fuzz-0001")
                            .header("anthropic-version", "2023-06-01"),
                        "azure" => req.header("api-key", "azure-fuzz-0001"),
                        _ => req.bearer_auth("sk-fuzz-0001"),
                    };
                    if !fault.is_empty() {
                        req = req.header("x-sim-fault", *fault);
                    }
                    let resp = req.send().await?;
                    let status = resp.status().as_u16();
                    let headers: Vec<(String, String)> = resp
                        .headers()
                        .iter()
                        .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
                        .collect();
                    let bytes = read_body(resp).await;
                    let fault_name = fault.split(':').next().unwrap_or("healthy");
                    let name = format!(
                        "{label}-{}",
                        if fault.is_empty() {
                            "healthy"
                        } else {
                            fault_name
                        }
                    );
                    corpus.add(
                        "classify",
                        &name,
                        &encode_response(status, &headers, &bytes),
                    )?;
                    if status != 200 {
                        continue;
                    }
                    if stream {
                        let framing = u8::try_from(i % 64).unwrap_or(0);
                        let mut seed = vec![framing];
                        seed.extend_from_slice(&bytes);
                        corpus.add("sse_events", &name, &seed)?;
                        if fault.is_empty() {
                            let mut seed = vec![framing | 1];
                            seed.extend(stream_edges(&bytes, u64::MAX));
                            corpus.add("sse_events", &format!("{name}-edges"), &seed)?;
                        }
                    } else {
                        corpus.add("translate_answer", &name, &bytes)?;
                        if let (true, Ok(v)) =
                            (fault.is_empty(), serde_json::from_slice::<Value>(&bytes))
                        {
                            let edge = edges(&v, u64::MAX).to_string();
                            corpus.add(
                                "translate_answer",
                                &format!("{name}-edges"),
                                edge.as_bytes(),
                            )?;
                        }
                    }
                }
            }
        }
    }
    // Embeddings, whole and broken.
    for fault in ["", "broken_json", "server_error"] {
        let mut req = client
            .post(format!("{base}/v1/embeddings"))
            .bearer_auth("sk-fuzz-0001")
            .json(&json!({"model": "sim-embed", "input": ["hello", "world"]}));
        if !fault.is_empty() {
            req = req.header("x-sim-fault", fault);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let bytes = read_body(resp).await;
        let name = format!(
            "embeddings-{}",
            if fault.is_empty() { "healthy" } else { fault }
        );
        corpus.add("classify", &name, &encode_response(status, &[], &bytes))?;
    }
    Ok(())
}

/// `v` with every non-negative integer replaced by `n`: token counts, limits and indexes at
/// the edge of their type, which byte mutations of JSON rarely produce whole.
fn edges(v: &Value, n: u64) -> Value {
    match v {
        Value::Number(x) if x.is_u64() => json!(n),
        Value::Array(xs) => Value::Array(xs.iter().map(|x| edges(x, n)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), edges(x, n))).collect())
        }
        other @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_)) => {
            other.clone()
        }
    }
}

/// A stream with every event's JSON at the edges (see [`edges`]).
fn stream_edges(stream: &[u8], n: u64) -> Vec<u8> {
    let text = String::from_utf8_lossy(stream);
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        match line
            .strip_prefix("data: ")
            .map(|d| serde_json::from_str::<Value>(d.trim_end()))
        {
            Some(Ok(v)) => out.push_str(&format!("data: {}\n", edges(&v, n))),
            Some(Err(_)) | None => out.push_str(line),
        }
    }
    out.into_bytes()
}

/// Everything of a body that arrived, up to a cut.
async fn read_body(mut resp: reqwest::Response) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        out.extend_from_slice(&chunk);
    }
    out
}

/// A chat request of `family` asking for text, a tool call or structured output.
fn request(family: &str, kind: &str, stream: bool) -> Value {
    let schema = json!({"type": "object", "required": ["category", "priority"],
        "properties": {"category": {"enum": ["billing", "bug"]}, "priority": {"type": "integer"}}});
    let params = json!({"type": "object", "properties": {"city": {"type": "string"}},
        "required": ["city"]});
    let mut body = if family == "anthropic" {
        json!({"model": "sim-claude", "max_tokens": 200, "system": "Be brief.",
               "messages": [{"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}]})
    } else {
        json!({"model": "sim-gpt", "max_tokens": 200, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the weather in Paris?"}]})
    };
    match (family, kind) {
        ("anthropic", "tools") => {
            body["tools"] = json!([{"name": "weather", "description": "Current weather", "input_schema": params}]);
            body["tool_choice"] = json!({"type": "tool", "name": "weather"});
        }
        ("anthropic", "schema") => {
            body["output_format"] = json!({"type": "json_schema", "schema": schema});
        }
        (_, "tools") => {
            body["tools"] = json!([{"type": "function", "function": {"name": "weather",
                "description": "Current weather", "parameters": params}}]);
            body["tool_choice"] = json!({"type": "function", "function": {"name": "weather"}});
        }
        (_, "schema") => {
            body["response_format"] = json!({"type": "json_schema",
                "json_schema": {"name": "triage", "schema": schema}});
        }
        _ => {}
    }
    if stream {
        body["stream"] = json!(true);
        if family != "anthropic" {
            body["stream_options"] = json!({"include_usage": true});
        }
    }
    body
}
