//! An Anthropic upstream's events as an OpenAI client's chunks.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Incomplete, data, strip_overlap};
use crate::event::Event;
use crate::event::anthropic::{BlockDelta, ContentBlock, StreamEvent as A};
use crate::translate::answer::finish_reason;

/// Anthropic events as OpenAI chunks.
#[derive(Debug, Default)]
pub struct AnthropicToOpenai {
    pub(super) include_usage: bool,
    pub(super) created: u64,
    pub(super) id: String,
    pub(super) model: String,
    pub(super) input_tokens: u64,
    pub(super) output_tokens: u64,
    /// Anthropic block index → OpenAI tool call index.
    pub(super) tools: Vec<(u64, usize)>,
    pub(super) finish: Option<&'static str>,
    pub(super) done: bool,
    pub(super) text: String,
    /// Continuing another stream: no role chunk.
    pub(super) resume: bool,
    /// White space the client already has (see [`strip_overlap`]).
    pub(super) overlap: String,
}

impl AnthropicToOpenai {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    pub(super) fn event(&mut self, event: &Event) -> Vec<Bytes> {
        let Event::Anthropic(a) = event else {
            return Vec::new();
        };
        match a {
            A::MessageStart { message } => {
                self.id = message.id.clone().unwrap_or_default();
                self.model = message.model.clone().unwrap_or_default();
                self.input_tokens = message.usage.and_then(|u| u.input_tokens).unwrap_or(0);
                if self.resume {
                    return Vec::new();
                }
                vec![data(
                    &self.chunk(json!({"role": "assistant", "content": ""}), None),
                )]
            }
            A::ContentBlockStart {
                index,
                content_block: ContentBlock::ToolUse { id, name },
            } => {
                let idx = self.tools.len();
                self.tools.push((*index, idx));
                vec![data(&self.chunk(
                    json!({"tool_calls": [{"index": idx, "id": id, "type": "function",
                        "function": {"name": name, "arguments": ""}}]}),
                    None,
                ))]
            }
            A::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => {
                    let t = strip_overlap(&mut self.overlap, text);
                    self.text.push_str(&t);
                    vec![data(&self.chunk(json!({"content": t}), None))]
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    let idx = self
                        .tools
                        .iter()
                        .find(|(b, _)| b == index)
                        .map_or(0, |(_, i)| *i);
                    vec![data(&self.chunk(
                        json!({"tool_calls": [{"index": idx, "function": {"arguments": partial_json}}]}),
                        None,
                    ))]
                }
                // Thinking reaches OpenAI clients as OpenAI-compatible reasoning models send it.
                BlockDelta::ThinkingDelta { thinking } => {
                    vec![data(
                        &self.chunk(json!({"reasoning_content": thinking}), None),
                    )]
                }
                BlockDelta::Other => Vec::new(),
            },
            A::MessageDelta { delta, usage } => {
                self.finish = Some(finish_reason(
                    delta.stop_reason.as_deref().unwrap_or("end_turn"),
                ));
                if let Some(out) = usage.and_then(|u| u.output_tokens) {
                    self.output_tokens = out;
                }
                if let Some(input) = usage.and_then(|u| u.input_tokens) {
                    self.input_tokens = input;
                }
                self.closing()
            }
            A::MessageStop => {
                if self.done {
                    return Vec::new();
                }
                let mut out = if self.finish.is_none() {
                    self.closing()
                } else {
                    Vec::new()
                };
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                self.done = true;
                out
            }
            A::ContentBlockStart { .. }
            | A::ContentBlockStop { .. }
            | A::Ping
            | A::Error { .. }
            | A::Unknown => Vec::new(),
        }
    }

    /// The finish chunk and the usage chunk the client asked for.
    fn closing(&mut self) -> Vec<Bytes> {
        let reason = *self.finish.get_or_insert("stop");
        let mut out = vec![data(&self.chunk(json!({}), Some(reason)))];
        if self.include_usage {
            out.push(data(&json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [],
                "usage": {"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
                          "total_tokens": self.input_tokens.saturating_add(self.output_tokens)},
            })));
        }
        out
    }

    pub(super) fn finish(&mut self) -> Result<Vec<Bytes>, Incomplete> {
        if self.done {
            return Ok(Vec::new());
        }
        if self.finish.is_none() {
            return Err(Incomplete);
        }
        self.done = true;
        Ok(vec![Bytes::from_static(b"data: [DONE]\n\n")])
    }
}
