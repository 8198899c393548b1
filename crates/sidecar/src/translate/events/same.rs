//! Same-family streams: the events pass on as the very bytes that arrived, tracked for
//! whether the answer finished, unless a continuation has to rewrite them.

use bytes::Bytes;
use serde_json::json;

use super::{Incomplete, chunk_data, named, strip_overlap};
use crate::event::anthropic::{BlockDelta, ContentBlock, StreamEvent as A};
use crate::event::{Event, RawEvent};
use crate::payload::Api;
use crate::translate::responses::Seen;

/// Same-family tracking: whether the answer finished and the terminator came.
#[derive(Debug)]
pub struct Tracker {
    pub(super) family: Api,
    pub(super) finished: bool,
    pub(super) terminated: bool,
    pub(super) text: String,
    pub(super) tools: bool,
    /// The client's open Anthropic content block.
    pub(super) block: Option<u64>,
    /// Continuing another stream: drop this one's preamble and write into the client's
    /// open block.
    pub(super) resume_into: Option<Option<u64>>,
    /// White space the client already has (see [`strip_overlap`]).
    pub(super) overlap: String,
    /// Drop the usage-only chunk: Plumb asked the upstream for usage (to count the tokens),
    /// the OpenAI client did not.
    pub(super) drop_usage: bool,
    /// A Responses stream: what the client has seen of it.
    pub(super) seen: Option<Box<Seen>>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            family: Api::Openai,
            finished: false,
            terminated: false,
            text: String::new(),
            tools: false,
            block: None,
            resume_into: None,
            overlap: String::new(),
            drop_usage: false,
            seen: None,
        }
    }
}

impl Tracker {
    pub(super) fn event(&mut self, raw: &RawEvent, event: &Event) -> Vec<Bytes> {
        match event {
            Event::Done => self.terminated = true,
            Event::Chunk(c) => {
                if self.drop_usage && c.usage_only() {
                    return Vec::new();
                }
                let original = c.text();
                let text = strip_overlap(&mut self.overlap, original);
                self.text.push_str(&text);
                self.tools |= c.has_tool_calls();
                let finish = c.finish_reason().is_some();
                self.finished |= finish;
                if text.len() != original.len() {
                    let mut c = c.clone();
                    if let Some(choice) = c.choices.first_mut() {
                        choice.delta.content = Some(text);
                    }
                    return vec![chunk_data(&c)];
                }
                if self.resume_into.is_some() && text.is_empty() && !finish && !c.choices.is_empty()
                {
                    // The continuation's role chunk: the client already has one.
                    return Vec::new();
                }
            }
            Event::Anthropic(a) => return self.anthropic(raw, a),
            Event::Responses(r) => {
                use crate::event::responses::StreamEvent as R;
                match r {
                    R::TextDelta { delta, .. } => self.text.push_str(delta),
                    R::ItemAdded { item, .. } => self.tools |= item.kind == "function_call",
                    R::Completed { .. } | R::Incomplete { .. } => {
                        self.finished = true;
                        self.terminated = true;
                    }
                    R::Created { .. }
                    | R::ItemDone { .. }
                    | R::RefusalDelta { .. }
                    | R::ArgumentsDelta { .. }
                    | R::ReasoningDelta { .. }
                    | R::Failed { .. }
                    | R::Error { .. }
                    | R::Unknown => {}
                }
            }
            // Gemini and Bedrock events are translated before they reach a tracker (see
            // `FromGemini`).
            Event::Gemini(_)
            | Event::Bedrock(_)
            | Event::Empty
            | Event::Unknown
            | Event::Error(_)
            | Event::Malformed => {}
        }
        if let Some(seen) = self.seen.as_mut() {
            seen.event(event);
        }
        vec![raw.bytes.clone()]
    }

    fn anthropic(&mut self, raw: &RawEvent, a: &A) -> Vec<Bytes> {
        // Continuing another stream, the client's open block takes every piece.
        let into = self.resume_into.map(|b| b.unwrap_or(0));
        match a {
            A::ContentBlockStart {
                index,
                content_block,
            } => {
                self.tools |= matches!(content_block, ContentBlock::ToolUse { .. });
                if self.resume_into.is_none() {
                    self.block = Some(*index);
                }
            }
            A::ContentBlockDelta { index, delta } => {
                if let BlockDelta::TextDelta { text } = delta {
                    let t = strip_overlap(&mut self.overlap, text);
                    self.text.push_str(&t);
                    if t.len() != text.len() || into.is_some() {
                        return vec![named(
                            "content_block_delta",
                            &json!({"type": "content_block_delta", "index": into.unwrap_or(*index),
                                "delta": {"type": "text_delta", "text": t}}),
                        )];
                    }
                } else if let Some(into) = into {
                    let delta = match delta {
                        BlockDelta::InputJsonDelta { partial_json } => {
                            json!({"type": "input_json_delta", "partial_json": partial_json})
                        }
                        BlockDelta::ThinkingDelta { thinking } => {
                            json!({"type": "thinking_delta", "thinking": thinking})
                        }
                        BlockDelta::TextDelta { .. } | BlockDelta::Other => {
                            return vec![raw.bytes.clone()];
                        }
                    };
                    return vec![named(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": into, "delta": delta}),
                    )];
                }
            }
            A::ContentBlockStop { .. } => {
                if let Some(into) = into {
                    return vec![named(
                        "content_block_stop",
                        &json!({"type": "content_block_stop", "index": into}),
                    )];
                }
            }
            A::MessageDelta { .. } => self.finished = true,
            A::MessageStop => self.terminated = true,
            A::MessageStart { .. } | A::Ping | A::Error { .. } | A::Unknown => {}
        }
        let preamble = matches!(
            a,
            A::MessageStart { .. } | A::ContentBlockStart { .. } | A::Ping
        );
        if into.is_some() && preamble {
            return Vec::new();
        }
        vec![raw.bytes.clone()]
    }

    pub(super) fn finish(&mut self) -> Result<Vec<Bytes>, Incomplete> {
        if self.terminated {
            return Ok(Vec::new());
        }
        if !self.finished {
            return Err(Incomplete);
        }
        self.terminated = true;
        Ok(match self.family {
            Api::Openai => vec![Bytes::from_static(b"data: [DONE]\n\n")],
            Api::Anthropic => vec![named("message_stop", &json!({"type": "message_stop"}))],
            // The terminal event is the answer's end: nothing is owed.
            Api::Responses => Vec::new(),
            // Gemini and Bedrock streams have none (and only ever pass through a translation).
            Api::Gemini | Api::Bedrock => Vec::new(),
        })
    }
}
