//! A simulator in the test process and the sidecar binary in front of it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use plumb_simulator::{Attempt, PlanSpec, SimConfig, Simulator};
use serde_json::{Value, json};

pub struct Sidecar {
    pub child: Child,
    pub url: String,
    pub admin: String,
    /// Everything the sidecar wrote to standard error so far.
    pub logs: std::sync::Arc<parking_lot::Mutex<Vec<u8>>>,
    pub dir: tempfile::TempDir,
}

impl Sidecar {
    /// Starts the sidecar on free ports with this routes file.
    pub fn start(routes: &str) -> Sidecar {
        Sidecar::start_with(routes, &[])
            .unwrap_or_else(|(code, err)| panic!("sidecar exited {code:?}: {err}"))
    }

    /// Starts it with extra environment variables; `Err` carries the exit code and standard
    /// error when it does not start.
    pub fn start_with(
        routes: &str,
        env: &[(&str, &str)],
    ) -> Result<Sidecar, (Option<i32>, String)> {
        Sidecar::launch(routes, env, &[])
    }

    /// Starts it with extra environment variables and command-line arguments.
    pub fn start_with_env_and_args(routes: &str, env: &[(&str, &str)], args: &[&str]) -> Sidecar {
        Sidecar::launch(routes, env, args)
            .unwrap_or_else(|(code, err)| panic!("sidecar exited {code:?}: {err}"))
    }

    /// Starts it with extra command-line arguments.
    pub fn start_with_args(routes: &str, args: &[&str]) -> Sidecar {
        Sidecar::launch(routes, &[], args)
            .unwrap_or_else(|(code, err)| panic!("sidecar exited {code:?}: {err}"))
    }

    fn launch(
        routes: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Result<Sidecar, (Option<i32>, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.yaml");
        std::fs::write(&path, routes).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plumb-sidecar"));
        cmd.arg("--routes")
            .arg(&path)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--reload-interval",
                "100ms",
                "--drain-timeout",
                "10s",
            ])
            .args(args)
            .env("RUST_LOG", "plumb_sidecar=debug,warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn plumb-sidecar");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            let code = child.wait().unwrap().code();
            return Err((code, err));
        }
        // "plumb-sidecar listening on http://A admin http://B"
        let words: Vec<&str> = line.split_whitespace().collect();
        let url = words[3].to_owned();
        let admin = words[5].to_owned();
        // Keep draining stderr so the sidecar never blocks on a full pipe; what it logged is
        // kept for tests that read it.
        let mut stderr = child.stderr.take().unwrap();
        let logs = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().extend_from_slice(&buf[..n]),
                }
            }
            if std::env::var_os("PLUMB_TEST_LOGS").is_some() {
                eprintln!("{}", String::from_utf8_lossy(&sink.lock()));
            }
        });
        Ok(Sidecar {
            child,
            url,
            admin,
            dir,
            logs,
        })
    }

    pub fn routes_path(&self) -> std::path::PathBuf {
        self.dir.path().join("routes.yaml")
    }

    pub fn openai(&self, body: Value) -> reqwest::RequestBuilder {
        client()
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth("sk-caller-key-1111")
            .json(&body)
    }

    pub fn anthropic(&self, body: Value) -> reqwest::RequestBuilder {
        client()
            .post(format!("{}/v1/messages", self.url))
            .header("x-api-key", "sk-ant-caller-2222")
            .header("anthropic-version", "2023-06-01")
            .json(&body)
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `check` holds, polling every 20 ms for up to 10 s; whether it did.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The sidecar's metrics text.
pub async fn metrics(admin: &str) -> String {
    client()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub fn client() -> reqwest::Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .unwrap()
}

pub async fn simulator() -> Simulator {
    Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap()
}

/// An address where a connection is refused for as long as the returned socket lives: bound
/// and never listening, so nothing else can take its port meanwhile. (A listener bound and
/// dropped frees its port, which the next server to bind port 0, the simulator included, may
/// be given.)
pub fn refused() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

pub fn plan(sim: &Simulator, model: &str, json: Value) {
    let spec: PlanSpec = serde_json::from_value(json).unwrap();
    sim.set_plan(model, spec).unwrap();
}

/// The attempts the simulator saw for `model`, once they have all ended.
pub async fn attempts(sim: &Simulator, model: &str) -> Vec<Attempt> {
    for _ in 0..200 {
        let a = sim.attempts(Some(model));
        if a.iter()
            .all(|a| a.ended_ms.is_some() || a.outcome == plumb_simulator::Outcome::Hung)
        {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.attempts(Some(model))
}

/// One target of a routes file.
pub fn target(name: &str, provider: &str, base: &str, model: &str, extra: &str) -> String {
    format!(
        "    - name: {name}\n      provider: {provider}\n      baseUrl: {base}\n      model: {model}\n      credentials: {{none: true}}\n{extra}"
    )
}

/// A routes file with one route `m` (name `r`) over `targets`, plus `spec_extra` lines.
pub fn route(model: &str, targets: &[String], spec_extra: &str) -> String {
    format!(
        "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: r, namespace: test}}\nspec:\n  match: {{models: [{model}]}}\n  targets:\n{}{spec_extra}",
        targets.concat()
    )
}

/// Two OpenAI targets on the simulator: `primary` asks for `primary_model`, `fallback` for
/// `sim-gpt-mini`.
pub fn two_openai(sim: &Simulator, primary_model: &str, spec_extra: &str) -> String {
    let base = format!("{}/v1", sim.base_url());
    route(
        "chat",
        &[
            target("primary", "openai", &base, primary_model, ""),
            target(
                "fallback",
                "openai",
                &base,
                "sim-gpt-mini",
                "      priority: 1\n",
            ),
        ],
        spec_extra,
    )
}

pub fn chat(stream: bool) -> Value {
    json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "what is six times seven"}]})
}

pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

pub use plumb_simulator::testkit::{anthropic_stream_text, parse_sse, read_stream as read_all};

pub fn openai_text(events: &[plumb_simulator::testkit::Sse]) -> String {
    plumb_simulator::testkit::openai_stream_text(events)
}

pub use plumb_simulator::testkit::TestProxy;

/// The simulator serving HTTPS, and a file with its CA for `--ca-file`.
pub async fn tls_simulator() -> (Simulator, tempfile::TempDir, String) {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), true)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem().unwrap()).unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    (sim, dir, ca)
}
