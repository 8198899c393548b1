//! Stream translation: the translators that turn one family's typed events ([`Event`]) into
//! the client's bytes while tracking whether the answer is complete. Same-family events pass
//! on as the very bytes that arrived, unless a continuation has to rewrite them.
//!
//! [`Translator`] picks one for the upstream's and the client's families, continues a stream
//! into another and dispatches each event. Each direction is a module of its own: `same`
//! (either family to itself), `anthropic_to_openai`, `openai_to_anthropic`; a Gemini or Bedrock
//! upstream is read as OpenAI chunks first ([`FromGemini`]), and a Responses client's
//! translator lives in `translate::responses`.

use bytes::Bytes;
use serde_json::Value;

use crate::event::openai::Chunk;
use crate::event::{Event, RawEvent};
use crate::payload::Api;
use crate::translate::gemini::ToChunks;
use crate::translate::responses::{Echo, Seen, ToResponses};

mod anthropic_to_openai;
mod openai_to_anthropic;
mod same;

pub use anthropic_to_openai::AnthropicToOpenai;
use openai_to_anthropic::Block;
pub use openai_to_anthropic::OpenaiToAnthropic;
pub use same::Tracker;

/// Why an event could not be relayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventError {
    /// Its data is not JSON.
    Malformed,
    /// The upstream sent an error event; its message.
    Upstream(String),
}

/// The upstream ended cleanly before the answer was complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incomplete;

fn data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn named(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

fn chunk_data(c: &Chunk) -> Bytes {
    match serde_json::to_string(c) {
        Ok(json) => Bytes::from(format!("data: {json}\n\n")),
        Err(_) => Bytes::new(),
    }
}

/// Removes from the start of `t` the white space the client already received before a
/// continuation (a prefill is sent without its trailing white space, so the continuation
/// starts with it again). Consumed by the first text it meets.
pub(super) fn strip_overlap(pending: &mut String, t: &str) -> String {
    if pending.is_empty() || t.is_empty() {
        return t.to_owned();
    }
    let mut rest = t;
    for c in pending.chars() {
        match rest.strip_prefix(c) {
            Some(r) => rest = r,
            None => break,
        }
    }
    pending.clear();
    rest.to_owned()
}

/// Turns upstream events into the client's events and knows when the answer is complete.
#[derive(Debug)]
pub enum Translator {
    /// Same family: events pass as they arrived.
    Same(Tracker),
    /// Anthropic upstream, OpenAI client.
    AnthropicToOpenai(AnthropicToOpenai),
    /// OpenAI upstream, Anthropic client.
    OpenaiToAnthropic(OpenaiToAnthropic),
    /// Chat Completions or Anthropic upstream, Responses client.
    ToResponses(ToResponses),
    /// Gemini upstream, any client.
    FromGemini(Box<FromGemini>),
}

/// A Gemini (or Bedrock) upstream: its events become OpenAI chunks, which the translator
/// from OpenAI to the client's family takes on as if an OpenAI upstream had sent them.
#[derive(Debug)]
pub struct FromGemini {
    chunks: ToChunks,
    /// Set for a Bedrock upstream, whose ConverseStream events take the same way.
    bedrock: Option<crate::translate::bedrock::ToChunks>,
    inner: Translator,
}

impl FromGemini {
    fn wrap(inner: Translator, created: u64) -> Translator {
        Translator::FromGemini(Box::new(FromGemini {
            chunks: ToChunks::new(created),
            bedrock: None,
            inner,
        }))
    }

    /// The same, for a Bedrock upstream.
    fn wrap_bedrock(inner: Translator, created: u64) -> Translator {
        Translator::FromGemini(Box::new(FromGemini {
            chunks: ToChunks::new(created),
            bedrock: Some(crate::translate::bedrock::ToChunks::new(created)),
            inner,
        }))
    }

    /// Names the model in the chunks a Bedrock stream becomes (ConverseStream does not say).
    fn name_model(&mut self, model: &str) {
        if let Some(b) = self.bedrock.take() {
            self.bedrock = Some(b.with_model(model));
        }
    }

    /// The family of the upstream's events.
    fn family(&self) -> Api {
        if self.bedrock.is_some() {
            Api::Bedrock
        } else {
            Api::Gemini
        }
    }

    fn event(&mut self, event: &Event) -> Result<Vec<Bytes>, EventError> {
        let g = match (event, &mut self.bedrock) {
            (Event::Gemini(g), None) => g,
            (Event::Bedrock(b), Some(chunks)) => {
                let chunks = chunks.event(b);
                return self.relay(chunks);
            }
            (
                Event::Chunk(_)
                | Event::Anthropic(_)
                | Event::Responses(_)
                | Event::Gemini(_)
                | Event::Bedrock(_)
                | Event::Done
                | Event::Empty
                | Event::Unknown
                | Event::Error(_)
                | Event::Malformed,
                _,
            ) => return Ok(Vec::new()),
        };
        // After commit, a call the model could not form ends the answer broken, not complete.
        if g.finish() == Some(crate::event::gemini::Finish::MalformedCall) {
            return Err(EventError::Upstream(
                "gemini produced a malformed function call (finishReason MALFORMED_FUNCTION_CALL)"
                    .to_owned(),
            ));
        }
        let chunks = self.chunks.event(g);
        self.relay(chunks)
    }

    /// The client's bytes for OpenAI chunks made from the upstream's events.
    fn relay(&mut self, chunks: Vec<Chunk>) -> Result<Vec<Bytes>, EventError> {
        let mut out = Vec::new();
        for chunk in chunks {
            let json = serde_json::to_string(&chunk).unwrap_or_default();
            let raw = RawEvent {
                bytes: Bytes::from(format!("data: {json}\n\n")),
                name: None,
                data: json,
            };
            out.extend(self.inner.event(&raw, &Event::Chunk(chunk))?);
        }
        Ok(out)
    }
}

impl Translator {
    /// The translator from an upstream family to the client's. `include_usage` is whether an
    /// OpenAI client asked for usage in the stream.
    pub fn new(upstream: Api, client: Api, include_usage: bool, created: u64) -> Translator {
        match (upstream, client) {
            (Api::Gemini, client) => FromGemini::wrap(
                Translator::new(Api::Openai, client, include_usage, created),
                created,
            ),
            (Api::Bedrock, client) => FromGemini::wrap_bedrock(
                Translator::new(Api::Openai, client, include_usage, created),
                created,
            ),
            (Api::Anthropic, Api::Openai) => Translator::AnthropicToOpenai(AnthropicToOpenai {
                include_usage,
                created,
                ..AnthropicToOpenai::default()
            }),
            (Api::Openai, Api::Anthropic) => {
                Translator::OpenaiToAnthropic(OpenaiToAnthropic::default())
            }
            (family, _) => Translator::Same(Tracker {
                family,
                drop_usage: family == Api::Openai && !include_usage,
                ..Tracker::default()
            }),
        }
    }

    /// The translator from an upstream family to a Responses client, which asked `echo`.
    pub fn to_responses(upstream: Api, echo: Echo, created: u64) -> Translator {
        match upstream {
            Api::Responses => Translator::Same(Tracker {
                family: Api::Responses,
                seen: Some(Box::new(Seen {
                    echo,
                    created,
                    ..Seen::default()
                })),
                ..Tracker::default()
            }),
            Api::Openai | Api::Anthropic => {
                Translator::ToResponses(ToResponses::new(upstream, echo, created))
            }
            Api::Gemini => FromGemini::wrap(
                Translator::to_responses(Api::Openai, echo, created),
                created,
            ),
            Api::Bedrock => FromGemini::wrap_bedrock(
                Translator::to_responses(Api::Openai, echo, created),
                created,
            ),
        }
    }

    /// Names the upstream's model where its events do not (Bedrock's); `model` is the
    /// target's.
    pub fn naming(mut self, model: &str) -> Translator {
        if let Translator::FromGemini(t) = &mut self {
            t.name_model(model);
        }
        self
    }

    /// The family of the upstream's events.
    pub fn upstream(&self) -> Api {
        match self {
            Translator::Same(t) => t.family,
            Translator::AnthropicToOpenai(_) => Api::Anthropic,
            Translator::OpenaiToAnthropic(_) => Api::Openai,
            Translator::ToResponses(t) => t.upstream(),
            Translator::FromGemini(t) => t.family(),
        }
    }

    /// For a Responses client, the events that end its stream with an error (numbered after
    /// what it has seen); `None` for the other families, whose error events stand alone.
    pub fn responses_failure(&mut self, code: &str, message: &str) -> Option<Vec<Bytes>> {
        match self {
            Translator::ToResponses(t) => Some(t.fail(code, message)),
            Translator::Same(Tracker {
                seen: Some(seen), ..
            }) => Some(seen.fail(code, message)),
            Translator::FromGemini(t) => t.inner.responses_failure(code, message),
            Translator::Same(_)
            | Translator::AnthropicToOpenai(_)
            | Translator::OpenaiToAnthropic(_) => None,
        }
    }

    /// The client's bytes for one upstream event (`raw`, read as `event`).
    pub fn event(&mut self, raw: &RawEvent, event: &Event) -> Result<Vec<Bytes>, EventError> {
        match event {
            Event::Malformed => return Err(EventError::Malformed),
            Event::Error(e) => {
                let message = if e.message.is_empty() {
                    "the provider sent an error event".to_owned()
                } else {
                    e.message.clone()
                };
                return Err(EventError::Upstream(message));
            }
            Event::Chunk(_)
            | Event::Anthropic(_)
            | Event::Responses(_)
            | Event::Gemini(_)
            | Event::Bedrock(_)
            | Event::Done
            | Event::Empty
            | Event::Unknown => {}
        }
        Ok(match self {
            Translator::FromGemini(t) => return t.event(event),
            Translator::Same(t) => t.event(raw, event),
            Translator::AnthropicToOpenai(t) => t.event(event),
            Translator::OpenaiToAnthropic(t) => t.event(event),
            Translator::ToResponses(t) => t.event(event),
        })
    }

    /// The upstream ended cleanly: what is still owed to the client (a missing `[DONE]` or
    /// `message_stop`), or `Incomplete` when the answer never finished.
    pub fn finish(&mut self) -> Result<Vec<Bytes>, Incomplete> {
        match self {
            Translator::Same(t) => t.finish(),
            Translator::AnthropicToOpenai(t) => t.finish(),
            Translator::OpenaiToAnthropic(t) => t.finish(),
            Translator::ToResponses(t) => t.finish(),
            Translator::FromGemini(t) => t.inner.finish(),
        }
    }

    /// Whether a cut stream can be continued elsewhere: text only, no tool calls.
    pub fn resumable(&self) -> bool {
        let tools = match self {
            // A Responses stream with a non-message item open cannot be continued in order.
            Translator::Same(t) => t.tools || t.seen.as_ref().is_some_and(|s| s.open_others > 0),
            Translator::AnthropicToOpenai(t) => !t.tools.is_empty(),
            Translator::OpenaiToAnthropic(t) => t.tools,
            Translator::ToResponses(t) => t.tools(),
            Translator::FromGemini(t) => return t.inner.resumable(),
        };
        !tools && !self.text().is_empty()
    }

    /// The translator for a continuation of this stream from an upstream of `family`: its
    /// preamble is dropped and its text goes on in the client's open message.
    pub fn continued(&self, family: Api, include_usage: bool, created: u64) -> Translator {
        // A Gemini continuation goes on as an OpenAI one would; a Gemini stream's client
        // state is its inner translator's.
        if family == Api::Gemini {
            return FromGemini::wrap(self.continued(Api::Openai, include_usage, created), created);
        }
        if family == Api::Bedrock {
            return FromGemini::wrap_bedrock(
                self.continued(Api::Openai, include_usage, created),
                created,
            );
        }
        if let Translator::FromGemini(t) = self {
            return t.inner.continued(family, include_usage, created);
        }
        let client = self.client();
        let text = self.text();
        let overlap = text[text.trim_end().len()..].to_owned();
        let block = match self {
            Translator::Same(t) => t.block,
            Translator::AnthropicToOpenai(_)
            | Translator::ToResponses(_)
            | Translator::FromGemini(_) => None,
            Translator::OpenaiToAnthropic(t) => t.open.map(|(i, _)| i),
        };
        // A Responses client's stream goes on in the same writer (from a translation) or
        // after what the OpenAI upstream sent it.
        match self {
            Translator::ToResponses(t) => {
                return Translator::ToResponses(t.continued(family, overlap));
            }
            Translator::Same(Tracker {
                seen: Some(seen), ..
            }) => {
                return Translator::ToResponses(ToResponses::after_passthrough(
                    family, seen, text, overlap,
                ));
            }
            Translator::Same(_)
            | Translator::AnthropicToOpenai(_)
            | Translator::OpenaiToAnthropic(_)
            | Translator::FromGemini(_) => {}
        }
        match (family, client) {
            (Api::Anthropic, Api::Openai) => Translator::AnthropicToOpenai(AnthropicToOpenai {
                include_usage,
                created,
                resume: true,
                text: self.text().to_owned(),
                overlap,
                ..AnthropicToOpenai::default()
            }),
            (Api::Openai, Api::Anthropic) => Translator::OpenaiToAnthropic(OpenaiToAnthropic {
                started: true,
                open: Some((block.unwrap_or(0), Block::Text)),
                next_index: block.unwrap_or(0).saturating_add(1),
                text: self.text().to_owned(),
                overlap,
                ..OpenaiToAnthropic::default()
            }),
            (family, _) => Translator::Same(Tracker {
                family,
                drop_usage: family == Api::Openai && !include_usage,
                text: self.text().to_owned(),
                block,
                resume_into: Some(block),
                overlap,
                ..Tracker::default()
            }),
        }
    }

    /// The client's family.
    fn client(&self) -> Api {
        match self {
            Translator::Same(t) => t.family,
            Translator::AnthropicToOpenai(_) => Api::Openai,
            Translator::OpenaiToAnthropic(_) => Api::Anthropic,
            Translator::ToResponses(_) => Api::Responses,
            Translator::FromGemini(t) => t.inner.client(),
        }
    }

    /// The answer's text relayed so far.
    pub fn text(&self) -> &str {
        match self {
            Translator::Same(t) => &t.text,
            Translator::AnthropicToOpenai(t) => &t.text,
            Translator::OpenaiToAnthropic(t) => &t.text,
            Translator::ToResponses(t) => t.text(),
            Translator::FromGemini(t) => t.inner.text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SseReader;

    fn feed(t: &mut Translator, text: &str) -> Vec<Bytes> {
        let mut r = SseReader::default();
        r.push(text.as_bytes());
        let mut out = Vec::new();
        while let Some(raw) = r.next_event() {
            let event = Event::parse(t.upstream(), &raw);
            out.extend(t.event(&raw, &event).unwrap_or_default());
        }
        out
    }

    #[test]
    fn usage_and_block_indexes_at_the_edge_of_their_types_saturate() {
        // Found by fuzzing sse_events: token counts and block indexes at u64::MAX.
        let mut t = Translator::new(Api::Anthropic, Api::Openai, true, 0);
        let out = feed(
            &mut t,
            &format!(
                "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"m\",\"model\":\"c\",\"usage\":{{\"input_tokens\":{max}}}}}}}\n\n\
                 event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{max}}}}}\n\n",
                max = u64::MAX
            ),
        );
        let text: String = out.iter().map(|b| String::from_utf8_lossy(b)).collect();
        assert!(
            text.contains(&format!("\"total_tokens\":{}", u64::MAX)),
            "{text}"
        );
        // An Anthropic stream whose open block has index u64::MAX, continued by an OpenAI
        // target that opens two more blocks.
        let mut t = Translator::new(Api::Anthropic, Api::Anthropic, true, 0);
        let _ = feed(
            &mut t,
            &format!(
                "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{max},\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
                 event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{max},\"delta\":{{\"type\":\"text_delta\",\"text\":\"Hi\"}}}}\n\n",
                max = u64::MAX
            ),
        );
        let mut continued = t.continued(Api::Openai, false, 0);
        let out = feed(
            &mut continued,
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n\
             data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
        );
        assert!(!out.is_empty());
    }
}
