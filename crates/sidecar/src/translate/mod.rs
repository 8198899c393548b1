//! Translation between the OpenAI Chat Completions and Anthropic Messages families, so a
//! request of one can fail over to a target of the other.
//!
//! Requests go through one internal representation, [`Conversation`]; answers and stream
//! events are mapped field by field. Everything a request says must survive the trip: a field
//! that has no equivalent on the other side is reported as [`Untranslatable`], and the target is
//! skipped for that request — never silently dropped from it.
//!
//! Same-family requests are not translated at all: they pass through with only the model
//! replaced.

pub mod answer;
pub mod events;
pub mod request;

pub use request::{Conversation, Untranslatable};
