//! Google's side of Vertex AI's credentials: an OAuth token endpoint that takes a service
//! account's signed JWT (RFC 7523) and a GCE metadata server, both issuing access tokens the
//! Vertex paths ([`crate::vertex`]) then require as `Authorization: Bearer`.
//!
//! | method and path | what |
//! | --- | --- |
//! | `POST /token` | `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT`: the JWT's RS256 signature checked against the test service account's public key, its claims (`iss`, `aud`, `scope`, `iat`, `exp`) checked |
//! | `GET /computeMetadata/v1/instance/service-accounts/default/token` | requires `Metadata-Flavor: Google` |
//! | `PUT /_sim/google` | `{"token_lifetime_s": N, "fail_next": N}`: the lifetime of tokens issued next, and how many token requests fail next (503) |
//! | `GET /_sim/google` | `{"exchanges": N, "metadata": N, "refused": N}`: tokens issued by each, and requests refused |
//!
//! The test service account's key ([`TEST_KEY_PEM`]) is a throwaway RSA key committed for
//! tests only: it signs nothing anywhere else.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use ring::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

/// A throwaway RSA key (PKCS#8 PEM) of the test service account. TEST ONLY: generated for
/// Plumb's tests with `openssl genpkey -algorithm RSA`, trusted by nothing but this simulator.
pub const TEST_KEY_PEM: &str = include_str!("google_auth/test-service-account.pem");
/// The test service account's e-mail.
pub const TEST_CLIENT_EMAIL: &str = "plumb-test@sim-project.iam.gserviceaccount.com";
/// The test service account's key id.
pub const TEST_KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";
/// The scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The metadata server's token path.
pub const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// The test service account's JSON key, with `token_uri` pointing at a simulator
/// (`http://127.0.0.1:PORT/token`).
pub fn test_service_account(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "sim-project",
        "private_key_id": TEST_KEY_ID,
        "private_key": TEST_KEY_PEM,
        "client_email": TEST_CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

/// The tokens issued, and how the endpoints behave.
pub struct GoogleAuth {
    /// The test key's public half (PKCS#1 `RSAPublicKey` DER).
    public_key: Vec<u8>,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Token → when it expires.
    issued: HashMap<String, Instant>,
    lifetime: Duration,
    fail_next: u32,
    exchanges: u64,
    metadata: u64,
    refused: u64,
    serial: u64,
}

/// What `PUT /_sim/google` sets.
#[derive(Debug, Deserialize)]
pub struct GoogleSettings {
    /// The lifetime, in seconds, of the tokens issued next.
    pub token_lifetime_s: Option<u64>,
    /// How many token requests fail next (503).
    pub fail_next: Option<u32>,
}

/// An answer: status and JSON body.
pub type Answer = (u16, Value);

#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    scope: String,
    iat: u64,
    exp: u64,
}

impl Default for GoogleAuth {
    fn default() -> Self {
        GoogleAuth::new()
    }
}

impl GoogleAuth {
    /// Tokens live an hour unless set otherwise.
    pub fn new() -> GoogleAuth {
        let public_key = PrivatePkcs8KeyDer::from_pem_slice(TEST_KEY_PEM.as_bytes())
            .ok()
            .and_then(|der| RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).ok())
            .map(|k| k.public_key().as_ref().to_vec())
            .unwrap_or_default();
        GoogleAuth {
            public_key,
            inner: Mutex::new(Inner {
                issued: HashMap::new(),
                lifetime: Duration::from_secs(3600),
                fail_next: 0,
                exchanges: 0,
                metadata: 0,
                refused: 0,
                serial: 0,
            }),
        }
    }

    /// Applies `PUT /_sim/google`.
    pub fn set(&self, s: &GoogleSettings) {
        let mut inner = self.inner.lock();
        if let Some(l) = s.token_lifetime_s {
            inner.lifetime = Duration::from_secs(l);
        }
        if let Some(n) = s.fail_next {
            inner.fail_next = n;
        }
    }

    /// What `GET /_sim/google` shows.
    pub fn counts(&self) -> Value {
        let inner = self.inner.lock();
        json!({"exchanges": inner.exchanges, "metadata": inner.metadata, "refused": inner.refused})
    }

    /// Clears the tokens and counts, and the settings.
    pub fn reset(&self) {
        *self.inner.lock() = GoogleAuth::new().inner.into_inner();
    }

    /// Whether `token` was issued here and has not expired.
    pub fn valid(&self, token: Option<&str>) -> bool {
        let now = Instant::now();
        token.is_some_and(|t| {
            self.inner
                .lock()
                .issued
                .get(t)
                .is_some_and(|expires| now < *expires)
        })
    }

    /// `POST /token` with a form `body`.
    pub fn exchange(&self, body: &str) -> Answer {
        let form: HashMap<String, String> = body
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect();
        if form.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return self.refuse(400, "unsupported_grant_type", "Invalid grant_type: ");
        }
        let Some(assertion) = form.get("assertion") else {
            return self.refuse(
                400,
                "invalid_request",
                "Missing required parameter: assertion",
            );
        };
        if let Err(why) = self.check(assertion) {
            return self.refuse(400, "invalid_grant", why);
        }
        if let Some(failed) = self.failing() {
            return failed;
        }
        let mut inner = self.inner.lock();
        inner.exchanges += 1;
        issue(&mut inner)
    }

    /// `GET` of the metadata server's token, whose request carried `flavor` as
    /// `Metadata-Flavor`.
    pub fn metadata(&self, flavor: Option<&str>) -> Answer {
        if flavor != Some("Google") {
            self.inner.lock().refused += 1;
            return (
                403,
                json!({"error": "Missing required header: Metadata-Flavor: Google"}),
            );
        }
        if let Some(failed) = self.failing() {
            return failed;
        }
        let mut inner = self.inner.lock();
        inner.metadata += 1;
        issue(&mut inner)
    }

    fn failing(&self) -> Option<Answer> {
        let mut inner = self.inner.lock();
        if inner.fail_next == 0 {
            return None;
        }
        inner.fail_next -= 1;
        inner.refused += 1;
        Some((
            503,
            json!({"error": "temporarily_unavailable", "error_description": "The service is currently unavailable."}),
        ))
    }

    fn refuse(&self, status: u16, error: &str, description: &str) -> Answer {
        self.inner.lock().refused += 1;
        (
            status,
            json!({"error": error, "error_description": description}),
        )
    }

    /// Checks the assertion's signature and claims, as Google's token endpoint does.
    fn check(&self, jwt: &str) -> Result<(), &'static str> {
        let mut parts = jwt.split('.');
        let (Some(head), Some(claims), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(
                "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
            );
        };
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| "Invalid JWT Signature.")?;
        let signed = &jwt[..head.len() + 1 + claims.len()];
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public_key)
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| "Invalid JWT Signature.")?;
        let head: Value = URL_SAFE_NO_PAD
            .decode(head)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or("Invalid JWT: the header does not parse")?;
        if head.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err("Invalid JWT: alg must be RS256");
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(claims)
            .ok()
            .and_then(|c| serde_json::from_slice(&c).ok())
            .ok_or("Invalid JWT: the claims do not parse")?;
        if claims.iss != TEST_CLIENT_EMAIL {
            return Err("Invalid JWT: iss is not the service account");
        }
        if !claims.aud.ends_with("/token") {
            return Err("Invalid JWT: aud is not the token endpoint");
        }
        if !claims.scope.split(' ').any(|s| s == SCOPE) {
            return Err("Invalid JWT: scope does not include cloud-platform");
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if claims.iat > now + 60 || claims.exp <= now || claims.exp - claims.iat > 3600 {
            return Err(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        }
        Ok(())
    }
}

/// A new token, remembered until it expires.
fn issue(inner: &mut Inner) -> Answer {
    inner.serial += 1;
    let token = format!("ya29.sim-{}-{:016x}", inner.serial, fastrand::u64(..));
    let now = Instant::now();
    inner.issued.retain(|_, e| *e > now);
    inner.issued.insert(token.clone(), now + inner.lifetime);
    (
        200,
        json!({"access_token": token, "expires_in": inner.lifetime.as_secs(), "token_type": "Bearer"}),
    )
}

/// `application/x-www-form-urlencoded` decoding.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| char::from(b).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_key_parses_and_form_values_decode() {
        assert!(!GoogleAuth::new().public_key.is_empty());
        assert_eq!(
            decode("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        );
        assert_eq!(decode("a+b%2"), "a b%2");
    }

    #[test]
    fn a_forged_assertion_and_a_missing_flavor_are_refused() {
        let g = GoogleAuth::new();
        let (status, body) = g.exchange(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=eyJhbGciOiJSUzI1NiJ9.eyJ9.c2ln",
        );
        assert_eq!(status, 400);
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(g.metadata(None).0, 403);
        let (status, body) = g.metadata(Some("Google"));
        assert_eq!(status, 200);
        assert!(g.valid(body["access_token"].as_str()));
        assert!(!g.valid(Some("ya29.other")));
    }
}
