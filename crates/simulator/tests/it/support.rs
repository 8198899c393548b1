//! Drives the real `plumb-simulator` binary over loopback sockets.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;
use tokio::time::Instant;

use plumb_simulator::Attempt;
use serde_json::{Value, json};

/// A simulator process, killed on drop.
pub struct Sim {
    child: Child,
    pub url: String,
    pub ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Sim {
    pub fn start() -> Sim {
        Sim::start_with(&[], None)
    }

    /// Starts the binary with extra arguments and, optionally, a configuration file's text.
    pub fn start_with(args: &[&str], config: Option<&str>) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plumb-simulator"));
        cmd.args(["--listen", "127.0.0.1:0"]).args(args);
        if let Some(text) = config {
            let path = dir.path().join("sim.yaml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--config").arg(path);
        }
        let ca = args.contains(&"--tls").then(|| dir.path().join("ca.pem"));
        if let Some(ca) = &ca {
            cmd.arg("--ca-out").arg(ca);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "warn");
        let mut child = cmd.spawn().expect("spawn plumb-simulator");
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
            panic!("simulator did not start: {err}");
        }
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("listening line")
            .to_owned();
        Sim {
            child,
            url,
            ca,
            _dir: dir,
        }
    }

    pub fn client(&self) -> reqwest::Client {
        client_with(self.ca.as_ref(), Duration::from_secs(30))
    }

    pub async fn attempts(&self, model: Option<&str>) -> Vec<Attempt> {
        let url = match model {
            Some(m) => format!("{}/_sim/attempts?model={m}", self.url),
            None => format!("{}/_sim/attempts", self.url),
        };
        let v: Value = self
            .client()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        serde_json::from_value(v["attempts"].clone()).unwrap()
    }

    /// Waits until the log shows no attempt in progress (streams record their end after the
    /// last byte is sent).
    pub async fn settled_attempts(&self, model: Option<&str>) -> Vec<Attempt> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let a = self.attempts(model).await;
            if a.iter().all(|a| a.ended_ms.is_some()) || Instant::now() > deadline {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client()
            .request(method, format!("{}/_sim/{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// An OpenAI chat request with optional extra headers.
    pub fn openai(&self, body: Value) -> reqwest::RequestBuilder {
        self.client()
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth("sk-test-0001")
            .json(&body)
    }

    /// An Anthropic messages request.
    pub fn anthropic(&self, body: Value) -> reqwest::RequestBuilder {
        self.client()
            .post(format!("{}/v1/messages", self.url))
            .header("x-api-key", "sk-ant-test-0002")
            .header("anthropic-version", "2023-06-01")
            .json(&body)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client_with(ca: Option<&PathBuf>, timeout: Duration) -> reqwest::Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut b = reqwest::Client::builder().timeout(timeout).no_proxy();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).unwrap();
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

pub fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "what is six times seven"}]})
}

/// Sends `req` asking for `fault` and reads its whole stream: the text, and the error that
/// ended it early, if any.
pub async fn stream_with_fault(
    req: reqwest::RequestBuilder,
    fault: &str,
) -> (String, Option<reqwest::Error>) {
    read_stream(req.header("x-sim-fault", fault).send().await.unwrap()).await
}

pub fn messages_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 256, "messages": [{"role": "user", "content": "what is six times seven"}]})
}

pub use plumb_simulator::testkit::{
    anthropic_stream_text, openai_stream_text, parse_sse, read_stream,
};
