//! Anthropic Messages stream events, one variant per event kind, with the fields Plumb acts on.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::openai::null_as_default;

/// One Anthropic stream event.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message begins: its id, model and input usage.
    MessageStart {
        /// The message.
        message: MessageStart,
    },
    /// A content block begins.
    ContentBlockStart {
        /// The block's index.
        #[serde(default, deserialize_with = "null_as_default")]
        index: u64,
        /// The block.
        #[serde(default = "ContentBlock::other")]
        content_block: ContentBlock,
    },
    /// A piece of a content block.
    ContentBlockDelta {
        /// The block's index.
        #[serde(default, deserialize_with = "null_as_default")]
        index: u64,
        /// The piece.
        #[serde(default = "BlockDelta::other")]
        delta: BlockDelta,
    },
    /// A content block ends.
    ContentBlockStop {
        /// The block's index.
        #[serde(default, deserialize_with = "null_as_default")]
        index: u64,
    },
    /// The message's end: why it stopped, and output usage.
    MessageDelta {
        /// Why it stopped.
        #[serde(default, deserialize_with = "null_as_default")]
        delta: MessageDeltaBody,
        /// Usage so far (output tokens are cumulative).
        #[serde(default)]
        usage: Option<Usage>,
    },
    /// The stream's last event.
    MessageStop,
    /// A keep-alive.
    Ping,
    /// An error reported inside the stream.
    Error {
        /// The error.
        error: Value,
    },
    /// An event kind Plumb does not know: passed on where the client speaks Anthropic.
    #[serde(other)]
    Unknown,
}

/// The message of `message_start`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessageStart {
    /// Its id.
    pub id: Option<String>,
    /// The model that answers.
    pub model: Option<String>,
    /// Input (and first output) usage.
    pub usage: Option<Usage>,
    /// Everything else.
    pub rest: Map<String, Value>,
}
crate::object::with_rest!(MessageStart {
    id: value,
    model: value,
    usage: value,
});

/// A content block as it starts.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// Text it starts with (usually empty).
        #[serde(default)]
        text: String,
    },
    /// A tool call.
    ToolUse {
        /// Its id.
        #[serde(default)]
        id: Value,
        /// The tool's name.
        #[serde(default)]
        name: Value,
    },
    /// Extended thinking.
    Thinking {
        /// Thinking it starts with (usually empty).
        #[serde(default)]
        thinking: String,
    },
    /// Any other block kind.
    #[serde(other)]
    Other,
}

/// A piece of a content block.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// Answer text.
    TextDelta {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A piece of a tool call's JSON input.
    InputJsonDelta {
        /// The piece.
        #[serde(default)]
        partial_json: String,
    },
    /// A piece of extended thinking.
    ThinkingDelta {
        /// The thinking text.
        #[serde(default)]
        thinking: String,
    },
    /// Any other piece (signatures, citations, …).
    #[serde(other)]
    Other,
}

impl ContentBlock {
    fn other() -> ContentBlock {
        ContentBlock::Other
    }
}

impl BlockDelta {
    fn other() -> BlockDelta {
        BlockDelta::Other
    }
}

/// The body of `message_delta`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct MessageDeltaBody {
    /// Why the message stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
}

/// Token usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
}
