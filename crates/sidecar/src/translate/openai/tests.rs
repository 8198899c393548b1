//! OpenAI Chat Completions requests, read into a conversation and written for Anthropic.

use serde_json::{Value, json};

use crate::translate::{
    Conversation, DEFAULT_MAX_TOKENS, Image, JsonFormat, Part, Role, Tool, ToolChoice, Turn,
};

/// An OpenAI request: one user message, plus `fields`.
fn request(fields: Value) -> Value {
    let mut body = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn read(body: &Value) -> Conversation {
    Conversation::from_openai(body.as_object().unwrap()).unwrap()
}

/// OpenAI → conversation → Anthropic.
fn anthropic(body: Value) -> Value {
    Value::Object(read(&body).to_anthropic("claude").unwrap())
}

/// The field named when `body` cannot go to Anthropic.
fn refused(body: Value) -> String {
    Conversation::from_openai(body.as_object().unwrap())
        .and_then(|c| c.to_anthropic("claude"))
        .unwrap_err()
        .field
}

fn text(t: &str) -> Part {
    Part::Text(t.to_owned())
}

#[test]
fn a_lone_user_text_goes_as_a_plain_string_with_the_default_token_limit() {
    assert_eq!(
        anthropic(request(json!({}))),
        json!({
            "model": "claude",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": DEFAULT_MAX_TOKENS,
        })
    );
}

#[test]
fn system_and_developer_messages_become_one_system_prompt() {
    let body = request(json!({"messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
        {"role": "user", "content": "hi"},
    ]}));
    assert_eq!(read(&body).system, ["Be terse.", "Use tools."]);
    assert_eq!(anthropic(body)["system"], "Be terse.\n\nUse tools.");
}

#[test]
fn text_parts_and_images_become_blocks() {
    let body = request(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Look:"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png", "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "data:image/png,raw"}},
    ]}]}));
    assert_eq!(
        read(&body).turns[0].parts,
        [
            text("Look:"),
            Part::Image(Image::Base64 {
                media_type: "image/png".into(),
                data: "iVBO".into(),
            }),
            Part::Image(Image::Url("https://x.test/cat.png".into())),
            // Not base64: passed on as a URL.
            Part::Image(Image::Url("data:image/png,raw".into())),
        ]
    );
    assert_eq!(
        anthropic(body)["messages"][0]["content"],
        json!([
            {"type": "text", "text": "Look:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}},
            {"type": "image", "source": {"type": "url", "url": "data:image/png,raw"}},
        ])
    );
}

#[test]
fn tool_definitions_become_tools_with_an_input_schema() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    let body = request(json!({"tools": [
        {"type": "function", "function": {"name": "weather", "description": "By city", "parameters": schema}},
        {"type": "function", "function": {"name": "now"}},
    ]}));
    assert_eq!(
        read(&body).tools,
        [
            Tool {
                name: "weather".into(),
                description: Some("By city".into()),
                schema: schema.clone(),
            },
            Tool {
                name: "now".into(),
                description: None,
                schema: json!({"type": "object", "properties": {}}),
            },
        ]
    );
    assert_eq!(
        anthropic(body)["tools"],
        json!([
            {"name": "weather", "description": "By city", "input_schema": schema},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        ])
    );
}

#[test]
fn assistant_tool_calls_become_tool_use_blocks_with_parsed_arguments() {
    let body = request(json!({"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "now", "arguments": " "}},
        ]},
    ]}));
    assert_eq!(
        read(&body).turns[1],
        Turn {
            role: Role::Assistant,
            parts: vec![
                Part::ToolCall {
                    id: "c1".into(),
                    name: "weather".into(),
                    input: json!({"city": "Paris"}),
                },
                Part::ToolCall {
                    id: "c2".into(),
                    name: "now".into(),
                    input: json!({}),
                },
            ],
        }
    );
    assert_eq!(
        anthropic(body)["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "c2", "name": "now", "input": {}},
        ]})
    );
}

#[test]
fn an_assistant_refusal_is_kept_as_text_after_the_content() {
    let body = request(json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Well.", "refusal": "I cannot."},
    ]}));
    assert_eq!(
        read(&body).turns[1].parts,
        [text("Well."), text("I cannot.")]
    );
}

#[test]
fn tool_messages_become_tool_results_in_the_following_user_turn() {
    let body = request(json!({"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "user", "content": "And tomorrow?"},
    ]}));
    let c = read(&body);
    assert_eq!(c.turns.len(), 3);
    assert_eq!(
        c.turns[2].parts,
        [
            Part::ToolResult {
                id: "c1".into(),
                content: vec![text("18C")],
                is_error: false,
            },
            text("And tomorrow?"),
        ]
    );
    assert_eq!(
        anthropic(body)["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": [{"type": "text", "text": "18C"}]},
            {"type": "text", "text": "And tomorrow?"},
        ]})
    );
}

#[test]
fn tool_choice_modes_and_names_map_to_their_anthropic_spelling() {
    let choice = |c: Value| {
        let body = request(json!({"tool_choice": c}));
        (
            read(&body).tool_choice,
            anthropic(body)["tool_choice"].clone(),
        )
    };
    assert_eq!(
        choice(json!("auto")),
        (Some(ToolChoice::Auto), json!({"type": "auto"}))
    );
    assert_eq!(
        choice(json!("none")),
        (Some(ToolChoice::None), json!({"type": "none"}))
    );
    assert_eq!(
        choice(json!("required")),
        (Some(ToolChoice::Required), json!({"type": "any"}))
    );
    assert_eq!(
        choice(json!({"type": "function", "function": {"name": "weather"}})),
        (
            Some(ToolChoice::Named("weather".into())),
            json!({"type": "tool", "name": "weather"})
        )
    );
    assert_eq!(choice(Value::Null), (None, Value::Null));
}

#[test]
fn parallel_tool_calls_off_disables_parallel_tool_use_even_without_a_tool_choice() {
    let body = request(json!({"parallel_tool_calls": false}));
    assert_eq!(read(&body).parallel_tool_calls, Some(false));
    assert_eq!(
        anthropic(body)["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    let body = request(json!({"parallel_tool_calls": true, "tool_choice": "required"}));
    assert_eq!(anthropic(body)["tool_choice"], json!({"type": "any"}));
}

#[test]
fn a_json_schema_response_format_becomes_an_output_format() {
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
    let body = request(json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "verdict", "schema": schema, "strict": false}}}));
    assert_eq!(
        read(&body).format,
        Some(JsonFormat {
            name: "verdict".into(),
            schema: schema.clone(),
            strict: Some(false),
        })
    );
    assert_eq!(
        anthropic(body)["output_format"],
        json!({"type": "json_schema", "schema": schema})
    );
    let body = request(json!({"response_format": {"type": "json_schema", "json_schema": {}}}));
    assert_eq!(
        read(&body).format,
        Some(JsonFormat {
            name: "answer".into(),
            schema: json!({}),
            strict: None,
        })
    );
}

#[test]
fn a_text_response_format_asks_for_no_structure() {
    let body = request(json!({"response_format": {"type": "text"}}));
    assert_eq!(read(&body).format, None);
    assert_eq!(anthropic(body).get("output_format"), None);
}

#[test]
fn stop_as_a_string_or_a_list_becomes_stop_sequences() {
    let body = request(json!({"stop": "END"}));
    assert_eq!(anthropic(body)["stop_sequences"], json!(["END"]));
    let body = request(json!({"stop": ["A", "B"]}));
    assert_eq!(anthropic(body)["stop_sequences"], json!(["A", "B"]));
}

#[test]
fn max_completion_tokens_wins_over_max_tokens() {
    let limit = |fields: Value| anthropic(request(fields))["max_tokens"].clone();
    assert_eq!(limit(json!({"max_tokens": 10})), 10);
    assert_eq!(
        limit(json!({"max_tokens": 10, "max_completion_tokens": 20})),
        20
    );
    assert_eq!(limit(json!({})), DEFAULT_MAX_TOKENS);
}

#[test]
fn streaming_is_asked_for_and_usage_is_left_to_anthropic() {
    let body = request(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let c = read(&body);
    assert!(c.stream && c.include_usage);
    let out = anthropic(body);
    assert_eq!(out["stream"], true);
    assert_eq!(out.get("stream_options"), None);
    let out = anthropic(request(json!({"stream": false})));
    assert_eq!(out.get("stream"), None);
}

#[test]
fn sampling_and_the_end_user_carry_over() {
    let out = anthropic(request(
        json!({"temperature": 0.5, "top_p": 0.9, "user": "u-1", "n": 1}),
    ));
    assert_eq!(out["temperature"], 0.5);
    assert_eq!(out["top_p"], 0.9);
    assert_eq!(out["metadata"], json!({"user_id": "u-1"}));
}

#[test]
fn a_field_anthropic_lacks_is_refused_by_name_unless_it_is_null() {
    assert_eq!(refused(request(json!({"logprobs": true}))), "logprobs");
    assert_eq!(
        refused(request(json!({"seed": 1, "logprobs": true}))),
        "logprobs"
    );
    let out = anthropic(request(json!({"logprobs": null})));
    assert_eq!(out.get("logprobs"), None);
}

#[test]
fn more_than_one_answer_is_refused() {
    assert_eq!(refused(request(json!({"n": 2}))), "n");
}

#[test]
fn a_stop_that_is_neither_text_nor_a_list_is_refused() {
    assert_eq!(refused(request(json!({"stop": 3}))), "stop");
}

#[test]
fn a_request_without_messages_is_refused() {
    assert_eq!(refused(json!({"model": "gpt"})), "messages");
    assert_eq!(
        refused(json!({"model": "gpt", "messages": "hi"})),
        "messages"
    );
}

#[test]
fn message_errors_name_the_message() {
    let message = |m: Value| {
        refused(request(
            json!({"messages": [{"role": "user", "content": "hi"}, m]}),
        ))
    };
    assert_eq!(
        message(json!({"role": "user", "name": "bob", "content": "hi"})),
        "messages[1].name"
    );
    assert_eq!(message(json!({"content": "hi"})), "messages[1].role");
    assert_eq!(
        message(json!({"role": "function", "content": "hi"})),
        "messages[1].role function"
    );
    assert_eq!(
        message(json!({"role": "user", "content": 3})),
        "messages[1]"
    );
}

#[test]
fn content_part_errors_name_the_message_and_the_part() {
    let part = |p: Value| {
        refused(request(
            json!({"messages": [{"role": "user", "content": [p]}]}),
        ))
    };
    assert_eq!(part(json!({"text": "no type"})), "messages[0]");
    assert_eq!(
        part(json!({"type": "input_audio", "input_audio": {}})),
        "messages[0]: content part input_audio"
    );
    assert_eq!(
        part(json!({"type": "image_url", "image_url": {}})),
        "messages[0].image_url"
    );
    assert_eq!(
        part(
            json!({"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "high"}})
        ),
        "messages[0].image_url.detail"
    );
}

#[test]
fn an_image_in_a_system_message_is_refused() {
    let body = request(json!({"messages": [{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
    ]}]}));
    assert_eq!(refused(body), "messages[0]: images in a system message");
}

#[test]
fn tool_call_errors_name_the_call() {
    let call = |c: Value| {
        refused(request(json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [c]},
        ]})))
    };
    assert_eq!(call(json!({"id": "c1"})), "messages[1].tool_calls[0]");
    assert_eq!(
        call(json!({"id": "c1", "function": {"name": "f", "arguments": "{city"}})),
        "messages[1].tool_calls[0].function.arguments (not JSON)"
    );
}

#[test]
fn tool_definition_errors_name_the_tool() {
    assert_eq!(
        refused(request(
            json!({"tools": [{"type": "custom", "custom": {}}]})
        )),
        "tools[0].type"
    );
    assert_eq!(
        refused(request(json!({"tools": [{"type": "function"}]}))),
        "tools[0].function"
    );
}

#[test]
fn an_unknown_tool_choice_is_refused() {
    assert_eq!(
        refused(request(json!({"tool_choice": "sometimes"}))),
        "tool_choice"
    );
    assert_eq!(
        refused(request(json!({"tool_choice": {"type": "function"}}))),
        "tool_choice"
    );
}

#[test]
fn response_formats_anthropic_lacks_are_refused() {
    assert_eq!(
        refused(request(json!({"response_format": {"type": "json_object"}}))),
        "response_format json_object"
    );
    assert_eq!(
        refused(request(json!({"response_format": {"type": "json_schema"}}))),
        "response_format.json_schema"
    );
}

#[test]
fn what_anthropic_cannot_accept_is_refused_when_writing() {
    let body = request(json!({"messages": [{"role": "assistant", "content": "Hello"}]}));
    assert_eq!(
        refused(body),
        "messages (a conversation that starts with the assistant)"
    );
    assert_eq!(
        refused(request(json!({"temperature": 1.5}))),
        "temperature above 1"
    );
}
