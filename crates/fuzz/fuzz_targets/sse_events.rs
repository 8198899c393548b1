//! An upstream stream, as the sidecar reads it: the SSE reader over arbitrary bytes in arbitrary
//! framings, each event parsed for both families, classified before commit, collected for the
//! contract, and relayed through the translator of every family pair (a continuation after a
//! cut included).
//!
//! Input: one byte that picks the framing (0: whole) and whether an OpenAI client asked for
//! usage, then the stream's bytes.
//!
//! Checked besides panics: the framing never changes the events read; a collector fed events
//! one by one agrees with one fed the whole bytes; and what a translator sends the client reads
//! back as the client's own family without a single event that is not JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plumb_fuzz::{CREATED, frames};
use plumb_sidecar::classify;
use plumb_sidecar::event::{Event, RawEvent, SseReader};
use plumb_sidecar::payload::Api;
use plumb_sidecar::translate::events::Translator;
use plumb_sidecar::translate::responses::Echo;
use plumb_sidecar::verify::StreamCollector;

const FAMILIES: [Api; 3] = [Api::Openai, Api::Anthropic, Api::Responses];

/// Every whole event of `frames`, read as the relay reads them, and the bytes left over.
fn read(frames: &[&[u8]]) -> (Vec<RawEvent>, usize) {
    let mut reader = SseReader::default();
    let mut out = Vec::new();
    for f in frames {
        reader.push(f);
        while let Some(e) = reader.next_event() {
            out.push(e);
        }
        let _ = reader.oversized();
    }
    (out, reader.pending())
}

/// Relays `events` (each raw event with its reading as the upstream's family) through `t`; an
/// error event or garbage is skipped, as `malformedEvents: skip` does. Checks what the client
/// gets.
fn relay(
    t: &mut Translator,
    client: Api,
    events: &[(&RawEvent, &Event)],
    finish: bool,
    numbered: bool,
) {
    let mut out = Vec::new();
    for (raw, event) in events {
        if let Ok(bytes) = t.event(raw, event) {
            out.extend(bytes);
        }
    }
    let _ = t.resumable();
    let _ = t.text();
    if finish && let Ok(bytes) = t.finish() {
        out.extend(bytes);
    }
    let mut reader = SseReader::default();
    for b in &out {
        reader.push(b);
    }
    let mut seq = 0u64;
    while let Some(raw) = reader.next_event() {
        let event = Event::parse(client, &raw);
        assert!(
            event != Event::Malformed,
            "the client was sent an event that is not JSON: {raw:?}"
        );
        // A Responses stream Plumb writes is numbered from 0 without a gap.
        if numbered {
            let v: serde_json::Value = serde_json::from_str(&raw.data).unwrap_or_default();
            assert_eq!(v["sequence_number"], serde_json::json!(seq), "{raw:?}");
            seq += 1;
        }
    }
}

/// The translator from `upstream` to `client`; `None` for a pair that never meets (only a
/// Responses client is sent a Responses upstream's events).
fn translator(upstream: Api, client: Api, include_usage: bool) -> Option<Translator> {
    match (upstream, client) {
        (_, Api::Responses) => Some(Translator::to_responses(upstream, Echo::default(), CREATED)),
        (Api::Responses, Api::Openai | Api::Anthropic) => None,
        (
            Api::Openai | Api::Anthropic | Api::Gemini | Api::Bedrock,
            Api::Openai | Api::Anthropic,
        ) => Some(Translator::new(upstream, client, include_usage, CREATED)),
        // No client speaks Gemini or Bedrock.
        (_, Api::Gemini | Api::Bedrock) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let framed = read(&frames(stream, seed));
    assert!(
        framed == read(&[stream]),
        "the framing changed the events read"
    );
    let events = framed.0;
    let include_usage = seed & 1 == 1;
    let parsed = FAMILIES.map(|family| {
        events
            .iter()
            .map(|raw| Event::parse(family, raw))
            .collect::<Vec<_>>()
    });
    let read_as = |family: Api| -> Vec<(&RawEvent, &Event)> {
        let i = FAMILIES.iter().position(|f| *f == family).unwrap_or(0);
        events.iter().zip(&parsed[i]).collect()
    };
    let cut = events.len() / 2;
    for upstream in FAMILIES {
        let stream_of = read_as(upstream);
        let mut collector = StreamCollector::new(upstream);
        for (raw, event) in &stream_of {
            let _ = classify::stream_event(event, raw);
            let _ = (event.usage(), event.is_terminal());
            collector.event(event);
        }
        let mut whole = StreamCollector::new(upstream);
        whole.push_bytes(stream);
        assert_eq!(collector.collected(), whole.collected());
        for client in FAMILIES {
            let Some(mut t) = translator(upstream, client, include_usage) else {
                continue;
            };
            let numbered = matches!(t, Translator::ToResponses(_));
            relay(&mut t, client, &stream_of, true, numbered);
            // Cut half-way, and continued by a target of a family that can continue.
            let Some(mut t) = translator(upstream, client, include_usage) else {
                continue;
            };
            relay(&mut t, client, &stream_of[..cut], false, false);
            if t.resumable() {
                for family in [Api::Openai, Api::Anthropic] {
                    let mut c = t.continued(family, include_usage, CREATED);
                    relay(&mut c, client, &read_as(family)[cut..], true, false);
                }
            }
        }
    }
});
