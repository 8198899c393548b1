//! Streams for a Responses client: a Chat Completions or Anthropic upstream's events fed to a
//! [`Writer`], and what the client has seen of a stream relayed as an OpenAI upstream sent it.

use bytes::Bytes;

use super::outgoing::{Echo, PassthroughState, Stop, Writer};
use crate::event::Event;
use crate::event::anthropic::{BlockDelta, ContentBlock, StreamEvent as A};
use crate::event::responses::StreamEvent as R;
use crate::payload::Api;
use crate::translate::events::{Incomplete, strip_overlap};

/// A Chat Completions or Anthropic upstream's events, as a Responses stream.
#[derive(Debug)]
pub struct ToResponses {
    from: Api,
    writer: Writer,
    text: String,
    overlap: String,
    tools: bool,
}

impl ToResponses {
    /// A new stream from an upstream of family `from`.
    pub fn new(from: Api, echo: Echo, created: u64) -> ToResponses {
        ToResponses {
            from,
            writer: Writer::new(echo, created),
            text: String::new(),
            overlap: String::new(),
            tools: false,
        }
    }

    /// The upstream's family.
    pub fn upstream(&self) -> Api {
        self.from
    }

    /// The answer's text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the answer called a tool.
    pub fn tools(&self) -> bool {
        self.tools
    }

    /// This stream, continued by an upstream of family `from`: its text goes on in the
    /// client's open message; `overlap` is the white space the client already has.
    pub fn continued(&self, from: Api, overlap: String) -> ToResponses {
        ToResponses {
            from,
            writer: self.writer.resumed(),
            text: self.text.clone(),
            overlap,
            tools: self.tools,
        }
    }

    /// A stream an OpenAI upstream began (the client saw `seen`), continued by an upstream of
    /// family `from` after `text`.
    pub fn after_passthrough(from: Api, seen: &Seen, text: &str, overlap: String) -> ToResponses {
        ToResponses {
            from,
            writer: Writer::resume_passthrough(
                seen.echo.clone(),
                seen.created,
                &seen.state,
                &seen.open_text,
            ),
            text: text.to_owned(),
            overlap,
            tools: false,
        }
    }

    fn text_delta(&mut self, t: &str) -> Vec<Bytes> {
        let t = strip_overlap(&mut self.overlap, t);
        self.text.push_str(&t);
        self.writer.text(&t, false)
    }

    /// The client's events for one upstream event.
    pub fn event(&mut self, event: &Event) -> Vec<Bytes> {
        match event {
            Event::Chunk(c) => {
                let mut out = self.writer.start(c.model.as_deref(), None);
                if let Some(m) = &c.model {
                    self.writer.model(m);
                }
                if let Some(r) = c.reasoning() {
                    out.extend(self.writer.reasoning(r));
                }
                if let Some(d) = c.delta() {
                    if let Some(t) = &d.content {
                        out.extend(self.text_delta(t));
                    }
                    if let Some(r) = &d.refusal {
                        out.extend(self.writer.text(r, true));
                    }
                    for call in d.tool_calls.iter().flatten() {
                        self.tools = true;
                        let f = call.function.as_ref();
                        // A call starts at its first chunk; servers that repeat the id or the
                        // name on later chunks do not start it again.
                        if !self.writer.has_call(call.index) {
                            out.extend(self.writer.call(
                                call.index,
                                call.id.as_deref().unwrap_or(""),
                                f.and_then(|f| f.name.as_deref()).unwrap_or(""),
                            ));
                        }
                        if let Some(args) = f.and_then(|f| f.arguments.as_deref()) {
                            out.extend(self.writer.arguments(call.index, args));
                        }
                    }
                }
                if let Some(reason) = c.finish_reason() {
                    self.writer.stop(Stop::from_finish_reason(reason));
                }
                if let Some(u) = c.usage {
                    self.writer.usage(u.prompt_tokens, u.completion_tokens);
                }
                out
            }
            Event::Done => self.writer.complete(),
            Event::Anthropic(a) => self.anthropic(a),
            // Gemini events reach this writer as OpenAI chunks (see `FromGemini`).
            Event::Responses(_)
            | Event::Gemini(_)
            | Event::Bedrock(_)
            | Event::Empty
            | Event::Unknown
            | Event::Error(_)
            | Event::Malformed => Vec::new(),
        }
    }

    fn anthropic(&mut self, a: &A) -> Vec<Bytes> {
        match a {
            A::MessageStart { message } => {
                let input = message.usage.and_then(|u| u.input_tokens);
                let out = self.writer.start(message.model.as_deref(), input);
                if let Some(m) = &message.model {
                    self.writer.model(m);
                }
                self.writer.usage(input, None);
                out
            }
            A::ContentBlockStart {
                index,
                content_block: ContentBlock::ToolUse { id, name },
            } => {
                self.tools = true;
                self.writer.call(
                    *index,
                    id.as_str().unwrap_or(""),
                    name.as_str().unwrap_or(""),
                )
            }
            A::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => self.text_delta(text),
                BlockDelta::ThinkingDelta { thinking } => self.writer.reasoning(thinking),
                BlockDelta::InputJsonDelta { partial_json } => {
                    self.writer.arguments(*index, partial_json)
                }
                BlockDelta::Other => Vec::new(),
            },
            A::MessageDelta { delta, usage } => {
                if let Some(reason) = &delta.stop_reason {
                    self.writer.stop(Stop::from_stop_reason(reason));
                }
                if let Some(u) = usage {
                    self.writer.usage(u.input_tokens, u.output_tokens);
                }
                Vec::new()
            }
            A::MessageStop => self.writer.complete(),
            A::ContentBlockStart { .. }
            | A::ContentBlockStop { .. }
            | A::Ping
            | A::Error { .. }
            | A::Unknown => Vec::new(),
        }
    }

    /// The upstream ended cleanly: the end, when the answer finished.
    pub fn finish(&mut self) -> Result<Vec<Bytes>, Incomplete> {
        if self.writer.completed() {
            return Ok(Vec::new());
        }
        if !self.writer.stopped() {
            return Err(Incomplete);
        }
        Ok(self.writer.complete())
    }

    /// The stream fails: an error event and `response.failed`.
    pub fn fail(&mut self, code: &str, message: &str) -> Vec<Bytes> {
        self.writer.fail(code, message)
    }
}

/// What a Responses client has seen of a stream relayed as an OpenAI upstream sent it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Numbering, ids and items so far.
    pub state: PassthroughState,
    /// The request's fields, for a response Plumb writes.
    pub echo: Echo,
    /// The `created_at` stamp of a response Plumb writes.
    pub created: u64,
    /// The text of the message still open.
    pub open_text: String,
    /// Items other than messages added and not yet done (a continuation cannot go on after
    /// one of those: it would not know where the client's output stands).
    pub open_others: u32,
}

impl Seen {
    /// Notes one upstream event relayed to the client.
    pub fn event(&mut self, event: &Event) {
        let Event::Responses(r) = event else {
            if matches!(event, Event::Empty) {
                return;
            }
            self.state.seq = self.state.seq.saturating_add(1);
            return;
        };
        self.state.seq = self.state.seq.saturating_add(1);
        match r {
            R::Created { response } => {
                self.state.id = response.id.clone().unwrap_or_default();
                self.state.model = response.model.clone().unwrap_or_default();
            }
            R::ItemAdded { item, .. } if item.kind == "message" => {
                self.state.open_message = Some(item.id.clone().unwrap_or_default());
                self.open_text.clear();
            }
            R::ItemAdded { .. } => self.open_others = self.open_others.saturating_add(1),
            R::ItemDone { item, .. } => {
                let id = item.get("id").and_then(serde_json::Value::as_str);
                if id.is_some() && id == self.state.open_message.as_deref() {
                    self.state.open_message = None;
                } else if item.get("type").and_then(serde_json::Value::as_str) != Some("message") {
                    self.open_others = self.open_others.saturating_sub(1);
                }
                self.state.done.push(item.clone());
            }
            R::TextDelta { delta, .. } => self.open_text.push_str(delta),
            R::Completed { .. }
            | R::Incomplete { .. }
            | R::Failed { .. }
            | R::RefusalDelta { .. }
            | R::ArgumentsDelta { .. }
            | R::ReasoningDelta { .. }
            | R::Error { .. }
            | R::Unknown => {}
        }
    }

    /// The stream fails: an error event and `response.failed`, numbered after what the
    /// client has seen.
    pub fn fail(&self, code: &str, message: &str) -> Vec<Bytes> {
        self.state.fail(&self.echo, self.created, code, message)
    }
}
