//! The OpenAI Responses family as a client surface (`POST /v1/responses`).
//!
//! An `openai` target takes a Responses request as it is. Every other target speaks Chat
//! Completions or Anthropic Messages: the request is read into a [`Conversation`] and written
//! in the target's family, and its answer — whole or streamed — is written back as a
//! `response` object or the Responses event sequence.
//!
//! [`Conversation`]: super::Conversation

mod incoming;
pub mod outgoing;
pub mod stream;

pub use outgoing::{Echo, TRANSLATED_ID_PREFIX};
pub use stream::{Seen, ToResponses};
