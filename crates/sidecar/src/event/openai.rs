//! OpenAI Chat Completions stream chunks (OpenAI, Azure OpenAI and OpenAI-compatible servers):
//! the fields Plumb acts on, typed, and everything else carried in `rest` untouched.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::object::{Rest, with_rest};

/// Reads `null` as the type's default, as providers send `null` for absent lists and objects.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One `chat.completion.chunk`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Chunk {
    /// The model that answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The choices' deltas (Plumb reads the first).
    pub choices: Vec<Choice>,
    /// Token usage (the usage-only chunk at the end, when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// An error reported inside the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Everything else, passed through.
    #[serde(flatten)]
    pub rest: Rest,
}

/// One choice of a chunk.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Choice {
    /// Its index.
    pub index: u64,
    /// What it adds.
    pub delta: Delta,
    /// Why it finished, once it has.
    pub finish_reason: Option<String>,
    /// Everything else, passed through.
    #[serde(flatten)]
    pub rest: Rest,
}

/// What a chunk adds to the answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Delta {
    /// `assistant`, in the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Answer text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Reasoning text of thinking models behind OpenAI-compatible servers (DeepSeek, vLLM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Reasoning text, as OpenRouter and others name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// A refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Tool calls, piece by piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Everything else, passed through.
    #[serde(flatten)]
    pub rest: Rest,
}

/// A piece of a tool call.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ToolCallDelta {
    /// Which call it belongs to.
    pub index: u64,
    /// The call's id, in its first piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function's name and a piece of its arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
    /// Everything else, passed through.
    #[serde(flatten)]
    pub rest: Rest,
}

with_rest!(Chunk {
    model: value,
    choices: or_default,
    usage: value,
    error: value,
});
with_rest!(Choice {
    index: or_default,
    delta: or_default,
    finish_reason: value,
});
with_rest!(Delta {
    role: value,
    content: value,
    reasoning_content: value,
    reasoning: value,
    refusal: value,
    tool_calls: value,
});
with_rest!(ToolCallDelta {
    index: or_default,
    id: value,
    function: value,
});

/// A piece of a function call.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct FunctionDelta {
    /// Its name, in the first piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of its JSON arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Token usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    /// Both, as OpenAI totals them (written for a translated stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
}

impl Chunk {
    /// The first choice's delta, if the chunk has a choice.
    pub fn delta(&self) -> Option<&Delta> {
        self.choices.first().map(|c| &c.delta)
    }

    /// The answer text this chunk adds (empty when none).
    pub fn text(&self) -> &str {
        self.delta()
            .and_then(|d| d.content.as_deref())
            .unwrap_or("")
    }

    /// The first choice's finish reason, once it has finished.
    pub fn finish_reason(&self) -> Option<&str> {
        self.choices
            .first()
            .and_then(|c| c.finish_reason.as_deref())
    }

    /// Whether it carries only usage (no choice): the chunk a client gets when it asked for
    /// `stream_options.include_usage`.
    pub fn usage_only(&self) -> bool {
        self.choices.is_empty() && self.usage.is_some()
    }

    /// Whether it adds to the answer: text, a tool call or a refusal.
    pub fn has_content(&self) -> bool {
        self.delta().is_some_and(|d| {
            d.content.as_deref().is_some_and(|t| !t.is_empty())
                || d.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
                || d.refusal.as_deref().is_some_and(|t| !t.is_empty())
        })
    }

    /// The first choice's reasoning text, when it carries some: `reasoning_content` (DeepSeek,
    /// vLLM) or `reasoning` (OpenRouter and others).
    pub fn reasoning(&self) -> Option<&str> {
        self.delta()
            .and_then(|d| d.reasoning_content.as_deref().or(d.reasoning.as_deref()))
            .filter(|r| !r.is_empty())
    }

    /// Whether it has a tool call.
    pub fn has_tool_calls(&self) -> bool {
        self.delta().is_some_and(|d| d.tool_calls.is_some())
    }
}
