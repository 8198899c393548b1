//! OpenAI Responses stream events (`POST /v1/responses` with `stream: true`), one variant per
//! event kind Plumb acts on; every other kind (built-in tool progress, annotations, …) is
//! [`StreamEvent::Unknown`] and passes through untouched to a Responses client.

use serde::Deserialize;
use serde_json::Value;

use super::openai::null_as_default;

/// One Responses stream event.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type")]
pub enum StreamEvent {
    /// `response.created`: the response object, in progress.
    #[serde(rename = "response.created")]
    Created {
        /// The response so far.
        #[serde(default, deserialize_with = "null_as_default")]
        response: Box<ResponseHead>,
    },
    /// `response.completed`: the whole response.
    #[serde(rename = "response.completed")]
    Completed {
        /// The response.
        #[serde(default, deserialize_with = "null_as_default")]
        response: Box<ResponseHead>,
    },
    /// `response.incomplete`: the response ended early (its output limit, a content filter).
    #[serde(rename = "response.incomplete")]
    Incomplete {
        /// The response.
        #[serde(default, deserialize_with = "null_as_default")]
        response: Box<ResponseHead>,
    },
    /// `response.failed`: the provider gave up; the response carries its error.
    #[serde(rename = "response.failed")]
    Failed {
        /// The response.
        #[serde(default, deserialize_with = "null_as_default")]
        response: Box<ResponseHead>,
    },
    /// `response.output_item.added`: a message, function call or reasoning item starts.
    #[serde(rename = "response.output_item.added")]
    ItemAdded {
        /// Its place in the output.
        #[serde(default, deserialize_with = "null_as_default")]
        output_index: u64,
        /// The item as it starts.
        #[serde(default, deserialize_with = "null_as_default")]
        item: Item,
    },
    /// `response.output_item.done`: an item is complete.
    #[serde(rename = "response.output_item.done")]
    ItemDone {
        /// Its place in the output.
        #[serde(default, deserialize_with = "null_as_default")]
        output_index: u64,
        /// The whole item, as JSON (a continuation repeats it in its final response).
        #[serde(default)]
        item: Value,
    },
    /// `response.output_text.delta`: answer text.
    #[serde(rename = "response.output_text.delta")]
    TextDelta {
        /// The message item.
        #[serde(default, deserialize_with = "null_as_default")]
        item_id: String,
        /// Its place in the output.
        #[serde(default, deserialize_with = "null_as_default")]
        output_index: u64,
        /// The content part.
        #[serde(default, deserialize_with = "null_as_default")]
        content_index: u64,
        /// The text.
        #[serde(default, deserialize_with = "null_as_default")]
        delta: String,
    },
    /// `response.refusal.delta`: the model refuses, in words.
    #[serde(rename = "response.refusal.delta")]
    RefusalDelta {
        /// The words.
        #[serde(default, deserialize_with = "null_as_default")]
        delta: String,
    },
    /// `response.function_call_arguments.delta`: part of a function call's arguments.
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        /// The function call's place in the output.
        #[serde(default, deserialize_with = "null_as_default")]
        output_index: u64,
        /// The arguments' next characters.
        #[serde(default, deserialize_with = "null_as_default")]
        delta: String,
    },
    /// Reasoning: `response.reasoning_text.delta` or `response.reasoning_summary_text.delta`.
    #[serde(
        rename = "response.reasoning_text.delta",
        alias = "response.reasoning_summary_text.delta"
    )]
    ReasoningDelta {
        /// The thought.
        #[serde(default, deserialize_with = "null_as_default")]
        delta: String,
    },
    /// `error`: the provider reports an error in the stream.
    #[serde(rename = "error")]
    Error {
        /// Its code.
        #[serde(default)]
        code: Option<String>,
        /// Its message.
        #[serde(default)]
        message: Option<String>,
    },
    /// Any other kind.
    #[serde(other)]
    Unknown,
}

/// The response object of a lifecycle event: the fields Plumb reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ResponseHead {
    /// Its id (`resp_…`).
    #[serde(default)]
    pub id: Option<String>,
    /// The model that answers.
    #[serde(default)]
    pub model: Option<String>,
    /// Token usage (on `response.completed`).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// The error of a failed response.
    #[serde(default)]
    pub error: Option<Value>,
    /// Why an incomplete response stopped: `{"reason": "max_output_tokens"}`.
    #[serde(default)]
    pub incomplete_details: Option<Value>,
}

/// An output item as it starts: its kind and what names it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Item {
    /// `message`, `function_call`, `reasoning`, `web_search_call`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The item's id.
    #[serde(default)]
    pub id: Option<String>,
    /// A function call's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Responses token usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
}

impl StreamEvent {
    /// The response of a lifecycle event.
    pub fn response(&self) -> Option<&ResponseHead> {
        match self {
            StreamEvent::Created { response }
            | StreamEvent::Completed { response }
            | StreamEvent::Incomplete { response }
            | StreamEvent::Failed { response } => Some(response),
            StreamEvent::ItemAdded { .. }
            | StreamEvent::ItemDone { .. }
            | StreamEvent::TextDelta { .. }
            | StreamEvent::RefusalDelta { .. }
            | StreamEvent::ArgumentsDelta { .. }
            | StreamEvent::ReasoningDelta { .. }
            | StreamEvent::Error { .. }
            | StreamEvent::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_plumb_reads_is_typed_and_the_rest_is_unknown() {
        let e = |s: &str| serde_json::from_str::<StreamEvent>(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            e(r#"{"type":"response.output_text.delta","item_id":"m","output_index":0,"content_index":0,"delta":"Hi","sequence_number":4}"#),
            StreamEvent::TextDelta { delta, .. } if delta == "Hi"
        ));
        assert!(matches!(
            e(r#"{"type":"response.reasoning_summary_text.delta","delta":"hm"}"#),
            StreamEvent::ReasoningDelta { delta } if delta == "hm"
        ));
        assert!(matches!(
            e(r#"{"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","id":"fc","name":"f","call_id":"c","arguments":""}}"#),
            StreamEvent::ItemAdded { output_index: 1, item } if item.name.as_deref() == Some("f")
        ));
        assert!(matches!(
            e(r#"{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":3,"output_tokens":5}}}"#),
            StreamEvent::Completed { response } if response.usage == Some(Usage { input_tokens: Some(3), output_tokens: Some(5) })
        ));
        assert_eq!(
            e(r#"{"type":"response.web_search_call.searching","output_index":0}"#),
            StreamEvent::Unknown
        );
    }
}
