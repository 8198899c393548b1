//! Responses an OpenAI account stored: `GET` and `DELETE /v1/responses/{id}`,
//! `POST /v1/responses/{id}/cancel` and `GET /v1/responses/{id}/input_items` (background mode
//! polls the first, and resumes a stream with `?stream=true`).
//!
//! Plumb keeps no state, and such a request names no model: it goes to the OpenAI accounts the
//! routes use (each `openai` target's base URL, credentials, organization and project, once),
//! asked in turn. A response lives in exactly one account, so the first that does not answer
//! 404 answers the client; its answer is relayed as it comes.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use plumb_policy::{Credentials, Provider, Target};

use super::Proxy;
use crate::keys::{Secret, redact};
use crate::payload::Api;
use crate::respond::{self, Body};
use crate::translate::responses::TRANSLATED_ID_PREFIX;
use crate::upstream;

/// How long an account may take to connect.
const CONNECT: Duration = Duration::from_secs(3);
/// How long an account may take to send its response head.
const FIRST_BYTE: Duration = Duration::from_secs(60);

/// Answers a request about the stored response `rest` names (what follows `/v1/responses/`).
pub(super) async fn serve(
    proxy: &Proxy,
    method: Method,
    rest: &str,
    headers: &HeaderMap,
) -> Response<Body> {
    let api = Api::Responses;
    let Some(policy) = proxy.table.current() else {
        return respond::error(
            api,
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "plumb has no routing policy yet",
        );
    };
    let id = rest.split(['/', '?']).next().unwrap_or_default();
    if id.starts_with(TRANSLATED_ID_PREFIX) {
        return respond::error(
            api,
            StatusCode::NOT_FOUND,
            "response_not_stored",
            &format!(
                "response {id:?} was written by plumb from the answer of a target that is not OpenAI; no provider stored it"
            ),
        );
    }
    // Each OpenAI account once, in the routes' order.
    let mut accounts: Vec<&Target> = Vec::new();
    for t in policy
        .routes
        .routes()
        .iter()
        .flat_map(|r| r.all_targets())
        .filter(|t| t.provider == Provider::Openai)
    {
        let same = |a: &&Target| {
            a.upstream.base_url == t.upstream.base_url
                && a.upstream.credential == t.upstream.credential
                && a.organization == t.organization
                && a.project == t.project
        };
        if !accounts.iter().any(same) {
            accounts.push(t);
        }
    }
    if accounts.is_empty() {
        return respond::error(
            api,
            StatusCode::NOT_FOUND,
            "no_openai_account",
            "no route has an openai target; stored responses live with OpenAI",
        );
    }
    let caller = super::accept::caller_key(api, headers);
    let mut failures = Vec::new();
    for target in &accounts {
        if target.credentials == Credentials::Passthrough && caller.is_none() {
            failures.push(format!(
                "{}: forwards the caller's key and the caller sent none",
                target.name
            ));
            continue;
        }
        let key = policy.keys.for_target(target, caller.as_ref());
        let asked = async {
            let egress = upstream::egress(target, policy.keys.proxy_credentials(target));
            let req = upstream::stored_response(target, method.clone(), rest, key, headers, egress)
                .map_err(|e| e.to_string())?;
            tokio::time::timeout(FIRST_BYTE, proxy.upstreams.send(req, CONNECT))
                .await
                .map_err(|_| format!("no response head within {}s", FIRST_BYTE.as_secs()))?
                .map_err(|e| crate::classify::root_cause(&*e))
        };
        match asked.await {
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                failures.push(format!("{}: 404", target.name));
            }
            Ok(resp) => return relayed(resp, target),
            Err(why) => {
                let secrets = policy
                    .keys
                    .values()
                    .chain(caller.as_ref().map(Secret::expose));
                failures.push(format!("{}: {}", target.name, redact(&why, secrets)));
            }
        }
    }
    let all_missing = failures.iter().all(|f| f.ends_with(": 404"));
    let (status, code) = if all_missing {
        (StatusCode::NOT_FOUND, "response_not_found")
    } else {
        (StatusCode::BAD_GATEWAY, "connect")
    };
    respond::error(
        api,
        status,
        code,
        &format!(
            "plumb: no OpenAI account of the routes answered for response {id:?} ({})",
            failures.join("; ")
        ),
    )
}

/// The account's answer, as it comes, with the target that gave it.
fn relayed(resp: Response<upstream::UpstreamBody>, target: &Target) -> Response<Body> {
    let (head, body) = resp.into_parts();
    let mut out = Response::new(body);
    *out.status_mut() = head.status;
    let h = out.headers_mut();
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(v) = head.headers.get(&name) {
            h.insert(name, v.clone());
        }
    }
    for name in ["x-request-id", "openai-processing-ms"] {
        if let Some(v) = head.headers.get(name) {
            h.insert(name, v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(&target.name) {
        h.insert("x-plumb-served-by", v);
    }
    out
}
