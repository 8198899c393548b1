//! Google OAuth access tokens for `vertex-ai` targets: from a service-account JSON key (a JWT
//! signed with its RSA key, exchanged at its `token_uri`) or from the metadata server (GKE
//! Workload Identity, a GCE service account). Sent as `Authorization: Bearer`.
//!
//! ```text
//! bearer() ── fresh token? ──────────────────────────────► token
//!     │ no (expired, or within the refresh margin)
//!     ├─ another request refreshing and ours still valid ─► token (no wait)
//!     └─ refresh lock ─ fetch ─┬─ ok ─────────────────────► new token, kept
//!                              └─ failed ─┬─ still valid ─► old token (warned)
//!                                         └─ expired ─────► auth failure naming the source
//! ```
//!
//! Requests that wait on one refresh share its result, success or failure. Fetches go out
//! through the sidecar's own [`Transport`]: the token endpoint with the target's egress (its
//! proxy applies), the metadata server always directly (it is link-local).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt as _, Full};
use parking_lot::Mutex;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Deserialize;
use tokio::time::Instant;

use crate::egress::TargetEgress;
use crate::keys::Secret;
use crate::upstream::Transport;

/// The OAuth scope Vertex AI takes.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The metadata server's host when `GCE_METADATA_HOST` does not name another.
pub const METADATA_HOST: &str = "metadata.google.internal";
/// The metadata server's token path for the default service account.
pub const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// How long a signed assertion is valid (Google's maximum).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is refreshed this long before it expires (or at half its life, if shorter).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The longest a token fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The connect deadline of a token fetch.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest token response read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// Where a target's access tokens come from, with the token in hand.
pub struct Tokens {
    source: Source,
    /// Names the source in messages, never the secret (`the service-account key of
    /// credentials.file /run/sa.json (sa@p.iam.gserviceaccount.com)`).
    describe: String,
    state: Mutex<State>,
    refresh: tokio::sync::Mutex<()>,
}

enum Source {
    Key(Box<ServiceAccount>),
    Metadata { host: String },
}

struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    key: RsaKeyPair,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// How many fetches have ended, so a request that waited on one takes its result.
    fetches: u64,
    last_error: Option<String>,
}

#[derive(Clone)]
struct Token {
    value: Secret,
    /// When it stops working.
    expires: Instant,
    /// When it is refreshed.
    refresh_at: Instant,
}

/// A service-account key that cannot be used. Never holds the key itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidServiceAccount(String);

/// The fields of a service-account JSON key Plumb uses.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

/// What a token endpoint or the metadata server answers.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// An OAuth error body (`{"error": "invalid_grant", "error_description": "…"}`).
#[derive(Deserialize)]
struct OauthError {
    error: Option<serde_json::Value>,
    error_description: Option<String>,
}

/// The token sources of the process by what they hold, so a reloaded policy keeps the tokens
/// its predecessor fetched.
static SHARED: LazyLock<Mutex<HashMap<String, Weak<Tokens>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Tokens {
    /// Tokens from a service-account JSON key; `origin` names where it was read
    /// (`credentials.env VAR`).
    pub fn from_key(json: &str, origin: &str) -> Result<Arc<Tokens>, InvalidServiceAccount> {
        let fingerprint = format!(
            "key:{origin}:{}",
            URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, json.as_bytes()))
        );
        if let Some(t) = shared(&fingerprint) {
            return Ok(t);
        }
        let invalid = |what: &str| {
            InvalidServiceAccount(format!("{origin}: not a service-account JSON key: {what}"))
        };
        let file: KeyFile =
            serde_json::from_str(json).map_err(|_| invalid("it does not parse as JSON"))?;
        if let Some(kind) = file.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(invalid(&format!(
                "its type is {kind:?}; only \"service_account\" keys are supported"
            )));
        }
        let client_email = file
            .client_email
            .ok_or_else(|| invalid("no client_email"))?;
        let pem = file.private_key.ok_or_else(|| invalid("no private_key"))?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| invalid("private_key is not a PKCS#8 PEM key"))?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|_| invalid("private_key is not a usable RSA key"))?;
        let token_uri = file
            .token_uri
            .unwrap_or_else(|| "https://oauth2.googleapis.com/token".to_owned());
        if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
            return Err(invalid("token_uri is not an http(s) URL"));
        }
        let describe = format!("the service-account key of {origin} ({client_email})");
        let tokens = Tokens::new(
            Source::Key(Box::new(ServiceAccount {
                client_email,
                private_key_id: file.private_key_id,
                token_uri,
                key,
            })),
            describe,
        );
        Ok(remember(fingerprint, tokens))
    }

    /// Tokens from the metadata server at `host` (`GCE_METADATA_HOST`, else
    /// [`METADATA_HOST`]).
    pub fn metadata(host: &str) -> Arc<Tokens> {
        let fingerprint = format!("metadata:{host}");
        if let Some(t) = shared(&fingerprint) {
            return t;
        }
        let describe = format!("the metadata server at {host}");
        let tokens = Tokens::new(
            Source::Metadata {
                host: host.to_owned(),
            },
            describe,
        );
        remember(fingerprint, tokens)
    }

    fn new(source: Source, describe: String) -> Tokens {
        Tokens {
            source,
            describe,
            state: Mutex::new(State::default()),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// Names the source, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// A valid access token: the one in hand, or a new one (see the module's diagram).
    /// `egress` is the target's, for the token endpoint. `Err` names the source and why,
    /// never a secret.
    pub fn bearer<'a>(
        &'a self,
        transport: &'a dyn Transport,
        egress: &'a TargetEgress,
    ) -> Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + 'a>> {
        Box::pin(self.bearer_inner(transport, egress))
    }

    async fn bearer_inner(
        &self,
        transport: &dyn Transport,
        egress: &TargetEgress,
    ) -> Result<Secret, String> {
        let (seen, usable) = {
            let state = self.state.lock();
            let now = Instant::now();
            match &state.token {
                Some(t) if now < t.refresh_at => return Ok(t.value.clone()),
                Some(t) if now < t.expires => (state.fetches, Some(t.value.clone())),
                Some(_) | None => (state.fetches, None),
            }
        };
        let _refreshing = match (&usable, self.refresh.try_lock()) {
            (_, Ok(guard)) => guard,
            // Another request is refreshing; ours still works meanwhile.
            (Some(token), Err(_)) => return Ok(token.clone()),
            (None, Err(_)) => self.refresh.lock().await,
        };
        {
            let state = self.state.lock();
            if state.fetches != seen {
                // A fetch ended while this request waited: its result is ours.
                let now = Instant::now();
                match (&state.token, &state.last_error) {
                    (Some(t), _) if now < t.expires => return Ok(t.value.clone()),
                    (_, Some(e)) => return Err(e.clone()),
                    (Some(_) | None, None) => {}
                }
            }
        }
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.fetch(transport, egress))
            .await
            .unwrap_or_else(|_| Err(format!("no token within {}s", FETCH_TIMEOUT.as_secs())));
        let mut state = self.state.lock();
        state.fetches += 1;
        match fetched {
            Ok(token) => {
                state.last_error = None;
                let value = token.value.clone();
                state.token = Some(token);
                Ok(value)
            }
            Err(reason) => {
                let message = format!(
                    "vertex-ai credentials: no access token from {}: {reason}",
                    self.describe
                );
                state.last_error = Some(message.clone());
                match &state.token {
                    Some(t) if Instant::now() < t.expires => {
                        tracing::warn!(source = %self.describe, error = %message, "the access token could not be refreshed; the current one is used until it expires");
                        Ok(t.value.clone())
                    }
                    Some(_) | None => Err(message),
                }
            }
        }
    }

    async fn fetch(
        &self,
        transport: &dyn Transport,
        egress: &TargetEgress,
    ) -> Result<Token, String> {
        let (req, endpoint) = match &self.source {
            Source::Key(sa) => {
                let assertion = sa.assertion()?;
                let body = format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
                    assertion.expose()
                );
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(&sa.token_uri)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .extension(egress.clone())
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|_| format!("token_uri {} is not a usable URL", sa.token_uri))?;
                (req, format!("the token endpoint {}", sa.token_uri))
            }
            Source::Metadata { host } => {
                let url = format!("http://{host}{METADATA_TOKEN_PATH}");
                // Link-local: never through a proxy.
                let req = Request::builder()
                    .method(Method::GET)
                    .uri(&url)
                    .header("metadata-flavor", "Google")
                    .extension(TargetEgress::Direct)
                    .body(Full::new(Bytes::new()))
                    .map_err(|_| format!("{url} is not a usable URL"))?;
                (req, url)
            }
        };
        let sent = Instant::now();
        let resp = transport
            .send(req, CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("{endpoint} could not be reached: {e}"))?;
        let status = resp.status();
        let mut stream = resp.into_body();
        let mut body = Vec::new();
        while let Some(frame) = stream.frame().await {
            let frame =
                frame.map_err(|e| format!("{endpoint}: the answer could not be read: {e}"))?;
            if let Ok(data) = frame.into_data() {
                body.extend_from_slice(&data);
            }
            if body.len() > MAX_TOKEN_RESPONSE {
                return Err(format!("{endpoint}: the answer is too large"));
            }
        }
        if !status.is_success() {
            return Err(format!(
                "{endpoint} answered {}{}",
                status.as_u16(),
                oauth_reason(&body)
            ));
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| format!("{endpoint} answered without an access_token"))?;
        if token.access_token.is_empty() {
            return Err(format!("{endpoint} answered an empty access_token"));
        }
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600));
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Ok(Token {
            value: Secret::new(token.access_token),
            expires: sent + lifetime,
            refresh_at: sent + lifetime - margin,
        })
    }
}

impl ServiceAccount {
    /// The signed JWT asking for a cloud-platform token (RFC 7523).
    fn assertion(&self) -> Result<Secret, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut head = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            head["kid"] = serde_json::Value::String(kid.clone());
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(head.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "the assertion could not be signed".to_owned())?;
        Ok(Secret::new(format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// `: error: description` from an OAuth error body, if it is one (Google's never echo the
/// assertion); nothing otherwise.
fn oauth_reason(body: &[u8]) -> String {
    let Ok(e) = serde_json::from_slice::<OauthError>(body) else {
        return String::new();
    };
    let error = match e.error {
        Some(serde_json::Value::String(s)) => s,
        // `{"error": {"code", "message", "status"}}` from some Google endpoints.
        Some(serde_json::Value::Object(o)) => o
            .get("status")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Some(_) | None => String::new(),
    };
    match e.error_description {
        Some(d) if !error.is_empty() => format!(": {error}: {d}"),
        Some(d) => format!(": {d}"),
        None if !error.is_empty() => format!(": {error}"),
        None => String::new(),
    }
}

fn shared(fingerprint: &str) -> Option<Arc<Tokens>> {
    SHARED.lock().get(fingerprint).and_then(Weak::upgrade)
}

fn remember(fingerprint: String, tokens: Tokens) -> Arc<Tokens> {
    let tokens = Arc::new(tokens);
    let mut shared = SHARED.lock();
    shared.retain(|_, w| w.strong_count() > 0);
    shared.insert(fingerprint, Arc::downgrade(&tokens));
    tokens
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use http_body_util::BodyExt as _;

    use super::*;
    use crate::upstream::Sent;

    /// A token endpoint under paused time: each fetch takes a second and answers the next
    /// `(status, body)` of its script (the last one again when it runs out).
    struct Script {
        calls: AtomicU32,
        answers: Mutex<Vec<(u16, String)>>,
        seen: Mutex<Vec<Seen>>,
    }

    /// A request's URL, its `Metadata-Flavor` and the egress it was given.
    type Seen = (String, Option<String>, Option<TargetEgress>);

    impl Script {
        fn new(answers: &[(u16, &str)]) -> Script {
            Script {
                calls: AtomicU32::new(0),
                answers: Mutex::new(
                    answers
                        .iter()
                        .rev()
                        .map(|(s, b)| (*s, (*b).to_owned()))
                        .collect(),
                ),
                seen: Mutex::new(Vec::new()),
            }
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl Transport for Script {
        fn send(&self, req: Request<Full<Bytes>>, _connect: Duration) -> Sent<'_> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.seen.lock().push((
                req.uri().to_string(),
                req.headers()
                    .get("metadata-flavor")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                req.extensions().get::<TargetEgress>().cloned(),
            ));
            let (status, body) = {
                let mut answers = self.answers.lock();
                if answers.len() > 1 {
                    answers.pop()
                } else {
                    answers.last().cloned()
                }
            }
            .unwrap_or((500, String::new()));
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let body = Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed();
                let mut resp = http::Response::new(body);
                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
                Ok(resp)
            })
        }
    }

    fn token(name: &str, expires_in: u64) -> String {
        format!(
            r#"{{"access_token": "{name}", "expires_in": {expires_in}, "token_type": "Bearer"}}"#
        )
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_fetch_and_the_token_is_refreshed_five_minutes_early() {
        let first = token("ya29.first", 3600);
        let second = token("ya29.second", 3600);
        let script = Script::new(&[(200, &first), (200, &second)]);
        let tokens = Tokens::metadata("meta.test-share");
        let egress = TargetEgress::default();
        let (a, b, c) = tokio::join!(
            tokens.bearer(&script, &egress),
            tokens.bearer(&script, &egress),
            tokens.bearer(&script, &egress),
        );
        for t in [a, b, c] {
            assert_eq!(
                t.map(|s| s.expose().to_owned()),
                Ok("ya29.first".to_owned())
            );
        }
        assert_eq!(script.calls(), 1, "one fetch for three requests");
        let (uri, flavor, egress_used) = script.seen.lock()[0].clone();
        assert_eq!(
            uri,
            "http://meta.test-share/computeMetadata/v1/instance/service-accounts/default/token"
        );
        assert_eq!(flavor.as_deref(), Some("Google"));
        assert!(
            matches!(egress_used, Some(TargetEgress::Direct)),
            "the metadata server is never proxied"
        );
        // Fetched at 0 s, answered at 1 s: refreshed from 3,300 s on (five minutes early).
        tokio::time::advance(Duration::from_secs(3_290)).await;
        let t = tokens.bearer(&script, &egress).await;
        assert_eq!(
            t.map(|s| s.expose().to_owned()),
            Ok("ya29.first".to_owned())
        );
        assert_eq!(script.calls(), 1);
        tokio::time::advance(Duration::from_secs(20)).await;
        let t = tokens.bearer(&script, &egress).await;
        assert_eq!(
            t.map(|s| s.expose().to_owned()),
            Ok("ya29.second".to_owned())
        );
        assert_eq!(script.calls(), 2, "refreshed before it expired");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_unexpired_token_then_fails_naming_the_source() {
        let first = token("ya29.only", 600);
        let refused = r#"{"error": "temporarily_unavailable", "error_description": "try later"}"#;
        let script = Script::new(&[(200, &first), (503, refused)]);
        let tokens = Tokens::metadata("meta.test-fail");
        let egress = TargetEgress::default();
        assert!(tokens.bearer(&script, &egress).await.is_ok());
        // A short token refreshes at half its life: 300 s after it was sent.
        tokio::time::advance(Duration::from_secs(320)).await;
        let t = tokens.bearer(&script, &egress).await;
        assert_eq!(
            t.map(|s| s.expose().to_owned()),
            Ok("ya29.only".to_owned()),
            "the refresh failed; the token in hand still works"
        );
        assert_eq!(script.calls(), 2);
        tokio::time::advance(Duration::from_secs(300)).await;
        let err = tokens
            .bearer(&script, &egress)
            .await
            .err()
            .unwrap_or_default();
        assert_eq!(
            err,
            "vertex-ai credentials: no access token from the metadata server at meta.test-fail: http://meta.test-fail/computeMetadata/v1/instance/service-accounts/default/token answered 503: temporarily_unavailable: try later"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_account_key_signs_an_assertion_google_accepts_through_the_targets_egress() {
        let google = plumb_simulator::google_auth::GoogleAuth::new();
        let key = plumb_simulator::google_auth::test_service_account("https://oauth2.test/token");
        let tokens = Tokens::from_key(&key, "credentials.env SA").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            tokens.describe(),
            "the service-account key of credentials.env SA (plumb-test@sim-project.iam.gserviceaccount.com)"
        );
        let script = Script::new(&[(200, &token("ya29.key", 3600))]);
        let egress = TargetEgress::Direct;
        let t = tokens.bearer(&script, &egress).await;
        assert_eq!(t.map(|s| s.expose().to_owned()), Ok("ya29.key".to_owned()));
        let (uri, _, egress_used) = script.seen.lock()[0].clone();
        assert_eq!(uri, "https://oauth2.test/token");
        assert!(
            matches!(egress_used, Some(TargetEgress::Direct)),
            "the target's egress"
        );
        // The assertion the key signs is one Google's endpoint takes.
        let Source::Key(sa) = &tokens.source else {
            panic!("not a key")
        };
        let jwt = sa.assertion().unwrap_or_else(|e| panic!("{e}"));
        let (status, body) = google.exchange(&format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            jwt.expose()
        ));
        assert_eq!(status, 200, "{body}");
    }

    #[test]
    fn keys_that_cannot_sign_are_refused_by_what_is_wrong_never_quoting_them() {
        let refused = |json: &str| {
            Tokens::from_key(json, "credentials.file /sa.json")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            refused("not json sk-secret"),
            "credentials.file /sa.json: not a service-account JSON key: it does not parse as JSON"
        );
        assert!(refused(r#"{"type": "authorized_user"}"#).contains("only \"service_account\""));
        assert!(refused(r#"{"client_email": "a@b"}"#).contains("no private_key"));
        let bad = r#"{"client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"}"#;
        let e = refused(bad);
        assert!(e.contains("not a usable RSA key"), "{e}");
        assert!(!e.contains("c2VjcmV0"));
    }
}
