//! AWS: SigV4 signing of Bedrock requests (`aws-sigv4`), and the credentials they are signed
//! with, read from the sidecar's environment as the AWS default chain reads them
//! ([`chain`]).
//!
//! A request to sign carries a [`Signing`] extension (set by [`crate::upstream::request`] for
//! a `bedrock` target with `credentials: {aws: true}`); the transport takes the chain's
//! current credentials and signs it just before sending, so a retry is signed afresh and the
//! credential calls go through the same HTTP client and egress as the request.

pub mod chain;

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::Request;

pub use chain::{Chain, CredentialsError};

use crate::keys::Secret;

/// The service name Bedrock's runtime signs for.
pub const SERVICE: &str = "bedrock";

/// Sign this request with SigV4 for `region` (a request extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signing {
    /// The AWS region.
    pub region: String,
}

/// A set of AWS credentials: long-lived keys, or temporary ones with their session token and
/// expiry. `Debug` shows the access key id only.
#[derive(Clone)]
pub struct Keys {
    /// The access key id (not a secret: it names the key).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// When temporary credentials expire.
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Signs `req` (whose body is `body`) for Bedrock in `region` at `now`: adds `x-amz-date`,
/// `x-amz-security-token` (temporary credentials) and `authorization`, all marked sensitive
/// where they hold a secret.
pub fn sign_request<B>(
    req: &mut Request<B>,
    body: &[u8],
    region: &str,
    keys: &Keys,
    now: SystemTime,
) -> Result<(), String> {
    let identity = Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.expose().to_owned(),
        keys.session_token.as_ref().map(|t| t.expose().to_owned()),
        keys.expires,
        "plumb",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("sigv4 parameters: {e}"))?
        .into();
    let uri = req.uri().to_string();
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter(|(k, _)| *k == http::header::CONTENT_TYPE)
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("sigv4: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("sigv4: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    for name in [http::header::AUTHORIZATION.as_str(), "x-amz-security-token"] {
        if let Some(v) = req.headers_mut().get_mut(name) {
            v.set_sensitive(true);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_carries_the_signature_and_the_session_token_marked_sensitive() {
        let mut req = Request::builder()
            .method("POST")
            .uri("https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2%3A1/converse")
            .header("content-type", "application/json")
            .body(())
            .unwrap_or_else(|e| panic!("{e}"));
        let keys = Keys {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: Some(Secret::new("session-token")),
            expires: None,
        };
        sign_request(&mut req, b"{}", "us-east-1", &keys, SystemTime::UNIX_EPOCH)
            .unwrap_or_else(|e| panic!("{e}"));
        let auth = req.headers()["authorization"].to_str().unwrap_or_default();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/19700101/us-east-1/bedrock/aws4_request"
            ),
            "{auth}"
        );
        assert!(auth.contains("x-amz-security-token"), "{auth}");
        assert!(!auth.contains("wJalr"));
        assert!(req.headers()["authorization"].is_sensitive());
        assert!(req.headers()["x-amz-security-token"].is_sensitive());
        assert_eq!(req.headers()["x-amz-date"], "19700101T000000Z");
    }
}
