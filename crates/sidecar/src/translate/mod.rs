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
