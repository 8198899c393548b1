//! The admin API under `/_sim/`: plans, judge rules, settings of the identity services, the
//! attempt log, reset.

use super::*;

pub(super) fn admin_json(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(super) fn admin_error(status: StatusCode, message: impl std::fmt::Display) -> Response<Body> {
    admin_json(status, &json!({"error": message.to_string()}))
}

/// The admin API:
///
/// | method and path | effect |
/// | --- | --- |
/// | `GET /_sim/health` | `{"ok": true}` |
/// | `GET /_sim/attempts[?model=M]` | the attempt log |
/// | `DELETE /_sim/attempts` | clear the log |
/// | `GET /_sim/plans` | the plans in force |
/// | `PUT /_sim/plans/{model}` | set a plan (`{"fault": "...", "first": N}` / `"for": "5s"` / `"share": 0.3`) |
/// | `DELETE /_sim/plans/{model}` | remove a plan |
/// | `PUT /_sim/judge` | set the judge's rule |
/// | `GET`, `PUT /_sim/google` | Google's token counts; token lifetime and failures ([`crate::google_auth`]) |
/// | `POST /_sim/reset` | clear attempts and plans, default judge, issued tokens |
pub(super) async fn admin(
    state: &Arc<State>,
    rest: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = match Limited::new(req.into_body(), 1024 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, e),
    };
    let parse = |b: &Bytes| serde_json::from_slice::<Value>(b);
    match (method, rest) {
        (Method::GET, "health") => admin_json(StatusCode::OK, &json!({"ok": true})),
        (Method::GET, "attempts") => {
            let model = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("model="))
                .map(percent_decode);
            let attempts = state.attempts.snapshot(model.as_deref());
            admin_json(StatusCode::OK, &json!({"attempts": attempts}))
        }
        (Method::DELETE, "attempts") => {
            state.attempts.clear();
            admin_json(StatusCode::OK, &json!({"ok": true}))
        }
        (Method::GET, "plans") => admin_json(StatusCode::OK, &json!({"plans": state.plans.list()})),
        (Method::PUT | Method::POST, p) if p.starts_with("plans/") => {
            let model = percent_decode(&p["plans/".len()..]);
            let spec = match parse(&body).and_then(serde_json::from_value::<PlanSpec>) {
                Ok(s) => s,
                Err(e) => {
                    return admin_error(StatusCode::BAD_REQUEST, format!("invalid plan: {e}"));
                }
            };
            match state.plans.set(&model, spec) {
                Ok(()) => admin_json(StatusCode::OK, &json!({"ok": true, "model": model})),
                Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
            }
        }
        (Method::DELETE, p) if p.starts_with("plans/") => {
            let removed = state.plans.remove(&percent_decode(&p["plans/".len()..]));
            admin_json(StatusCode::OK, &json!({"ok": true, "removed": removed}))
        }
        (Method::PUT | Method::POST, "judge") => {
            match parse(&body).and_then(serde_json::from_value::<JudgeRule>) {
                Ok(rule) => {
                    *state.judge.lock() = rule;
                    admin_json(StatusCode::OK, &json!({"ok": true}))
                }
                Err(e) => admin_error(StatusCode::BAD_REQUEST, format!("invalid judge rule: {e}")),
            }
        }
        (Method::PUT | Method::POST, "aws") => {
            match parse(&body).map(|v| v.get("expiry_secs").and_then(Value::as_u64)) {
                Ok(Some(secs)) => {
                    state.aws.set_expiry(Duration::from_secs(secs));
                    admin_json(StatusCode::OK, &json!({"ok": true}))
                }
                Ok(None) | Err(_) => {
                    admin_error(StatusCode::BAD_REQUEST, "expected {\"expiry_secs\": N}")
                }
            }
        }
        (Method::GET, "google") => admin_json(StatusCode::OK, &state.google.counts()),
        (Method::PUT | Method::POST, "google") => {
            match parse(&body)
                .and_then(serde_json::from_value::<crate::google_auth::GoogleSettings>)
            {
                Ok(s) => {
                    state.google.set(&s);
                    admin_json(StatusCode::OK, &json!({"ok": true}))
                }
                Err(e) => admin_error(StatusCode::BAD_REQUEST, format!("invalid settings: {e}")),
            }
        }
        (Method::POST, "reset") => {
            state.reset();
            admin_json(StatusCode::OK, &json!({"ok": true}))
        }
        (m, p) => admin_error(
            StatusCode::NOT_FOUND,
            format!("no admin endpoint {m} /_sim/{p}"),
        ),
    }
}
