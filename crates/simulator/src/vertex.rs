//! Google Vertex AI's paths: Gemini models in Gemini's wire format, Claude models in
//! Anthropic's (with Vertex's `anthropic_version` in the body and the model in the path), both
//! behind an OAuth access token the simulator issued ([`crate::google_auth`]).
//!
//! ```text
//! POST /v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent
//!                                                                  :streamGenerateContent?alt=sse
//! POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:rawPredict
//!                                                                  :streamRawPredict
//! ```

use serde_json::Value;

use crate::wire::ProviderError;

/// The `anthropic_version` Vertex AI requires in a Claude request's body.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Whose model a Vertex path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publisher {
    /// `publishers/google`: Gemini's wire format.
    Google,
    /// `publishers/anthropic`: Anthropic's.
    Anthropic,
}

/// A Vertex AI model path, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VertexPath {
    /// The publisher.
    pub publisher: Publisher,
    /// The model.
    pub model: String,
    /// Whether the method streams.
    pub stream: bool,
}

/// Reads a Vertex path; `None` when it is not one (unknown publisher or method included).
pub fn route(path: &str) -> Option<VertexPath> {
    let rest = path.strip_prefix("/v1/projects/")?;
    let (project, rest) = rest.split_once("/locations/")?;
    let (region, rest) = rest.split_once("/publishers/")?;
    let (publisher, rest) = rest.split_once("/models/")?;
    let (model, method) = rest.rsplit_once(':')?;
    let (publisher, stream) = match (publisher, method) {
        ("google", "generateContent") => (Publisher::Google, false),
        ("google", "streamGenerateContent") => (Publisher::Google, true),
        ("anthropic", "rawPredict") => (Publisher::Anthropic, false),
        ("anthropic", "streamRawPredict") => (Publisher::Anthropic, true),
        _ => return None,
    };
    let fine = |s: &str| !s.is_empty() && !s.contains('/');
    (fine(project) && fine(region) && fine(model)).then(|| VertexPath {
        publisher,
        model: model.to_owned(),
        stream,
    })
}

/// A Claude request's body as Anthropic's API would take it, once Vertex's own rules hold:
/// `anthropic_version` is Vertex's, and the model is named by the path only. The `stream`
/// field is the method's.
pub fn anthropic_body(body: &Value, model: &str, stream: bool) -> Result<Value, String> {
    if body.get("model").is_some() {
        return Err(
            "model: Extra inputs are not permitted (the model is named in the path)".to_owned(),
        );
    }
    match body.get("anthropic_version").and_then(Value::as_str) {
        Some(ANTHROPIC_VERSION) => {}
        Some(other) => {
            return Err(format!(
                "anthropic_version: {other:?} is not supported on Vertex AI; use {ANTHROPIC_VERSION:?}"
            ));
        }
        None => return Err("anthropic_version: Field required".to_owned()),
    }
    let mut body = body.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("anthropic_version");
        o.insert("model".to_owned(), Value::String(model.to_owned()));
        o.insert("stream".to_owned(), Value::Bool(stream));
    }
    Ok(body)
}

/// Vertex's answer to a missing, unknown or expired access token (Google's shape, whatever
/// the publisher).
pub fn unauthenticated() -> ProviderError {
    let mut e = ProviderError::bad_request(
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    );
    e.status = 401;
    e
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn vertex_paths_are_read_and_others_refused() {
        assert_eq!(
            route(
                "/v1/projects/p/locations/us-east5/publishers/google/models/gemini-2.5-pro:streamGenerateContent"
            ),
            Some(VertexPath {
                publisher: Publisher::Google,
                model: "gemini-2.5-pro".into(),
                stream: true
            })
        );
        assert_eq!(
            route(
                "/v1/projects/p/locations/global/publishers/anthropic/models/claude-x@2025:rawPredict"
            ),
            Some(VertexPath {
                publisher: Publisher::Anthropic,
                model: "claude-x@2025".into(),
                stream: false
            })
        );
        assert_eq!(
            route("/v1/projects/p/locations/r/publishers/anthropic/models/c:generateContent"),
            None
        );
        assert_eq!(
            route("/v1/projects/p/locations/r/publishers/meta/models/l:rawPredict"),
            None
        );
    }

    #[test]
    fn a_claude_body_needs_vertexs_version_and_no_model() {
        let ok = anthropic_body(
            &json!({"anthropic_version": ANTHROPIC_VERSION, "max_tokens": 5}),
            "c",
            true,
        )
        .unwrap();
        assert_eq!(ok, json!({"model": "c", "max_tokens": 5, "stream": true}));
        assert!(
            anthropic_body(
                &json!({"anthropic_version": ANTHROPIC_VERSION, "model": "c"}),
                "c",
                false
            )
            .is_err()
        );
        assert!(anthropic_body(&json!({"anthropic_version": "2023-06-01"}), "c", false).is_err());
        assert!(anthropic_body(&json!({}), "c", false).is_err());
    }
}
