//! Stream events: an incremental server-sent-events reader, and the translators that turn one
//! family's events into the other's while tracking whether the answer is complete.
//!
//! The SSE reader is hand-written because it sits on the hot path of every streamed byte: it
//! only looks for blank lines and `event:` / `data:` prefixes, and hands same-family events
//! on as the very bytes that arrived.

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

use crate::payload::Api;
use crate::translate::answer::{finish_reason, stop_reason};

/// One event as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// The bytes, blank line included.
    pub bytes: Bytes,
    /// The `event:` name, if any.
    pub name: Option<String>,
    /// The `data:` lines joined with newlines (empty for a comment).
    pub data: String,
}

impl RawEvent {
    /// Whether it ends the answer: OpenAI's `[DONE]` or Anthropic's `message_stop` (named, or
    /// only typed in its data).
    pub fn is_terminal(&self) -> bool {
        #[derive(serde::Deserialize)]
        struct Typed<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        match self.name.as_deref() {
            Some(name) => name == "message_stop",
            None if self.data == "[DONE]" => true,
            None => serde_json::from_str::<Typed<'_>>(&self.data)
                .ok()
                .and_then(|t| t.kind)
                .is_some_and(|k| k == "message_stop"),
        }
    }
}

/// Splits a byte stream into events. The one SSE reader of the sidecar: holding a stream before
/// commit, relaying it after, and collecting its answer all read events through it.
#[derive(Debug, Default)]
pub struct SseReader {
    buf: BytesMut,
    /// How far `buf` is known to hold no event end, so a long event is scanned once, not again
    /// on every frame that extends it.
    scanned: usize,
}

impl SseReader {
    /// Adds bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received that do not yet make a whole event.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole event, if one has arrived.
    pub fn next_event(&mut self) -> Option<RawEvent> {
        // An event end is at most three bytes long: look again from just before where the
        // last scan stopped.
        let from = self.scanned.saturating_sub(2);
        let Some(end) = event_end(&self.buf[from..]).map(|e| e + from) else {
            self.scanned = self.buf.len();
            return None;
        };
        self.scanned = 0;
        let bytes = self.buf.split_to(end).freeze();
        let text = String::from_utf8_lossy(&bytes);
        let mut name = None;
        let mut data = String::new();
        for line in text.lines() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some(n) = line.strip_prefix("event:") {
                name = Some(n.trim().to_owned());
            } else if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        Some(RawEvent { bytes, name, data })
    }
}

/// The end of the first event in `buf` (after its blank line), `\n\n` or `\r\n\r\n`.
pub fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

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

fn parse(ev: &RawEvent) -> Result<Option<Value>, EventError> {
    if ev.data.is_empty() || ev.data == "[DONE]" {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(&ev.data).map_err(|_| EventError::Malformed)?;
    let is_error = ev.name.as_deref() == Some("error")
        || v.get("type").and_then(Value::as_str) == Some("error")
        || v.get("error").is_some_and(|e| !e.is_null());
    if is_error {
        let msg = v
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("the provider sent an error event")
            .to_owned();
        return Err(EventError::Upstream(msg));
    }
    Ok(Some(v))
}

/// Removes from the start of `t` the white space the client already received before a
/// continuation (a prefill is sent without its trailing white space, so the continuation
/// starts with it again). Consumed by the first text it meets.
fn strip_overlap(pending: &mut String, t: &str) -> String {
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
}

impl Translator {
    /// The translator from an upstream family to the client's. `include_usage` is whether an
    /// OpenAI client asked for usage in the stream.
    pub fn new(upstream: Api, client: Api, include_usage: bool, created: u64) -> Translator {
        match (upstream, client) {
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

    /// The family of the upstream's events.
    pub fn upstream(&self) -> Api {
        match self {
            Translator::Same(t) => t.family,
            Translator::AnthropicToOpenai(_) => Api::Anthropic,
            Translator::OpenaiToAnthropic(_) => Api::Openai,
        }
    }

    /// The client's bytes for one upstream event.
    pub fn event(&mut self, ev: &RawEvent) -> Result<Vec<Bytes>, EventError> {
        let v = parse(ev)?;
        match self {
            Translator::Same(t) => t.event(ev, v.as_ref()),
            Translator::AnthropicToOpenai(t) => Ok(t.event(ev, v.as_ref())),
            Translator::OpenaiToAnthropic(t) => Ok(t.event(ev, v.as_ref())),
        }
    }

    /// The upstream ended cleanly: what is still owed to the client (a missing `[DONE]` or
    /// `message_stop`), or `Incomplete` when the answer never finished.
    pub fn finish(&mut self) -> Result<Vec<Bytes>, Incomplete> {
        match self {
            Translator::Same(t) => t.finish(),
            Translator::AnthropicToOpenai(t) => t.finish(),
            Translator::OpenaiToAnthropic(t) => t.finish(),
        }
    }

    /// Whether a cut stream can be continued elsewhere: text only, no tool calls.
    pub fn resumable(&self) -> bool {
        let tools = match self {
            Translator::Same(t) => t.tools,
            Translator::AnthropicToOpenai(t) => !t.tools.is_empty(),
            Translator::OpenaiToAnthropic(t) => t.tools,
        };
        !tools && !self.text().is_empty()
    }

    /// The translator for a continuation of this stream from an upstream of `family`: its
    /// preamble is dropped and its text goes on in the client's open message.
    pub fn continued(&self, family: Api, include_usage: bool, created: u64) -> Translator {
        let client = self.client();
        let text = self.text();
        let overlap = text[text.trim_end().len()..].to_owned();
        let block = match self {
            Translator::Same(t) => t.block,
            Translator::AnthropicToOpenai(_) => None,
            Translator::OpenaiToAnthropic(t) => t.open.map(|(i, _)| i),
        };
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
                next_index: block.unwrap_or(0) + 1,
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
        }
    }

    /// The answer's text relayed so far.
    pub fn text(&self) -> &str {
        match self {
            Translator::Same(t) => &t.text,
            Translator::AnthropicToOpenai(t) => &t.text,
            Translator::OpenaiToAnthropic(t) => &t.text,
        }
    }
}

/// Same-family tracking: whether the answer finished and the terminator came.
#[derive(Debug)]
pub struct Tracker {
    family: Api,
    finished: bool,
    terminated: bool,
    text: String,
    tools: bool,
    /// The client's open Anthropic content block.
    block: Option<u64>,
    /// Continuing another stream: drop this one's preamble and write into the client's
    /// open block.
    resume_into: Option<Option<u64>>,
    /// White space the client already has (see [`strip_overlap`]).
    overlap: String,
    /// Drop the usage-only chunk: Plumb asked the upstream for usage (to count the tokens),
    /// the OpenAI client did not.
    drop_usage: bool,
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
        }
    }
}

impl Tracker {
    fn event(&mut self, ev: &RawEvent, v: Option<&Value>) -> Result<Vec<Bytes>, EventError> {
        match (self.family, v) {
            (Api::Openai, None) if ev.data == "[DONE]" => self.terminated = true,
            (Api::Openai, Some(v)) => {
                let usage_only = v
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
                    && v.get("usage").is_some_and(|u| !u.is_null());
                if self.drop_usage && usage_only {
                    return Ok(Vec::new());
                }
                let delta = v.pointer("/choices/0/delta");
                let raw = delta
                    .and_then(|d| d.get("content"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let text = strip_overlap(&mut self.overlap, raw);
                self.text.push_str(&text);
                let text = text.as_str();
                if text.len() != raw.len() {
                    let mut v = v.clone();
                    v["choices"][0]["delta"]["content"] = json!(text);
                    return Ok(vec![data(&v)]);
                }
                self.tools |= delta
                    .and_then(|d| d.get("tool_calls"))
                    .is_some_and(|t| !t.is_null());
                let finish = v
                    .pointer("/choices/0/finish_reason")
                    .is_some_and(|f| !f.is_null());
                self.finished |= finish;
                let has_choice = v
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if self.resume_into.is_some() && text.is_empty() && !finish && has_choice {
                    // The continuation's role chunk: the client already has one.
                    return Ok(Vec::new());
                }
            }
            (Api::Anthropic, Some(v)) => {
                let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
                match kind {
                    "content_block_start" => {
                        self.tools |= v.pointer("/content_block/type").and_then(Value::as_str)
                            == Some("tool_use");
                        if self.resume_into.is_none() {
                            self.block = v.get("index").and_then(Value::as_u64);
                        }
                    }
                    "content_block_delta" => {
                        if let Some(raw) = v.pointer("/delta/text").and_then(Value::as_str) {
                            let t = strip_overlap(&mut self.overlap, raw);
                            self.text.push_str(&t);
                            if t.len() != raw.len() || self.resume_into.is_some() {
                                let mut v = v.clone();
                                v["delta"]["text"] = json!(t);
                                if let Some(into) = self.resume_into {
                                    v["index"] = json!(into.unwrap_or(0));
                                }
                                return Ok(vec![named(kind, &v)]);
                            }
                        }
                    }
                    "message_delta" => self.finished = true,
                    "message_stop" => self.terminated = true,
                    _ => {}
                }
                if let Some(into) = self.resume_into {
                    match kind {
                        "message_start" | "content_block_start" | "ping" => return Ok(Vec::new()),
                        "content_block_delta" | "content_block_stop" => {
                            let mut v = v.clone();
                            v["index"] = json!(into.unwrap_or(0));
                            return Ok(vec![named(kind, &v)]);
                        }
                        _ => {}
                    }
                }
            }
            (Api::Openai | Api::Anthropic, None) => {}
        }
        Ok(vec![ev.bytes.clone()])
    }

    fn finish(&mut self) -> Result<Vec<Bytes>, Incomplete> {
        if self.terminated {
            return Ok(Vec::new());
        }
        if !self.finished {
            return Err(Incomplete);
        }
        self.terminated = true;
        Ok(vec![match self.family {
            Api::Openai => Bytes::from_static(b"data: [DONE]\n\n"),
            Api::Anthropic => named("message_stop", &json!({"type": "message_stop"})),
        }])
    }
}

/// Anthropic events as OpenAI chunks.
#[derive(Debug, Default)]
pub struct AnthropicToOpenai {
    include_usage: bool,
    created: u64,
    id: String,
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    /// Anthropic block index → OpenAI tool call index.
    tools: Vec<(u64, usize)>,
    finish: Option<&'static str>,
    done: bool,
    text: String,
    /// Continuing another stream: no role chunk.
    resume: bool,
    /// White space the client already has (see [`strip_overlap`]).
    overlap: String,
}

impl AnthropicToOpenai {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    fn event(&mut self, ev: &RawEvent, v: Option<&Value>) -> Vec<Bytes> {
        let Some(v) = v else { return Vec::new() };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.name.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                self.id = v
                    .pointer("/message/id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                self.model = v
                    .pointer("/message/model")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                self.input_tokens = v
                    .pointer("/message/usage/input_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if self.resume {
                    return Vec::new();
                }
                vec![data(
                    &self.chunk(json!({"role": "assistant", "content": ""}), None),
                )]
            }
            "content_block_start" => {
                let block = v.get("content_block").cloned().unwrap_or(json!({}));
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return Vec::new();
                }
                let idx = self.tools.len();
                self.tools
                    .push((v.get("index").and_then(Value::as_u64).unwrap_or(0), idx));
                vec![data(&self.chunk(
                    json!({"tool_calls": [{"index": idx, "id": block.get("id"), "type": "function",
                        "function": {"name": block.get("name"), "arguments": ""}}]}),
                    None,
                ))]
            }
            "content_block_delta" => {
                let delta = v.get("delta").cloned().unwrap_or(json!({}));
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let t = strip_overlap(
                            &mut self.overlap,
                            delta.get("text").and_then(Value::as_str).unwrap_or(""),
                        );
                        let t = t.as_str();
                        self.text.push_str(t);
                        vec![data(&self.chunk(json!({"content": t}), None))]
                    }
                    Some("input_json_delta") => {
                        let block = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let idx = self
                            .tools
                            .iter()
                            .find(|(b, _)| *b == block)
                            .map_or(0, |(_, i)| *i);
                        vec![data(&self.chunk(
                            json!({"tool_calls": [{"index": idx, "function": {"arguments": delta.get("partial_json")}}]}),
                            None,
                        ))]
                    }
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                let reason = finish_reason(
                    v.pointer("/delta/stop_reason")
                        .and_then(Value::as_str)
                        .unwrap_or("end_turn"),
                );
                self.finish = Some(reason);
                if let Some(out) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.output_tokens = out;
                }
                if let Some(input) = v.pointer("/usage/input_tokens").and_then(Value::as_u64) {
                    self.input_tokens = input;
                }
                self.closing()
            }
            "message_stop" => {
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
            _ => Vec::new(),
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
                          "total_tokens": self.input_tokens + self.output_tokens},
            })));
        }
        out
    }

    fn finish(&mut self) -> Result<Vec<Bytes>, Incomplete> {
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

/// What block of the Anthropic message is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Text,
    Tool(u64),
}

/// OpenAI chunks as Anthropic events.
#[derive(Debug, Default)]
pub struct OpenaiToAnthropic {
    started: bool,
    open: Option<(u64, Block)>,
    next_index: u64,
    finish: Option<&'static str>,
    prompt_tokens: u64,
    completion_tokens: u64,
    stopped: bool,
    text: String,
    tools: bool,
    /// White space the client already has (see [`strip_overlap`]).
    overlap: String,
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
        self.next_index += 1;
        self.open = Some((index, block));
        out.push(named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        index
    }

    fn event(&mut self, ev: &RawEvent, v: Option<&Value>) -> Vec<Bytes> {
        let mut out = Vec::new();
        let Some(v) = v else {
            if ev.data == "[DONE]" {
                out.extend(self.stop());
            }
            return out;
        };
        if !self.started {
            self.started = true;
            out.push(named(
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": v.get("id"), "type": "message", "role": "assistant", "model": v.get("model"),
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            ));
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.prompt_tokens = u
                .get("prompt_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(self.prompt_tokens);
            self.completion_tokens = u
                .get("completion_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(self.completion_tokens);
        }
        let Some(choice) = v.pointer("/choices/0") else {
            return out;
        };
        let delta = choice.get("delta").cloned().unwrap_or(json!({}));
        let raw = delta.get("content").and_then(Value::as_str).unwrap_or("");
        let content = strip_overlap(&mut self.overlap, raw);
        if let Some(t) = Some(content.as_str()).filter(|t| !t.is_empty()) {
            let index = self.open(Block::Text, json!({"type": "text", "text": ""}), &mut out);
            self.text.push_str(t);
            out.push(named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": t}}),
            ));
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let tool = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let index = if call.get("id").is_some_and(|id| !id.is_null()) {
                // A new call: a new block, even if the previous one was the same tool index.
                self.close(&mut out);
                self.open(
                    Block::Tool(tool),
                    json!({"type": "tool_use", "id": call.get("id"), "name": call.pointer("/function/name"), "input": {}}),
                    &mut out,
                )
            } else {
                match self.open {
                    Some((i, Block::Tool(t))) if t == tool => i,
                    _ => continue,
                }
            };
            if let Some(args) = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                out.push(named(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
                ));
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
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

    fn finish(&mut self) -> Result<Vec<Bytes>, Incomplete> {
        if self.stopped {
            return Ok(Vec::new());
        }
        if self.finish.is_none() {
            return Err(Incomplete);
        }
        Ok(self.stop())
    }
}
