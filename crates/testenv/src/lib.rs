//! `plumb-testenv`: a real Kubernetes API server for tests, on loopback.
//!
//! etcd and the apiextensions-apiserver (Kubernetes' API server for CustomResourceDefinitions
//! and custom resources), built from Debian's packages by `scripts/k8s-testenv/build.sh` and
//! cached in `$PLUMB_CACHE/k8s/bin` (`make tools` does it once). Each [`ApiServer`] gets its
//! own free ports, data directory and certificates: a CA, a serving certificate for 127.0.0.1,
//! and an admin client certificate in `system:masters` (X.509 v3, as rustls requires).
//!
//! It serves custom resources with server-side schema and CEL validation, dry runs, status
//! subresources, watches and server-side apply — not the core API group (Pods, Secrets,
//! Leases…), which tests fake.
//!
//! Test-only: nothing outside tests may depend on it.

pub mod fake;
pub use fake::FakeCore;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;

/// A running etcd + apiextensions-apiserver pair; both are killed on drop.
pub struct ApiServer {
    etcd: Child,
    apiserver: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// A client authenticated as a cluster admin that trusts the server.
    pub client: reqwest::Client,
    /// Working directory (logs, kubeconfig, certificates).
    pub dir: tempfile::TempDir,
}

/// Why the API server could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn err(msg: impl Into<String>) -> StartError {
    StartError(msg.into())
}

/// Where the cached binaries are.
pub fn bin_dir() -> PathBuf {
    let cache = std::env::var_os("PLUMB_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/plumb"),
        PathBuf::from,
    );
    cache.join("k8s/bin")
}

fn free_port() -> Result<u16, StartError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| err(e.to_string()))
}

/// Writes a fresh CA and a serving certificate for `127.0.0.1` and `localhost` signed by it to
/// `dir`: `ca.pem`, `tls.crt`, `tls.key`. Returns the three paths.
pub fn write_serving_pki(dir: &std::path::Path) -> Result<(PathBuf, PathBuf, PathBuf), StartError> {
    let p = pki().map_err(|e| err(format!("cannot make certificates: {e}")))?;
    let files = [
        (dir.join("ca.pem"), p.ca),
        (dir.join("tls.crt"), p.serving_cert),
        (dir.join("tls.key"), p.serving_key),
    ];
    for (path, text) in &files {
        std::fs::write(path, text).map_err(|e| err(format!("{}: {e}", path.display())))?;
    }
    let [(ca, _), (cert, _), (key, _)] = files;
    Ok((ca, cert, key))
}

struct Pki {
    ca: String,
    serving_cert: String,
    serving_key: String,
    admin_cert: String,
    admin_key: String,
}

fn pki() -> Result<Pki, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "plumb-testenv CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut serving = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_key = KeyPair::generate()?;
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin.distinguished_name.push(DnType::CommonName, "admin");
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    admin.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let admin_key = KeyPair::generate()?;
    let admin_cert = admin.signed_by(&admin_key, &issuer)?;
    Ok(Pki {
        ca: ca_cert.pem(),
        serving_cert: serving_cert.pem(),
        serving_key: serving_key.serialize_pem(),
        admin_cert: admin_cert.pem(),
        admin_key: admin_key.serialize_pem(),
    })
}

impl ApiServer {
    /// Starts etcd and the API server and waits until the server is live (about a second).
    /// The free ports are picked before the processes bind them, so another process can take
    /// one in between: a start whose etcd or API server exits early is tried again on new
    /// ports (three times in all).
    pub async fn start() -> Result<ApiServer, StartError> {
        let mut last = err("not started");
        for _ in 0..3 {
            match ApiServer::start_once().await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn start_once() -> Result<ApiServer, StartError> {
        let bin = bin_dir();
        let (apiext, etcd_bin) = (bin.join("apiextensions-apiserver"), bin.join("etcd"));
        if !apiext.exists() || !etcd_bin.exists() {
            return Err(err(format!(
                "the test API server is not built: run `make tools` (scripts/k8s-testenv/build.sh builds it into {})",
                bin.display()
            )));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
        let d = dir.path();
        let pki = pki().map_err(|e| err(format!("certificates: {e}")))?;
        let write = |name: &str, text: &str| {
            std::fs::write(d.join(name), text).map_err(|e| err(e.to_string()))
        };
        write("ca.crt", &pki.ca)?;
        write("serving.crt", &pki.serving_cert)?;
        write("serving.key", &pki.serving_key)?;
        write("admin.crt", &pki.admin_cert)?;
        write("admin.key", &pki.admin_key)?;
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let url = format!("https://127.0.0.1:{api_port}");
        write(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"{url}\", certificate-authority: {ca}}}}}]\nusers: [{{name: admin, user: {{client-certificate: {cert}, client-key: {key}}}}}]\ncontexts: [{{name: t, context: {{cluster: t, user: admin}}}}]\ncurrent-context: t\n",
                ca = d.join("ca.crt").display(),
                cert = d.join("admin.crt").display(),
                key = d.join("admin.key").display(),
            ),
        )?;
        let log = |name: &str| {
            std::fs::File::create(d.join(name))
                .map(Stdio::from)
                .map_err(|e| err(e.to_string()))
        };
        let etcd = Command::new(&etcd_bin)
            .arg("--data-dir")
            .arg(d.join("etcd"))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=default=http://127.0.0.1:{peer_port}"
            ))
            .arg("--unsafe-no-fsync")
            .stdout(log("etcd.log")?)
            .stderr(log("etcd.err")?)
            .spawn()
            .map_err(|e| err(format!("etcd: {e}")))?;
        let kubeconfig = d.join("kubeconfig");
        let apiserver = Command::new(&apiext)
            .arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--secure-port={api_port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--tls-cert-file={}", d.join("serving.crt").display()))
            .arg(format!("--tls-private-key-file={}", d.join("serving.key").display()))
            .arg(format!("--client-ca-file={}", d.join("ca.crt").display()))
            .arg("--authentication-skip-lookup")
            .arg(format!("--authentication-kubeconfig={}", kubeconfig.display()))
            .arg(format!("--authorization-kubeconfig={}", kubeconfig.display()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg("--enable-priority-and-fairness=false")
            .arg("--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy")
            .stdout(log("apiserver.log")?)
            .stderr(log("apiserver.err")?)
            .spawn()
            .map_err(|e| err(format!("apiextensions-apiserver: {e}")))?;
        let identity =
            reqwest::Identity::from_pem(format!("{}{}", pki.admin_cert, pki.admin_key).as_bytes())
                .map_err(|e| err(format!("client identity: {e}")))?;
        let ca =
            reqwest::Certificate::from_pem(pki.ca.as_bytes()).map_err(|e| err(e.to_string()))?;
        let client = reqwest::Client::builder()
            .identity(identity)
            .add_root_certificate(ca)
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| err(e.to_string()))?;
        let mut server = ApiServer {
            etcd,
            apiserver,
            url,
            client,
            dir,
        };
        // /readyz stays 500 (it cannot sync informers for core types it does not serve);
        // /livez is the signal.
        for _ in 0..240 {
            let exited = |c: &mut Child| c.try_wait().ok().flatten().is_some();
            if exited(&mut server.etcd) || exited(&mut server.apiserver) {
                let etcd_err =
                    std::fs::read_to_string(server.dir.path().join("etcd.err")).unwrap_or_default();
                let last: String = etcd_err
                    .lines()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(err(format!("etcd or the API server exited early: {last}")));
            }
            if let Ok(r) = server
                .client
                .get(format!("{}/livez", server.url))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let logs =
            std::fs::read_to_string(server.dir.path().join("apiserver.err")).unwrap_or_default();
        let tail: String = logs
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        Err(err(format!(
            "the API server did not become live within 60 s:\n{tail}"
        )))
    }

    /// Sends `body` (JSON) with `method` to `path`; returns the status and the JSON answer.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(b);
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    /// Creates a CRD and waits until it is `Established`.
    pub async fn install_crd(&self, crd: &Value) -> Result<(), StartError> {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                Some(crd),
            )
            .await;
        if status != 201 && status != 409 {
            return Err(err(format!("creating the CRD: {status} {body}")));
        }
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        for _ in 0..120 {
            let (_, c) = self
                .send(
                    reqwest::Method::GET,
                    &format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"),
                    None,
                )
                .await;
            let established = c
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                });
            if established {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(err(format!("the CRD {name} never became Established")))
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}
