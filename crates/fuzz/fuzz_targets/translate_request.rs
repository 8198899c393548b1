//! A client's request, as the sidecar reads and forwards it: `ClientRequest::parse` for both
//! APIs and operations, then the body for a target of every provider kind (translated when the
//! target speaks the other family), a continuation's prefilled body, a repair's, the schema the
//! client asked for compiled, and the route's contract checked with the request in scope.
//!
//! Input: a request body (JSON).
//!
//! Checked besides panics: every body the sidecar would send is itself a request of the
//! target's family that the sidecar's own parser accepts.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use plumb_policy::contract::ToolCall;
use plumb_policy::{Route, Target};
use plumb_sidecar::completion::Collected;
use plumb_sidecar::payload::{Api, ClientRequest, Operation};
use plumb_sidecar::verify;

static ROUTE: LazyLock<Route> = LazyLock::new(plumb_fuzz::route);

/// Checks that `body`, sent to `target` in `family`, reads as a request of that family.
fn sendable(body: &[u8], target: &Target, family: Api, op: Operation) {
    if let Err(e) = ClientRequest::parse(family, op, body) {
        panic!(
            "the body for {} does not read as a request: {e}: {}",
            target.name,
            String::from_utf8_lossy(body)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    for api in [Api::Openai, Api::Anthropic, Api::Responses] {
        for op in [Operation::Chat, Operation::Embeddings] {
            let Ok(req) = ClientRequest::parse(api, op, data) else {
                continue;
            };
            // The client's own words stand in for the answer cut short and the complaint.
            let text = format!("{} \n", req.model);
            let rejected = [
                Collected {
                    text: text.clone(),
                    ..Collected::default()
                },
                Collected {
                    tools: vec![ToolCall {
                        name: req.model.clone(),
                        arguments: text.clone(),
                    }],
                    ..Collected::default()
                },
            ];
            // A client schema the sidecar refuses (`Err`) fails the request before any check.
            if let Ok(schema) = verify::request_schema(&ROUTE, &req) {
                for c in &rejected {
                    let _ = verify::check(&ROUTE, &req, schema.as_ref(), c);
                }
            }
            let _ = (req.include_usage(), req.response_schema(), req.needs);
            let mut requests = vec![req.unstreamed()];
            requests.extend(rejected.iter().map(|c| req.with_repair(c, &req.model)));
            requests.push(req);
            for r in &requests {
                for target in ROUTE.all_targets() {
                    let family = r.family_for(target);
                    if let Ok(body) = r.body_for(target) {
                        sendable(&body, target, family, op);
                    }
                    if let Ok(body) = r.continuation_body_for(target, &text) {
                        sendable(&body, target, family, op);
                    }
                }
            }
        }
    }
});
