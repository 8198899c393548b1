//! Translation between the OpenAI Chat Completions and Anthropic Messages families, so a
//! request of one can fail over to a target of the other; from OpenAI's Responses API to
//! either ([`responses`]); and from any of them to Google's Gemini API ([`gemini`]), whose
//! answers come back through the OpenAI shape.
//!
//! Requests go through one internal representation, [`Conversation`]: each family's module
//! (`openai`, `anthropic`) reads its requests into it and writes it back out. Answers and stream
//! events are mapped field by field. Everything a request says must survive the trip: a field
//! that has no equivalent on the other side is reported as [`Untranslatable`], and the target is
//! skipped for that request — never silently dropped from it.
//!
//! Same-family requests are not translated at all: they pass through with only the model
//! replaced.

pub mod answer;
mod anthropic;
pub mod bedrock;
mod conversation;
pub mod events;
pub mod gemini;
mod openai;
pub mod responses;

pub use anthropic::DEFAULT_MAX_TOKENS;
pub use conversation::{
    Conversation, Image, JsonFormat, Part, Role, Tool, ToolChoice, Turn, Untranslatable,
};

/// A whole answer read from a family that comes back through OpenAI's shape (Gemini, Bedrock),
/// ready to be written as a `chat.completion`.
pub(crate) struct Assembled {
    /// The completion's id.
    pub id: String,
    /// The model that answered, if the provider said.
    pub model: Option<String>,
    /// Unix seconds.
    pub created: u64,
    /// The answer's text.
    pub text: String,
    /// The model's reasoning, as OpenAI-compatible servers of reasoning models give it
    /// (`reasoning_content`: DeepSeek, vLLM).
    pub reasoning: String,
    /// Its tool calls.
    pub calls: Vec<crate::completion::ToolCall>,
    /// OpenAI's finish reason.
    pub finish: &'static str,
    /// Prompt and completion tokens.
    pub usage: (u64, u64),
}

impl Assembled {
    /// The OpenAI `chat.completion` of one choice; `content` is null only beside tool calls.
    pub(crate) fn completion(self) -> crate::completion::ChatCompletion {
        use serde_json::{Map, Value, json};
        let mut message_rest = Map::new();
        message_rest.insert("role".to_owned(), json!("assistant"));
        if !self.reasoning.is_empty() {
            message_rest.insert("reasoning_content".to_owned(), json!(self.reasoning));
        }
        let mut choice_rest = Map::new();
        choice_rest.insert("index".to_owned(), json!(0));
        choice_rest.insert("logprobs".to_owned(), Value::Null);
        let mut rest = Map::new();
        rest.insert("object".to_owned(), json!("chat.completion"));
        rest.insert("created".to_owned(), json!(self.created));
        let (input, output) = self.usage;
        let text = self.text;
        crate::completion::ChatCompletion {
            id: Some(self.id),
            model: self.model,
            choices: vec![crate::completion::CompletionChoice {
                message: Some(crate::completion::AssistantMessage {
                    content: (!text.is_empty() || self.calls.is_empty()).then_some(text),
                    refusal: None,
                    tool_calls: self.calls,
                    rest: message_rest,
                }),
                finish_reason: Some(self.finish.to_owned()),
                rest: choice_rest,
            }],
            usage: Some(crate::completion::OpenaiUsage {
                prompt_tokens: Some(input),
                completion_tokens: Some(output),
                total_tokens: Some(input.saturating_add(output)),
            }),
            error: None,
            rest,
        }
    }
}
