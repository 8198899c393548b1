use serde_json::{Map, Value};

use super::*;
use crate::payload::{Api, ClientRequest, Needs, Operation};

fn reading(body: &str) -> Reading {
    read(Api::Openai, body).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn written(body: &str, model: &str, usage: bool) -> String {
    String::from_utf8(reading(body).layout.write(body.as_bytes(), model, usage))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The oracle: what the sidecar read from the body built into a tree, before it read the
/// body in one pass instead.
fn tree_needs(api: Api, body: &Map<String, Value>, len: usize) -> Needs {
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let json_schema = match api {
        Api::Openai => {
            body.get("response_format")
                .and_then(|f| f.get("type"))
                .and_then(Value::as_str)
                == Some("json_schema")
        }
        Api::Anthropic => body.get("output_format").is_some(),
        Api::Responses => {
            body.get("text")
                .and_then(|t| t.pointer("/format/type"))
                .and_then(Value::as_str)
                == Some("json_schema")
        }
        Api::Gemini | Api::Bedrock => false,
    };
    let messages = match api {
        Api::Openai | Api::Anthropic => body.get("messages").and_then(Value::as_array),
        // A string input has no images; message items may have `input_image` parts.
        Api::Responses => body.get("input").and_then(Value::as_array),
        Api::Gemini | Api::Bedrock => None,
    };
    let vision = messages.is_some_and(|ms| {
        ms.iter().any(|m| {
            m.get("content")
                .and_then(Value::as_array)
                .is_some_and(|parts| {
                    parts.iter().any(|p| {
                        matches!(
                            p.get("type").and_then(Value::as_str),
                            Some("image_url" | "image" | "input_image")
                        )
                    })
                })
        })
    });
    let prefill = api == Api::Anthropic
        && messages
            .and_then(|ms| ms.last())
            .and_then(|m| m.get("role"))
            .and_then(Value::as_str)
            == Some("assistant");
    let max_output = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64));
    Needs {
        tools,
        json_schema,
        vision,
        prefill,
        ..Needs::default()
    }
    .sized(len, max_output)
}

#[test]
fn a_body_reads_as_its_tree_read() {
    let bodies = [
        (
            Api::Openai,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        (
            Api::Openai,
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":9,"max_tokens":3,"tools":[{"type":"function"}],"response_format":{"type":"json_schema","json_schema":{}},"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"u"}}]}]}"#,
        ),
        (
            Api::Openai,
            r#"{"model":"m","stream":"yes","stream_options":{"include_usage":1},"max_tokens":-1,"tools":[],"response_format":{"type":"json_object"},"messages":[1,"s",null,{"content":{"type":"image_url"}},{"content":[null,{"type":7}]}]}"#,
        ),
        (
            Api::Openai,
            r#"{"model":"m","messages":{"role":"user"},"tools":{},"max_tokens":1e3,"max_output_tokens":5}"#,
        ),
        (
            Api::Anthropic,
            r#"{"model":"m","max_tokens":5,"output_format":null,"messages":[{"role":"user","content":[{"type":"image","source":{}}]},{"role":"assistant","content":"The"}]}"#,
        ),
        (
            Api::Anthropic,
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"assistant"},{"role":"user","content":"x"}],"role":"assistant"}"#,
        ),
        (Api::Anthropic, r#"{"model":"m","messages":[]}"#),
        (
            Api::Responses,
            r#"{"model":"m","input":"hi","text":{"format":{"type":"json_schema","schema":{}}},"max_output_tokens":40}"#,
        ),
        (
            Api::Responses,
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"u"}]}],"text":{"format":"json_schema"}}"#,
        ),
        (
            Api::Openai,
            r#"{"model":"m","tools":[1],"tools":[],"messages":[{"role":"user","content":[{"type":"image_url"}]}],"messages":[]}"#,
        ),
        // The last of a repeated key counts at every level the reading looks at.
        (
            Api::Openai,
            r#"{"model":"m","messages":[{"content":[{"type":"image_url"}],"content":"x"},{"content":[{"type":"image","type":"text"},"s",[{"type":"image"}]]}]}"#,
        ),
        (
            Api::Anthropic,
            r#"{"model":"m","messages":[{"role":"assistant","role":"user"}],"output_format":{"type":"json_schema"}}"#,
        ),
        (
            Api::Anthropic,
            r#"{"model":"m","messages":[{"role":"user"},{"role":"assistant"},7]}"#,
        ),
        (
            Api::Openai,
            r#"{"model":"m","response_format":{"type":"json_schema","type":"text"},"stream_options":{"include_usage":true},"stream_options":null}"#,
        ),
        (
            Api::Responses,
            r#"{"model":"m","text":{"format":{"type":"json_schema"},"format":{"type":"text"}},"messages":[{"content":[{"type":"image_url"}]}]}"#,
        ),
        (
            Api::Responses,
            r#"{"model":"m","text":{"format":{"type":"text","type":"json_schema"}},"input":[{"type":"message","content":[{"type":"input_text","text":"\u00e9"},{"type":"in\u0070ut_image"}]}]}"#,
        ),
    ];
    for (api, body) in bodies {
        let tree: Map<String, Value> = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        let r = ClientRequest::parse(api, Operation::Chat, body.as_bytes())
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(r.needs, tree_needs(api, &tree, body.len()), "{body}");
        assert_eq!(
            r.stream,
            tree.get("stream").and_then(Value::as_bool).unwrap_or(false),
            "{body}"
        );
        assert_eq!(
            r.include_usage(),
            tree.get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            "{body}"
        );
        assert_eq!(r.body(), &tree, "{body}");
    }
}

#[test]
fn the_model_is_put_in_place_and_every_other_byte_is_the_clients() {
    let body = "{ \"messages\": [{\"role\": \"user\", \"content\": \"h\\u00e9\"}],\n  \"model\" : \"alias\", \"temperature\": 1.50 }\n";
    assert_eq!(
        written(body, "up\"stream", false),
        "{ \"messages\": [{\"role\": \"user\", \"content\": \"h\\u00e9\"}],\n  \"model\" : \"up\\\"stream\", \"temperature\": 1.50 }\n"
    );
}

#[test]
fn members_it_lacks_are_added_at_the_end() {
    assert_eq!(
        written("{}", "m", true),
        r#"{"model":"m","stream_options":{"include_usage":true}}"#
    );
    assert_eq!(
        written(r#"{"stream":true} "#, "m", true),
        r#"{"stream":true,"model":"m","stream_options":{"include_usage":true}} "#
    );
    assert_eq!(
        written(r#"{"model":"a","stream_options":{"x":1}}"#, "m", false),
        r#"{"model":"m","stream_options":{"x":1}}"#
    );
    assert_eq!(
        written(r#"{"stream_options":{"x":1},"model":"a"}"#, "m", true),
        r#"{"stream_options":{"include_usage":true},"model":"m"}"#
    );
}

#[test]
fn a_repeated_key_is_replaced_everywhere_and_read_from_its_last() {
    let body = r#"{"model":"a","n":1,"model":"b"}"#;
    assert_eq!(
        written(body, "m", false),
        r#"{"model":"m","n":1,"model":"m"}"#
    );
    assert_eq!(reading(body).model.as_deref(), Some("b"));
}

#[test]
fn values_are_read_as_a_map_reads_them() {
    let body = r#"{"mo\u0064el":"m\"1","stream":true,"max_tokens":7,"stream_options":{"include_usage":true,"include_usage":false}}"#;
    let r = reading(body);
    assert_eq!(r.model.as_deref(), Some("m\"1"));
    assert_eq!((r.stream, r.include_usage), (Some(true), false));
    assert_eq!(r.needs.max_output, Some(7));
    // A number the tree holds as a float or a negative is not a limit; the first of the
    // limits that is one counts.
    for (limits, max) in [
        (r#""max_tokens":7.0"#, None),
        (r#""max_tokens":-1"#, None),
        (r#""max_tokens":"7""#, None),
        (r#""max_tokens":1,"max_completion_tokens":2"#, Some(2)),
        (r#""max_output_tokens":3,"max_tokens":null"#, Some(3)),
    ] {
        let body = format!(r#"{{"model":"m",{limits}}}"#);
        assert_eq!(reading(&body).needs.max_output, max, "{body}");
    }
    let odd = reading(r#"{"model":7,"stream":"yes","stream_options":[true]}"#);
    assert_eq!(
        (odd.model, odd.stream, odd.include_usage),
        (None, None, false)
    );
}

#[test]
fn only_a_json_object_is_a_body() {
    let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
    for bad in [
        "[1]",
        "\"s\"",
        "{",
        r#"{"a":1} x"#,
        r#"{"a":tru}"#,
        r#"{"a":"\x"}"#,
        // What the tree refuses, which skipping a value would let through.
        r#"{"model":"\ud800"}"#,
        r#"{"model":"m","stream_options":{"a":1e400}}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"a":[{"b":1e400}]}"#,
        &deep,
    ] {
        assert!(read(Api::Openai, bad).is_err(), "{bad}");
        assert!(
            serde_json::from_str::<Map<String, Value>>(bad).is_err(),
            "{bad}"
        );
    }
    assert!(read(Api::Openai, " {} ").is_ok_and(|r| !r.layout.any));
}

#[test]
fn serde_jsons_marker_as_a_nested_objects_first_key_is_refused() {
    let marker = r#""$serde_json::private::RawValue""#;
    for nested in [
        format!(r#""x":{{{marker}:"1"}}"#),
        format!(r#""tools":{{{marker}:"[1]"}}"#),
        format!(r#""messages":[{{{marker}:"{{\"role\":\"assistant\"}}"}}]"#),
        format!(r#""messages":[{{"content":[{{{marker}:"{{}}"}}]}}]"#),
        format!(r#""stream_options":{{{marker}:"{{\"include_usage\":true}}"}}"#),
        r#""x":[{"\u0024serde_json::private::RawValue":"1"}]"#.to_owned(),
    ] {
        let body = format!(r#"{{"model":"m",{nested}}}"#);
        let refused = read(Api::Anthropic, &body).map(|_| ()).unwrap_err();
        assert!(
            refused.to_string().contains("reserved"),
            "{body}: {refused}"
        );
    }
    // Anywhere else it is a key like any other, to the tree as to the reading.
    for body in [
        format!(r#"{{{marker}:"1","model":"m"}}"#),
        format!(r#"{{"model":"m","x":{{"a":1,{marker}:"1"}}}}"#),
    ] {
        let tree: Map<String, Value> =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
        assert_eq!(reading(&body).model.as_deref(), Some("m"), "{body}");
        assert_eq!(tree.len(), 2, "{body}");
    }
}

#[test]
fn a_raw_value_nests_as_deep_as_the_tree_allows() {
    // serde's limit is 127 levels, the body's own among them; the values kept as raw JSON
    // (the model, the stream options) are counted by the reading itself.
    for key in ["model", "stream_options", "messages", "other"] {
        for levels in [125, 126, 127] {
            let value = format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
            let body = format!(r#"{{"{key}":{value},"model":"m"}}"#);
            let tree = serde_json::from_str::<Map<String, Value>>(&body);
            assert_eq!(
                read(Api::Openai, &body).is_ok(),
                tree.is_ok(),
                "{key} at {levels} levels"
            );
            assert_eq!(tree.is_ok(), levels <= 126, "{key} at {levels} levels");
        }
    }
}
