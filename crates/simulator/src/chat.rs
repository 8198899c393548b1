//! What the simulator reads from a chat request (in either wire format) and the answer it
//! builds, before the answer is rendered in the caller's format.

use serde_json::{Value, json};

use crate::catalog::{self, ModelSpec};
use crate::embed::JudgeRule;
use crate::fault::Fault;
use crate::structured::{self, Shape};

/// The parts of a chat request that decide the answer.
#[derive(Clone, Debug, Default)]
pub struct ChatRequest {
    /// The model asked for.
    pub model: String,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// The answer's token limit.
    pub max_tokens: Option<u32>,
    /// Every text of the conversation, joined (system prompt included).
    pub prompt: String,
    /// The number of messages.
    pub messages: usize,
    /// The JSON schema a structured answer must follow.
    pub schema: Option<Value>,
    /// OpenAI `response_format: {"type": "json_object"}`.
    pub json_object: bool,
    /// The tool to call instead of answering in text, with its parameter schema.
    pub tool_call: Option<(String, Value)>,
    /// Anthropic prefill: the text of a final assistant message the answer must continue.
    pub prefill: Option<String>,
    /// Responses: keep the answer for `GET /v1/responses/{id}` (`store`, default true).
    pub store: bool,
    /// Responses: answer `queued` at once and finish in the background.
    pub background: bool,
    /// Responses: the stored response this one continues.
    pub previous_response_id: Option<String>,
}

impl ChatRequest {
    /// Prompt tokens as the simulator counts them: a quarter of the characters plus four per
    /// message.
    pub fn prompt_tokens(&self) -> u32 {
        catalog::estimate_tokens(&self.prompt) + 4 * self.messages as u32
    }
}

/// Why an answer stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The answer is complete.
    Stop,
    /// The token limit cut it.
    Length,
    /// It is a tool call.
    ToolCall,
}

/// The content of an answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// A text answer.
    Text(String),
    /// A tool call with its JSON arguments.
    Tool {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments as a JSON string.
        arguments: String,
    },
}

/// A complete answer, in no particular wire format.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The model the answer names.
    pub model: String,
    /// The content.
    pub content: Content,
    /// The pieces a stream sends, in order; they concatenate to the content.
    pub pieces: Vec<String>,
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Why it stopped.
    pub finish: Finish,
    /// A reasoning model's thoughts before the answer, one piece per reasoning delta.
    pub thinking: Vec<String>,
}

impl Answer {
    /// Completion tokens: the number of pieces.
    pub fn completion_tokens(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// The text of a text answer (empty for a tool call).
    pub fn text(&self) -> &str {
        match &self.content {
            Content::Text(t) => t,
            Content::Tool { .. } => "",
        }
    }
}

/// Builds the answer a model gives to a request, with any content fault applied.
pub fn answer(
    req: &ChatRequest,
    spec: &ModelSpec,
    fault: Option<&Fault>,
    judge: &JudgeRule,
    seq: u64,
) -> Answer {
    let variant = u8::from(spec.persona != "default");
    let shape = match fault {
        Some(Fault::SchemaViolation) => Shape::Violation,
        Some(Fault::OutOfBounds) => Shape::OutOfBounds,
        _ => Shape::Valid,
    };
    let model = match fault {
        Some(Fault::ModelSubstituted { model }) => model.clone(),
        _ => req.model.clone(),
    };
    let (content, finish) = if let Some((name, params)) = &req.tool_call {
        let args = structured::generate(params, variant, shape);
        (
            Content::Tool {
                id: format!("call_sim_{seq}"),
                name: name.clone(),
                arguments: args.to_string(),
            },
            Finish::ToolCall,
        )
    } else if spec.judge {
        let verdict = judge.judge(&req.prompt);
        (
            Content::Text(serde_json::to_string(&verdict).unwrap_or_default()),
            Finish::Stop,
        )
    } else if let Some(schema) = &req.schema {
        (
            Content::Text(structured::generate(schema, variant, shape).to_string()),
            Finish::Stop,
        )
    } else if req.json_object || shape != Shape::Valid {
        let schema = json!({
            "type": "object",
            "properties": {"answer": {"type": "string"}, "score": {"type": "number", "minimum": 0, "maximum": 1}},
            "required": ["answer", "score"]
        });
        (
            Content::Text(structured::generate(&schema, variant, shape).to_string()),
            Finish::Stop,
        )
    } else {
        let full = catalog::answer_text(&spec.persona, &req.prompt);
        // A prefilled answer continues where the prefill stops.
        let text = match &req.prefill {
            Some(p) => full
                .strip_prefix(p.as_str())
                .map_or(full.clone(), str::to_owned),
            None => full,
        };
        (Content::Text(text), Finish::Stop)
    };
    let content = match fault {
        Some(Fault::EmptyContent) => Content::Text(String::new()),
        _ => content,
    };
    let (content, pieces, finish) = split(content, finish, req.max_tokens);
    let thinking = spec.thinking.map_or_else(Vec::new, |t| {
        (1..=t.deltas())
            .map(|k| format!("Thinking it over, step {k}. "))
            .collect()
    });
    Answer {
        model,
        content,
        pieces,
        prompt_tokens: req.prompt_tokens(),
        finish,
        thinking,
    }
}

/// Splits content into stream pieces, truncating a text answer at the token limit.
fn split(
    content: Content,
    finish: Finish,
    max_tokens: Option<u32>,
) -> (Content, Vec<String>, Finish) {
    match content {
        Content::Text(text) => {
            let mut pieces: Vec<String> = catalog::tokens(&text)
                .into_iter()
                .map(str::to_owned)
                .collect();
            let mut finish = finish;
            if let Some(max) = max_tokens
                && pieces.len() > max as usize
            {
                pieces.truncate(max as usize);
                finish = Finish::Length;
            }
            (Content::Text(pieces.concat()), pieces, finish)
        }
        Content::Tool {
            id,
            name,
            arguments,
        } => {
            let chars: Vec<char> = arguments.chars().collect();
            let pieces = chars
                .chunks(12)
                .map(|c| c.iter().collect::<String>())
                .collect();
            (
                Content::Tool {
                    id,
                    name,
                    arguments,
                },
                pieces,
                finish,
            )
        }
    }
}

/// A conversation that ends with an assistant message asks for it to be continued (a
/// prefill): its text, and the messages before it (the question).
pub fn split_prefill(messages: &[Value]) -> (Option<String>, &[Value]) {
    let prefill = messages
        .last()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .and_then(|m| m.get("content"))
        .map(|c| {
            let mut t = String::new();
            content_text(c, &mut t);
            t.trim_end_matches('\n').to_owned()
        });
    match prefill {
        Some(p) => (Some(p), &messages[..messages.len() - 1]),
        None => (None, messages),
    }
}

/// Collects the text of a message `content` in either format: a string, or an array of blocks
/// with `text` (and, for tool results, nested `content`).
pub fn content_text(content: &Value, out: &mut String) {
    match content {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(blocks) => {
            for b in blocks {
                if let Some(t) = b.get("text").and_then(Value::as_str) {
                    out.push_str(t);
                    out.push('\n');
                }
                if let Some(c) = b.get("content") {
                    content_text(c, out);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(persona: &str) -> ModelSpec {
        ModelSpec {
            persona: persona.into(),
            context_window: 8192,
            ..ModelSpec::default()
        }
    }

    fn req() -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            prompt: "what is six times seven".into(),
            messages: 1,
            ..ChatRequest::default()
        }
    }

    #[test]
    fn text_answer_pieces_concatenate_to_the_text() {
        let a = answer(&req(), &spec("default"), None, &JudgeRule::default(), 1);
        assert_eq!(a.pieces.concat(), a.text());
        assert_eq!(a.finish, Finish::Stop);
        assert_eq!(a.model, "m");
    }

    #[test]
    fn max_tokens_truncates_with_length_finish() {
        let mut r = req();
        r.max_tokens = Some(3);
        let a = answer(&r, &spec("default"), None, &JudgeRule::default(), 1);
        assert_eq!(a.completion_tokens(), 3);
        assert_eq!(a.finish, Finish::Length);
    }

    #[test]
    fn tool_calls_follow_the_parameter_schema() {
        let mut r = req();
        r.tool_call = Some((
            "get_weather".into(),
            json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
        ));
        let a = answer(&r, &spec("default"), None, &JudgeRule::default(), 9);
        let Content::Tool {
            name,
            arguments,
            id,
        } = &a.content
        else {
            panic!("expected a tool call")
        };
        assert_eq!((name.as_str(), id.as_str()), ("get_weather", "call_sim_9"));
        assert_eq!(a.pieces.concat(), *arguments);
        let args: Value = serde_json::from_str(arguments).unwrap_or_default();
        assert_eq!(args["city"], "forty-two");
        assert_eq!(a.finish, Finish::ToolCall);
    }

    #[test]
    fn content_faults_change_the_answer() {
        let a = answer(
            &req(),
            &spec("default"),
            Some(&Fault::EmptyContent),
            &JudgeRule::default(),
            1,
        );
        assert_eq!(a.text(), "");
        let a = answer(
            &req(),
            &spec("default"),
            Some(&Fault::OutOfBounds),
            &JudgeRule::default(),
            1,
        );
        let v: Value = serde_json::from_str(a.text()).unwrap_or_default();
        assert_eq!(v["score"], 7.0);
        let f = Fault::ModelSubstituted {
            model: "other".into(),
        };
        assert_eq!(
            answer(&req(), &spec("default"), Some(&f), &JudgeRule::default(), 1).model,
            "other"
        );
    }
}
