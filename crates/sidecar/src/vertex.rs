//! Google Vertex AI as a target: the same wire formats as Gemini's API and Anthropic's, at
//! Vertex's paths, with an OAuth access token ([`crate::cloud::google`]).
//!
//! A model starting with `claude-` is Anthropic's (its publisher on Vertex), any other
//! Google's:
//!
//! ```text
//! {baseUrl}/v1/projects/{project}/locations/{region}/publishers/google/models/{model}
//!     :generateContent | :streamGenerateContent?alt=sse        (Gemini's request and answer)
//! {baseUrl}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}
//!     :rawPredict | :streamRawPredict                           (Anthropic Messages, with
//!                                                                anthropic_version in the body
//!                                                                and no model field)
//! ```

use plumb_policy::{Publisher, Target};
use serde_json::{Map, Value};

/// The `anthropic_version` Vertex AI takes in the body of a Claude request.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The URL of a chat request to a `vertex-ai` target; `stream` picks the streaming method.
pub fn url(target: &Target, stream: bool) -> String {
    let base = &target.upstream.base_url;
    let project = target.project.as_deref().unwrap_or_default();
    let region = target.region.as_deref().unwrap_or_default();
    let publisher = Publisher::of_model(&target.model);
    let method = match (publisher, stream) {
        (Publisher::Google, false) => "generateContent",
        (Publisher::Google, true) => "streamGenerateContent?alt=sse",
        (Publisher::Anthropic, false) => "rawPredict",
        (Publisher::Anthropic, true) => "streamRawPredict",
    };
    format!(
        "{base}/v1/projects/{project}/locations/{region}/publishers/{}/models/{}:{method}",
        publisher.as_str(),
        target.model
    )
}

/// A request body as the target takes it: for Claude on Vertex AI, the Messages body without
/// `model` (the path names it) and with Vertex's `anthropic_version`; every other body as it
/// is.
pub fn body(target: &Target, mut body: Map<String, Value>) -> Map<String, Value> {
    if target.publisher() == Some(Publisher::Anthropic) {
        body.remove("model");
        body.insert(
            "anthropic_version".to_owned(),
            Value::String(ANTHROPIC_VERSION.to_owned()),
        );
    }
    body
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn target(model: &str, region: &str, base: &str) -> Target {
        let spec = serde_json::from_value(json!({"match": {"models": ["m"]}, "targets": [
            {"name": "t", "provider": "vertex-ai", "baseUrl": base, "model": model,
             "project": "proj-1", "region": region, "credentials": {"google": true}}
        ]}))
        .unwrap_or_else(|e| panic!("{e}"));
        plumb_policy::compile("d", "r", &spec)
            .unwrap_or_else(|e| panic!("{e}"))
            .targets
            .remove(0)
    }

    #[test]
    fn each_publisher_and_mode_gets_its_vertex_path() {
        let gemini = target(
            "gemini-2.5-pro",
            "us-east5",
            "https://us-east5-aiplatform.googleapis.com/",
        );
        assert_eq!(
            url(&gemini, false),
            "https://us-east5-aiplatform.googleapis.com/v1/projects/proj-1/locations/us-east5/publishers/google/models/gemini-2.5-pro:generateContent"
        );
        assert_eq!(
            url(&gemini, true),
            "https://us-east5-aiplatform.googleapis.com/v1/projects/proj-1/locations/us-east5/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        let claude = target(
            "claude-sonnet-4-5@20250929",
            "global",
            "https://aiplatform.googleapis.com",
        );
        assert_eq!(
            url(&claude, false),
            "https://aiplatform.googleapis.com/v1/projects/proj-1/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        );
        assert_eq!(
            url(&claude, true),
            "https://aiplatform.googleapis.com/v1/projects/proj-1/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
        );
    }

    #[test]
    fn a_claude_body_loses_its_model_and_gains_vertexs_version() {
        let claude = target("claude-haiku-4-5", "us-east5", "http://h");
        let mut m = Map::new();
        m.insert("model".to_owned(), json!("claude-haiku-4-5"));
        m.insert("max_tokens".to_owned(), json!(5));
        let out = body(&claude, m.clone());
        assert_eq!(
            Value::Object(out),
            json!({"max_tokens": 5, "anthropic_version": "vertex-2023-10-16"})
        );
        let gemini = target("gemini-2.5-flash", "us-east5", "http://h");
        assert_eq!(body(&gemini, m.clone()), m, "a Gemini body is Gemini's");
    }
}
