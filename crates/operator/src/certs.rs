//! The serving certificate of the webhook and the policy service, managed by the operator.
//!
//! A CA (ten years) and a certificate it signs for the Services' DNS names live in one Secret in
//! the operator's namespace. Any replica creates them when the Secret is missing; the
//! certificate is re-issued from the same CA before it expires (so sidecars and the API server,
//! which trust the CA, never notice), and the CA bundle is patched into the webhook
//! configuration. Every replica re-reads the Secret periodically and serves the newest
//! certificate on new connections without a restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use plumb_telemetry::clock;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

const NOT_AFTER: &str = "plumb.dev/not-after";
const DNS_NAMES: &str = "plumb.dev/dns-names";
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The certificate material in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    /// The CA certificate (PEM), which clients trust.
    pub ca_pem: String,
    /// The CA's key (PEM), to re-issue.
    pub ca_key_pem: String,
    /// The serving certificate (PEM), signed by the CA.
    pub cert_pem: String,
    /// Its key (PEM).
    pub key_pem: String,
    /// When the serving certificate expires (seconds since the epoch).
    pub not_after: u64,
    /// The DNS names it is valid for.
    pub dns_names: Vec<String>,
}

/// What to do with the Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: the certificate is valid for the names and not near expiry.
    Keep,
    /// Issue a new certificate from the existing CA.
    Reissue,
    /// No usable Secret: make a CA and a certificate.
    Create,
}

/// Decides from what the Secret holds.
pub fn decide(
    existing: Option<&Material>,
    dns_names: &[String],
    now: u64,
    renew_before: Duration,
) -> Decision {
    let Some(m) = existing else {
        return Decision::Create;
    };
    if m.ca_pem.is_empty() || m.ca_key_pem.is_empty() {
        return Decision::Create;
    }
    let names_differ = {
        let (mut a, mut b) = (m.dns_names.clone(), dns_names.to_vec());
        a.sort();
        b.sort();
        a != b
    };
    if names_differ || m.cert_pem.is_empty() || now + renew_before.as_secs() >= m.not_after {
        Decision::Reissue
    } else {
        Decision::Keep
    }
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "plumb-operator CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_after = (SystemTime::now() + CA_LIFETIME).into();
    Ok(ca)
}

/// Issues a serving certificate for `dns_names`, valid for `validity`, from the CA (a new CA
/// when `ca` is `None`).
pub fn issue(
    ca: Option<(&str, &str)>,
    dns_names: &[String],
    validity: Duration,
) -> Result<Material, String> {
    let fail = |e: rcgen::Error| format!("cannot make a certificate: {e}");
    let (ca_pem, ca_key) = match ca {
        Some((pem, key)) => (
            pem.to_owned(),
            KeyPair::from_pem(key).map_err(|e| format!("the stored CA key: {e}"))?,
        ),
        None => {
            let key = KeyPair::generate().map_err(fail)?;
            let cert = ca_params().map_err(fail)?.self_signed(&key).map_err(fail)?;
            (cert.pem(), key)
        }
    };
    let ca_key_pem = ca_key.serialize_pem();
    // The issuer is the CA's name and key: the same name and key as the stored CA
    // certificate, so what is issued verifies under it.
    let issuer = Issuer::new(ca_params().map_err(fail)?, ca_key);
    let mut leaf = CertificateParams::new(dns_names.to_vec()).map_err(fail)?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        dns_names.first().map_or("plumb-operator", |n| n.as_str()),
    );
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let not_after = SystemTime::now() + validity;
    leaf.not_after = not_after.into();
    let key = KeyPair::generate().map_err(fail)?;
    let cert = leaf.signed_by(&key, &issuer).map_err(fail)?;
    Ok(Material {
        ca_pem,
        ca_key_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after: clock::unix_secs(not_after),
        dns_names: dns_names.to_vec(),
    })
}

/// A rustls certificate from PEM.
pub fn certified_key(cert_pem: &str, key_pem: &str) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("key: {e}"))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| e.to_string())
}

/// Serves whichever certificate is newest.
#[derive(Debug)]
pub struct Resolver(ArcSwap<CertifiedKey>);

impl Resolver {
    /// Starts with `key`.
    pub fn new(key: CertifiedKey) -> Arc<Resolver> {
        Arc::new(Resolver(ArcSwap::from_pointee(key)))
    }

    /// Serves `key` from now on.
    pub fn set(&self, key: CertifiedKey) {
        self.0.store(Arc::new(key));
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A TLS server configuration that serves the resolver's certificate, for HTTP/2 and 1.1.
pub fn server_config(resolver: Arc<Resolver>) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn text(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

fn material_of(secret: &Secret) -> Material {
    let ann = |k: &str| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .cloned()
            .unwrap_or_default()
    };
    Material {
        ca_pem: text(secret, "ca.crt"),
        ca_key_pem: text(secret, "ca.key"),
        cert_pem: text(secret, "tls.crt"),
        key_pem: text(secret, "tls.key"),
        not_after: ann(NOT_AFTER).parse().unwrap_or(0),
        dns_names: ann(DNS_NAMES)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

fn secret_of(
    name: &str,
    namespace: &str,
    m: &Material,
    resource_version: Option<String>,
) -> Secret {
    let data = [
        ("ca.crt", &m.ca_pem),
        ("ca.key", &m.ca_key_pem),
        ("tls.crt", &m.cert_pem),
        ("tls.key", &m.key_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect();
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            resource_version,
            annotations: Some(
                [
                    (NOT_AFTER.to_owned(), m.not_after.to_string()),
                    (DNS_NAMES.to_owned(), m.dns_names.join(",")),
                ]
                .into(),
            ),
            labels: Some([("app.kubernetes.io/name".to_owned(), "plumb".to_owned())].into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Keeps the certificate in the Secret valid and served.
#[derive(Clone)]
pub struct Manager {
    /// The client.
    pub client: Client,
    /// The operator's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The webhook configuration whose CA bundle to keep, if any.
    pub webhook_configuration: Option<String>,
    /// The names the certificate covers.
    pub dns_names: Vec<String>,
    /// How long a certificate is valid.
    pub validity: Duration,
    /// How long before expiry it is re-issued.
    pub renew_before: Duration,
}

impl Manager {
    /// Makes sure the Secret holds a valid certificate (creating or re-issuing it), and returns
    /// it. A conflict with another replica doing the same is resolved by reading its result.
    pub async fn ensure(&self) -> Result<Material, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        for _ in 0..5 {
            let existing = api
                .get_opt(&self.secret)
                .await
                .map_err(|e| format!("Secret {}/{}: {e}", self.namespace, self.secret))?;
            let current = existing.as_ref().map(material_of);
            let now = clock::unix_secs_now();
            let decision = decide(current.as_ref(), &self.dns_names, now, self.renew_before);
            let next = match (decision, &current) {
                (Decision::Keep, Some(m)) => return Ok(m.clone()),
                (Decision::Reissue, Some(m)) => issue(
                    Some((&m.ca_pem, &m.ca_key_pem)),
                    &self.dns_names,
                    self.validity,
                )?,
                (Decision::Keep | Decision::Reissue | Decision::Create, _) => {
                    issue(None, &self.dns_names, self.validity)?
                }
            };
            let rv = existing.and_then(|s| s.metadata.resource_version);
            let obj = secret_of(&self.secret, &self.namespace, &next, rv.clone());
            let written = match rv {
                None => api.create(&PostParams::default(), &obj).await,
                Some(_) => {
                    api.replace(&self.secret, &PostParams::default(), &obj)
                        .await
                }
            };
            match written {
                Ok(_) => {
                    tracing::info!(secret = %self.secret, ?decision, not_after = next.not_after, "serving certificate written");
                    return Ok(next);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(format!("Secret {}/{}: {e}", self.namespace, self.secret)),
            }
        }
        Err("the certificate Secret kept changing under us".into())
    }

    /// Puts the CA in every webhook of the webhook configuration.
    pub async fn patch_ca_bundle(&self, ca_pem: &str) -> Result<(), String> {
        let Some(name) = &self.webhook_configuration else {
            return Ok(());
        };
        let api: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        let Some(cfg) = api.get_opt(name).await.map_err(|e| e.to_string())? else {
            return Err(format!(
                "MutatingWebhookConfiguration {name} does not exist"
            ));
        };
        let bundle = ByteString(ca_pem.as_bytes().to_vec());
        let ops: Vec<_> = cfg
            .webhooks
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, w)| w.client_config.ca_bundle.as_ref() != Some(&bundle))
            .map(|(i, _)| json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": bundle}))
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        let patch: json_patch::Patch =
            serde_json::from_value(serde_json::Value::Array(ops)).map_err(|e| e.to_string())?;
        api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(webhook_configuration = %name, "CA bundle patched");
        Ok(())
    }

    /// Keeps the certificate valid, served and trusted: every `check`, re-issues it when due,
    /// serves the Secret's newest one, and keeps the webhook's CA bundle.
    pub async fn run(self, resolver: Arc<Resolver>, check: Duration, mut served: Material) {
        loop {
            tokio::time::sleep(check).await;
            match self.ensure().await {
                Ok(m) if m != served => match certified_key(&m.cert_pem, &m.key_pem) {
                    Ok(key) => {
                        resolver.set(key);
                        tracing::info!(not_after = m.not_after, "serving a new certificate");
                        if m.ca_pem != served.ca_pem
                            && let Err(e) = self.patch_ca_bundle(&m.ca_pem).await
                        {
                            tracing::warn!(error = %e, "cannot patch the webhook's CA bundle");
                        }
                        served = m;
                    }
                    Err(e) => tracing::warn!(error = %e, "the Secret's certificate is unusable"),
                },
                Ok(_) => {
                    if let Err(e) = self.patch_ca_bundle(&served.ca_pem).await {
                        tracing::debug!(error = %e, "cannot check the webhook's CA bundle");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot check the serving certificate"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec![
            "plumb-policy.plumb-system.svc".into(),
            "plumb-webhook.plumb-system.svc".into(),
        ]
    }

    #[test]
    fn decisions() {
        let day = Duration::from_secs(86_400);
        assert_eq!(decide(None, &names(), 0, day), Decision::Create);
        let m = issue(None, &names(), 30 * day).unwrap_or_else(|e| panic!("{e}"));
        let now = clock::unix_secs_now();
        assert_eq!(decide(Some(&m), &names(), now, day), Decision::Keep);
        assert_eq!(
            decide(Some(&m), &names(), now, 31 * day),
            Decision::Reissue,
            "due"
        );
        assert_eq!(
            decide(Some(&m), &names()[..1], now, day),
            Decision::Reissue,
            "other names"
        );
        let broken = Material {
            ca_key_pem: String::new(),
            ..m
        };
        assert_eq!(decide(Some(&broken), &names(), now, day), Decision::Create);
    }

    #[test]
    fn a_reissued_certificate_verifies_under_the_original_ca() {
        let first =
            issue(None, &names(), Duration::from_secs(3600)).unwrap_or_else(|e| panic!("{e}"));
        let second = issue(
            Some((&first.ca_pem, &first.ca_key_pem)),
            &names(),
            Duration::from_secs(7200),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.ca_pem, first.ca_pem, "the CA is kept");
        assert_ne!(second.cert_pem, first.cert_pem);
        // Verify the chain with rustls' own verifier.
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(first.ca_pem.as_bytes()) {
            roots
                .add(c.unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
        let leaf = CertificateDer::pem_slice_iter(second.cert_pem.as_bytes())
            .next()
            .unwrap_or_else(|| panic!())
            .unwrap_or_else(|e| panic!("{e}"));
        let name = rustls_pki_types::ServerName::try_from("plumb-policy.plumb-system.svc")
            .unwrap_or_else(|e| panic!("{e}"));
        let ok = rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &leaf,
            &[],
            &name,
            &[],
            rustls_pki_types::UnixTime::now(),
        );
        assert!(ok.is_ok(), "{ok:?}");
        assert!(certified_key(&second.cert_pem, &second.key_pem).is_ok());
    }
}
