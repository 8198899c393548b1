//! Anthropic Messages requests, read into a conversation and written for OpenAI.

use serde_json::{Value, json};

use crate::translate::{Conversation, Image, JsonFormat, Part, Role, Tool, ToolChoice, Turn};

/// An Anthropic request: one user message and a token limit, plus `fields`.
fn request(fields: Value) -> Value {
    let mut body = json!({
        "model": "claude",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
    });
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn read(body: &Value) -> Conversation {
    Conversation::from_anthropic(body.as_object().unwrap()).unwrap()
}

/// Anthropic → conversation → OpenAI.
fn openai(body: Value) -> Value {
    Value::Object(read(&body).to_openai("gpt").unwrap())
}

/// The field named when `body` cannot go to OpenAI.
fn refused(body: Value) -> String {
    Conversation::from_anthropic(body.as_object().unwrap())
        .and_then(|c| c.to_openai("gpt"))
        .unwrap_err()
        .field
}

/// A request whose only message is the user's, with these content blocks.
fn user_blocks(blocks: Value) -> Value {
    request(json!({"messages": [{"role": "user", "content": blocks}]}))
}

fn text(t: &str) -> Part {
    Part::Text(t.to_owned())
}

#[test]
fn a_lone_user_text_goes_as_a_plain_string_with_its_token_limit() {
    assert_eq!(
        openai(request(json!({}))),
        json!({
            "model": "gpt",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 100,
        })
    );
}

#[test]
fn a_system_prompt_as_a_string_or_text_blocks_becomes_one_system_message() {
    let system = |s: Value| openai(request(json!({"system": s})))["messages"][0].clone();
    assert_eq!(
        system(json!("Be terse.")),
        json!({"role": "system", "content": "Be terse."})
    );
    let blocks =
        json!([{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Use tools."}]);
    assert_eq!(
        read(&request(json!({"system": blocks}))).system,
        ["Be terse.", "Use tools."]
    );
    assert_eq!(
        system(blocks),
        json!({"role": "system", "content": "Be terse.\n\nUse tools."})
    );
}

#[test]
fn text_blocks_and_images_become_content_parts() {
    let body = user_blocks(json!([
        {"type": "text", "text": "Look:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}},
        {"type": "image", "source": {"type": "base64", "data": "iVBO"}},
    ]));
    assert_eq!(
        read(&body).turns[0].parts,
        [
            text("Look:"),
            Part::Image(Image::Base64 {
                media_type: "image/jpeg".into(),
                data: "/9j/".into(),
            }),
            Part::Image(Image::Url("https://x.test/cat.png".into())),
            // No media type: PNG.
            Part::Image(Image::Base64 {
                media_type: "image/png".into(),
                data: "iVBO".into(),
            }),
        ]
    );
    assert_eq!(
        openai(body)["messages"][0]["content"],
        json!([
            {"type": "text", "text": "Look:"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        ])
    );
}

#[test]
fn tool_definitions_become_function_tools_with_parameters() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    let body = request(json!({"tools": [
        {"name": "weather", "description": "By city", "input_schema": schema},
        {"type": "custom", "name": "now"},
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
        openai(body)["tools"],
        json!([
            {"type": "function", "function": {"name": "weather", "description": "By city", "parameters": schema}},
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
        ])
    );
}

#[test]
fn tool_use_blocks_become_tool_calls_with_json_arguments() {
    let body = request(json!({"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "t2", "name": "now"},
        ]},
    ]}));
    assert_eq!(
        read(&body).turns[1],
        Turn {
            role: Role::Assistant,
            parts: vec![
                text("Let me check."),
                Part::ToolCall {
                    id: "t1".into(),
                    name: "weather".into(),
                    input: json!({"city": "Paris"}),
                },
                Part::ToolCall {
                    id: "t2".into(),
                    name: "now".into(),
                    input: json!({}),
                },
            ],
        }
    );
    assert_eq!(
        openai(body)["messages"][1],
        json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "t2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
        ]})
    );
}

#[test]
fn an_assistant_turn_of_only_tool_calls_has_null_content() {
    let body = request(json!({"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "now", "input": {}}]},
    ]}));
    assert_eq!(openai(body)["messages"][1]["content"], Value::Null);
}

#[test]
fn tool_results_become_tool_messages_before_the_rest_of_the_user_turn() {
    let body = user_blocks(json!([
        {"type": "text", "text": "Thanks."},
        {"type": "tool_result", "tool_use_id": "t1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "t2", "content": [
            {"type": "text", "text": "no "},
            {"type": "text", "text": "clock"},
        ], "is_error": true},
    ]));
    assert_eq!(
        read(&body).turns[0].parts[2],
        Part::ToolResult {
            id: "t2".into(),
            content: vec![text("no "), text("clock")],
            is_error: true,
        }
    );
    assert_eq!(
        openai(body)["messages"],
        json!([
            {"role": "tool", "tool_call_id": "t1", "content": "18C"},
            {"role": "tool", "tool_call_id": "t2", "content": "Error: no clock"},
            {"role": "user", "content": "Thanks."},
        ])
    );
}

#[test]
fn tool_choice_types_map_to_their_openai_spelling() {
    let choice = |c: Value| {
        let body = request(json!({"tool_choice": c}));
        (read(&body).tool_choice, openai(body)["tool_choice"].clone())
    };
    assert_eq!(
        choice(json!({"type": "auto"})),
        (Some(ToolChoice::Auto), json!("auto"))
    );
    assert_eq!(
        choice(json!({"type": "none"})),
        (Some(ToolChoice::None), json!("none"))
    );
    assert_eq!(
        choice(json!({"type": "any"})),
        (Some(ToolChoice::Required), json!("required"))
    );
    assert_eq!(
        choice(json!({"type": "tool", "name": "weather"})),
        (
            Some(ToolChoice::Named("weather".into())),
            json!({"type": "function", "function": {"name": "weather"}})
        )
    );
}

#[test]
fn disabling_parallel_tool_use_turns_parallel_tool_calls_off() {
    let body = request(json!({"tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}));
    let out = openai(body);
    assert_eq!(out["tool_choice"], "auto");
    assert_eq!(out["parallel_tool_calls"], false);
    let body =
        request(json!({"tool_choice": {"type": "auto", "disable_parallel_tool_use": false}}));
    assert_eq!(openai(body).get("parallel_tool_calls"), None);
}

#[test]
fn an_output_format_becomes_a_strict_json_schema_named_answer() {
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
    let body = request(json!({"output_format": {"type": "json_schema", "schema": schema}}));
    assert_eq!(
        read(&body).format,
        Some(JsonFormat {
            name: "answer".into(),
            schema: schema.clone(),
            strict: Some(true),
        })
    );
    assert_eq!(
        openai(body)["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}})
    );
}

#[test]
fn stop_sequences_become_stop() {
    let out = openai(request(json!({"stop_sequences": ["END", "STOP"]})));
    assert_eq!(out["stop"], json!(["END", "STOP"]));
}

#[test]
fn streaming_always_asks_openai_for_usage() {
    let out = openai(request(json!({"stream": true})));
    assert_eq!(out["stream"], true);
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    let out = openai(request(json!({"stream": false})));
    assert_eq!(out.get("stream"), None);
    assert_eq!(out.get("stream_options"), None);
}

#[test]
fn sampling_and_the_end_user_carry_over() {
    let out = openai(request(json!({
        "temperature": 0.5,
        "top_p": 0.9,
        "metadata": {"user_id": "u-1"},
    })));
    assert_eq!(out["temperature"], 0.5);
    assert_eq!(out["top_p"], 0.9);
    assert_eq!(out["user"], "u-1");
}

#[test]
fn a_field_openai_lacks_is_refused_by_name_unless_it_is_null() {
    assert_eq!(refused(request(json!({"top_k": 5}))), "top_k");
    assert_eq!(openai(request(json!({"top_k": null}))).get("top_k"), None);
    assert_eq!(
        refused(request(
            json!({"metadata": {"user_id": "u", "tier": "gold"}})
        )),
        "metadata"
    );
}

#[test]
fn a_system_prompt_other_than_text_is_refused() {
    assert_eq!(refused(request(json!({"system": 3}))), "system");
    assert_eq!(
        refused(request(
            json!({"system": [{"type": "image", "source": {}}]})
        )),
        "system"
    );
}

#[test]
fn a_request_without_messages_is_refused() {
    assert_eq!(
        refused(json!({"model": "claude", "max_tokens": 5})),
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
        message(json!({"role": "system", "content": "hi"})),
        "messages[1].role"
    );
    assert_eq!(message(json!({"role": "user"})), "messages[1].content");
    assert_eq!(
        message(json!({"role": "user", "content": null})),
        "messages[1].content"
    );
}

#[test]
fn block_errors_name_the_message_and_the_block() {
    let block = |b: Value| refused(user_blocks(json!([{"type": "text", "text": "hi"}, b])));
    assert_eq!(block(json!({"text": "no type"})), "messages[0].content[1]");
    assert_eq!(
        block(json!({"type": "document", "source": {}})),
        "messages[0].content[1]: document block"
    );
    assert_eq!(
        block(json!({"type": "image"})),
        "messages[0].content[1].source"
    );
    assert_eq!(
        block(json!({"type": "image", "source": {"type": "file", "file_id": "f"}})),
        "messages[0].content[1].source"
    );
}

#[test]
fn tool_result_errors_name_the_tool_result_block() {
    let result = |content: Value| {
        refused(user_blocks(json!([
            {"type": "tool_result", "tool_use_id": "t1", "content": content},
        ])))
    };
    assert_eq!(result(json!(3)), "messages[0].content[0].content");
    assert_eq!(
        result(json!([{"type": "search_result"}])),
        "messages[0].content[0]: search_result block"
    );
}

#[test]
fn server_tools_are_refused() {
    let body = request(json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
    assert_eq!(refused(body), "tools[0] (a server tool)");
}

#[test]
fn an_unknown_tool_choice_is_refused() {
    assert_eq!(
        refused(request(json!({"tool_choice": {"type": "sometimes"}}))),
        "tool_choice"
    );
    assert_eq!(
        refused(request(json!({"tool_choice": {"type": "tool"}}))),
        "tool_choice.name"
    );
}

#[test]
fn an_output_format_other_than_json_schema_is_refused() {
    assert_eq!(
        refused(request(json!({"output_format": {"type": "regex"}}))),
        "output_format"
    );
}

#[test]
fn what_openai_cannot_accept_is_refused_when_writing() {
    let image = json!({"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}});
    assert_eq!(
        refused(user_blocks(json!([
            {"type": "tool_result", "tool_use_id": "t1", "content": [image]},
        ]))),
        "tool_result content other than text"
    );
    assert_eq!(
        refused(user_blocks(json!([
            {"type": "tool_use", "id": "t1", "name": "now", "input": {}},
        ]))),
        "tool_use in a user turn"
    );
    assert_eq!(
        refused(request(json!({"messages": [
            {"role": "user", "content": "Draw."},
            {"role": "assistant", "content": [image]},
        ]}))),
        "images or tool results in an assistant turn"
    );
}

#[test]
fn thinking_is_asked_only_where_anthropic_takes_it() {
    let thinking = |c: &Conversation| {
        c.to_anthropic("m")
            .ok()
            .and_then(|b| b.get("thinking").cloned())
    };
    let mut c = Conversation {
        reasoning_effort: Some("medium".into()),
        max_tokens: Some(1000),
        ..Conversation::default()
    };
    c.say(Role::User, vec![text("hi")]);
    assert_eq!(
        thinking(&c),
        Some(json!({"type": "enabled", "budget_tokens": 4096}))
    );
    assert_eq!(
        c.to_anthropic("m").ok().map(|b| b["max_tokens"].clone()),
        Some(json!(5096))
    );
    // A tool loop whose earlier call came without its thinking block.
    let mut tool_loop = c.clone();
    tool_loop.turns.push(Turn {
        role: Role::Assistant,
        parts: vec![Part::ToolCall {
            id: "c".into(),
            name: "f".into(),
            input: json!({}),
        }],
    });
    tool_loop.turns.push(Turn {
        role: Role::User,
        parts: vec![Part::ToolResult {
            id: "c".into(),
            content: vec![text("ok")],
            is_error: false,
        }],
    });
    assert_eq!(thinking(&tool_loop), None);
    // A partial answer to continue.
    let mut prefill = c.clone();
    prefill.say(Role::Assistant, vec![text("The answer")]);
    assert_eq!(thinking(&prefill), None);
    // top_p below what thinking allows.
    let narrow = Conversation {
        top_p: Some(0.5),
        ..c.clone()
    };
    assert_eq!(thinking(&narrow), None);
}
