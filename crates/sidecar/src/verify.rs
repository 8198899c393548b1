//! Verification: what an answer says (its text, its tool calls, the model it names), read from
//! either family's whole body or stream, and checked against the route's contract before it
//! counts as a success.

use plumb_policy::contract::{self, Schema, ToolCall, Violation};
use plumb_policy::{Provider, Route, Target};
use serde_json::Value;

use crate::completion::{Block, Collected, Completion};
use crate::event::{Event, SseReader};
use crate::payload::{Api, ClientRequest};

/// The longest a contract check may take (schema validation and CEL rules run off the async
/// workers, on the blocking pool, within this deadline).
pub const CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// [`check`], off the async workers and within [`CHECK_DEADLINE`]: a schema or rule that takes
/// too long fails the answer with a `schema_violation` that says so, and no worker is frozen.
/// Gives the answer back (for a repair) unless the deadline passed.
pub async fn check_bounded(
    route: std::sync::Arc<Route>,
    request: std::sync::Arc<ClientRequest>,
    request_schema: Option<Schema>,
    c: Collected,
) -> (Result<(), Violation>, Option<Collected>) {
    // Nothing to check (no contract of the route's own, and no schema from the client): no
    // trip to the blocking pool.
    if !route
        .contract
        .as_ref()
        .is_some_and(|k| k.applies(request_schema.is_some()))
    {
        return (Ok(()), Some(c));
    }
    let task = tokio::task::spawn_blocking(move || {
        let verdict = check(&route, &request, request_schema.as_ref(), &c);
        (verdict, c)
    });
    let late = |message: String| Violation {
        class: plumb_policy::FailureClass::SchemaViolation,
        check: "deadline".to_owned(),
        message,
    };
    match tokio::time::timeout(CHECK_DEADLINE, task).await {
        Ok(Ok((verdict, c))) => (verdict, Some(c)),
        Ok(Err(e)) => (Err(late(format!("the contract check failed: {e}"))), None),
        Err(_) => (
            Err(late(format!(
                "checking the answer against the contract took longer than {}; the answer or the schema is too complex",
                humantime::format_duration(CHECK_DEADLINE)
            ))),
            None,
        ),
    }
}

/// Reads a whole answer.
pub fn whole(answer: &Completion) -> Collected {
    let model = answer.model().map(str::to_owned);
    match answer {
        Completion::Openai(c) => {
            let message = c.message();
            Collected {
                text: message.and_then(|m| m.content.clone()).unwrap_or_default(),
                tools: message
                    .map(|m| {
                        m.tool_calls
                            .iter()
                            .map(|c| ToolCall {
                                name: c.function.name.as_str().unwrap_or("").to_owned(),
                                arguments: c.function.arguments.clone().unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                model,
            }
        }
        Completion::Anthropic(m) => {
            let mut c = Collected {
                model,
                ..Collected::default()
            };
            for block in m.content.iter().flatten() {
                match block {
                    Block::Text { text } => c.text.push_str(text),
                    Block::ToolUse { name, input, .. } => c.tools.push(ToolCall {
                        name: name.as_str().unwrap_or("").to_owned(),
                        arguments: input.as_ref().map(Value::to_string).unwrap_or_default(),
                    }),
                    Block::Thinking { .. } | Block::Other => {}
                }
            }
            c
        }
        Completion::Responses(r) => {
            use crate::completion::{OutputContent, OutputItem};
            let mut c = Collected {
                model,
                ..Collected::default()
            };
            for item in r.output.iter().flatten() {
                match item {
                    OutputItem::Message { content } => {
                        for part in content {
                            if let OutputContent::OutputText { text } = part {
                                c.text.push_str(text);
                            }
                        }
                    }
                    OutputItem::FunctionCall { name, arguments } => c.tools.push(ToolCall {
                        name: name.as_str().unwrap_or("").to_owned(),
                        arguments: arguments.clone().unwrap_or_default(),
                    }),
                    OutputItem::Reasoning {} | OutputItem::Other => {}
                }
            }
            c
        }
        Completion::Bedrock(b) => Collected {
            text: b.text(),
            tools: b
                .blocks()
                .iter()
                .filter_map(|c| c.tool_use.as_ref())
                .map(|call| ToolCall {
                    name: call.name.clone(),
                    arguments: call.input.to_string(),
                })
                .collect(),
            model,
        },
        Completion::Gemini(g) => Collected {
            text: g.text(),
            tools: g
                .parts()
                .iter()
                .filter_map(|p| p.function_call.as_ref())
                .map(|call| ToolCall {
                    name: call.name.clone(),
                    arguments: call.args.as_ref().map(Value::to_string).unwrap_or_default(),
                })
                .collect(),
            model,
        },
    }
}

/// Collects a streamed answer of the `family`'s shape, event by event.
#[derive(Debug)]
pub struct StreamCollector {
    family: Api,
    collected: Collected,
    /// OpenAI tool-call index or Anthropic block index → position in `tools`.
    tool_index: Vec<(u64, usize)>,
}

impl StreamCollector {
    /// An empty collector for a stream of `family`'s shape.
    pub fn new(family: Api) -> StreamCollector {
        StreamCollector {
            family,
            collected: Collected::default(),
            tool_index: Vec::new(),
        }
    }

    /// Reads every whole event of `bytes`.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        let mut sse = SseReader::default();
        sse.push(bytes);
        while let Some(raw) = sse.next_event() {
            self.event(&Event::parse(self.family, &raw));
        }
    }

    fn tool(&mut self, index: u64) -> Option<&mut ToolCall> {
        let pos = self.tool_index.iter().find(|(i, _)| *i == index)?.1;
        self.collected.tools.get_mut(pos)
    }

    /// Reads one upstream event.
    pub fn event(&mut self, event: &Event) {
        use crate::event::anthropic::{BlockDelta, ContentBlock, StreamEvent as A};
        use crate::event::responses::StreamEvent as R;
        match event {
            Event::Chunk(c) => {
                if self.collected.model.is_none() {
                    self.collected.model.clone_from(&c.model);
                }
                let Some(delta) = c.delta() else {
                    return;
                };
                if let Some(t) = &delta.content {
                    self.collected.text.push_str(t);
                }
                for call in delta.tool_calls.iter().flatten() {
                    let function = call.function.as_ref();
                    let name = function.and_then(|f| f.name.as_deref());
                    let args = function.and_then(|f| f.arguments.as_deref()).unwrap_or("");
                    match (self.tool(call.index), name) {
                        (Some(t), _) => t.arguments.push_str(args),
                        (None, name) => {
                            self.tool_index
                                .push((call.index, self.collected.tools.len()));
                            self.collected.tools.push(ToolCall {
                                name: name.unwrap_or("").to_owned(),
                                arguments: args.to_owned(),
                            });
                        }
                    }
                }
            }
            Event::Anthropic(A::MessageStart { message }) => {
                self.collected.model.clone_from(&message.model);
            }
            Event::Bedrock(b) => {
                if let Some(call) = b
                    .content_block_start
                    .as_ref()
                    .and_then(|s| s.start.as_ref().and_then(|s| s.tool_use.as_ref()))
                {
                    let index = b
                        .content_block_start
                        .as_ref()
                        .map_or(0, |s| s.content_block_index);
                    self.tool_index.push((index, self.collected.tools.len()));
                    self.collected.tools.push(ToolCall {
                        name: call.name.clone(),
                        arguments: String::new(),
                    });
                }
                if let Some(d) = &b.content_block_delta {
                    if let Some(t) = &d.delta.text {
                        self.collected.text.push_str(t);
                    }
                    if let Some(piece) = &d.delta.tool_use
                        && let Some(tool) = self.tool(d.content_block_index)
                    {
                        tool.arguments.push_str(&piece.input);
                    }
                }
            }
            Event::Anthropic(A::ContentBlockStart {
                index,
                content_block: ContentBlock::ToolUse { name, .. },
            }) => {
                self.tool_index.push((*index, self.collected.tools.len()));
                self.collected.tools.push(ToolCall {
                    name: name.as_str().unwrap_or("").to_owned(),
                    arguments: String::new(),
                });
            }
            Event::Anthropic(A::ContentBlockDelta { index, delta }) => match delta {
                BlockDelta::TextDelta { text } => self.collected.text.push_str(text),
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let Some(tool) = self.tool(*index) {
                        tool.arguments.push_str(partial_json);
                    }
                }
                BlockDelta::ThinkingDelta { .. } | BlockDelta::Other => {}
            },
            Event::Responses(R::Created { response }) => {
                self.collected.model.clone_from(&response.model);
            }
            Event::Responses(R::TextDelta { delta, .. }) => self.collected.text.push_str(delta),
            Event::Responses(R::ItemAdded { output_index, item })
                if item.kind == "function_call" =>
            {
                self.tool_index
                    .push((*output_index, self.collected.tools.len()));
                self.collected.tools.push(ToolCall {
                    name: item.name.clone().unwrap_or_default(),
                    arguments: String::new(),
                });
            }
            Event::Responses(R::ArgumentsDelta {
                output_index,
                delta,
            }) => {
                if let Some(tool) = self.tool(*output_index) {
                    tool.arguments.push_str(delta);
                }
            }
            Event::Gemini(g) => {
                if g.model_version.is_some() {
                    self.collected.model.clone_from(&g.model_version);
                }
                // Gemini sends each function call whole, in one part.
                for part in g.parts() {
                    match (&part.function_call, &part.text) {
                        (Some(call), _) => self.collected.tools.push(ToolCall {
                            name: call.name.clone(),
                            arguments: call.args.as_ref().map(Value::to_string).unwrap_or_default(),
                        }),
                        (None, Some(t)) if !part.thought => self.collected.text.push_str(t),
                        (None, Some(_) | None) => {}
                    }
                }
            }
            Event::Responses(
                R::ItemAdded { .. }
                | R::ItemDone { .. }
                | R::Completed { .. }
                | R::Incomplete { .. }
                | R::Failed { .. }
                | R::RefusalDelta { .. }
                | R::ReasoningDelta { .. }
                | R::Error { .. }
                | R::Unknown,
            ) => {}
            Event::Anthropic(
                A::ContentBlockStart { .. }
                | A::ContentBlockStop { .. }
                | A::MessageDelta { .. }
                | A::MessageStop
                | A::Ping
                | A::Error { .. }
                | A::Unknown,
            )
            | Event::Done
            | Event::Empty
            | Event::Unknown
            | Event::Error(_)
            | Event::Malformed => {}
        }
    }

    /// What the stream said so far.
    pub fn collected(&self) -> &Collected {
        &self.collected
    }

    /// What the stream said, taken.
    pub fn into_collected(self) -> Collected {
        self.collected
    }
}

/// The schema the client asked the answer to follow (`response_format.json_schema.schema`, or
/// Anthropic's `output_format.schema`), compiled. `None` when it asked for none or the route
/// does not follow it.
///
/// `Err` says why the client's schema was refused: it is not a valid schema, or it is too large,
/// too deep or expands too far to be checked at a bounded cost.
pub fn request_schema(route: &Route, request: &ClientRequest) -> Result<Option<Schema>, String> {
    let Some(contract) = route.contract.as_ref() else {
        return Ok(None);
    };
    if !contract.request_schema {
        return Ok(None);
    }
    let Some(schema) = request.response_schema() else {
        return Ok(None);
    };
    Schema::compile(schema.clone()).map(Some)
}

/// Checks an answer against the route's contract.
pub fn check(
    route: &Route,
    request: &ClientRequest,
    request_schema: Option<&Schema>,
    c: &Collected,
) -> Result<(), Violation> {
    let Some(contract) = &route.contract else {
        return Ok(());
    };
    contract.check(&contract::Answer {
        text: &c.text,
        tools: &c.tools,
        request: request.body(),
        request_schema,
    })
}

/// The model an answer names when it is not the one the target was asked for. A dated
/// snapshot of the model (`gpt-4o` answered by `gpt-4o-2024-08-06`, `claude-sonnet-4-5` by
/// `claude-sonnet-4-5-20250929`) is the same model; `gpt-4o-mini` is not. Vertex AI's
/// versioned Claude ids (`claude-sonnet-4-5@20250929`) answer with Anthropic's dated name.
/// Azure names models, not deployments, so it is not checked.
pub fn substituted<'a>(target: &Target, c: &'a Collected) -> Option<&'a str> {
    if target.provider == Provider::AzureOpenai {
        return None;
    }
    let named = c.model.as_deref().filter(|m| !m.is_empty())?;
    let asked = target.model.as_str();
    // Vertex AI's `claude-sonnet-4-5@20250929` is Anthropic's `claude-sonnet-4-5-20250929`.
    let base = asked.split_once('@').map_or(asked, |(base, _)| base);
    let same = named == asked
        || named
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('-').or_else(|| rest.strip_prefix('@')))
            .is_some_and(|snapshot| {
                snapshot.starts_with(|c: char| c.is_ascii_digit())
                    && snapshot.chars().all(|c| c.is_ascii_digit() || c == '-')
            })
        || asked
            .rsplit_once('/')
            .is_some_and(|(_, base)| named == base);
    (!same).then_some(named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_answers_of_both_families() {
        fn read<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
            serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
        }
        let c = whole(&Completion::Openai(read(
            json!({"model": "m", "choices": [{"message": {"content": "hi", "tool_calls": [
                {"function": {"name": "f", "arguments": "{\"a\":1}"}}]}}]}),
        )));
        assert_eq!(c.text, "hi");
        assert_eq!(c.tools[0].name, "f");
        assert_eq!(c.model.as_deref(), Some("m"));
        let c = whole(&Completion::Anthropic(read(
            json!({"model": "c", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"},
                {"type": "tool_use", "name": "g", "input": {"x": 2}}]}),
        )));
        assert_eq!(c.text, "ab");
        assert_eq!(c.tools[0].arguments, r#"{"x":2}"#);
    }

    #[test]
    fn dated_snapshots_are_the_same_model_and_smaller_siblings_are_not() {
        let compiled = plumb_policy::compile(
            "d",
            "r",
            &serde_json::from_value(json!({
                "match": {"models": ["m"]},
                "targets": [{"name": "t", "provider": "openai", "baseUrl": "http://h/v1", "model": "gpt-4o", "credentials": {"none": true}}]
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = &compiled.targets[0];
        let named = |m: &str| Collected {
            model: Some(m.to_owned()),
            ..Collected::default()
        };
        assert_eq!(substituted(t, &named("gpt-4o")), None);
        assert_eq!(substituted(t, &named("gpt-4o-2024-08-06")), None);
        assert_eq!(substituted(t, &named("gpt-4o-mini")), Some("gpt-4o-mini"));
        assert_eq!(
            substituted(t, &named("gpt-3.5-turbo")),
            Some("gpt-3.5-turbo")
        );
        assert_eq!(substituted(t, &Collected::default()), None);
        let mut claude = t.clone();
        claude.model = "claude-sonnet-4-5@20250929".to_owned();
        assert_eq!(
            substituted(&claude, &named("claude-sonnet-4-5-20250929")),
            None
        );
        assert_eq!(
            substituted(&claude, &named("claude-haiku-4-5-20251001")),
            Some("claude-haiku-4-5-20251001")
        );
    }

    #[test]
    fn streams_of_both_families() {
        let mut s = StreamCollector::new(Api::Openai);
        s.push_bytes(b"data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"He\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"llo\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\ndata: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\ndata: [DONE]\n\n");
        assert_eq!(s.collected().text, "Hello");
        assert_eq!(s.collected().tools[0].arguments, r#"{"a":1}"#);
        assert_eq!(s.collected().model.as_deref(), Some("m"));
        let mut s = StreamCollector::new(Api::Anthropic);
        s.push_bytes(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"name\":\"g\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n");
        assert_eq!(s.collected().text, "Hi");
        assert_eq!(s.collected().tools[0].name, "g");
        assert_eq!(s.collected().tools[0].arguments, "{}");
        assert_eq!(s.collected().model.as_deref(), Some("c"));
    }
}
