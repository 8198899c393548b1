//! Sidecar identity: the pod's audience-bound ServiceAccount token, verified by the API
//! server with a TokenReview. The namespace comes from the token, never from what the sidecar
//! says of itself.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};

/// Who a verified token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub service_account: String,
    /// The pod the token was issued to, when the token is bound to one.
    pub pod: Option<String>,
}

/// Verifies a token.
#[tonic::async_trait]
pub trait Authenticate: Send + Sync {
    /// The identity behind `token`, or why it is refused (never the token itself).
    async fn review(&self, token: &str) -> Result<Identity, String>;
}

/// Verification by TokenReview.
pub struct TokenReviewer {
    /// The client.
    pub client: Client,
    /// The audience tokens must be bound to.
    pub audience: String,
}

/// The identity in a username of the form `system:serviceaccount:NAMESPACE:NAME`.
pub fn service_account(username: &str) -> Option<(String, String)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then(|| (ns.to_owned(), name.to_owned()))
}

#[tonic::async_trait]
impl Authenticate for TokenReviewer {
    async fn review(&self, token: &str) -> Result<Identity, String> {
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
            .map_err(|e| format!("the TokenReview failed: {e}"))?;
        let status = got.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(status
                .error
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "the API server did not authenticate it".to_owned()));
        }
        if !status
            .audiences
            .as_ref()
            .is_some_and(|a| a.contains(&self.audience))
        {
            return Err(format!(
                "it is not bound to the audience {:?}",
                self.audience
            ));
        }
        let user = status.user.unwrap_or_default();
        let (namespace, service_account) = user
            .username
            .as_deref()
            .and_then(service_account)
            .ok_or_else(|| "it is not a ServiceAccount token".to_owned())?;
        let pod = user
            .extra
            .as_ref()
            .and_then(|e| e.get("authentication.kubernetes.io/pod-name"))
            .and_then(|v| v.first())
            .cloned();
        Ok(Identity {
            namespace,
            service_account,
            pod,
        })
    }
}

#[cfg(test)]
mod tests {
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
}
