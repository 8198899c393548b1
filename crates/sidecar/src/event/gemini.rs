//! Gemini API answers (`generativelanguage.googleapis.com`): a `GenerateContentResponse`, which
//! is both the whole answer of `:generateContent` and each event of
//! `:streamGenerateContent?alt=sse` (a partial response; the last one carries `finishReason`
//! and the usage). Only the fields Plumb acts on are typed.

use serde::Deserialize;
use serde_json::Value;

use super::openai::null_as_default;

/// A `GenerateContentResponse`, whole or one stream event of it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The candidate answers (Plumb reads the first).
    #[serde(default, deserialize_with = "null_as_default")]
    pub candidates: Vec<Candidate>,
    /// Why the prompt was blocked, when it was.
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Token usage (cumulative in a stream).
    #[serde(default)]
    pub usage_metadata: Option<Usage>,
    /// The model that answered.
    #[serde(default)]
    pub model_version: Option<String>,
    /// The response's id.
    #[serde(default)]
    pub response_id: Option<String>,
    /// An error reported in a 200 or inside a stream.
    #[serde(default)]
    pub error: Option<Value>,
}

/// One candidate answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// What it says (`None`: the field is missing, as when the answer was blocked).
    #[serde(default)]
    pub content: Option<Content>,
    /// Why it finished, once it has.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A candidate's content.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Content {
    /// Its parts.
    #[serde(default, deserialize_with = "null_as_default")]
    pub parts: Vec<Part>,
}

/// One part of a candidate's content: text (the answer, or a thought when `thought` is set)
/// or a function call. Other kinds (inline data, executable code) carry nothing Plumb reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
    /// Whether the text is the model's thinking rather than the answer.
    #[serde(default, deserialize_with = "null_as_default")]
    pub thought: bool,
    /// A function call.
    #[serde(default)]
    pub function_call: Option<FunctionCall>,
}

/// A function call.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct FunctionCall {
    /// Its id, when the API gives one.
    #[serde(default)]
    pub id: Option<String>,
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// Its arguments, a JSON object.
    #[serde(default)]
    pub args: Option<Value>,
}

/// Why a prompt was blocked.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// `SAFETY`, `BLOCKLIST`, `PROHIBITED_CONTENT`, … (absent when not blocked).
    #[serde(default)]
    pub block_reason: Option<String>,
}

/// Token usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_token_count: Option<u64>,
    /// Answer tokens.
    #[serde(default)]
    pub candidates_token_count: Option<u64>,
    /// Thinking tokens, billed as output (as OpenAI counts reasoning in completion tokens).
    #[serde(default)]
    pub thoughts_token_count: Option<u64>,
}

/// Why a candidate finished, as Plumb acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The answer is complete (`STOP`, and the reasons that mean nothing else to Plumb).
    Stop,
    /// The answer reached `maxOutputTokens`: truncated, like OpenAI's `length`.
    MaxTokens,
    /// A filter stopped the answer: `SAFETY`, and `RECITATION` (the answer recited protected
    /// material and was cut: a content policy stopped it, so it is classed as a content
    /// filter too), `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY`. The reason.
    Filtered(String),
    /// The model produced a function call that does not parse (`MALFORMED_FUNCTION_CALL`).
    MalformedCall,
}

impl Response {
    /// The first candidate.
    pub fn candidate(&self) -> Option<&Candidate> {
        self.candidates.first()
    }

    /// The first candidate's parts.
    pub fn parts(&self) -> &[Part] {
        self.candidate()
            .and_then(|c| c.content.as_ref())
            .map_or(&[], |c| c.parts.as_slice())
    }

    /// Why the first candidate finished, once it has.
    pub fn finish(&self) -> Option<Finish> {
        let reason = self.candidate()?.finish_reason.as_deref()?;
        Some(match reason {
            "MAX_TOKENS" => Finish::MaxTokens,
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII"
            | "IMAGE_SAFETY" => Finish::Filtered(reason.to_owned()),
            "MALFORMED_FUNCTION_CALL" => Finish::MalformedCall,
            _ => Finish::Stop,
        })
    }

    /// Why the prompt was blocked, if it was.
    pub fn blocked(&self) -> Option<&str> {
        self.prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref())
            .filter(|r| !r.is_empty())
    }

    /// The answer's text (thoughts left out).
    pub fn text(&self) -> String {
        self.parts()
            .iter()
            .filter(|p| !p.thought)
            .filter_map(|p| p.text.as_deref())
            .collect()
    }

    /// Whether it carries any of the answer: text or a function call.
    pub fn has_content(&self) -> bool {
        self.parts().iter().any(|p| {
            p.function_call.is_some()
                || (!p.thought && p.text.as_deref().is_some_and(|t| !t.is_empty()))
        })
    }

    /// Whether it carries thinking.
    pub fn has_thought(&self) -> bool {
        self.parts()
            .iter()
            .any(|p| p.thought && p.text.as_deref().is_some_and(|t| !t.is_empty()))
    }

    /// Input and output tokens, as far as it reports them.
    pub fn usage(&self) -> (Option<u64>, Option<u64>) {
        self.usage_metadata.map_or((None, None), |u| {
            let output = match (u.candidates_token_count, u.thoughts_token_count) {
                (None, None) => None,
                (c, t) => Some(c.unwrap_or(0).saturating_add(t.unwrap_or(0))),
            };
            (u.prompt_token_count, output)
        })
    }
}

impl Finish {
    /// The OpenAI `finish_reason` it means; `tools` is whether the answer called a function.
    pub fn openai(&self, tools: bool) -> &'static str {
        match self {
            Finish::Stop | Finish::MalformedCall if tools => "tool_calls",
            Finish::Stop | Finish::MalformedCall => "stop",
            Finish::MaxTokens => "length",
            Finish::Filtered(_) => "content_filter",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Response {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn finish_reasons_are_read_as_plumb_acts_on_them() {
        let with = |r: &str| read(json!({"candidates": [{"finishReason": r}]})).finish();
        assert_eq!(with("STOP"), Some(Finish::Stop));
        assert_eq!(with("MAX_TOKENS"), Some(Finish::MaxTokens));
        assert_eq!(with("SAFETY"), Some(Finish::Filtered("SAFETY".into())));
        assert_eq!(
            with("RECITATION"),
            Some(Finish::Filtered("RECITATION".into()))
        );
        assert_eq!(with("MALFORMED_FUNCTION_CALL"), Some(Finish::MalformedCall));
        assert_eq!(read(json!({"candidates": [{}]})).finish(), None);
        assert_eq!(Finish::Stop.openai(true), "tool_calls");
        assert_eq!(Finish::MaxTokens.openai(false), "length");
    }

    #[test]
    fn thoughts_are_not_the_answer_and_count_as_output_tokens() {
        let r = read(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "hmm", "thought": true}, {"text": "Hi"}
            ]}}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 3}
        }));
        assert_eq!(r.text(), "Hi");
        assert!(r.has_content() && r.has_thought());
        assert_eq!(r.usage(), (Some(4), Some(5)));
        assert_eq!(read(json!({})).usage(), (None, None));
    }

    #[test]
    fn a_blocked_prompt_names_its_reason() {
        let r = read(json!({"promptFeedback": {"blockReason": "SAFETY"}}));
        assert_eq!(r.blocked(), Some("SAFETY"));
        assert!(!r.has_content());
    }
}
