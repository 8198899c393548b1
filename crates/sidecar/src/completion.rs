//! Whole (unstreamed) answers, typed: an OpenAI chat completion, an Anthropic message, an
//! OpenAI Responses `response`, a Gemini `GenerateContentResponse`, or an embeddings list — the fields Plumb acts on, and everything else carried in `rest`. Read once
//! by classification ([`crate::classify::success_body`]); verification, token accounting,
//! shadow comparison and translation read the same value.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::openai::null_as_default;
use crate::object::with_rest;

/// What an answer says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Text blocks joined.
    pub text: String,
    /// Tool calls, in order.
    pub tools: Vec<plumb_policy::contract::ToolCall>,
    /// The model the answer names.
    pub model: Option<String>,
}

/// A whole answer that passed classification.
#[derive(Clone, Debug, PartialEq)]
pub enum Whole {
    /// A chat answer.
    Chat(Completion),
    /// Embeddings.
    Embeddings(Embeddings),
}

/// A chat answer of any family.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// An OpenAI `chat.completion`.
    Openai(ChatCompletion),
    /// An Anthropic `message`.
    Anthropic(Message),
    /// An OpenAI Responses `response`.
    Responses(Response),
    /// A Gemini `GenerateContentResponse`.
    Gemini(crate::event::gemini::Response),
    /// A Bedrock `Converse` response.
    Bedrock(crate::event::bedrock::Response),
}

/// An OpenAI Responses `response`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Response {
    /// Its id.
    #[serde(default)]
    pub id: Option<String>,
    /// The model that answered.
    #[serde(default)]
    pub model: Option<String>,
    /// `completed`, `incomplete`, `failed`, …
    #[serde(default)]
    pub status: Option<String>,
    /// The output items (`None`: the field is missing).
    #[serde(default)]
    pub output: Option<Vec<OutputItem>>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<crate::event::responses::Usage>,
    /// The error of a failed response.
    #[serde(default)]
    pub error: Option<Value>,
}

/// An output item of a `response`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// The answer's text.
    Message {
        /// Its parts.
        #[serde(default, deserialize_with = "null_as_default")]
        content: Vec<OutputContent>,
    },
    /// A function call.
    FunctionCall {
        /// The function's name.
        #[serde(default)]
        name: Value,
        /// Its JSON arguments, as text.
        #[serde(default)]
        arguments: Option<String>,
    },
    /// Thinking: not the answer.
    Reasoning {},
    /// A built-in tool's call or anything else.
    #[serde(other)]
    Other,
}

/// A part of an output message.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    /// Text.
    OutputText {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A refusal.
    Refusal {
        /// The model's words.
        #[serde(default)]
        refusal: String,
    },
    /// Anything else.
    #[serde(other)]
    Other,
}

/// An OpenAI `chat.completion`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChatCompletion {
    /// Its id.
    pub id: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// The choices (Plumb reads the first).
    pub choices: Vec<CompletionChoice>,
    /// Token usage.
    pub usage: Option<OpenaiUsage>,
    /// An error reported in a 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Everything else, passed through.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}
with_rest!(ChatCompletion {
    id: value,
    model: value,
    choices: or_default,
    usage: value,
    error: value,
});

/// One choice of a chat completion.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CompletionChoice {
    /// The assistant's message.
    pub message: Option<AssistantMessage>,
    /// Why it finished.
    pub finish_reason: Option<String>,
    /// Everything else, passed through.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}
with_rest!(CompletionChoice {
    message: value,
    finish_reason: value,
});

/// The assistant's message of a chat completion.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AssistantMessage {
    /// The answer text.
    pub content: Option<String>,
    /// A refusal.
    pub refusal: Option<String>,
    /// Tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// Everything else, passed through.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}
with_rest!(AssistantMessage {
    content: value,
    refusal: value,
    tool_calls: or_default,
});

/// A tool call of a chat completion.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ToolCall {
    /// Its id.
    pub id: Value,
    /// The function called.
    pub function: FunctionCall,
    /// Everything else (`type`), passed through.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}
with_rest!(ToolCall {
    id: value,
    function: value,
});

/// The function of a tool call.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct FunctionCall {
    /// Its name.
    #[serde(default)]
    pub name: Value,
    /// Its JSON arguments, as text.
    #[serde(default)]
    pub arguments: Option<String>,
}

/// OpenAI token usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct OpenaiUsage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    /// Both, as OpenAI totals them (written for a translated answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
}

/// An Anthropic `message`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// Its id.
    pub id: Value,
    /// The model that answered.
    pub model: Option<String>,
    /// Its content blocks (`None`: the field is missing).
    pub content: Option<Vec<Block>>,
    /// Why it stopped.
    pub stop_reason: Option<String>,
    /// Token usage.
    pub usage: Option<crate::event::anthropic::Usage>,
    /// An error reported in a 200.
    pub error: Option<Value>,
    /// Everything else.
    pub rest: Map<String, Value>,
}
with_rest!(Message {
    id: value,
    model: value,
    content: value,
    stop_reason: value,
    usage: value,
    error: value,
});

/// A content block of an Anthropic message.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Text.
    Text {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A tool call.
    ToolUse {
        /// Its id.
        #[serde(default)]
        id: Value,
        /// The tool's name.
        #[serde(default)]
        name: Value,
        /// Its input.
        #[serde(default)]
        input: Option<Value>,
    },
    /// Extended thinking: not the answer.
    Thinking {
        /// The thinking text.
        #[serde(default)]
        thinking: String,
    },
    /// Any other block (redacted thinking, server tool results, …).
    #[serde(other)]
    Other,
}

/// An OpenAI embeddings list.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Embeddings {
    /// One entry per input.
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: Vec<Embedding>,
    /// An error reported in a 200.
    #[serde(default)]
    pub error: Option<Value>,
}

/// One embedding.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Embedding {
    /// The vector (empty when the provider sent base64 or nothing).
    #[serde(default, deserialize_with = "floats")]
    pub embedding: Vec<f64>,
}

/// A float vector, or nothing when the provider sent another encoding.
fn floats<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(xs) => xs.iter().filter_map(Value::as_f64).collect(),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Object(_) => {
            Vec::new()
        }
    })
}

impl Completion {
    /// The model the answer names.
    pub fn model(&self) -> Option<&str> {
        match self {
            Completion::Openai(c) => c.model.as_deref(),
            Completion::Anthropic(m) => m.model.as_deref(),
            Completion::Responses(r) => r.model.as_deref(),
            Completion::Gemini(g) => g.model_version.as_deref(),
            // Converse does not name the model that answered.
            Completion::Bedrock(_) => None,
        }
    }

    /// Input and output tokens, as the provider counted them.
    pub fn usage(&self) -> Option<(u64, u64)> {
        let (input, output) = match self {
            Completion::Openai(c) => c
                .usage
                .map_or((None, None), |u| (u.prompt_tokens, u.completion_tokens)),
            Completion::Anthropic(m) => m
                .usage
                .map_or((None, None), |u| (u.input_tokens, u.output_tokens)),
            Completion::Responses(r) => r
                .usage
                .map_or((None, None), |u| (u.input_tokens, u.output_tokens)),
            Completion::Gemini(g) => g.usage(),
            Completion::Bedrock(b) => b.usage(),
        };
        Some((input?, output.unwrap_or(0)))
    }
}

impl Completion {
    /// A background response not answered yet (`queued`, `in_progress`): nothing to check.
    pub fn pending(&self) -> bool {
        match self {
            Completion::Responses(r) => r.pending(),
            Completion::Openai(_)
            | Completion::Anthropic(_)
            | Completion::Gemini(_)
            | Completion::Bedrock(_) => false,
        }
    }
}

impl Response {
    /// Queued or in progress (background mode).
    pub fn pending(&self) -> bool {
        matches!(self.status.as_deref(), Some("queued" | "in_progress"))
    }
}

impl ChatCompletion {
    /// The first choice's message.
    pub fn message(&self) -> Option<&AssistantMessage> {
        self.choices.first().and_then(|c| c.message.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_of_both_families() {
        let c: ChatCompletion = serde_json::from_value(
            json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 30}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Completion::Openai(c).usage(), Some((12, 30)));
        let m: Message =
            serde_json::from_value(json!({"usage": {"input_tokens": 5, "output_tokens": 7}}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Completion::Anthropic(m).usage(), Some((5, 7)));
        let none: ChatCompletion =
            serde_json::from_value(json!({"choices": []})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Completion::Openai(none).usage(), None);
    }

    #[test]
    fn what_plumb_does_not_read_is_carried_through() {
        let c: ChatCompletion = serde_json::from_value(json!({
            "id": "x", "object": "chat.completion", "system_fingerprint": "fp",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "annotations": []}, "logprobs": null, "finish_reason": "stop"}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.rest.get("system_fingerprint"), Some(&json!("fp")));
        assert_eq!(c.message().and_then(|m| m.content.as_deref()), Some("hi"));
        assert_eq!(
            c.message().and_then(|m| m.rest.get("annotations")),
            Some(&json!([]))
        );
    }
}
