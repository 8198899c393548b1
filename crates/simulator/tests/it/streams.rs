//! Faults inside a stream (and the non-streamed body's equivalents).

use std::time::Duration;
use tokio::time::Instant;

use plumb_simulator::Outcome;
use serde_json::Value;

use crate::support::{
    Sim, anthropic_stream_text, chat_body, messages_body, openai_stream_text, parse_sse,
    read_stream, stream_with_fault,
};

#[tokio::test]
async fn stream_cut_ends_without_terminator_after_n_tokens() {
    let sim = Sim::start();
    let r = sim
        .openai(chat_body("sim-gpt", true))
        .header("x-sim-fault", "stream_cut:after=3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (text, err) = read_stream(r).await;
    assert!(err.is_some(), "a cut is an error at the HTTP level");
    let events = parse_sse(&text);
    assert_eq!(events.len(), 4, "role chunk and three tokens: {text}");
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    assert_eq!(openai_stream_text(&events).split_whitespace().count(), 3);

    let (text, err) = stream_with_fault(
        sim.anthropic(messages_body("sim-claude", true)),
        "stream_cut:after=2",
    )
    .await;
    assert!(err.is_some());
    let events = parse_sse(&text);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.as_deref() == Some("content_block_delta"))
            .count(),
        2
    );
    assert!(
        events
            .iter()
            .all(|e| e.event.as_deref() != Some("message_stop"))
    );

    let log = sim.settled_attempts(None).await;
    assert!(
        log.iter()
            .all(|a| a.outcome == Outcome::Cut && a.status == 200)
    );
}

#[tokio::test]
async fn non_streamed_body_cut_half_way_is_an_error() {
    let sim = Sim::start();
    let r = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "stream_cut")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.is_err(), "the declared length is never met");
}

#[tokio::test]
async fn stall_goes_silent_then_closes() {
    let sim = Sim::start();
    let start = Instant::now();
    let r = sim
        .openai(chat_body("sim-gpt", true))
        .header("x-sim-fault", "stream_stall:after=2,stall=500ms")
        .send()
        .await
        .unwrap();
    let (text, err) = read_stream(r).await;
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert!(err.is_some());
    assert_eq!(
        openai_stream_text(&parse_sse(&text))
            .split_whitespace()
            .count(),
        2
    );
    let log = sim.settled_attempts(None).await;
    assert_eq!(log[0].outcome, Outcome::Stalled);
}

#[tokio::test]
async fn slow_first_token_sends_the_head_first() {
    let sim = Sim::start();
    let start = Instant::now();
    let mut r = sim
        .anthropic(messages_body("sim-claude", true))
        .header("x-sim-fault", "slow_first_token:delay=1500ms")
        .send()
        .await
        .unwrap();
    let head_at = start.elapsed();
    let mut text = String::new();
    let mut first_token_at = None;
    while let Some(chunk) = r.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if first_token_at.is_none() && text.contains("content_block_delta") {
            first_token_at = Some(start.elapsed());
        }
    }
    let first_token_at = first_token_at.unwrap();
    assert!(first_token_at >= Duration::from_millis(1500));
    assert!(
        head_at + Duration::from_millis(500) < first_token_at,
        "head {head_at:?}, first token {first_token_at:?}"
    );
    assert!(anthropic_stream_text(&parse_sse(&text)).ends_with("End of answer."));
}

#[tokio::test]
async fn stream_error_event_in_each_format() {
    let sim = Sim::start();
    let (text, err) = stream_with_fault(
        sim.openai(chat_body("sim-gpt", true)),
        "stream_error:after=2",
    )
    .await;
    assert!(
        err.is_none(),
        "the stream ends cleanly after the error event"
    );
    let events = parse_sse(&text);
    let last = events.last().unwrap().json().unwrap();
    assert_eq!(last["error"]["code"], "overloaded");
    assert!(events.iter().all(|e| e.data != "[DONE]"));

    let (text, _) = stream_with_fault(
        sim.anthropic(messages_body("sim-claude", true)),
        "stream_error:after=1",
    )
    .await;
    let events = parse_sse(&text);
    let last = events.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(last.json().unwrap()["error"]["type"], "overloaded_error");
    let log = sim.settled_attempts(None).await;
    assert!(log.iter().all(|a| a.outcome == Outcome::StreamError));
}

#[tokio::test]
async fn malformed_event_at_position_k_and_the_rest_intact() {
    let sim = Sim::start();
    for (req, family) in [
        (sim.openai(chat_body("sim-gpt", true)), "openai"),
        (
            sim.anthropic(messages_body("sim-claude", true)),
            "anthropic",
        ),
    ] {
        let (text, err) = stream_with_fault(req, "malformed_event:at=3").await;
        assert!(err.is_none());
        let events = parse_sse(&text);
        let bad: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.json().is_none() && e.data != "[DONE]")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(bad, vec![3], "{family}");
    }
}

#[tokio::test]
async fn missing_done_ends_cleanly_with_a_complete_answer() {
    let sim = Sim::start();
    let (text, err) =
        stream_with_fault(sim.openai(chat_body("sim-gpt", true)), "missing_done").await;
    assert!(err.is_none());
    let events = parse_sse(&text);
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    assert_eq!(
        events.last().unwrap().json().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(openai_stream_text(&events).ends_with("End of answer."));

    let (text, _) = stream_with_fault(
        sim.anthropic(messages_body("sim-claude", true)),
        "missing_done",
    )
    .await;
    let events = parse_sse(&text);
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_delta")
    );
}

#[tokio::test]
async fn broken_json_and_empty_content_in_streams() {
    let sim = Sim::start();
    let (text, _) = stream_with_fault(sim.openai(chat_body("sim-gpt", true)), "broken_json").await;
    assert!(parse_sse(&text)[1].json().is_none());
    let (text, _) =
        stream_with_fault(sim.openai(chat_body("sim-gpt", true)), "empty_content").await;
    let events = parse_sse(&text);
    assert_eq!(openai_stream_text(&events), "");
    assert_eq!(events.last().unwrap().data, "[DONE]");
}

#[tokio::test]
async fn token_rate_paces_the_stream() {
    let sim = Sim::start();
    let mut body = chat_body("sim-gpt", true);
    body["max_tokens"] = Value::from(6);
    let start = Instant::now();
    let (text, _) = read_stream(
        sim.openai(body)
            .header("x-sim-token-rate", "20")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        openai_stream_text(&parse_sse(&text))
            .split_whitespace()
            .count(),
        6
    );
    // Five gaps of 50 ms between six tokens.
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_logged() {
    let sim = Sim::start();
    let mut r = sim
        .openai(chat_body("sim-gpt", true))
        .header("x-sim-token-rate", "20")
        .send()
        .await
        .unwrap();
    r.chunk().await.unwrap();
    drop(r);
    let log = sim.settled_attempts(None).await;
    assert_eq!(log[0].outcome, Outcome::ClientGone);
}

#[tokio::test]
async fn a_cut_placed_past_the_last_token_still_drops_the_terminator() {
    let sim = Sim::start();
    let r = sim
        .openai(chat_body("sim-gpt", true))
        .header("x-sim-fault", "stream_cut:after=1000")
        .send()
        .await
        .unwrap();
    let (text, err) = read_stream(r).await;
    assert!(err.is_some());
    let events = parse_sse(&text);
    assert!(openai_stream_text(&events).ends_with("End of answer."));
    assert!(events.iter().all(|e| e.data != "[DONE]"));
    assert!(
        events
            .iter()
            .filter_map(|e| e.json())
            .all(|e| e["choices"][0]["finish_reason"].is_null())
    );
}

#[tokio::test]
async fn reasoning_models_think_before_they_answer_in_both_formats() {
    let sim = crate::support::Sim::start();
    // OpenAI-compatible: reasoning_content deltas, paced, then the answer's content.
    let r = sim
        .openai(crate::support::chat_body("sim-gpt-reasoner", true))
        .header("x-sim-thinking", "400ms/100ms")
        .send()
        .await
        .unwrap();
    let (text, err) = crate::support::read_stream(r).await;
    assert!(err.is_none());
    let events = crate::support::parse_sse(&text);
    let deltas: Vec<serde_json::Value> = events
        .iter()
        .filter_map(|e| e.json())
        .map(|v| v["choices"][0]["delta"].clone())
        .collect();
    let thinking = deltas
        .iter()
        .filter(|d| d["reasoning_content"].is_string())
        .count();
    assert_eq!(thinking, 4, "one delta per 100 ms of 400 ms: {text}");
    let first_content = deltas
        .iter()
        .position(|d| d["content"].as_str().is_some_and(|c| !c.is_empty()))
        .unwrap();
    let last_thought = deltas
        .iter()
        .rposition(|d| d["reasoning_content"].is_string())
        .unwrap();
    assert!(last_thought < first_content, "thinking comes first");
    assert!(crate::support::openai_stream_text(&events).ends_with("End of answer."));
    // Anthropic: a thinking block with its signature, then the text block.
    let r = sim
        .anthropic(crate::support::messages_body("sim-claude-thinker", true))
        .header("x-sim-thinking", "300ms/100ms")
        .send()
        .await
        .unwrap();
    let (text, _) = crate::support::read_stream(r).await;
    let events = crate::support::parse_sse(&text);
    let types: Vec<String> = events
        .iter()
        .filter_map(|e| e.json())
        .map(|v| {
            let t = v["type"].as_str().unwrap_or("").to_owned();
            match v["delta"]["type"]
                .as_str()
                .or(v["content_block"]["type"].as_str())
            {
                Some(d) => format!("{t}:{d}"),
                None => t,
            }
        })
        .collect();
    assert_eq!(types[1], "content_block_start:thinking", "{types:?}");
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "content_block_delta:thinking_delta")
            .count(),
        3
    );
    let signature = types
        .iter()
        .position(|t| t == "content_block_delta:signature_delta")
        .unwrap();
    assert_eq!(
        types[signature + 2],
        "content_block_start:text",
        "{types:?}"
    );
    assert!(crate::support::anthropic_stream_text(&events).ends_with("End of answer."));
    // Unstreamed: the reasoning in the answer, after the thinking time.
    let v: serde_json::Value = sim
        .openai(crate::support::chat_body("sim-gpt-reasoner", false))
        .header("x-sim-thinking", "200ms/100ms")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["choices"][0]["message"]["reasoning_content"]
            .as_str()
            .is_some_and(|r| r.contains("step 2"))
    );
    let v: serde_json::Value = sim
        .anthropic(crate::support::messages_body("sim-claude-thinker", false))
        .header("x-sim-thinking", "200ms/100ms")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["type"], "thinking");
    assert_eq!(v["content"][1]["type"], "text");
}
