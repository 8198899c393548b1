//! The identity services a cloud target authenticates through: Google's token endpoint and
//! metadata server, AWS STS and the container-credentials endpoint.

use super::*;

/// Google's token endpoint (`POST /token`) and metadata server (`GET` of its token path).
pub(super) async fn google_auth(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, BoxError> {
    let (status, body) = if req.method() == Method::POST {
        let body = Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await?
            .to_bytes();
        state.google.exchange(&String::from_utf8_lossy(&body))
    } else {
        state.google.metadata(
            req.headers()
                .get("metadata-flavor")
                .and_then(|v| v.to_str().ok()),
        )
    };
    Ok(admin_json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    ))
}

/// STS and the container-credentials endpoint: each call is logged as an attempt (api
/// `bedrock`, endpoint `sts` or `container-credentials`, the presented token as its key only
/// when it was the right one, so a test can count refreshes).
pub(super) async fn aws_identity(
    state: &Arc<State>,
    endpoint: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let endpoint: &'static str = if endpoint == "sts" {
        "sts"
    } else {
        "container-credentials"
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_bytes(req.into_body()).await.unwrap_or_default();
    let id = state.attempts.begin(Arrival {
        api: Api::Bedrock,
        endpoint,
        model: None,
        key: None,
        stream: false,
        traceparent: None,
        organization: None,
        project: None,
        path: None,
    });
    let (status, content_type, text) = if endpoint == "sts" {
        let (status, xml) = state.aws.assume_role(&body);
        (status, "text/xml", xml)
    } else {
        let (status, v) = state.aws.container(authorization.as_deref());
        (status, "application/json", v.to_string())
    };
    let mut resp = Response::new(full(Bytes::from(text)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    state.attempts.update(id, |a| a.status = status);
    let outcome = if status == 200 {
        Outcome::Completed
    } else {
        Outcome::Error
    };
    state.attempts.finish(id, outcome, body_len(&resp));
    resp
}
