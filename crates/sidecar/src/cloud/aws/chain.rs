//! The AWS credentials of the sidecar's environment, in the order of the AWS default chain:
//!
//! | source | variables | how |
//! | --- | --- | --- |
//! | environment keys | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | as they are |
//! | web identity (IRSA) | `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_SESSION_NAME` | STS `AssumeRoleWithWebIdentity` with the token read from the file each time |
//! | container credentials (EKS Pod Identity) | `AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN` | `GET` the URI with the token as `Authorization` |
//!
//! STS is asked at `AWS_ENDPOINT_URL_STS` (else `AWS_ENDPOINT_URL`), else at the regional
//! endpoint of `AWS_REGION` / `AWS_DEFAULT_REGION` (the global one where there is no region or
//! `AWS_STS_REGIONAL_ENDPOINTS=legacy`), as the AWS SDKs do.
//!
//! Temporary credentials are refreshed [`REFRESH_BEFORE`] their expiry; concurrent requests
//! share one refresh (the others wait for it); a failed refresh keeps serving credentials that
//! have not yet expired, says so in a warning, and is tried again after [`RETRY_AFTER_FAILURE`].
//! The calls are hand-written on the sidecar's own HTTP client, so the egress proxy applies
//! and no AWS SDK runtime is linked. Errors name the source, never a secret.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt as _, Full};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::time::Instant;

use super::Keys;
use crate::keys::Secret;
use crate::upstream::Transport;

/// How long before expiry temporary credentials are refreshed.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// How long a failed refresh waits before the next, while unexpired credentials serve.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// The connect deadline of a credential call.
const CONNECT: Duration = Duration::from_secs(5);
/// The whole deadline of a credential call.
const CALL: Duration = Duration::from_secs(15);
/// The largest credential response read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The AWS secrets this process has held (secret keys, session tokens, the tokens that fetch
/// them), the latest few, so that [`crate::keys::redact`] removes them from every text that
/// leaves the process, as it removes API keys.
static SEEN: Mutex<Vec<Secret>> = parking_lot::const_mutex(Vec::new());

/// How many secrets [`SEEN`] keeps (each refresh brings two).
const SEEN_MAX: usize = 16;

/// Remembers a secret for redaction.
fn remember(s: &Secret) {
    let mut seen = SEEN.lock();
    if !seen.contains(s) {
        if seen.len() >= SEEN_MAX {
            seen.remove(0);
        }
        seen.push(s.clone());
    }
}

/// The AWS secrets this process has held, for redaction.
pub fn secrets() -> Vec<Secret> {
    SEEN.lock().clone()
}

/// The credentials could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("aws credentials from {source_name}: {reason}")]
pub struct CredentialsError {
    /// Which source of the chain failed.
    pub source_name: &'static str,
    /// Why (never a secret).
    pub reason: String,
}

/// Where the chain's credentials come from.
#[derive(Clone, Debug)]
enum Source {
    Static(Keys),
    WebIdentity {
        role_arn: String,
        token_file: PathBuf,
        session_name: String,
        sts: String,
    },
    Container {
        uri: String,
        token_file: Option<PathBuf>,
        token: Option<Secret>,
    },
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Source::Static(_) => "the environment (AWS_ACCESS_KEY_ID)",
            Source::WebIdentity { .. } => {
                "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)"
            }
            Source::Container { .. } => {
                "the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI)"
            }
        }
    }
}

/// The chain: its source, read once from the environment, and the current credentials.
#[derive(Debug, Default)]
pub struct Chain {
    source: Option<Source>,
    current: Mutex<Option<Keys>>,
    /// Held by the one refresh in flight.
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl Chain {
    /// The chain of the sidecar's environment.
    pub fn from_env() -> Arc<Chain> {
        Arc::new(Chain::from_vars(|k| std::env::var(k).ok()))
    }

    /// The chain the variables `var` gives (empty values count as unset).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Chain {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let source = if let (Some(id), Some(secret)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        {
            Some(Source::Static(Keys {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
                expires: None,
            }))
        } else if let (Some(role_arn), Some(file)) =
            (var("AWS_ROLE_ARN"), var("AWS_WEB_IDENTITY_TOKEN_FILE"))
        {
            let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"));
            let legacy = var("AWS_STS_REGIONAL_ENDPOINTS").as_deref() == Some("legacy");
            let sts = var("AWS_ENDPOINT_URL_STS")
                .or_else(|| var("AWS_ENDPOINT_URL"))
                .unwrap_or_else(|| match region {
                    Some(r) if !legacy => format!("https://sts.{r}.amazonaws.com"),
                    Some(_) | None => "https://sts.amazonaws.com".to_owned(),
                });
            Some(Source::WebIdentity {
                role_arn,
                token_file: PathBuf::from(file),
                session_name: var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| {
                    format!("plumb-sidecar-{}", plumb_telemetry::clock::unix_secs_now())
                }),
                sts,
            })
        } else {
            var("AWS_CONTAINER_CREDENTIALS_FULL_URI").map(|uri| Source::Container {
                uri,
                token_file: var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").map(PathBuf::from),
                token: var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new),
            })
        };
        let current = match &source {
            Some(Source::Static(k)) => {
                remember(&k.secret_access_key);
                if let Some(t) = &k.session_token {
                    remember(t);
                }
                Some(k.clone())
            }
            Some(Source::WebIdentity { .. } | Source::Container { .. }) | None => None,
        };
        Chain {
            source,
            current: Mutex::new(current),
            refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// Credentials to sign with now, fetched or refreshed through `transport` when needed.
    pub fn credentials<'a>(
        &'a self,
        transport: &'a dyn Transport,
    ) -> Pin<Box<dyn Future<Output = Result<Keys, CredentialsError>> + Send + 'a>> {
        Box::pin(self.get(transport))
    }

    async fn get(&self, transport: &dyn Transport) -> Result<Keys, CredentialsError> {
        let Some(source) = &self.source else {
            return Err(CredentialsError {
                source_name: "the sidecar's environment",
                reason: "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, or AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned(),
            });
        };
        if let Some(k) = self.fresh(SystemTime::now()) {
            return Ok(k);
        }
        // One refresh at a time: the others wait here and take what it got.
        let mut failed_at = self.refresh.lock().await;
        let now = SystemTime::now();
        if let Some(k) = self.fresh(now) {
            return Ok(k);
        }
        let usable = self
            .current
            .lock()
            .clone()
            .filter(|k| k.expires.is_none_or(|at| at > now));
        if let (Some(k), Some(at)) = (&usable, *failed_at)
            && at.elapsed() < RETRY_AFTER_FAILURE
        {
            return Ok(k.clone());
        }
        let fetched = tokio::time::timeout(CALL, fetch(source, transport))
            .await
            .unwrap_or_else(|_| {
                Err(CredentialsError {
                    source_name: source.name(),
                    reason: format!("no answer within {}s", CALL.as_secs()),
                })
            });
        match (fetched, usable) {
            (Ok(k), _) => {
                remember(&k.secret_access_key);
                if let Some(t) = &k.session_token {
                    remember(t);
                }
                *failed_at = None;
                *self.current.lock() = Some(k.clone());
                Ok(k)
            }
            (Err(e), Some(k)) => {
                *failed_at = Some(Instant::now());
                tracing::warn!(
                    error = %e,
                    "refreshing the aws credentials failed; the current ones serve until they expire"
                );
                Ok(k)
            }
            (Err(e), None) => {
                *failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// The current credentials, if they need no refresh at `now`.
    fn fresh(&self, now: SystemTime) -> Option<Keys> {
        self.current.lock().clone().filter(|k| match k.expires {
            None => true,
            Some(at) => at
                .checked_sub(REFRESH_BEFORE)
                .is_some_and(|refresh_at| refresh_at > now),
        })
    }
}

/// Asks the source for credentials.
async fn fetch(source: &Source, transport: &dyn Transport) -> Result<Keys, CredentialsError> {
    let fail = |reason: String| CredentialsError {
        source_name: source.name(),
        reason,
    };
    match source {
        Source::Static(k) => Ok(k.clone()),
        Source::WebIdentity {
            role_arn,
            token_file,
            session_name,
            sts,
        } => {
            let token = tokio::fs::read_to_string(token_file)
                .await
                .map_err(|e| fail(format!("{}: {e}", token_file.display())))?;
            let token = token.trim();
            if token.is_empty() {
                return Err(fail(format!("{} is empty", token_file.display())));
            }
            remember(&Secret::new(token));
            let form = [
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
                ("RoleArn", role_arn.as_str()),
                ("RoleSessionName", session_name.as_str()),
                ("WebIdentityToken", token),
            ]
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
            let req = Request::builder()
                .method(Method::POST)
                .uri(format!("{}/", sts.trim_end_matches('/')))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(form)))
                .map_err(|e| fail(format!("the STS request could not be built: {e}")))?;
            let (status, body) = call(transport, req).await.map_err(&fail)?;
            let body = body.replace(token, "[redacted]");
            if status != 200 {
                return Err(fail(format!(
                    "STS answered {status}: {} {}",
                    xml_tag(&body, "Code").unwrap_or_default(),
                    xml_tag(&body, "Message").unwrap_or_default()
                )));
            }
            let field = |name: &str| {
                xml_tag(&body, name)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| fail(format!("the STS answer has no {name}")))
            };
            Ok(Keys {
                access_key_id: field("AccessKeyId")?,
                secret_access_key: Secret::new(field("SecretAccessKey")?),
                session_token: Some(Secret::new(field("SessionToken")?)),
                expires: Some(expiry(&field("Expiration")?).map_err(&fail)?),
            })
        }
        Source::Container {
            uri,
            token_file,
            token,
        } => {
            let token = match (token_file, token) {
                (Some(file), _) => Some(Secret::new(
                    tokio::fs::read_to_string(file)
                        .await
                        .map_err(|e| fail(format!("{}: {e}", file.display())))?
                        .trim(),
                )),
                (None, t) => t.clone(),
            };
            if let Some(t) = &token {
                remember(t);
            }
            let mut b = Request::builder().method(Method::GET).uri(uri.as_str());
            if let Some(t) = &token {
                let mut v = http::HeaderValue::from_str(t.expose()).map_err(|_| {
                    fail("the authorization token is not a valid header".to_owned())
                })?;
                v.set_sensitive(true);
                b = b.header(header::AUTHORIZATION, v);
            }
            let req = b
                .body(Full::new(Bytes::new()))
                .map_err(|e| fail(format!("the request could not be built: {e}")))?;
            let (status, body) = call(transport, req).await.map_err(&fail)?;
            let body = match &token {
                Some(t) => body.replace(t.expose(), "[redacted]"),
                None => body,
            };
            if status != 200 {
                #[derive(Deserialize)]
                struct Failed {
                    #[serde(default, alias = "Message")]
                    message: String,
                }
                let said = serde_json::from_str::<Failed>(&body)
                    .map(|f| f.message)
                    .unwrap_or_default();
                return Err(fail(format!("the endpoint answered {status}: {said}")));
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Answer {
                access_key_id: String,
                secret_access_key: String,
                #[serde(default)]
                token: Option<String>,
                #[serde(default)]
                expiration: Option<String>,
            }
            let a: Answer = serde_json::from_str(&body).map_err(|e| {
                fail(format!(
                    "the answer is not credentials (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?;
            Ok(Keys {
                access_key_id: a.access_key_id,
                secret_access_key: Secret::new(a.secret_access_key),
                session_token: a.token.map(Secret::new),
                expires: a
                    .expiration
                    .as_deref()
                    .map(expiry)
                    .transpose()
                    .map_err(&fail)?,
            })
        }
    }
}

/// Sends a credential call and reads its status and body.
async fn call(
    transport: &dyn Transport,
    req: Request<Full<Bytes>>,
) -> Result<(u16, String), String> {
    let resp = transport.send(req, CONNECT).await.map_err(|e| {
        format!(
            "the request failed: {}",
            crate::classify::root_cause(e.as_ref())
        )
    })?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the answer could not be read: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > MAX_RESPONSE_BYTES {
                return Err("the answer is larger than 64 KiB".to_owned());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((status, String::from_utf8_lossy(&buf).into_owned()))
}

/// An RFC 3339 expiry (`2026-11-30T21:00:00Z`).
fn expiry(v: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(v.trim().trim_end_matches('Z'))
        .map_err(|e| format!("the expiration {v:?} does not parse: {e}"))
}

/// The text of the first `<name>` element of an XML document, unescaped.
fn xml_tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(
        xml[start..start + len]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `application/x-www-form-urlencoded` escaping: every byte but the unreserved ones.
fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn chain(vars: &[(&str, &str)]) -> Chain {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Chain::from_vars(|k| vars.get(k).cloned())
    }

    #[test]
    fn the_chain_takes_environment_keys_before_web_identity_before_the_container_endpoint() {
        let all = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            ),
        ];
        assert!(matches!(chain(&all).source, Some(Source::Static(_))));
        assert!(matches!(
            chain(&all[2..]).source,
            Some(Source::WebIdentity { .. })
        ));
        assert!(matches!(
            chain(&all[4..]).source,
            Some(Source::Container { .. })
        ));
        assert!(chain(&[]).source.is_none());
    }

    /// A container-credentials endpoint that answers from a script and counts its calls.
    struct Scripted {
        answers: Mutex<std::collections::VecDeque<(u16, String)>>,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl Transport for Scripted {
        fn send(&self, req: Request<Full<Bytes>>, _connect: Duration) -> crate::upstream::Sent<'_> {
            Box::pin(async move {
                assert_eq!(req.headers()[header::AUTHORIZATION], "container-token");
                self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Let every concurrent caller reach the refresh before this one answers.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let (status, body) = self
                    .answers
                    .lock()
                    .pop_front()
                    .unwrap_or((500, String::new()));
                let body = http_body_util::combinators::BoxBody::new(
                    Full::new(Bytes::from(body)).map_err(|never| match never {}),
                );
                Ok(http::Response::builder()
                    .status(status)
                    .body(body)
                    .unwrap_or_else(|e| panic!("{e}")))
            })
        }
    }

    fn answer(id: &str, expires_in: Duration) -> (u16, String) {
        let at = humantime::format_rfc3339_seconds(SystemTime::now() + expires_in);
        (
            200,
            format!(
                r#"{{"AccessKeyId":"{id}","SecretAccessKey":"s-{id}","Token":"t-{id}","Expiration":"{at}"}}"#
            ),
        )
    }

    fn container(answers: Vec<(u16, String)>) -> (Chain, Scripted) {
        let chain = chain(&[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1:1/creds",
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token"),
        ]);
        let t = Scripted {
            answers: Mutex::new(answers.into()),
            calls: std::sync::atomic::AtomicUsize::new(0),
        };
        (chain, t)
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_fetch() {
        let (chain, t) = container(vec![answer("A", Duration::from_secs(3600))]);
        let (a, b, c) = tokio::join!(
            chain.credentials(&t),
            chain.credentials(&t),
            chain.credentials(&t)
        );
        for k in [a, b, c] {
            assert_eq!(k.map(|k| k.access_key_id), Ok("A".to_owned()));
        }
        assert_eq!(t.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_near_expiry_are_refreshed_and_a_failed_refresh_serves_them_until_they_expire()
     {
        let (chain, t) = container(vec![
            // Inside the five minutes before expiry: due for a refresh at once.
            answer("A", Duration::from_secs(200)),
            answer("B", Duration::from_secs(250)),
            (500, r#"{"message":"agent unavailable"}"#.to_owned()),
            answer("C", Duration::from_secs(3600)),
        ]);
        let id = |r: Result<Keys, CredentialsError>| r.map(|k| k.access_key_id);
        assert_eq!(id(chain.credentials(&t).await), Ok("A".to_owned()));
        assert_eq!(
            id(chain.credentials(&t).await),
            Ok("B".to_owned()),
            "refreshed"
        );
        // The endpoint fails: B has not expired, so it serves, and the endpoint is not asked
        // again until RETRY_AFTER_FAILURE has passed.
        assert_eq!(id(chain.credentials(&t).await), Ok("B".to_owned()));
        assert_eq!(id(chain.credentials(&t).await), Ok("B".to_owned()));
        assert_eq!(t.calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        tokio::time::advance(RETRY_AFTER_FAILURE).await;
        assert_eq!(id(chain.credentials(&t).await), Ok("C".to_owned()));
        assert_eq!(t.calls.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_that_cannot_be_had_name_the_source_and_no_secret() {
        let (chain, t) = container(vec![(
            403,
            r#"{"message":"token container-token refused"}"#.to_owned(),
        )]);
        let e = chain.credentials(&t).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "aws credentials from the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI): the endpoint answered 403: token [redacted] refused"
        );
        let none = Chain::from_vars(|_| None);
        let e = none.credentials(&t).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("aws credentials from the sidecar's environment: no AWS credentials"),
            "{e}"
        );
    }

    #[test]
    fn sts_is_asked_where_the_sdks_ask_it() {
        let sts = |vars: &[(&str, &str)]| {
            let mut v = vec![("AWS_ROLE_ARN", "r"), ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")];
            v.extend_from_slice(vars);
            match chain(&v).source {
                Some(Source::WebIdentity { sts, .. }) => sts,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(sts(&[]), "https://sts.amazonaws.com");
        assert_eq!(
            sts(&[("AWS_REGION", "eu-west-1")]),
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            sts(&[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
            ]),
            "https://sts.amazonaws.com"
        );
        assert_eq!(
            sts(&[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ENDPOINT_URL", "http://a")
            ]),
            "http://a"
        );
        assert_eq!(
            sts(&[
                ("AWS_ENDPOINT_URL", "http://a"),
                ("AWS_ENDPOINT_URL_STS", "http://b")
            ]),
            "http://b"
        );
    }

    #[test]
    fn an_sts_answer_is_read_and_form_values_are_escaped() {
        let xml = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>a+b/c</SecretAccessKey><SessionToken>t&amp;k</SessionToken><Expiration>2026-11-30T21:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        assert_eq!(xml_tag(xml, "SessionToken").as_deref(), Some("t&k"));
        assert_eq!(
            expiry("2026-11-30T21:00:00Z").map(|t| t
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()),
            Ok(1_796_072_400)
        );
        assert_eq!(
            form_encode("arn:aws:iam::1:role/r a"),
            "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr%20a"
        );
    }
}
