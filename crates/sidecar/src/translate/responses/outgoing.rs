//! Answers written for a Responses client: a whole Chat Completions or Anthropic answer as a
//! `response` object, and a stream of either as the Responses event sequence.
//!
//! [`Writer`] is the client's side of a translated stream: it is told what the upstream said
//! (thinking, text, a function call and its arguments, the end and the usage) and writes the
//! typed events the official SDKs expect, in order, with their sequence numbers and the ids
//! that tie deltas to items. One writer lives for the client's whole stream, so a continuation
//! from another target goes on in the same message item.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::completion::{Block, ChatCompletion, Message};

/// What a Responses answer repeats of its request (`instructions`, `tools`, `text`, …), with
/// the API's defaults for what the client left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Echo(Map<String, Value>);

impl Echo {
    /// The fields of `request` the response object repeats.
    pub fn of(request: &Map<String, Value>) -> Echo {
        let mut m = Map::new();
        let get = |k: &str, default: Value| {
            request
                .get(k)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or(default)
        };
        m.insert("instructions".into(), get("instructions", Value::Null));
        m.insert(
            "max_output_tokens".into(),
            get("max_output_tokens", Value::Null),
        );
        m.insert(
            "parallel_tool_calls".into(),
            get("parallel_tool_calls", json!(true)),
        );
        m.insert(
            "reasoning".into(),
            get("reasoning", json!({"effort": null, "summary": null})),
        );
        m.insert("temperature".into(), get("temperature", json!(1.0)));
        m.insert(
            "text".into(),
            get("text", json!({"format": {"type": "text"}})),
        );
        m.insert("tool_choice".into(), get("tool_choice", json!("auto")));
        m.insert("tools".into(), get("tools", json!([])));
        m.insert("top_p".into(), get("top_p", json!(1.0)));
        m.insert("user".into(), get("user", Value::Null));
        m.insert("metadata".into(), get("metadata", json!({})));
        Echo(m)
    }
}

/// A new id of `kind` (`resp`, `msg`, `fc`, `rs`, `call`), marked as Plumb's: `resp_plumb_…`.
/// Nothing stores what Plumb wrote, so a later `previous_response_id` naming such a response
/// is refused with a clear error, and such items sent back are not shown to OpenAI as its own
/// (see [`is_plumbs`]).
pub fn new_id(kind: &str) -> String {
    format!(
        "{kind}_plumb_{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

/// Whether `id` is one Plumb made up ([`new_id`]).
pub fn is_plumbs(id: &str) -> bool {
    id.split_once('_')
        .is_some_and(|(_, rest)| rest.starts_with("plumb_"))
}

/// The prefix of the ids of responses Plumb translated.
pub const TRANSLATED_ID_PREFIX: &str = "resp_plumb_";

/// Why the answer stopped, in the Responses terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It finished (or called its tools).
    Completed,
    /// It reached its output limit.
    MaxOutputTokens,
    /// A content filter stopped it.
    ContentFilter,
}

impl Stop {
    /// From Chat Completions' `finish_reason`.
    pub fn from_finish_reason(reason: &str) -> Stop {
        match reason {
            "length" => Stop::MaxOutputTokens,
            "content_filter" => Stop::ContentFilter,
            _ => Stop::Completed,
        }
    }

    /// From Anthropic's `stop_reason`.
    pub fn from_stop_reason(reason: &str) -> Stop {
        match reason {
            "max_tokens" | "model_context_window_exceeded" => Stop::MaxOutputTokens,
            "refusal" => Stop::ContentFilter,
            _ => Stop::Completed,
        }
    }

    fn status(self) -> &'static str {
        match self {
            Stop::Completed => "completed",
            Stop::MaxOutputTokens | Stop::ContentFilter => "incomplete",
        }
    }

    fn details(self) -> Value {
        match self {
            Stop::Completed => Value::Null,
            Stop::MaxOutputTokens => json!({"reason": "max_output_tokens"}),
            Stop::ContentFilter => json!({"reason": "content_filter"}),
        }
    }
}

/// One output item.
#[derive(Clone, Debug, PartialEq)]
enum Item {
    /// Thinking, as a reasoning item with its text.
    Reasoning { id: String, text: String },
    /// The answer's text (or a refusal).
    Message {
        id: String,
        text: String,
        refusal: bool,
    },
    /// A function call.
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
    /// An item some earlier upstream streamed as it was (a continuation's prefix).
    Done(Value),
}

impl Item {
    /// The item as JSON: complete, or as it starts (`in_progress`, its content parts to come).
    fn json(&self, status: &str) -> Value {
        let started = status == "in_progress";
        match self {
            Item::Reasoning { id, text } => json!({
                "id": id, "type": "reasoning", "summary": [],
                "content": if started { json!([]) } else { json!([{"type": "reasoning_text", "text": text}]) },
                "status": status,
            }),
            Item::Message { id, text, refusal } => {
                let part = if *refusal {
                    json!({"type": "refusal", "refusal": text})
                } else {
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
                };
                let content = if started { json!([]) } else { json!([part]) };
                json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
            }
            Item::FunctionCall {
                id,
                call_id,
                name,
                arguments,
            } => json!({
                "id": id, "type": "function_call", "status": status,
                "call_id": call_id, "name": name, "arguments": arguments,
            }),
            Item::Done(v) => v.clone(),
        }
    }
}

/// What names a response: its id, when it was made and the model that answers.
struct Head<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
}

/// The response object.
fn response(
    head: &Head<'_>,
    echo: &Echo,
    status: &str,
    output: Option<Vec<Value>>,
    usage: Option<(u64, u64)>,
    details: Value,
) -> Value {
    let mut r = Map::new();
    r.insert("id".into(), json!(head.id));
    r.insert("object".into(), json!("response"));
    r.insert("created_at".into(), json!(head.created));
    r.insert("status".into(), json!(status));
    r.insert("background".into(), json!(false));
    r.insert("error".into(), Value::Null);
    r.insert("incomplete_details".into(), details);
    r.insert("model".into(), json!(head.model));
    if let Some(output) = output {
        r.insert("output".into(), Value::Array(output));
    }
    r.insert("previous_response_id".into(), Value::Null);
    r.insert("store".into(), json!(false));
    r.insert("truncation".into(), json!("disabled"));
    r.extend(echo.0.iter().map(|(k, v)| (k.clone(), v.clone())));
    r.insert(
        "usage".into(),
        usage.map_or(Value::Null, |(input, output)| {
            json!({
                "input_tokens": input,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input.saturating_add(output),
            })
        }),
    );
    Value::Object(r)
}

/// A whole Chat Completions answer as a `response`.
pub fn from_chat(c: &ChatCompletion, echo: &Echo, created: u64) -> Value {
    let mut items = Vec::new();
    let message = c.message();
    if let Some(r) = message
        .and_then(|m| m.rest.get("reasoning_content").or(m.rest.get("reasoning")))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        items.push(Item::Reasoning {
            id: new_id("rs"),
            text: r.to_owned(),
        });
    }
    if let Some(m) = message {
        let (text, refusal) = match (&m.content, &m.refusal) {
            (Some(t), _) if !t.is_empty() => (t.clone(), false),
            (_, Some(r)) if !r.is_empty() => (r.clone(), true),
            (Some(_) | None, Some(_) | None) => (String::new(), false),
        };
        if !text.is_empty() {
            items.push(Item::Message {
                id: new_id("msg"),
                text,
                refusal,
            });
        }
        for call in &m.tool_calls {
            items.push(Item::FunctionCall {
                id: new_id("fc"),
                call_id: call
                    .id
                    .as_str()
                    .filter(|i| !i.is_empty())
                    .map_or_else(|| new_id("call"), str::to_owned),
                name: call.function.name.as_str().unwrap_or("").to_owned(),
                arguments: call
                    .function
                    .arguments
                    .clone()
                    .unwrap_or_else(|| "{}".into()),
            });
        }
    }
    let stop = Stop::from_finish_reason(
        c.choices
            .first()
            .and_then(|ch| ch.finish_reason.as_deref())
            .unwrap_or("stop"),
    );
    let usage = c.usage.unwrap_or_default();
    whole(
        &items,
        c.model.as_deref().unwrap_or(""),
        echo,
        created,
        stop,
        (
            usage.prompt_tokens.unwrap_or(0),
            usage.completion_tokens.unwrap_or(0),
        ),
    )
}

/// A whole Anthropic message as a `response`.
pub fn from_anthropic(m: &Message, echo: &Echo, created: u64) -> Value {
    let mut items = Vec::new();
    for b in m.content.iter().flatten() {
        match b {
            Block::Thinking { thinking } => items.push(Item::Reasoning {
                id: new_id("rs"),
                text: thinking.clone(),
            }),
            Block::Text { text } => match items.last_mut() {
                Some(Item::Message { text: t, .. }) => t.push_str(text),
                Some(_) | None => items.push(Item::Message {
                    id: new_id("msg"),
                    text: text.clone(),
                    refusal: false,
                }),
            },
            Block::ToolUse { id, name, input } => items.push(Item::FunctionCall {
                id: new_id("fc"),
                call_id: id
                    .as_str()
                    .filter(|i| !i.is_empty())
                    .map_or_else(|| new_id("call"), str::to_owned),
                name: name.as_str().unwrap_or("").to_owned(),
                arguments: input.as_ref().map_or("{}".to_owned(), Value::to_string),
            }),
            Block::Other => {}
        }
    }
    let stop = Stop::from_stop_reason(m.stop_reason.as_deref().unwrap_or("end_turn"));
    whole(
        &items,
        m.model.as_deref().unwrap_or(""),
        echo,
        created,
        stop,
        (
            m.usage.and_then(|u| u.input_tokens).unwrap_or(0),
            m.usage.and_then(|u| u.output_tokens).unwrap_or(0),
        ),
    )
}

fn whole(
    items: &[Item],
    model: &str,
    echo: &Echo,
    created: u64,
    stop: Stop,
    usage: (u64, u64),
) -> Value {
    let output = items.iter().map(|i| i.json("completed")).collect();
    response(
        &Head {
            id: &new_id("resp"),
            created,
            model,
        },
        echo,
        stop.status(),
        Some(output),
        Some(usage),
        stop.details(),
    )
}

/// The client's side of a translated Responses stream.
#[derive(Clone, Debug)]
pub struct Writer {
    echo: Echo,
    id: String,
    created: u64,
    model: String,
    seq: u64,
    started: bool,
    items: Vec<Item>,
    /// The positions of the items still open, in order: the last item when it is a message or
    /// reasoning; function calls stay open together (an upstream may interleave their
    /// arguments) until another kind of item opens or the answer ends.
    open: Vec<usize>,
    /// Upstream tool-call keys (OpenAI's index, Anthropic's block) → item positions.
    calls: Vec<(u64, usize)>,
    stop: Option<Stop>,
    usage: (u64, u64),
    completed: bool,
}

impl Writer {
    /// A writer for a new stream.
    pub fn new(echo: Echo, created: u64) -> Writer {
        Writer {
            echo,
            id: new_id("resp"),
            created,
            model: String::new(),
            seq: 0,
            started: false,
            items: Vec::new(),
            open: Vec::new(),
            calls: Vec::new(),
            stop: None,
            usage: (0, 0),
            completed: false,
        }
    }

    /// A writer that goes on with a stream a Responses upstream began and the client has seen
    /// `seq` events of: its response `id`, the items it finished, and the message it left open
    /// (`item_id`, `text`).
    pub fn resume_passthrough(
        echo: Echo,
        created: u64,
        state: &PassthroughState,
        text: &str,
    ) -> Writer {
        let mut items: Vec<Item> = state.done.iter().cloned().map(Item::Done).collect();
        let open = if state.open_message.is_some() {
            vec![items.len()]
        } else {
            Vec::new()
        };
        if let Some(id) = &state.open_message {
            items.push(Item::Message {
                id: id.clone(),
                text: text.to_owned(),
                refusal: false,
            });
        }
        Writer {
            echo,
            id: state.id.clone(),
            created,
            model: state.model.clone(),
            seq: state.seq,
            started: true,
            items,
            open,
            calls: Vec::new(),
            stop: None,
            usage: (0, 0),
            completed: false,
        }
    }

    /// The same writer, going on with another upstream: that upstream's calls are its own.
    pub fn resumed(&self) -> Writer {
        Writer {
            calls: Vec::new(),
            stop: None,
            ..self.clone()
        }
    }

    fn event(&mut self, kind: &str, mut v: Value) -> Bytes {
        if let Value::Object(m) = &mut v {
            m.insert("type".into(), json!(kind));
            m.insert("sequence_number".into(), json!(self.seq));
        }
        self.seq = self.seq.saturating_add(1);
        Bytes::from(format!("event: {kind}\ndata: {v}\n\n"))
    }

    fn lifecycle(&self, status: &str, output: Option<Vec<Value>>, details: Value) -> Value {
        let usage = (status != "in_progress").then_some(self.usage);
        response(
            &Head {
                id: &self.id,
                created: self.created,
                model: &self.model,
            },
            &self.echo,
            status,
            output,
            usage,
            details,
        )
    }

    /// The stream starts (`response.created`, `response.in_progress`); a resumed writer has
    /// started already.
    pub fn start(&mut self, model: Option<&str>, input_tokens: Option<u64>) -> Vec<Bytes> {
        if let Some(t) = input_tokens {
            self.usage.0 = t;
        }
        if self.started {
            return Vec::new();
        }
        self.started = true;
        if let Some(m) = model {
            m.clone_into(&mut self.model);
        }
        let created = self.lifecycle("in_progress", Some(Vec::new()), Value::Null);
        vec![
            self.event("response.created", json!({"response": created})),
            self.event("response.in_progress", json!({"response": created})),
        ]
    }

    /// Input and output tokens as far as the upstream said them.
    pub fn usage(&mut self, input: Option<u64>, output: Option<u64>) {
        if let Some(i) = input {
            self.usage.0 = i;
        }
        if let Some(o) = output {
            self.usage.1 = o;
        }
    }

    /// The model, when the upstream names it after the start.
    pub fn model(&mut self, model: &str) {
        if self.model.is_empty() {
            model.clone_into(&mut self.model);
        }
    }

    /// Closes every open item, in order.
    fn close(&mut self, out: &mut Vec<Bytes>) {
        for index in std::mem::take(&mut self.open) {
            self.close_item(index, out);
        }
    }

    /// Closes the open items that are not function calls.
    fn close_all_but_calls(&mut self, out: &mut Vec<Bytes>) {
        let (calls, others): (Vec<usize>, Vec<usize>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|i| matches!(self.items.get(*i), Some(Item::FunctionCall { .. })));
        self.open = calls;
        for index in others {
            self.close_item(index, out);
        }
    }

    /// Closes the item at `index`.
    fn close_item(&mut self, index: usize, out: &mut Vec<Bytes>) {
        let Some(item) = self.items.get(index).cloned() else {
            return;
        };
        match &item {
            Item::Reasoning { id, text } => {
                out.push(self.event(
                    "response.reasoning_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text}),
                ));
                out.push(self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                        "part": {"type": "reasoning_text", "text": text}}),
                ));
            }
            Item::Message { id, text, refusal } => {
                let part = if *refusal {
                    out.push(self.event(
                        "response.refusal.done",
                        json!({"item_id": id, "output_index": index, "content_index": 0, "refusal": text}),
                    ));
                    json!({"type": "refusal", "refusal": text})
                } else {
                    out.push(self.event(
                        "response.output_text.done",
                        json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                    ));
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
                };
                out.push(self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                ));
            }
            Item::FunctionCall {
                id,
                name,
                arguments,
                ..
            } => {
                out.push(self.event(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": name, "arguments": arguments}),
                ));
            }
            Item::Done(_) => return,
        }
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item.json("completed")}),
        ));
    }

    /// Opens `item`, closing the open ones (but for other function calls when it is one).
    fn open(&mut self, item: Item, out: &mut Vec<Bytes>) {
        if matches!(item, Item::FunctionCall { .. }) {
            self.close_all_but_calls(out);
        } else {
            self.close(out);
        }
        let index = self.items.len();
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": item.json("in_progress")}),
        ));
        let part = match &item {
            Item::Reasoning { id, .. } => {
                Some((id.clone(), json!({"type": "reasoning_text", "text": ""})))
            }
            Item::Message {
                id, refusal: false, ..
            } => Some((
                id.clone(),
                json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []}),
            )),
            Item::Message {
                id, refusal: true, ..
            } => Some((id.clone(), json!({"type": "refusal", "refusal": ""}))),
            Item::FunctionCall { .. } | Item::Done(_) => None,
        };
        if let Some((id, part)) = part {
            out.push(self.event(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
            ));
        }
        self.items.push(item);
        self.open.push(index);
    }

    /// The last item, when it is open and of the kind `matches` accepts.
    fn open_item(&mut self, matches: impl Fn(&Item) -> bool) -> Option<(usize, &mut Item)> {
        let index = self.items.len().checked_sub(1)?;
        let open = self.open.contains(&index);
        let item = self.items.last_mut()?;
        (open && matches(item)).then_some((index, item))
    }

    /// Whether the upstream already started the call it names `key`.
    pub fn has_call(&self, key: u64) -> bool {
        self.calls.iter().any(|(k, _)| *k == key)
    }

    /// Thinking.
    pub fn reasoning(&mut self, delta: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        if delta.is_empty() {
            return out;
        }
        if self
            .open_item(|i| matches!(i, Item::Reasoning { .. }))
            .is_none()
        {
            let item = Item::Reasoning {
                id: new_id("rs"),
                text: String::new(),
            };
            self.open(item, &mut out);
        }
        if let Some((index, Item::Reasoning { id, text })) =
            self.open_item(|i| matches!(i, Item::Reasoning { .. }))
        {
            text.push_str(delta);
            let v =
                json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta});
            out.push(self.event("response.reasoning_text.delta", v));
        }
        out
    }

    /// Answer text (`refusal`: the model's refusal).
    pub fn text(&mut self, delta: &str, refusal: bool) -> Vec<Bytes> {
        let mut out = Vec::new();
        if delta.is_empty() {
            return out;
        }
        let same = |i: &Item| matches!(i, Item::Message { refusal: r, .. } if *r == refusal);
        if self.open_item(same).is_none() {
            let item = Item::Message {
                id: new_id("msg"),
                text: String::new(),
                refusal,
            };
            self.open(item, &mut out);
        }
        if let Some((index, Item::Message { id, text, .. })) = self.open_item(same) {
            text.push_str(delta);
            let (kind, v) = if refusal {
                (
                    "response.refusal.delta",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta}),
                )
            } else {
                (
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": []}),
                )
            };
            out.push(self.event(kind, v));
        }
        out
    }

    /// A function call starts: `key` is how the upstream names it in later deltas.
    pub fn call(&mut self, key: u64, call_id: &str, name: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        let item = Item::FunctionCall {
            id: new_id("fc"),
            call_id: if call_id.is_empty() {
                new_id("call")
            } else {
                call_id.to_owned()
            },
            name: name.to_owned(),
            arguments: String::new(),
        };
        self.open(item, &mut out);
        self.calls.push((key, self.items.len().saturating_sub(1)));
        out
    }

    /// Part of the arguments of the call the upstream names `key`.
    pub fn arguments(&mut self, key: u64, delta: &str) -> Vec<Bytes> {
        let Some(index) = self.calls.iter().find(|(k, _)| *k == key).map(|(_, i)| *i) else {
            return Vec::new();
        };
        if delta.is_empty() || !self.open.contains(&index) {
            // Arguments of a call already closed (another kind of item came between) stay in
            // the final response; a delta now would contradict its `done` event.
            if let Some(Item::FunctionCall { arguments, .. }) = self.items.get_mut(index) {
                arguments.push_str(delta);
            }
            return Vec::new();
        }
        let Some(Item::FunctionCall { id, arguments, .. }) = self.items.get_mut(index) else {
            return Vec::new();
        };
        arguments.push_str(delta);
        let v = json!({"item_id": id, "output_index": index, "delta": delta});
        vec![self.event("response.function_call_arguments.delta", v)]
    }

    /// Why the answer stopped (the end comes with [`Writer::complete`]).
    pub fn stop(&mut self, stop: Stop) {
        self.stop = Some(stop);
    }

    /// Whether the upstream said why the answer stopped.
    pub fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    /// Whether the final event went out.
    pub fn completed(&self) -> bool {
        self.completed
    }

    /// The end: the open item closes, then `response.completed` (or `response.incomplete`)
    /// with the whole output and usage.
    pub fn complete(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.completed {
            return out;
        }
        out.extend(self.start(None, None));
        self.close(&mut out);
        self.completed = true;
        let stop = self.stop.unwrap_or(Stop::Completed);
        let output = self.items.iter().map(|i| i.json("completed")).collect();
        let response = self.lifecycle(stop.status(), Some(output), stop.details());
        let kind = match stop {
            Stop::Completed => "response.completed",
            Stop::MaxOutputTokens | Stop::ContentFilter => "response.incomplete",
        };
        out.push(self.event(kind, json!({"response": response})));
        out
    }

    /// The end of a stream that failed: an `error` event, then `response.failed` (its output
    /// is what the client already holds).
    pub fn fail(&mut self, code: &str, message: &str) -> Vec<Bytes> {
        let mut out = self.start(None, None);
        self.completed = true;
        out.push(self.event(
            "error",
            json!({"code": code, "message": message, "param": null}),
        ));
        let mut response = self.lifecycle("failed", None, Value::Null);
        response["error"] = json!({"code": code, "message": message});
        out.push(self.event("response.failed", json!({"response": response})));
        out
    }
}

/// What a Responses client has seen of a stream relayed as it came from an OpenAI upstream,
/// for the events Plumb adds to it (an interruption, a continuation from another target).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassthroughState {
    /// Events relayed (the next sequence number).
    pub seq: u64,
    /// The response's id.
    pub id: String,
    /// The model.
    pub model: String,
    /// Items finished, as they were sent.
    pub done: Vec<Value>,
    /// The message item still open, if any.
    pub open_message: Option<String>,
}

impl PassthroughState {
    /// An error event and `response.failed`, numbered after what the client has seen.
    pub fn fail(&self, echo: &Echo, created: u64, code: &str, message: &str) -> Vec<Bytes> {
        let mut w = Writer {
            started: true,
            ..Writer::resume_passthrough(echo.clone(), created, self, "")
        };
        w.fail(code, message)
    }
}

#[cfg(test)]
mod tests;
