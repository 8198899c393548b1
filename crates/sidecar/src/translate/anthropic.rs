//! The Anthropic Messages family: a request read into a [`Conversation`], and a conversation
//! written as a request.
//!
//! [`Conversation`]: super::Conversation

mod incoming;
mod outgoing;
#[cfg(test)]
mod tests;

/// The default answer limit when an OpenAI request (where it is optional) goes to Anthropic
/// (where it is required).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
