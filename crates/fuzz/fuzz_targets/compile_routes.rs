//! Route compilation from what a route author (or a confused tool) writes: a standalone routes
//! file (`plumb_policy::parse_routes_file`, multi-document YAML), and an `LlmRoute` spec as JSON
//! (`plumb_policy::compile`), then as the sidecar receives it from the operator
//! (`plumb_sidecar::control::compile` of a snapshot carrying the spec's JSON). A compiled
//! contract then checks a few answers, as the sidecar does on the request path: rules are
//! evaluated there, not when they compile.
//!
//! Input: text, read both as a routes file and as a spec in JSON.
//!
//! Checked besides panics: a spec that compiles still compiles after the trip through JSON the
//! operator sends it on (what the operator accepts, its sidecars accept).

#![no_main]

use libfuzzer_sys::fuzz_target;
use plumb_api::LlmRouteSpec;
use plumb_policy::Route;
use plumb_policy::contract::{Answer, ToolCall};
use plumb_proto::v1;
use serde_json::json;

/// Checks answers of every shape against the route's contract.
fn check(route: &Route) {
    let Some(contract) = &route.contract else {
        return;
    };
    let request =
        json!({"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
    let Some(request) = request.as_object() else {
        return;
    };
    let tools = [ToolCall {
        name: "weather".to_owned(),
        arguments: r#"{"city": "Paris"}"#.to_owned(),
    }];
    for (text, tools) in [
        (
            r#"{"score": 0.5, "answer": "yes", "category": "bug", "priority": 2}"#,
            &[][..],
        ),
        ("not json at all", &[][..]),
        ("", &tools[..]),
    ] {
        let _ = contract.check(&Answer {
            text,
            tools,
            request,
            request_schema: None,
        });
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(set) = plumb_policy::parse_routes_file(&text) {
        for model in set.models() {
            assert!(set.lookup(model).is_some(), "{model} has no route");
        }
        for route in set.routes() {
            check(route);
        }
    }
    let Ok(spec) = serde_json::from_slice::<LlmRouteSpec>(data) else {
        return;
    };
    let Ok(route) = plumb_policy::compile("fuzz", "route", &spec) else {
        return;
    };
    check(&route);
    let spec_json = serde_json::to_string(&spec).unwrap_or_else(|e| panic!("{e}"));
    let sent: LlmRouteSpec = serde_json::from_str(&spec_json)
        .unwrap_or_else(|e| panic!("the operator's JSON does not read back: {e}: {spec_json}"));
    if let Err(e) = plumb_policy::compile("fuzz", "route", &sent) {
        panic!("compiled, but not after the trip through JSON: {e}: {spec_json}");
    }
    let _ = plumb_sidecar::control::compile(&v1::Snapshot {
        version: "1".to_owned(),
        namespace: "fuzz".to_owned(),
        routes: vec![v1::Route {
            name: "route".to_owned(),
            generation: 1,
            spec_json,
        }],
        credentials: Vec::new(),
    });
});
