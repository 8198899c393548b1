//! A whole answer translated for a client of the other family: an Anthropic `message` as an
//! OpenAI `chat.completion` (`answer::anthropic_to_openai`) and back, and an OpenAI completion
//! as an Anthropic message (`answer::openai_to_anthropic`) and back, each then classified as
//! the client's family would have it; and each as an OpenAI Responses `response`.
//!
//! Input: an answer body (JSON), read as both families' typed answers.
//!
//! Checked besides panics: a translation reads as the other family's answer, and says the same
//! text and calls the same tools.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plumb_fuzz::CREATED;
use plumb_sidecar::classify;
use plumb_sidecar::completion::{ChatCompletion, Collected, Completion, Message, Response};
use plumb_sidecar::payload::{Api, Operation};
use plumb_sidecar::translate::answer;
use plumb_sidecar::translate::responses::{Echo, outgoing};
use plumb_sidecar::verify;

/// What two answers must agree on: the text and the names of the tools called.
fn said(c: &Collected) -> (&str, Vec<&str>) {
    (
        c.text.as_str(),
        c.tools.iter().map(|t| t.name.as_str()).collect(),
    )
}

fn to_openai(m: &Message) -> ChatCompletion {
    let v = answer::anthropic_to_openai(m, CREATED);
    let _ = classify::success_body(Api::Openai, Operation::Chat, v.to_string().as_bytes());
    serde_json::from_value(v).unwrap_or_else(|e| panic!("not a chat completion: {e}"))
}

fn to_anthropic(c: &ChatCompletion) -> Message {
    let v = answer::openai_to_anthropic(c);
    let _ = classify::success_body(Api::Anthropic, Operation::Chat, v.to_string().as_bytes());
    serde_json::from_value(v).unwrap_or_else(|e| panic!("not a message: {e}"))
}

/// As a Responses client reads it: the same text and tools.
fn as_response(v: serde_json::Value, from: &Collected) {
    let _ = classify::success_body(Api::Responses, Operation::Chat, v.to_string().as_bytes());
    let r: Response =
        serde_json::from_value(v).unwrap_or_else(|e| panic!("not a response: {e}"));
    let to = verify::whole(&Completion::Responses(r));
    assert_eq!(said(from), said(&to));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Message>(data) {
        let v = outgoing::from_anthropic(&m, &Echo::default(), CREATED);
        as_response(v, &verify::whole(&Completion::Anthropic(m)));
    }
    if let Ok(c) = serde_json::from_slice::<ChatCompletion>(data)
        && c.message().is_none_or(|m| m.content.as_deref().is_some_and(|t| !t.is_empty()) || m.refusal.is_none())
    {
        let v = outgoing::from_chat(&c, &Echo::default(), CREATED);
        as_response(v, &verify::whole(&Completion::Openai(c)));
    }
    if let Ok(m) = serde_json::from_slice::<Message>(data) {
        let c = to_openai(&m);
        let (from, to) = (
            verify::whole(&Completion::Anthropic(m)),
            verify::whole(&Completion::Openai(c.clone())),
        );
        assert_eq!(said(&from), said(&to));
        let _ = to_anthropic(&c);
    }
    if let Ok(c) = serde_json::from_slice::<ChatCompletion>(data) {
        let m = to_anthropic(&c);
        // A refusal without content becomes the message's text.
        if c.message().is_none_or(|m| m.content.is_some()) {
            let (from, to) = (
                verify::whole(&Completion::Openai(c)),
                verify::whole(&Completion::Anthropic(m.clone())),
            );
            assert_eq!(said(&from), said(&to));
        }
        let _ = to_openai(&m);
    }
});
