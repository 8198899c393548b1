//! What the end-to-end tests share: the real API server behind the fake, the operator and
//! sidecar processes, the simulator, and waiting without fixed sleeps.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plumb_simulator::{SimConfig, Simulator};
use plumb_testenv::{ApiServer, FakeCore};
use reqwest::Method;
use serde_json::{Value, json};

pub const AUDIENCE: &str = "plumb.dev/control-plane";

/// The label that lets routes take keys from a Secret.
pub const CREDENTIALS: &[(&str, &str)] = &[("plumb.dev/credentials", "true")];

pub struct Proc {
    pub child: Child,
    pub words: Vec<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin(name: &str) -> PathBuf {
    let op = PathBuf::from(env!("CARGO_BIN_EXE_plumb-operator"));
    op.with_file_name(name)
}

/// Runs a binary and reads the line where it says where it listens.
pub fn spawn(mut cmd: Command) -> Proc {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env(
            "RUST_LOG",
            std::env::var("PLUMB_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(!line.is_empty(), "{cmd:?} printed nothing");
    Proc {
        child,
        words: line.split_whitespace().map(str::to_owned).collect(),
    }
}

/// Everything a process wrote to stderr so far.
#[derive(Clone, Default)]
pub struct Logs(Arc<parking_lot::Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

/// Like [`spawn`], with the process's stderr kept (and `RUST_LOG` as given).
pub fn spawn_logged(mut cmd: Command, rust_log: &str) -> (Proc, Logs) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_LOG", rust_log)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let logs = Logs::default();
    let mut stderr = child.stderr.take().unwrap();
    let sink = logs.clone();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.0.lock().extend_from_slice(&buf[..n]);
        }
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        !line.is_empty(),
        "{cmd:?} printed nothing:\n{}",
        logs.text()
    );
    let words = line.split_whitespace().map(str::to_owned).collect();
    (Proc { child, words }, logs)
}

pub struct Env {
    pub _api: ApiServer,
    pub fake: Arc<FakeCore>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub sim: Simulator,
    pub client: reqwest::Client,
}

pub async fn env() -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = ApiServer::start().await.unwrap();
    let crd: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../crds/plumb.dev_llmroutes.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    api.install_crd(&crd).await.unwrap();
    let fake = Arc::new(FakeCore::start(&api).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig(dir.path()).unwrap();
    let (ca, cert, key) = plumb_testenv::write_serving_pki(dir.path()).unwrap();
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Env {
        _api: api,
        fake,
        dir,
        kubeconfig,
        ca,
        cert,
        key,
        sim,
        client,
    }
}

impl Env {
    pub fn operator(&self, policy_port: u16) -> Proc {
        self.operator_named(
            policy_port,
            &format!("operator-{policy_port}-{}", free_port()),
        )
    }

    /// An operator with more flags.
    pub fn operator_with(&self, policy_port: u16, extra: &[&str]) -> Proc {
        self.operator_full(
            policy_port,
            &format!("operator-{policy_port}-{}", free_port()),
            extra,
        )
    }

    /// An operator replica whose pod is `pod`, electing a leader on a 3 s Lease.
    pub fn operator_named(&self, policy_port: u16, pod: &str) -> Proc {
        self.operator_full(policy_port, pod, &[])
    }

    pub fn operator_full(&self, policy_port: u16, pod: &str, extra: &[&str]) -> Proc {
        spawn(self.operator_command(policy_port, pod, extra))
    }

    /// The command [`Env::operator_full`] runs.
    pub fn operator_command(&self, policy_port: u16, pod: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plumb-operator"));
        cmd.args(["--lease-duration", "3s", "--lease-retry", "300ms"])
            .env("POD_NAMESPACE", "plumb-system")
            .env("POD_NAME", pod);
        cmd.args([
            "--policy-listen",
            &format!("127.0.0.1:{policy_port}"),
            "--admin-listen",
            "127.0.0.1:0",
            "--heartbeat-interval",
            "1s",
            "--resync",
            "1h",
        ])
        .arg("--tls-cert-file")
        .arg(&self.cert)
        .arg("--tls-key-file")
        .arg(&self.key)
        .args(extra)
        .env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// A sidecar of `namespace` presenting `token`.
    pub fn sidecar(
        &self,
        policy_url: &str,
        namespace: &str,
        pod: &str,
        token: &str,
        cache: Option<&Path>,
    ) -> Proc {
        spawn(self.sidecar_command(policy_url, namespace, pod, token, cache))
    }

    /// The command [`Env::sidecar`] runs.
    pub fn sidecar_command(
        &self,
        policy_url: &str,
        namespace: &str,
        pod: &str,
        token: &str,
        cache: Option<&Path>,
    ) -> Command {
        let token_file = self.dir.path().join(format!("token-{pod}"));
        std::fs::write(&token_file, token).unwrap();
        let mut cmd = Command::new(bin("plumb-sidecar"));
        cmd.args([
            "--control-plane",
            policy_url,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--control-plane-timeout",
            "3s",
        ])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--ca-file")
        .arg(&self.ca)
        .env("POD_NAMESPACE", namespace)
        .env("POD_NAME", pod);
        if let Some(c) = cache {
            cmd.arg("--policy-cache").arg(c);
        }
        cmd
    }

    pub fn route(&self, namespace: &str, name: &str, model: &str, extra: Value) -> Value {
        let mut spec = json!({
            "match": {"models": [model]},
            "targets": [{"name": "sim", "provider": "openai", "baseUrl": format!("{}/v1", self.sim.base_url()),
                "model": "sim-gpt", "credentials": {"secretRef": {"name": "llm-keys", "key": "openai"}}}],
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        json!({"apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec})
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.fake.url));
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// An object as the API server has it now.
    pub async fn get(&self, path: &str) -> Value {
        self.send(Method::GET, path, None).await.1
    }

    /// Reads, changes and writes back an object, again on a 409 (the operator writes status
    /// meanwhile), as `kubectl edit` would.
    pub async fn update(&self, path: &str, change: impl Fn(&mut Value)) -> (u16, Value) {
        for _ in 0..20 {
            let mut cur = self.get(path).await;
            change(&mut cur);
            let (status, body) = self.send(Method::PUT, path, Some(&cur)).await;
            if status != 409 {
                return (status, body);
            }
        }
        panic!("{path}: conflicts on every try");
    }

    pub async fn chat(&self, sidecar: &Proc, model: &str) -> (u16, String) {
        let url = &sidecar.words[3];
        match self
            .client
            .post(format!("{url}/v1/chat/completions"))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "what is six times seven"}]}))
            .send()
            .await
        {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.text().await.unwrap_or_default())
            }
            Err(e) => (0, e.to_string()),
        }
    }
}

pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

pub fn condition<'a>(route: &'a Value, kind: &str) -> &'a Value {
    route["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

/// A port free now, for a binary told its address in advance (a replica the tests must know
/// the address of before it starts). Picked outside the kernel's ephemeral range
/// (32768–60999), where every port-0 bind and every outgoing connection of the tests running
/// alongside takes its port: one picked from there could be taken before the binary binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
        ^ u64::from(std::process::id());
    for _ in 0..10_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000
            + ((seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(n * 7919))
                % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// Requests sent one after another through a sidecar until stopped, counting failures.
pub struct Load {
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    pub sent: Arc<AtomicU64>,
    pub failures: Arc<AtomicU64>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(client: reqwest::Client, url: String) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (sent, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let task = {
            let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .post(format!("{url}/v1/chat/completions"))
                        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
                        .send()
                        .await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !r.is_ok_and(|r| r.status() == 200) {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        Load {
            stop,
            sent,
            failures,
            task,
        }
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops, and says how many were sent and how many failed.
    pub async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (
            self.sent.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// Plays the policy Service: every connection goes to the operator whose pod carries the
/// leader label, as the Service's selector would send it.
pub async fn leader_service(fake: Arc<FakeCore>, pods: Vec<(String, u16)>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            let leader = pods.iter().find(|(pod, _)| {
                fake.pod_labels("plumb-system", pod)
                    .get("plumb.dev/leader")
                    .map(String::as_str)
                    == Some("true")
            });
            let Some((_, target)) = leader.cloned() else {
                continue; // no endpoint: the connection is dropped, as with an empty Service
            };
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    port
}
