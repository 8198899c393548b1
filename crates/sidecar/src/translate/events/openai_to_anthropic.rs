//! An OpenAI upstream's chunks as an Anthropic client's events.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Incomplete, named, strip_overlap};
use crate::event::Event;
use crate::translate::answer::stop_reason;

/// What block of the Anthropic message is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Block {
    Text,
    Thinking,
    Tool(u64),
}

/// OpenAI chunks as Anthropic events.
#[derive(Debug, Default)]
pub struct OpenaiToAnthropic {
    pub(super) started: bool,
    pub(super) open: Option<(u64, Block)>,
    pub(super) next_index: u64,
    pub(super) finish: Option<&'static str>,
    pub(super) prompt_tokens: u64,
    pub(super) completion_tokens: u64,
    pub(super) stopped: bool,
    pub(super) text: String,
    pub(super) tools: bool,
    /// White space the client already has (see [`strip_overlap`]).
    pub(super) overlap: String,
}

impl OpenaiToAnthropic {
    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some((index, _)) = self.open.take() {
            out.push(named(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn open(&mut self, block: Block, start: Value, out: &mut Vec<Bytes>) -> u64 {
        if let Some((index, b)) = self.open
            && b == block
        {
            return index;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        self.open = Some((index, block));
        out.push(named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        index
    }

    pub(super) fn event(&mut self, event: &Event) -> Vec<Bytes> {
        let mut out = Vec::new();
        let c = match event {
            Event::Chunk(c) => c,
            Event::Done => {
                out.extend(self.stop());
                return out;
            }
            Event::Anthropic(_)
            | Event::Responses(_)
            | Event::Gemini(_)
            | Event::Bedrock(_)
            | Event::Empty
            | Event::Unknown
            | Event::Error(_)
            | Event::Malformed => return out,
        };
        if !self.started {
            self.started = true;
            out.push(named(
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": c.rest.get("id"), "type": "message", "role": "assistant", "model": c.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            ));
        }
        if let Some(u) = c.usage {
            self.prompt_tokens = u.prompt_tokens.unwrap_or(self.prompt_tokens);
            self.completion_tokens = u.completion_tokens.unwrap_or(self.completion_tokens);
        }
        let Some(choice) = c.choices.first() else {
            return out;
        };
        let delta = &choice.delta;
        // Reasoning reaches Anthropic clients as a thinking block before the answer's.
        if let Some(thinking) = c.reasoning() {
            let index = self.open(
                Block::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                &mut out,
            );
            out.push(named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": thinking}}),
            ));
        }
        let content = strip_overlap(&mut self.overlap, delta.content.as_deref().unwrap_or(""));
        if !content.is_empty() {
            let index = self.open(Block::Text, json!({"type": "text", "text": ""}), &mut out);
            self.text.push_str(&content);
            out.push(named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": content}}),
            ));
        }
        for call in delta.tool_calls.iter().flatten() {
            let function = call.function.as_ref();
            let index = if call.id.is_some() {
                // A new call: a new block, even if the previous one was the same tool index.
                self.close(&mut out);
                self.open(
                    Block::Tool(call.index),
                    json!({"type": "tool_use", "id": call.id, "name": function.and_then(|f| f.name.as_deref()), "input": {}}),
                    &mut out,
                )
            } else {
                match self.open {
                    Some((i, Block::Tool(t))) if t == call.index => i,
                    _ => continue,
                }
            };
            if let Some(args) = function
                .and_then(|f| f.arguments.as_deref())
                .filter(|a| !a.is_empty())
            {
                out.push(named(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
                ));
            }
        }
        if let Some(f) = choice.finish_reason.as_deref() {
            self.finish = Some(stop_reason(f));
            self.close(&mut out);
        }
        out
    }

    fn stop(&mut self) -> Vec<Bytes> {
        if self.stopped {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.close(&mut out);
        out.push(named(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": self.finish.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": {"input_tokens": self.prompt_tokens, "output_tokens": self.completion_tokens}}),
        ));
        out.push(named("message_stop", &json!({"type": "message_stop"})));
        self.stopped = true;
        out
    }

    pub(super) fn finish(&mut self) -> Result<Vec<Bytes>, Incomplete> {
        if self.stopped {
            return Ok(Vec::new());
        }
        if self.finish.is_none() {
            return Err(Incomplete);
        }
        Ok(self.stop())
    }
}
