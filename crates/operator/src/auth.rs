//! Sidecar identity: the pod's audience-bound ServiceAccount token, verified by the API
//! server with a TokenReview. The namespace and the pod come from the token, never from what
//! the sidecar says of itself: a token that is not bound to a pod is refused, so one pod cannot
//! speak for another.

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};

/// The TokenReview's extra field that names the pod a bound token was issued to.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";

/// Who a verified token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub service_account: String,
    /// The pod the token was issued to.
    pub pod: String,
    /// When the token expires (ms since the Unix epoch), when it says so.
    pub expires_unix_ms: Option<i64>,
}

/// Why a token is not accepted. Never carries the token itself.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The API server refused it (unknown, expired, another audience, its pod deleted…).
    #[error("{0}")]
    Refused(String),
    /// It is valid but not bound to a pod, so the pod it speaks for cannot be known.
    #[error(
        "it is not bound to a pod: present the pod's projected ServiceAccount token (audience plumb.dev/control-plane; the injector mounts one at /var/run/secrets/plumb.dev/token), not a Secret-based or TokenRequest token without a pod"
    )]
    NotBoundToPod,
    /// It could not be checked: the API server did not answer.
    #[error("it could not be checked: {0}")]
    Unchecked(String),
}

/// Verifies a token.
#[tonic::async_trait]
pub trait Authenticate: Send + Sync {
    /// The identity behind `token`, or why it is not accepted.
    async fn review(&self, token: &str) -> Result<Identity, Rejected>;
}

/// TokenReviews in flight at once, at most. Every stream's token is verified again each
/// recheck interval, and streams that connected together (an operator restart, a rollout)
/// recheck together: unbounded, ten thousand of them are ten thousand requests (and client
/// connections) to the API server at once. Bounded, the rest wait their turn; one that waits
/// past the stream's review deadline counts as unchecked and is tried again later.
pub const REVIEWS_AT_ONCE: usize = 32;

/// Verification by TokenReview.
pub struct TokenReviewer {
    client: Client,
    audience: String,
    at_once: tokio::sync::Semaphore,
}

/// The identity in a username of the form `system:serviceaccount:NAMESPACE:NAME`.
pub fn service_account(username: &str) -> Option<(String, String)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then(|| (ns.to_owned(), name.to_owned()))
}

/// The expiry (`exp`, ms since the Unix epoch) a JWT states, read without checking its
/// signature: only for a token the API server has just verified.
pub fn expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_i64()?;
    exp.checked_mul(1000)
}

impl TokenReviewer {
    /// Reviews tokens with `client`, requiring `audience`, [`REVIEWS_AT_ONCE`] at a time.
    pub fn new(client: Client, audience: String) -> TokenReviewer {
        TokenReviewer {
            client,
            audience,
            at_once: tokio::sync::Semaphore::new(REVIEWS_AT_ONCE),
        }
    }
}

#[tonic::async_trait]
impl Authenticate for TokenReviewer {
    async fn review(&self, token: &str) -> Result<Identity, Rejected> {
        let _turn = self
            .at_once
            .acquire()
            .await
            .map_err(|_| Rejected::Unchecked("no review can be made now".to_owned()))?;
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..TokenReview::default()
        };
        let got = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Rejected::Unchecked(format!("the TokenReview failed: {e}")))?;
        let status = got.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(Rejected::Refused(
                status
                    .error
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "the API server did not authenticate it".to_owned()),
            ));
        }
        if !status
            .audiences
            .as_ref()
            .is_some_and(|a| a.contains(&self.audience))
        {
            return Err(Rejected::Refused(format!(
                "it is not bound to the audience {:?}",
                self.audience
            )));
        }
        let user = status.user.unwrap_or_default();
        let (namespace, service_account) = user
            .username
            .as_deref()
            .and_then(service_account)
            .ok_or_else(|| Rejected::Refused("it is not a ServiceAccount token".to_owned()))?;
        let pod = user
            .extra
            .as_ref()
            .and_then(|e| e.get(POD_NAME_EXTRA))
            .and_then(|v| v.first())
            .filter(|p| !p.is_empty())
            .cloned()
            .ok_or(Rejected::NotBoundToPod)?;
        Ok(Identity {
            namespace,
            service_account,
            pod,
            expires_unix_ms: expiry(token),
        })
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response};
    use http_body_util::BodyExt as _;
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn service_account_usernames() {
        assert_eq!(
            service_account("system:serviceaccount:team-a:web"),
            Some(("team-a".into(), "web".into()))
        );
        assert_eq!(service_account("alice"), None);
        assert_eq!(service_account("system:serviceaccount::web"), None);
    }

    #[test]
    fn the_expiry_of_a_jwt_in_milliseconds() {
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let jwt = |claims: Value| format!("{}.{}.sig", b64(&json!({"alg": "RS256"})), b64(&claims));
        assert_eq!(
            expiry(&jwt(json!({"exp": 1_764_000_000, "iat": 1}))),
            Some(1_764_000_000_000)
        );
        assert_eq!(expiry(&jwt(json!({"iat": 1}))), None);
        assert_eq!(expiry("not-a-jwt"), None);
        assert_eq!(expiry("a.!!!.c"), None);
    }

    /// A reviewer whose API server answers every TokenReview with `status`.
    fn reviewer(status: Value) -> TokenReviewer {
        let service = tower::service_fn(move |req: Request<Body>| {
            let status = status.clone();
            async move {
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let reply = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "metadata": {}, "spec": sent["spec"], "status": status});
                let mut r = Response::new(Body::from(reply.to_string().into_bytes()));
                *r.status_mut() = http::StatusCode::CREATED;
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, std::convert::Infallible>(r)
            }
        });
        TokenReviewer::new(
            Client::new(service, "default"),
            "plumb.dev/control-plane".into(),
        )
    }

    fn authenticated(extra: Value) -> Value {
        json!({"authenticated": true, "audiences": ["plumb.dev/control-plane"],
            "user": {"username": "system:serviceaccount:team-a:web", "extra": extra}})
    }

    #[tokio::test]
    async fn a_token_bound_to_a_pod_names_the_pod() {
        let got = reviewer(authenticated(json!({POD_NAME_EXTRA: ["web-1"]})))
            .review("t")
            .await;
        assert_eq!(
            got,
            Ok(Identity {
                namespace: "team-a".into(),
                service_account: "web".into(),
                pod: "web-1".into(),
                expires_unix_ms: None,
            })
        );
    }

    #[tokio::test]
    async fn a_token_not_bound_to_a_pod_is_refused_with_what_to_present_instead() {
        for extra in [
            json!({}),
            json!({POD_NAME_EXTRA: []}),
            json!({POD_NAME_EXTRA: [""]}),
        ] {
            let got = reviewer(authenticated(extra.clone())).review("t").await;
            assert_eq!(got, Err(Rejected::NotBoundToPod), "{extra}");
        }
        let msg = Rejected::NotBoundToPod.to_string();
        assert!(msg.contains("projected ServiceAccount token"), "{msg}");
    }

    #[tokio::test]
    async fn a_refused_token_says_why_and_an_unreachable_api_server_is_not_a_refusal() {
        let got = reviewer(json!({"authenticated": false, "error": "pod \"web-1\" not found"}))
            .review("t")
            .await;
        assert_eq!(
            got,
            Err(Rejected::Refused("pod \"web-1\" not found".into()))
        );
        let down = TokenReviewer::new(
            Client::new(
                tower::service_fn(|_: Request<Body>| async {
                    Err::<Response<Body>, _>(std::io::Error::other("connection refused"))
                }),
                "default",
            ),
            "plumb.dev/control-plane".into(),
        );
        assert!(matches!(
            down.review("t").await,
            Err(Rejected::Unchecked(_))
        ));
    }
}
