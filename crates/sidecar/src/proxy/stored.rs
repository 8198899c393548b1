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
/// OpenAI's time spent on a request, passed on with its request id.
const OPENAI_PROCESSING_MS: http::HeaderName =
    http::HeaderName::from_static("openai-processing-ms");

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
    let Some(id) = well_formed(&method, rest) else {
        return respond::error(
            api,
            StatusCode::NOT_FOUND,
            "unknown_url",
            &format!(
                "plumb serves GET and DELETE /v1/responses/{{id}}, POST /v1/responses/{{id}}/cancel and GET /v1/responses/{{id}}/input_items, with an id of letters, digits, _ and -; not {method} /v1/responses/{rest}"
            ),
        );
    };
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
    // Every key this request could meet, for the redaction of what accounts answer.
    let keys: Vec<String> = policy
        .keys
        .values()
        .chain(caller.as_ref().map(Secret::expose))
        .map(str::to_owned)
        .collect();
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
        // Bound first: the request's future must not live on across the awaits below.
        let answered = asked.await;
        match answered {
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                failures.push(format!("{}: 404", target.name));
            }
            Ok(resp) if resp.status().is_success() => return relayed(resp, target),
            // Down, refusing this key or rate-limited: another account may hold the response.
            Ok(resp)
                if resp.status().is_server_error()
                    || matches!(resp.status().as_u16(), 401 | 403 | 429) =>
            {
                let status = resp.status().as_u16();
                let said = error_text(resp).await;
                failures.push(format!(
                    "{}: HTTP {status}: {}",
                    target.name,
                    scrub(&said, &keys)
                ));
            }
            // The account holds the response and refuses what was asked of it (cancelling a
            // finished one, say): its words, without any key they might echo.
            Ok(resp) => {
                let status = resp.status();
                let said = scrub(&error_text(resp).await, &keys);
                let mut out = Response::new(respond::full(said));
                *out.status_mut() = status;
                out.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                if let Ok(v) = HeaderValue::from_str(&target.name) {
                    out.headers_mut().insert(respond::SERVED_BY, v);
                }
                return out;
            }
            Err(why) => failures.push(format!("{}: {}", target.name, scrub(&why, &keys))),
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

/// Whether `rest` (after `/v1/responses/`) is a stored-response request Plumb forwards: an
/// id of letters, digits, `_` and `-`, then nothing (`GET`, `DELETE`), `/cancel` (`POST`) or
/// `/input_items` (`GET`), and only the query parameters those take. The id, when it is.
fn well_formed<'a>(method: &Method, rest: &'a str) -> Option<&'a str> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (id, sub) = path.split_once('/').unwrap_or((path, ""));
    let id_ok = !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let call_ok = matches!(
        (method.as_str(), sub),
        ("GET" | "DELETE", "") | ("POST", "cancel") | ("GET", "input_items")
    );
    let query_ok = query.split('&').filter(|kv| !kv.is_empty()).all(|kv| {
        let key = kv.split_once('=').map_or(kv, |(k, _)| k);
        matches!(
            key,
            "stream"
                | "starting_after"
                | "include"
                | "include[]"
                | "include%5B%5D"
                | "include_obfuscation"
                | "after"
                | "before"
                | "limit"
                | "order"
        )
    });
    (id_ok && call_ok && query_ok).then_some(id)
}

/// `text` without any of `keys`.
fn scrub(text: &str, keys: &[String]) -> String {
    redact(text, keys.iter().map(String::as_str))
}

/// The start of an account's error body (at most 64 KiB), as text.
async fn error_text(resp: Response<upstream::UpstreamBody>) -> String {
    use http_body_util::BodyExt as _;
    let mut body = resp.into_body();
    let mut text = Vec::new();
    let read = async {
        while text.len() < 64 * 1024
            && let Some(Ok(frame)) = body.frame().await
        {
            if let Ok(data) = frame.into_data() {
                text.extend_from_slice(&data);
            }
        }
    };
    let _ = tokio::time::timeout(FIRST_BYTE, read).await;
    text.truncate(64 * 1024);
    String::from_utf8_lossy(&text).into_owned()
}

/// The account's answer, as it comes, with the target that gave it.
fn relayed(resp: Response<upstream::UpstreamBody>, target: &Target) -> Response<Body> {
    let (head, body) = resp.into_parts();
    let mut out = Response::new(body);
    *out.status_mut() = head.status;
    let h = out.headers_mut();
    respond::pass_headers(
        &head.headers,
        h,
        &[respond::X_REQUEST_ID, OPENAI_PROCESSING_MS],
    );
    if let Ok(v) = HeaderValue::from_str(&target.name) {
        h.insert(respond::SERVED_BY, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stored_response_calls_go_out() {
        let ok = |m: Method, rest: &str| well_formed(&m, rest).is_some();
        assert!(ok(Method::GET, "resp_abc-1_2"));
        assert!(ok(Method::GET, "resp_abc?stream=true&starting_after=4"));
        assert!(ok(Method::GET, "resp_abc/input_items?limit=20&order=asc"));
        assert!(ok(Method::DELETE, "resp_abc"));
        assert!(ok(Method::POST, "resp_abc/cancel"));
        assert!(!ok(Method::GET, "../files"));
        assert!(!ok(Method::DELETE, "resp_abc/../../files/file-x"));
        assert!(!ok(Method::GET, "resp_abc/cancel"));
        assert!(!ok(Method::POST, "resp_abc"));
        assert!(!ok(Method::GET, "resp%2e%2e"));
        assert!(!ok(Method::GET, "resp_abc?redirect=http://x"));
        assert!(!ok(Method::GET, ""));
    }
}
