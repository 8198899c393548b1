//! The client's side of a translated Responses stream: the typed events the official SDKs
//! expect, in order, with their sequence numbers and the ids that tie deltas to items.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{Echo, Head, Item, Stop, new_id, response};

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
