//! `plumb try` through a real `plumb-sidecar --routes` (ports 0) in front of the simulator.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use plumb_simulator::{PlanSpec, SimConfig, Simulator};
use serde_json::{Value, json};

use crate::support::{plumb, sibling_binary, stderr, stdout};

struct Sidecar {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sidecar(routes: &str) -> Sidecar {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, routes).unwrap();
    let mut child = Command::new(sibling_binary("plumb-sidecar"))
        .arg("--routes")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.is_empty() {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("the sidecar did not start: {err}");
    }
    // Keep its stderr drained so it never blocks on a full pipe.
    let mut stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    // "plumb-sidecar listening on http://A admin http://B"
    let url = line.split_whitespace().nth(3).unwrap().to_owned();
    Sidecar {
        child,
        url,
        _dir: dir,
    }
}

fn target(name: &str, base: &str, model: &str, priority: u32) -> String {
    format!(
        "    - {{name: {name}, provider: openai, baseUrl: '{base}', model: {model}, credentials: {{none: true}}, priority: {priority}}}\n"
    )
}

fn routes(sim: &Simulator) -> String {
    let base = format!("{}/v1", sim.base_url());
    format!(
        "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: chat, namespace: test}}\nspec:\n  match: {{models: [chat]}}\n  targets:\n{}{}---\napiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: solo, namespace: test}}\nspec:\n  match: {{models: [solo]}}\n  targets:\n{}",
        target("primary", &base, "sim-gpt", 0),
        target("fallback", &base, "sim-gpt-mini", 1),
        target("only", &base, "sim-gpt-alt", 0),
    )
}

fn plan(sim: &Simulator, model: &str, spec: Value) {
    let spec: PlanSpec = serde_json::from_value(spec).unwrap();
    sim.set_plan(model, spec).unwrap();
}

async fn run(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        plumb(std::path::Path::new("."), &args, &[])
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn try_e2e_says_who_answered_after_which_failures_and_reads_the_stream_comment() {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let text = routes(&sim);
    let sidecar = tokio::task::spawn_blocking(move || start_sidecar(&text))
        .await
        .unwrap();
    let url = sidecar.url.clone();
    let args = |extra: &[&str]| -> Vec<String> {
        ["try", url.as_str()]
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };

    // The primary fails twice (its one retry included); the fallback answers.
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "server_error", "first": 2}),
    );
    let o = run(args(&["--model", "chat", "what is six times seven"])).await;
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("HTTP 200 · route test/chat"), "{out}");
    assert!(
        out.contains("answered by target fallback (model sim-gpt-mini"),
        "{out}"
    );
    assert!(
        out.contains("after 2 failed attempts: server_error → server_error (3 attempts in all)"),
        "{out}"
    );
    let attempts = sim.attempts(Some("sim-gpt"));
    assert_eq!(
        attempts.len(),
        2,
        "the provider saw the primary's two attempts"
    );

    // JSON, and the Anthropic family on the same route, first time lucky.
    let o = run(args(&[
        "--model",
        "chat",
        "--api",
        "anthropic",
        "-o",
        "json",
        "hello",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["servedBy"], "primary");
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["failureClasses"], json!([]));
    assert!(!v["answer"].as_str().unwrap_or_default().is_empty(), "{v}");

    // The Responses API, whole and streamed.
    for stream in [false, true] {
        let mut a = vec![
            "--model",
            "chat",
            "--api",
            "responses",
            "-o",
            "json",
            "hello",
        ];
        if stream {
            a.push("--stream");
        }
        let o = run(args(&a)).await;
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["servedBy"], "primary");
        assert!(
            v["answer"]
                .as_str()
                .unwrap_or_default()
                .ends_with("End of answer."),
            "{v}"
        );
    }

    // A stream cut after it reached the client, with nowhere to continue it: the error event
    // and the final `: plumb …` comment are reported, and the exit code says it failed.
    plan(
        &sim,
        "sim-gpt-alt",
        json!({"fault": "stream_cut:after=3", "first": 1}),
    );
    let o = run(args(&["--model", "solo", "--stream", "count to ten"])).await;
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("stream: plumb stream_interrupted target=only"),
        "{out}"
    );
    assert!(
        out.contains("error: plumb: the stream from target only was interrupted"),
        "{out}"
    );
    // The same cut, to a Responses client: its error and response.failed events.
    plan(
        &sim,
        "sim-gpt-alt",
        json!({"fault": "stream_cut:after=3", "first": 1}),
    );
    let o = run(args(&[
        "--model",
        "solo",
        "--stream",
        "--api",
        "responses",
        "count to ten",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("error: plumb: the stream from target only was interrupted"),
        "{}",
        stdout(&o)
    );

    // A healthy stream, with the caller's key shown masked only.
    let o = run(args(&[
        "--model",
        "solo",
        "--stream",
        "--api-key",
        "sk-secret-value-1234",
        "count to ten",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("answered by target only"), "{out}");
    assert!(out.contains("sent key ****************1234"), "{out}");
    assert!(!out.contains("sk-secret"), "{out}");

    // No sidecar there.
    let o = run(vec![
        "try".into(),
        "http://127.0.0.1:9".into(),
        "--model".into(),
        "chat".into(),
        "hi".into(),
    ])
    .await;
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    drop(sidecar);
}
