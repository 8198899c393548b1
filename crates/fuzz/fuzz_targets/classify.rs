//! Classification of a whole upstream response: its status, headers and body as an error
//! (`classify::status`), the wait it asks for (`classify::retry_after`), the error a 200 may
//! carry (`classify::embedded_error`), and a 200 body read as the answer of every family and
//! operation (`classify::success_body`).
//!
//! Input: a response as `curl -i` prints it (`HTTP/1.1 429 …`, header lines, a blank line, the
//! body); see `plumb_fuzz::response`.
//!
//! Checked besides panics: a failure keeps the status it was given, and no wait exceeds
//! `classify::MAX_RETRY_AFTER`, whatever the clock says.

#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use plumb_fuzz::{NOW_MS, response};
use plumb_sidecar::classify::{self, MAX_RETRY_AFTER};
use plumb_sidecar::event::ProviderError;
use plumb_sidecar::payload::{Api, Operation};

fuzz_target!(|data: &[u8]| {
    let r = response(data);
    let failure = classify::status(r.status, &r.headers, r.body);
    assert_eq!(failure.status, Some(r.status));
    assert!(failure.retry_after.is_none_or(|d| d <= MAX_RETRY_AFTER));
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(NOW_MS as u64);
    for at in [SystemTime::UNIX_EPOCH, now, SystemTime::now()] {
        let wait = classify::retry_after(&r.headers, at);
        assert!(wait.is_none_or(|d| d <= MAX_RETRY_AFTER), "{wait:?}");
    }
    let _ = ProviderError::from_body(r.body);
    let embedded = classify::embedded_error(r.body);
    assert_eq!(embedded.status, Some(200));
    for (api, op) in [
        (Api::Openai, Operation::Chat),
        (Api::Openai, Operation::Embeddings),
        (Api::Anthropic, Operation::Chat),
        (Api::Anthropic, Operation::Embeddings),
        (Api::Gemini, Operation::Chat),
        (Api::Bedrock, Operation::Chat),
    ] {
        let _ = classify::success_body(api, op, r.body);
    }
});
