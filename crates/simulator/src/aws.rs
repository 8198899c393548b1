//! AWS identity as Bedrock's callers meet it, with no cloud: SigV4 verification of requests
//! (recomputed with `aws-sigv4` from the request and a known secret), STS
//! `AssumeRoleWithWebIdentity` (`POST /` with a form, checking the web identity token), and a
//! container-credentials endpoint (`GET /_aws/container-credentials`, checking the
//! `Authorization` token, as EKS Pod Identity's agent does). Temporary credentials are issued
//! with a configurable expiry (`PUT /_sim/aws {"expiry_secs": N}`), so refresh can be tested.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::HeaderMap;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// The long-lived access key id the simulator knows.
pub const ACCESS_KEY_ID: &str = "AKIAPLUMBSIMULATOR01";
/// Its secret.
pub const SECRET_ACCESS_KEY: &str = "plumbSimulatorSecretAccessKey/0123456789AB";
/// The web identity token STS accepts (what IRSA mounts in the pod).
pub const WEB_IDENTITY_TOKEN: &str = "eyJplumb-sim-web-identity-token";
/// The token the container-credentials endpoint accepts (what EKS Pod Identity mounts).
pub const CONTAINER_TOKEN: &str = "plumb-sim-container-authorization-token";
/// The path of the container-credentials endpoint.
pub const CONTAINER_PATH: &str = "/_aws/container-credentials";

/// Issued credentials and the expiry of the next ones.
#[derive(Debug)]
pub struct Issuer {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    expiry: Duration,
    issued: u64,
    /// Access key id → (secret, session token, expiry).
    temporary: HashMap<String, (String, String, SystemTime)>,
}

/// Why a signed request is refused, in Bedrock's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The exception (`x-amzn-errortype`).
    pub exception: &'static str,
    /// The message.
    pub message: &'static str,
}

impl Default for Issuer {
    fn default() -> Self {
        Issuer {
            inner: Mutex::new(Inner {
                expiry: Duration::from_secs(3600),
                issued: 0,
                temporary: HashMap::new(),
            }),
        }
    }
}

impl Issuer {
    /// Sets how long the next temporary credentials last.
    pub fn set_expiry(&self, expiry: Duration) {
        self.inner.lock().expiry = expiry;
    }

    /// Issues temporary credentials: (access key id, secret, session token, expiry).
    fn issue(&self) -> (String, String, String, SystemTime) {
        let mut i = self.inner.lock();
        i.issued += 1;
        let n = i.issued;
        let id = format!("ASIAPLUMBSIM{n:08}");
        let secret = format!("simTemporarySecret{n}/{}", fastrand::u64(..));
        let token = format!("simSessionToken{n}+{}", fastrand::u64(..));
        let expires = SystemTime::now() + i.expiry;
        i.temporary
            .insert(id.clone(), (secret.clone(), token.clone(), expires));
        (id, secret, token, expires)
    }

    /// STS: `AssumeRoleWithWebIdentity` for the form `body`. Returns the status and XML.
    pub fn assume_role(&self, body: &[u8]) -> (u16, String) {
        let form: HashMap<String, String> = form_decode(&String::from_utf8_lossy(body));
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        let error = |status: u16, code: &str, message: &str| {
            (
                status,
                format!(
                    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>sim</RequestId></ErrorResponse>"
                ),
            )
        };
        if get("Action") != "AssumeRoleWithWebIdentity" {
            return error(400, "InvalidAction", "Could not find operation");
        }
        if get("RoleArn").is_empty() || get("RoleSessionName").is_empty() {
            return error(
                400,
                "ValidationError",
                "RoleArn and RoleSessionName are required",
            );
        }
        if get("WebIdentityToken") != WEB_IDENTITY_TOKEN {
            return error(
                400,
                "InvalidIdentityToken",
                "Couldn't retrieve verification key from your identity provider",
            );
        }
        let (id, secret, token, expires) = self.issue();
        (
            200,
            format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{id}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{}</Expiration></Credentials><AssumedRoleUser><Arn>{}/{}</Arn></AssumedRoleUser></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                humantime::format_rfc3339_seconds(expires),
                get("RoleArn"),
                get("RoleSessionName")
            ),
        )
    }

    /// The container-credentials endpoint, for a request presenting `authorization`.
    pub fn container(&self, authorization: Option<&str>) -> (u16, Value) {
        if authorization != Some(CONTAINER_TOKEN) {
            return (
                401,
                json!({"code": "AccessDeniedException", "message": "invalid authorization token"}),
            );
        }
        let (id, secret, token, expires) = self.issue();
        (
            200,
            json!({
                "AccessKeyId": id,
                "SecretAccessKey": secret,
                "Token": token,
                "AccountId": "123456789012",
                "Expiration": humantime::format_rfc3339_seconds(expires).to_string(),
            }),
        )
    }

    /// Verifies the SigV4 signature of a request; `Ok` gives the access key id it was signed
    /// with. `uri` is the request's path and query, as sent.
    pub fn verify(
        &self,
        method: &str,
        uri: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<String, Refusal> {
        const BAD_SIGNATURE: Refusal = Refusal {
            exception: "InvalidSignatureException",
            message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        };
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let auth = get("authorization").ok_or(Refusal {
            exception: "MissingAuthenticationTokenException",
            message: "Missing Authentication Token",
        })?;
        let fields = auth
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or(BAD_SIGNATURE)?;
        let part = |name: &str| {
            fields
                .split(", ")
                .find_map(|f| f.trim().strip_prefix(name))
                .ok_or(BAD_SIGNATURE)
        };
        let credential = part("Credential=")?;
        let signed_headers = part("SignedHeaders=")?;
        let signature = part("Signature=")?;
        let mut scope = credential.split('/');
        let (id, _date, region, service) = (
            scope.next().unwrap_or_default(),
            scope.next().unwrap_or_default(),
            scope.next().unwrap_or_default(),
            scope.next().unwrap_or_default(),
        );
        let token = get("x-amz-security-token");
        let secret = if id == ACCESS_KEY_ID {
            SECRET_ACCESS_KEY.to_owned()
        } else {
            let temporary = self.inner.lock().temporary.get(id).cloned();
            let Some((secret, want, expires)) = temporary else {
                return Err(Refusal {
                    exception: "UnrecognizedClientException",
                    message: "The security token included in the request is invalid.",
                });
            };
            if token != Some(want.as_str()) {
                return Err(Refusal {
                    exception: "UnrecognizedClientException",
                    message: "The security token included in the request is invalid.",
                });
            }
            if expires <= SystemTime::now() {
                return Err(Refusal {
                    exception: "ExpiredTokenException",
                    message: "The security token included in the request is expired",
                });
            }
            secret
        };
        let time = get("x-amz-date").and_then(amz_date).ok_or(BAD_SIGNATURE)?;
        let identity = Credentials::new(id, secret, token.map(str::to_owned), None, "sim").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|_| BAD_SIGNATURE)?
            .into();
        let host = get("host").unwrap_or("localhost");
        let full = format!("http://{host}{uri}");
        // The signer adds host, x-amz-date and the session token itself.
        let signed: Vec<(&str, &str)> = signed_headers
            .split(';')
            .filter(|h| !matches!(*h, "host" | "x-amz-date" | "x-amz-security-token"))
            .filter_map(|h| Some((h, get(h)?)))
            .collect();
        let request =
            SignableRequest::new(method, full, signed.into_iter(), SignableBody::Bytes(body))
                .map_err(|_| BAD_SIGNATURE)?;
        let (_, expected) = sign(request, &params)
            .map_err(|_| BAD_SIGNATURE)?
            .into_parts();
        if expected == signature {
            Ok(id.to_owned())
        } else {
            Err(BAD_SIGNATURE)
        }
    }
}

/// `20261130T203000Z` as a time.
fn amz_date(v: &str) -> Option<SystemTime> {
    if v.len() != 16 || !v.ends_with('Z') || v.as_bytes().get(8) != Some(&b'T') {
        return None;
    }
    let n = |a: usize, b: usize| v.get(a..b)?.parse::<u64>().ok();
    let (y, m, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (hh, mm, ss) = (n(9, 11)?, n(11, 13)?, n(13, 15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + hh * 3600 + mm * 60 + ss))
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn form_decode(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                crate::server::percent_decode(&k.replace('+', " ")),
                crate::server::percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_read_as_times() {
        assert_eq!(amz_date("19700101T000000Z"), Some(UNIX_EPOCH));
        assert_eq!(
            amz_date("20261130T210000Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_796_072_400))
        );
        assert_eq!(amz_date("2026-11-30"), None);
    }

    #[test]
    fn sts_checks_the_web_identity_token_and_issues_credentials_that_verify() {
        let issuer = Issuer::default();
        let (status, xml) = issuer.assume_role(b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=s&WebIdentityToken=wrong");
        assert_eq!(status, 400);
        assert!(xml.contains("InvalidIdentityToken"));
        let body = format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=r&RoleSessionName=s&WebIdentityToken={WEB_IDENTITY_TOKEN}"
        );
        let (status, xml) = issuer.assume_role(body.as_bytes());
        assert_eq!(status, 200, "{xml}");
        assert!(xml.contains("<AccessKeyId>ASIAPLUMBSIM00000001</AccessKeyId>"));
        assert_eq!(issuer.container(Some("nope")).0, 401);
        assert_eq!(issuer.container(Some(CONTAINER_TOKEN)).0, 200);
    }
}
