//! The client's request as Plumb reads it: only the fields it acts on; everything else passes
//! through untouched.

mod reading;

use std::sync::OnceLock;

use bytes::Bytes;
use plumb_policy::{Provider, Publisher, Target};
use serde_json::{Map, Value};

use self::reading::Layout;
use crate::completion::Collected;
use crate::translate::{Conversation, Untranslatable};

/// A JSON Pointer lookup on a map.
trait PointerGet {
    fn pointer_get(&self, pointer: &str) -> Option<&Value>;
}

impl PointerGet for Map<String, Value> {
    fn pointer_get(&self, pointer: &str) -> Option<&Value> {
        let (first, rest) = pointer
            .strip_prefix('/')?
            .split_once('/')
            .unwrap_or((pointer.trim_start_matches('/'), ""));
        let v = self.get(first)?;
        if rest.is_empty() {
            Some(v)
        } else {
            v.pointer(&format!("/{rest}"))
        }
    }
}

/// The client's API family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// OpenAI Chat Completions / Embeddings / Models.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses. Only `openai` targets speak it; the others get a translation.
    Responses,
    /// Google's Gemini API (`generateContent`). Only ever upstream: clients are never served
    /// in it, and every request to a `gemini` target is a translation.
    Gemini,
    /// AWS Bedrock's Converse API. Only ever upstream, like Gemini.
    Bedrock,
}

impl Api {
    /// `openai`, `anthropic`, `responses` or `gemini`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Api::Openai => "openai",
            Api::Anthropic => "anthropic",
            Api::Responses => "responses",
            Api::Gemini => "gemini",
            Api::Bedrock => "bedrock",
        }
    }

    /// The format of this family's errors and, for a client, what its SDK expects: OpenAI's
    /// (both OpenAI families share it) or Anthropic's. Gemini is never a client's family;
    /// Google's error shape (`{"error": {"code", "message", "status"}}`) reads as OpenAI's.
    pub const fn errors(self) -> Api {
        match self {
            // Bedrock's `{"message"}` errors read as OpenAI's too.
            Api::Openai | Api::Responses | Api::Gemini | Api::Bedrock => Api::Openai,
            Api::Anthropic => Api::Anthropic,
        }
    }

    /// The chat API family `target` speaks (on Vertex AI, its model's publisher's).
    pub fn of(target: &Target) -> Api {
        match target.provider {
            Provider::Openai | Provider::OpenaiCompatible | Provider::AzureOpenai => Api::Openai,
            Provider::Anthropic => Api::Anthropic,
            Provider::Gemini => Api::Gemini,
            Provider::Bedrock => Api::Bedrock,
            Provider::VertexAi => match Publisher::of_model(&target.model) {
                Publisher::Google => Api::Gemini,
                Publisher::Anthropic => Api::Anthropic,
            },
        }
    }
}

/// Which operation a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Chat Completions or Messages.
    Chat,
    /// Embeddings.
    Embeddings,
}

/// What a request needs of a target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// It declares tools.
    pub tools: bool,
    /// It asks for JSON-schema structured output.
    pub json_schema: bool,
    /// It carries images.
    pub vision: bool,
    /// It ends with a partial assistant message to continue.
    pub prefill: bool,
    /// Estimated tokens: prompt (a quarter of the body's bytes) plus the answer's limit.
    pub tokens: u32,
    /// The answer's limit (`max_tokens`, `max_completion_tokens`), when the client set one.
    pub max_output: Option<u32>,
}

impl Needs {
    /// With the tokens of a body of `len` bytes that asks for at most `max_output` (a quarter
    /// of its bytes for the prompt, plus the limit).
    fn sized(self, len: usize, max_output: Option<u64>) -> Needs {
        let tokens = (len as u64)
            .div_ceil(4)
            .saturating_add(max_output.unwrap_or(0))
            .min(u64::from(u32::MAX)) as u32;
        Needs {
            max_output: max_output.map(|n| n.min(u64::from(u32::MAX)) as u32),
            tokens,
            ..self
        }
    }
}

/// A parsed client request.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    /// The client's API.
    pub api: Api,
    /// Chat or embeddings.
    pub operation: Operation,
    /// The model the client asked for.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// What it needs of a target.
    pub needs: Needs,
    /// Whether an OpenAI client asked for usage in its stream (`stream_options.include_usage`).
    include_usage: bool,
    /// The body as the client sent it.
    raw: Bytes,
    /// Where its `model` and `stream_options` lie in `raw`.
    layout: Layout,
    /// The body as a JSON object, `model` included: read from `raw` the first time something
    /// needs more of it than the fields above (a translation, a Vertex AI target, a Responses
    /// request, a contract or the client's JSON schema, a repair, a continuation, a shadow).
    tree: OnceLock<Map<String, Value>>,
    /// Whether the body was changed since it was read (a repair, a continuation): `raw` then
    /// no longer says what the request is, the tree does.
    changed: bool,
}

/// Why a request body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidRequest {
    /// Not a JSON object.
    #[error("the request body is not a JSON object: {0}")]
    Json(String),
    /// No `model`.
    #[error("the request has no \"model\" (a string naming the model or route alias)")]
    NoModel,
}

impl ClientRequest {
    /// Reads a request body (a copy of `bytes`; see [`ClientRequest::read`]).
    pub fn parse(
        api: Api,
        operation: Operation,
        bytes: &[u8],
    ) -> Result<ClientRequest, InvalidRequest> {
        ClientRequest::read(api, operation, Bytes::copy_from_slice(bytes))
    }

    /// Reads a request body: checks it is one JSON object and reads the fields Plumb acts on,
    /// without building the rest (`payload/reading.rs` says why).
    pub fn read(
        api: Api,
        operation: Operation,
        raw: Bytes,
    ) -> Result<ClientRequest, InvalidRequest> {
        let text = std::str::from_utf8(&raw).map_err(|e| InvalidRequest::Json(e.to_string()))?;
        let read = reading::read(api, text).map_err(|e| InvalidRequest::Json(e.to_string()))?;
        let model = read
            .model
            .filter(|m| !m.is_empty())
            .ok_or(InvalidRequest::NoModel)?;
        let stream = operation == Operation::Chat && read.stream.unwrap_or(false);
        let (needs, include_usage, layout) = (read.needs, read.include_usage, read.layout);
        Ok(ClientRequest {
            api,
            operation,
            model,
            stream,
            needs,
            include_usage,
            raw,
            layout,
            tree: OnceLock::new(),
            changed: false,
        })
    }

    /// The family `target` is asked in: a Responses request goes to an `openai` target as it
    /// is, and to every other target in its own family.
    pub fn family_for(&self, target: &Target) -> Api {
        match (self.api, target.provider) {
            (Api::Responses, Provider::Openai) => Api::Responses,
            (Api::Openai | Api::Anthropic | Api::Responses | Api::Gemini | Api::Bedrock, _) => {
                Api::of(target)
            }
        }
    }

    /// The body to send to `target`: the client's with the target's upstream model, translated
    /// when the target speaks the other family. `Err` names what the other family cannot
    /// express.
    pub fn body_for(&self, target: &Target) -> Result<Bytes, Untranslatable> {
        let family = self.family_for(target);
        // Ask OpenAI for a stream's usage, to count its tokens; the usage-only chunk is
        // dropped on the way back when the client did not ask for it. (Only OpenAI itself:
        // older Azure API versions and some compatible servers refuse the field.)
        let usage = self.stream && target.provider == Provider::Openai && !self.include_usage();
        // The common case, on the way to every first byte: the client's own family, where only
        // the model (and the usage option) change — the client's bytes with those put in place
        // (or, once the body was changed, the tree written out with them).
        if family == self.api && family != Api::Responses && target.publisher().is_none() {
            // As the client sent it, the two values put in place.
            if !self.changed {
                return Ok(Bytes::from(self.layout.write(
                    &self.raw,
                    &target.model,
                    usage,
                )));
            }
            let body = Rewritten {
                body: self.body(),
                model: &target.model,
                usage,
            };
            return Ok(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()));
        }
        let body = if family == self.api {
            let mut body = self.body().clone();
            body.insert("model".to_owned(), Value::String(target.model.clone()));
            if family == Api::Responses {
                without_plumbs_items(&mut body);
            }
            if usage {
                body.insert("stream_options".to_owned(), usage_option());
            }
            body
        } else {
            if self.operation == Operation::Embeddings {
                return Err(Untranslatable {
                    field: "embeddings".to_owned(),
                });
            }
            let conversation = match self.api {
                Api::Openai => Conversation::from_openai(self.body())?,
                Api::Anthropic => Conversation::from_anthropic(self.body())?,
                Api::Responses => Conversation::from_responses(self.body())?,
                Api::Gemini | Api::Bedrock => {
                    return Err(Untranslatable::new(
                        "a Gemini or Bedrock request (no client speaks it)",
                    ));
                }
            };
            match family {
                Api::Openai => conversation.to_openai(&target.model)?,
                Api::Anthropic => conversation.to_anthropic(&target.model)?,
                Api::Gemini => conversation.to_gemini()?,
                Api::Bedrock => conversation.to_bedrock(&target.model)?,
                // Only a Responses client is sent Responses, and without translation.
                Api::Responses => {
                    return Err(Untranslatable::new("the Responses API (for this client)"));
                }
            }
        };
        let body = crate::vertex::body(target, body);
        Ok(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
    }

    /// The body that asks `target` to continue an answer cut after `text`: the request with
    /// the text as a final, partial assistant message (prefill).
    pub fn continuation_body_for(
        &self,
        target: &Target,
        text: &str,
    ) -> Result<Bytes, Untranslatable> {
        let mut continued = self.clone();
        // Providers refuse a prefill that ends in white space; the answer supplies it.
        let prefill = text.trim_end();
        match self.api {
            Api::Gemini | Api::Bedrock => {
                return Err(Untranslatable::new(
                    "a Gemini or Bedrock request (no client speaks it)",
                ));
            }
            Api::Openai | Api::Anthropic => {
                let messages = continued
                    .body_mut()
                    .entry("messages")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(m) = messages {
                    m.push(serde_json::json!({"role": "assistant", "content": prefill}));
                }
            }
            Api::Responses => {
                // The Responses API has no prefill: only a translation continues.
                if self.family_for(target) == Api::Responses {
                    return Err(Untranslatable::new("a partial answer to continue"));
                }
                continued.push_input(serde_json::json!(
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": prefill}]}
                ));
            }
        }
        let body = continued.body_for(target)?;
        if self.family_for(target) != Api::Openai {
            return Ok(body);
        }
        // An OpenAI-compatible server that declares prefill continues the final assistant
        // message when asked as vLLM is (Chat Completions alone would answer afresh).
        let mut v: Map<String, Value> = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return Ok(body),
        };
        v.insert("continue_final_message".to_owned(), Value::Bool(true));
        v.insert("add_generation_prompt".to_owned(), Value::Bool(false));
        Ok(serde_json::to_vec(&v).map_or(body, Bytes::from))
    }

    /// The field that makes a Responses request depend on state an OpenAI account keeps
    /// (`previous_response_id`, `conversation`), if any.
    pub fn server_state(&self) -> Option<&'static str> {
        if self.api != Api::Responses {
            return None;
        }
        ["previous_response_id", "conversation"]
            .into_iter()
            .find(|k| self.body().get(*k).is_some_and(|v| !v.is_null()))
    }

    /// A `previous_response_id` that names a response Plumb translated: nothing stores those.
    pub fn unstored_previous_response(&self) -> Option<&str> {
        if self.api != Api::Responses {
            return None;
        }
        self.body()
            .get("previous_response_id")
            .and_then(Value::as_str)
            .filter(|id| id.starts_with(crate::translate::responses::TRANSLATED_ID_PREFIX))
    }

    /// The body as a JSON object: as the client sent it, or as changed since.
    pub fn body(&self) -> &Map<String, Value> {
        // `raw` was read as one JSON object already.
        self.tree
            .get_or_init(|| serde_json::from_slice(&self.raw).unwrap_or_default())
    }

    /// The body, to change: from here on the request is the tree, not `raw`.
    fn body_mut(&mut self) -> &mut Map<String, Value> {
        self.body();
        self.changed = true;
        match self.tree.get_mut() {
            Some(tree) => tree,
            None => unreachable!("the tree was read just above"),
        }
    }

    /// The JSON schema the client asked the answer to follow, if any: only where it asked for
    /// JSON-schema output ([`Needs::json_schema`], read with the body), as the provider only
    /// then holds the answer to it; so most requests never build the body's tree for this.
    pub fn response_schema(&self) -> Option<&Value> {
        if !self.needs.json_schema {
            return None;
        }
        match self.api {
            Api::Openai => self
                .body()
                .pointer_get("/response_format/json_schema/schema"),
            Api::Anthropic => self.body().pointer_get("/output_format/schema"),
            Api::Responses => self
                .body()
                .pointer_get("/text/format")
                .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
                .and_then(|f| f.get("schema")),
            Api::Gemini | Api::Bedrock => None,
        }
    }

    /// Adds an item at the end of a Responses request's `input` (a string input becomes its
    /// first message).
    fn push_input(&mut self, item: Value) {
        let input = self
            .body_mut()
            .entry("input")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::String(s) = input {
            *input = serde_json::json!([{"role": "user", "content": s.clone()}]);
        }
        if let Value::Array(items) = input {
            items.push(item);
        }
    }

    /// What a Responses answer repeats of this request.
    pub fn echo(&self) -> crate::translate::responses::Echo {
        crate::translate::responses::Echo::of(self.body())
    }

    /// The request again, with the rejected answer and what was wrong with it added to the
    /// conversation, so the model can correct itself.
    pub fn with_repair(&self, rejected: &Collected, complaint: &str) -> ClientRequest {
        let mut repaired = self.clone();
        if self.api == Api::Responses {
            let mut said = Vec::new();
            if let Some(call) = rejected.tools.first() {
                said.push(serde_json::json!({"role": "user", "content": format!(
                    "Your previous answer called the tool {} with the arguments {}, which do not satisfy the required format: {complaint}. Call it again with arguments that satisfy it exactly.",
                    call.name, call.arguments
                )}));
            } else {
                if !rejected.text.is_empty() {
                    said.push(serde_json::json!({"role": "assistant", "content": [{"type": "output_text", "text": rejected.text}]}));
                }
                said.push(serde_json::json!({"role": "user", "content": format!(
                    "Your previous answer does not satisfy the required format: {complaint}. Answer the original request again, following the requirement exactly, with nothing else."
                )}));
            }
            for item in said {
                repaired.push_input(item);
            }
            return repaired;
        }
        let messages = repaired
            .body_mut()
            .entry("messages")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(m) = messages {
            if let Some(call) = rejected.tools.first() {
                m.push(serde_json::json!({"role": "user", "content": format!(
                    "Your previous answer called the tool {} with the arguments {}, which do not satisfy the required format: {complaint}. Call it again with arguments that satisfy it exactly.",
                    call.name, call.arguments
                )}));
            } else {
                if !rejected.text.is_empty() {
                    m.push(serde_json::json!({"role": "assistant", "content": rejected.text}));
                }
                m.push(serde_json::json!({"role": "user", "content": format!(
                    "Your previous answer does not satisfy the required format: {complaint}. Answer the original request again, following the requirement exactly, with nothing else."
                )}));
            }
        }
        repaired
    }

    /// The same request, not streamed (shadow requests read whole answers).
    pub fn unstreamed(&self) -> ClientRequest {
        let mut r = self.clone();
        r.stream = false;
        r.include_usage = false;
        let body = r.body_mut();
        body.remove("stream");
        body.remove("stream_options");
        r
    }

    /// Whether an OpenAI client asked for usage in its stream.
    pub fn include_usage(&self) -> bool {
        self.include_usage
    }
}

/// `stream_options` asking for a stream's usage.
fn usage_option() -> Value {
    serde_json::json!({"include_usage": true})
}

/// A client's body in its own family, written with another model and, when `usage`, with
/// [`usage_option`] in place of the client's `stream_options`.
struct Rewritten<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    usage: bool,
}

impl serde::Serialize for Rewritten<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        // Appended when the client's body has no such key.
        let add_model = !self.body.contains_key("model");
        let add_usage = self.usage && !self.body.contains_key("stream_options");
        let len = self.body.len() + usize::from(add_model) + usize::from(add_usage);
        let mut map = s.serialize_map(Some(len))?;
        for (k, v) in self.body {
            match k.as_str() {
                "model" => map.serialize_entry(k, self.model)?,
                "stream_options" if self.usage => map.serialize_entry(k, &usage_option())?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        if add_model {
            map.serialize_entry("model", self.model)?;
        }
        if add_usage {
            map.serialize_entry("stream_options", &usage_option())?;
        }
        map.end()
    }
}

/// Items Plumb wrote for a Responses client (from another provider's answer) sent back to
/// OpenAI: their ids are not OpenAI's, which would answer "not found". Plumb's reasoning items
/// carry another provider's thoughts and are left out; the others keep their content without
/// the id.
fn without_plumbs_items(body: &mut Map<String, Value>) {
    use crate::translate::responses::outgoing::is_plumbs;
    let Some(Value::Array(items)) = body.get_mut("input") else {
        return;
    };
    let plumbs = |i: &Value| i.get("id").and_then(Value::as_str).is_some_and(is_plumbs);
    items.retain(|i| !(plumbs(i) && i.get("type").and_then(Value::as_str) == Some("reasoning")));
    for item in items.iter_mut() {
        if plumbs(item)
            && let Value::Object(m) = item
        {
            m.remove("id");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_plumb_wrote_reach_openai_without_their_ids() {
        let body = serde_json::json!({"model": "m", "input": [
            {"role": "user", "content": "hi"},
            {"type": "reasoning", "id": "rs_plumb_00ff", "summary": []},
            {"type": "reasoning", "id": "rs_0123", "summary": [], "encrypted_content": "x"},
            {"type": "message", "id": "msg_plumb_00ff", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
            {"type": "function_call", "id": "fc_plumb_00ff", "call_id": "c", "name": "f", "arguments": "{}"},
        ]});
        let r = ClientRequest::parse(Api::Responses, Operation::Chat, body.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let target = plumb_policy::compile(
            "d",
            "r",
            &serde_json::from_value(serde_json::json!({
                "match": {"models": ["m"]},
                "targets": [{"name": "t", "provider": "openai", "baseUrl": "http://h/v1", "model": "up", "credentials": {"none": true}}]
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .targets
        .remove(0);
        let out: Value =
            serde_json::from_slice(&r.body_for(&target).unwrap_or_default()).unwrap_or_default();
        let input = out["input"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            input.len(),
            4,
            "Plumb's reasoning item is left out: {input:?}"
        );
        assert_eq!(input[1]["id"], "rs_0123", "OpenAI's own item is untouched");
        assert!(input[2].get("id").is_none() && input[2]["content"][0]["text"] == "a");
        assert!(input[3].get("id").is_none() && input[3]["call_id"] == "c");
    }

    #[test]
    fn needs_are_read_from_the_body() {
        let body = br#"{"model":"m","stream":true,"max_tokens":100,"tools":[{"type":"function"}],
            "response_format":{"type":"json_schema"},
            "messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#;
        let r = ClientRequest::parse(Api::Openai, Operation::Chat, body)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.model, "m");
        assert!(r.stream);
        assert!(r.needs.tools && r.needs.json_schema && r.needs.vision && !r.needs.prefill);
        assert!(r.needs.tokens > 100);
        let prefill = br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"The"}]}"#;
        let r = ClientRequest::parse(Api::Anthropic, Operation::Chat, prefill)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.needs.prefill);
    }

    #[test]
    fn bad_bodies_are_refused() {
        assert!(matches!(
            ClientRequest::parse(Api::Openai, Operation::Chat, b"[1]"),
            Err(InvalidRequest::Json(_))
        ));
        assert_eq!(
            ClientRequest::parse(Api::Openai, Operation::Chat, br#"{"messages":[]}"#).err(),
            Some(InvalidRequest::NoModel)
        );
    }

    #[test]
    fn a_stream_to_openai_asks_for_usage_in_place_of_the_clients_stream_options() {
        let target = |provider: &str| {
            plumb_policy::compile(
                "d",
                "r",
                &serde_json::from_value(serde_json::json!({
                    "match": {"models": ["alias"]},
                    "targets": [{"name": "t", "provider": provider, "baseUrl": "http://h/v1", "model": "upstream", "credentials": {"none": true}}]
                }))
                .unwrap_or_else(|e| panic!("{e}")),
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .targets
            .remove(0)
        };
        let sent = |body: &[u8], provider: &str| -> Value {
            let r = ClientRequest::parse(Api::Openai, Operation::Chat, body)
                .unwrap_or_else(|e| panic!("{e}"));
            serde_json::from_slice(&r.body_for(&target(provider)).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let usage = serde_json::json!({"include_usage": true});
        // Asked for, without the client's options or in place of them.
        let plain =
            br#"{"model":"alias","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(
            sent(plain, "openai"),
            serde_json::json!({"model": "upstream", "stream": true, "messages": [{"role": "user", "content": "hi"}], "stream_options": usage})
        );
        let without = br#"{"model":"alias","stream":true,"stream_options":{"include_usage":false},"messages":[]}"#;
        assert_eq!(sent(without, "openai")["stream_options"], usage);
        // The client's own options pass as they are when it asked, or to another provider.
        let with = br#"{"model":"alias","stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[]}"#;
        assert_eq!(
            sent(with, "openai")["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
        assert_eq!(
            sent(without, "openai-compatible")["stream_options"],
            serde_json::json!({"include_usage": false})
        );
        assert_eq!(sent(plain, "openai-compatible").get("stream_options"), None);
        // Not a stream: nothing asked.
        let whole = br#"{"model":"alias","messages":[]}"#;
        assert_eq!(
            sent(whole, "openai"),
            serde_json::json!({"model": "upstream", "messages": []})
        );
    }

    #[test]
    fn unknown_fields_pass_through_and_the_model_is_replaced() {
        let body = br#"{"model":"alias","messages":[],"seed":7,"metadata":{"k":"v"}}"#;
        let r = ClientRequest::parse(Api::Openai, Operation::Chat, body)
            .unwrap_or_else(|e| panic!("{e}"));
        let target = plumb_policy::compile(
            "d",
            "r",
            &serde_json::from_value(serde_json::json!({
                "match": {"models": ["alias"]},
                "targets": [{"name": "t", "provider": "openai", "baseUrl": "http://h/v1", "model": "upstream", "credentials": {"none": true}}]
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .targets
        .remove(0);
        let out: Value =
            serde_json::from_slice(&r.body_for(&target).unwrap_or_default()).unwrap_or_default();
        assert_eq!(out["model"], "upstream");
        assert_eq!(out["seed"], 7);
        assert_eq!(out["metadata"]["k"], "v");
    }
}
