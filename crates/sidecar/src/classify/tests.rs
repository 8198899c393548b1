use http::HeaderValue;
use serde_json::json;

use super::*;

fn class(code: u16, body: Value) -> FailureClass {
    status(code, &HeaderMap::new(), body.to_string().as_bytes()).class
}

#[test]
fn a_404_for_state_the_caller_named_is_not_the_models_fault() {
    let missing = |error: Value| class(404, json!({"error": error}));
    assert_eq!(
        missing(
            json!({"message": "Previous response with id 'resp_1' not found.",
            "type": "invalid_request_error", "param": "previous_response_id", "code": "previous_response_not_found"})
        ),
        FailureClass::BadRequest
    );
    assert_eq!(
        missing(
            json!({"message": "Item with id 'rs_1' not found. Items are not persisted when `store` is set to false.",
            "type": "invalid_request_error", "param": "input", "code": null})
        ),
        FailureClass::BadRequest
    );
    assert_eq!(
        missing(
            json!({"message": "The model `gpt-9` does not exist", "type": "invalid_request_error", "param": null, "code": "model_not_found"})
        ),
        FailureClass::InvalidModel
    );
    let f = status(
        404,
        &HeaderMap::new(),
        br#"{"error": {"message": "Conversation with id 'conv_1' not found.", "param": "conversation"}}"#,
    );
    assert!(state_elsewhere(&f));
    assert!(!state_elsewhere(&status(404, &HeaderMap::new(), b"{}")));
}

#[test]
fn a_silent_reasoning_item_is_the_model_at_work() {
    let raw = RawEvent {
        name: None,
        data: r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"reasoning","id":"rs_1"}}"#.to_owned(),
        bytes: bytes::Bytes::new(),
    };
    let event = Event::parse(Api::Responses, &raw);
    assert_eq!(stream_event(&event, &raw).ok(), Some(Progress::Reasoning));
}

#[test]
fn statuses_and_provider_bodies_map_to_classes() {
    let openai = |code: &str, msg: &str| json!({"error": {"message": msg, "type": "invalid_request_error", "code": code}});
    let anthropic =
        |ty: &str, msg: &str| json!({"type": "error", "error": {"type": ty, "message": msg}});
    assert_eq!(
        class(429, openai("rate_limit_exceeded", "slow down")),
        FailureClass::RateLimited
    );
    assert_eq!(
        class(529, anthropic("overloaded_error", "Overloaded")),
        FailureClass::Overloaded
    );
    assert_eq!(
        class(500, anthropic("overloaded_error", "Overloaded")),
        FailureClass::Overloaded
    );
    assert_eq!(class(503, json!({})), FailureClass::Overloaded);
    assert_eq!(class(500, json!({})), FailureClass::ServerError);
    assert_eq!(class(502, json!("bad gateway")), FailureClass::ServerError);
    assert_eq!(class(504, json!({})), FailureClass::Timeout);
    assert_eq!(
        class(401, openai("invalid_api_key", "Incorrect API key")),
        FailureClass::Auth
    );
    assert_eq!(
        class(403, anthropic("permission_error", "no")),
        FailureClass::Auth
    );
    assert_eq!(
        class(
            403,
            openai(
                "unsupported_country_region_territory",
                "Country, region, or territory not supported"
            )
        ),
        FailureClass::InvalidModel
    );
    assert_eq!(
        class(
            404,
            openai("model_not_found", "The model `x` does not exist")
        ),
        FailureClass::InvalidModel
    );
    assert_eq!(
        class(404, anthropic("not_found_error", "model: x")),
        FailureClass::InvalidModel
    );
    assert_eq!(
        class(400, openai("context_length_exceeded", "too long")),
        FailureClass::ContextLength
    );
    assert_eq!(
        class(
            400,
            anthropic(
                "invalid_request_error",
                "prompt is too long: 9 tokens > 5 maximum"
            )
        ),
        FailureClass::ContextLength
    );
    assert_eq!(
        class(400, openai("content_filter", "filtered")),
        FailureClass::ContentFilter
    );
    assert_eq!(
        class(400, openai("content_policy_violation", "rejected")),
        FailureClass::ContentFilter
    );
    assert_eq!(
        class(
            400,
            anthropic(
                "invalid_request_error",
                "Output blocked by content filtering policy"
            )
        ),
        FailureClass::ContentFilter
    );
    assert_eq!(
        class(400, openai("", "The model `gpt-3` has been deprecated")),
        FailureClass::InvalidModel
    );
    assert_eq!(
        class(400, openai("", "messages: field required")),
        FailureClass::BadRequest
    );
    assert_eq!(class(422, json!({})), FailureClass::BadRequest);
    assert_eq!(class(302, json!({})), FailureClass::MalformedResponse);
}

#[test]
fn the_providers_message_is_kept() {
    let f = status(
        429,
        &HeaderMap::new(),
        br#"{"error":{"message":"Rate limit reached","type":"requests"}}"#,
    );
    assert_eq!(f.message, "Rate limit reached");
    assert_eq!(f.status, Some(429));
    let f = status(502, &HeaderMap::new(), b"<html>bad gateway</html>");
    assert_eq!(f.message, "<html>bad gateway</html>");
}

#[test]
fn retry_after_in_every_form() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let h = |pairs: &[(&'static str, String)]| {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                *k,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
        }
        m
    };
    assert_eq!(
        retry_after(&h(&[("retry-after", "2".into())]), now),
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        retry_after(&h(&[("retry-after-ms", "250".into())]), now),
        Some(Duration::from_millis(250))
    );
    let date = httpdate::fmt_http_date(now + Duration::from_secs(3));
    assert_eq!(
        retry_after(&h(&[("retry-after", date)]), now),
        Some(Duration::from_secs(3))
    );
    assert_eq!(
        retry_after(
            &h(&[
                ("x-ratelimit-remaining-requests", "0".into()),
                ("x-ratelimit-reset-requests", "1m30s".into())
            ]),
            now
        ),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        retry_after(
            &h(&[
                ("x-ratelimit-remaining-requests", "5".into()),
                ("x-ratelimit-reset-requests", "1s".into())
            ]),
            now
        ),
        None,
        "a limit that is not exhausted says nothing about waiting"
    );
    let reset = humantime::format_rfc3339_seconds(now + Duration::from_secs(4)).to_string();
    assert_eq!(
        retry_after(
            &h(&[
                ("anthropic-ratelimit-requests-remaining", "0".into()),
                ("anthropic-ratelimit-requests-reset", reset)
            ]),
            now
        ),
        Some(Duration::from_secs(4))
    );
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}

#[test]
fn success_bodies_must_be_complete_json_with_an_answer() {
    let ok = json!({"choices": [{"message": {"role": "assistant", "content": "hi"}}]}).to_string();
    assert!(success_body(Api::Openai, Operation::Chat, ok.as_bytes()).is_ok());
    let tools = json!({"choices": [{"message": {"content": null, "tool_calls": [{"id": "1"}]}}]})
        .to_string();
    assert!(success_body(Api::Openai, Operation::Chat, tools.as_bytes()).is_ok());
    for bad in [
        &b""[..],
        b"{\"choices\": [",
        b"{}",
        br#"{"choices":[{"message":{"content":""}}]}"#,
    ] {
        let f = success_body(Api::Openai, Operation::Chat, bad)
            .err()
            .unwrap_or_else(|| panic!("{bad:?}"));
        assert_eq!(f.class, FailureClass::MalformedResponse);
    }
    let a = json!({"type": "message", "content": [{"type": "text", "text": "hi"}]}).to_string();
    assert!(success_body(Api::Anthropic, Operation::Chat, a.as_bytes()).is_ok());
    let empty = json!({"type": "message", "content": [{"type": "text", "text": ""}]}).to_string();
    assert!(success_body(Api::Anthropic, Operation::Chat, empty.as_bytes()).is_err());
    let err = json!({"error": {"type": "overloaded_error", "message": "busy"}}).to_string();
    assert_eq!(
        success_body(Api::Anthropic, Operation::Chat, err.as_bytes())
            .err()
            .map(|f| f.class),
        Some(FailureClass::Overloaded)
    );
}

#[test]
fn an_absurd_retry_after_is_clamped_to_an_hour_without_a_panic() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for v in ["1e300", "1e19", "1e12", "99999999999"] {
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(retry_after(&h, now), Some(MAX_RETRY_AFTER), "{v}");
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after-ms",
            HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(retry_after(&h, now), Some(MAX_RETRY_AFTER), "{v} ms");
    }
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("2"));
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
}

#[test]
fn events_before_the_first_token_are_read_for_errors_garbage_and_content() {
    let ev = |s: &str| {
        let mut reader = crate::event::SseReader::default();
        reader.push(s.as_bytes());
        let raw = reader
            .next_event()
            .unwrap_or_else(|| panic!("no event in {s:?}"));
        let family = if raw.name.is_some() {
            Api::Anthropic
        } else {
            Api::Openai
        };
        stream_event(&Event::parse(family, &raw), &raw)
    };
    assert_eq!(
        ev("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"),
        Ok(Progress::Preamble)
    );
    assert_eq!(
        ev("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"),
        Ok(Progress::Content)
    );
    assert_eq!(
        ev("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"),
        Ok(Progress::End)
    );
    assert_eq!(ev("data: [DONE]\n\n"), Ok(Progress::End));
    assert_eq!(
        ev("event: ping\ndata: {\"type\":\"ping\"}\n\n"),
        Ok(Progress::Preamble)
    );
    assert_eq!(
        ev("event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n"),
        Ok(Progress::Content)
    );
    assert_eq!(ev(": keep-alive\n\n"), Ok(Progress::Preamble));
    assert_eq!(
        ev("data: {\"choices\": [\n\n").err().map(|f| f.class),
        Some(FailureClass::MalformedResponse)
    );
    // Data lines are joined with a newline, as the SSE specification says: one JSON value
    // split over two lines is still one value.
    assert_eq!(
        ev("data: {\"choices\":[{\"delta\":\ndata: {\"content\":\"Hi\"}}]}\n\n"),
        Ok(Progress::Content)
    );
    let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    assert_eq!(
        ev(err).err().map(|f| f.class),
        Some(FailureClass::Overloaded)
    );
    let openai_err = "data: {\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n";
    assert_eq!(
        ev(openai_err).err().map(|f| f.class),
        Some(FailureClass::RateLimited)
    );
}

fn google(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

#[test]
fn vertex_errors_in_either_form_map_to_classes_with_googles_wait() {
    // Vertex AI's words, bare and wrapped in the array its streaming calls answer with.
    let cases = [
        (
            429,
            "RESOURCE_EXHAUSTED",
            "Resource exhausted. Please try again later. Please refer to https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
            FailureClass::RateLimited,
        ),
        (
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            FailureClass::Overloaded,
        ),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576).",
            FailureClass::ContextLength,
        ),
        (
            400,
            "INVALID_ARGUMENT",
            "Request contains an invalid argument.",
            FailureClass::BadRequest,
        ),
        (
            403,
            "PERMISSION_DENIED",
            "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/p/locations/us-east5/publishers/google/models/gemini-2.5-pro' (or it may not exist).",
            FailureClass::Auth,
        ),
        (
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            FailureClass::Auth,
        ),
        (
            404,
            "NOT_FOUND",
            "Publisher Model `projects/p/locations/us-east5/publishers/google/models/gemini-9` was not found or your project does not have access to it.",
            FailureClass::InvalidModel,
        ),
    ];
    for (code, status, message, want) in cases {
        let bare = google(code, status, message);
        assert_eq!(class(code, bare.clone()), want, "{message}");
        assert_eq!(class(code, json!([bare])), want, "wrapped: {message}");
    }
    let mut limited = google(429, "RESOURCE_EXHAUSTED", "Resource exhausted.");
    limited["error"]["details"] =
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]);
    let f = status(
        429,
        &HeaderMap::new(),
        json!([limited]).to_string().as_bytes(),
    );
    assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
}

#[test]
fn googles_error_shapes_map_to_classes() {
    assert_eq!(
        class(
            429,
            google(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota")
        ),
        FailureClass::RateLimited
    );
    assert_eq!(
        class(
            503,
            google(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later."
            )
        ),
        FailureClass::Overloaded
    );
    assert_eq!(
        class(
            500,
            google(500, "INTERNAL", "An internal error has occurred.")
        ),
        FailureClass::ServerError
    );
    assert_eq!(
        class(
            504,
            google(
                504,
                "DEADLINE_EXCEEDED",
                "Deadline expired before operation could complete."
            )
        ),
        FailureClass::Timeout
    );
    assert_eq!(
        class(
            400,
            google(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
            )
        ),
        FailureClass::ContextLength
    );
    assert_eq!(
        class(
            400,
            google(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        ),
        FailureClass::BadRequest
    );
    // Gemini answers a bad key with a 400 whose details name API_KEY_INVALID.
    let mut bad_key = google(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
    );
    bad_key["error"]["details"] =
        json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]);
    assert_eq!(class(400, bad_key), FailureClass::Auth);
    assert_eq!(
        class(403, google(403, "PERMISSION_DENIED", "Permission denied")),
        FailureClass::Auth
    );
    assert_eq!(
        class(
            401,
            google(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials."
            )
        ),
        FailureClass::Auth
    );
    assert_eq!(
        class(
            404,
            google(
                404,
                "NOT_FOUND",
                "models/gemini-9 is not found for API version v1beta"
            )
        ),
        FailureClass::InvalidModel
    );
    assert_eq!(
        class(
            400,
            google(
                400,
                "FAILED_PRECONDITION",
                "User location is not supported for the API use."
            )
        ),
        FailureClass::InvalidModel
    );
}

#[test]
fn googles_retry_delay_in_the_body_is_the_wait() {
    let mut body = google(429, "RESOURCE_EXHAUSTED", "quota");
    body["error"]["details"] = json!([
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}
    ]);
    let f = status(429, &HeaderMap::new(), body.to_string().as_bytes());
    assert_eq!(f.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(f.message, "quota");
    // A header still wins; an absurd delay is capped.
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("2"));
    assert_eq!(
        status(429, &h, body.to_string().as_bytes()).retry_after,
        Some(Duration::from_secs(2))
    );
    body["error"]["details"][1]["retryDelay"] = json!("99999999s");
    assert_eq!(
        status(429, &HeaderMap::new(), body.to_string().as_bytes()).retry_after,
        Some(MAX_RETRY_AFTER)
    );
}

#[test]
fn a_gemini_200_that_was_filtered_blocked_or_empty_is_a_failure() {
    let check = |v: Value| success_body(Api::Gemini, Operation::Chat, v.to_string().as_bytes());
    let class = |v: Value| check(v).err().map(|f| f.class);
    let answer = |reason: &str| json!({"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": reason}]});
    assert!(check(answer("STOP")).is_ok());
    assert!(
        check(answer("MAX_TOKENS")).is_ok(),
        "truncated, as OpenAI's length"
    );
    assert_eq!(class(answer("SAFETY")), Some(FailureClass::ContentFilter));
    assert_eq!(
        class(answer("RECITATION")),
        Some(FailureClass::ContentFilter)
    );
    assert_eq!(
        class(json!({"candidates": [{"finishReason": "SAFETY"}]})),
        Some(FailureClass::ContentFilter)
    );
    assert_eq!(
        class(json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})),
        Some(FailureClass::ContentFilter)
    );
    assert_eq!(
        class(answer("MALFORMED_FUNCTION_CALL")),
        Some(FailureClass::MalformedResponse)
    );
    assert_eq!(
        class(json!({"candidates": [{"content": {"parts": []}, "finishReason": "STOP"}]})),
        Some(FailureClass::MalformedResponse)
    );
    assert_eq!(
        class(json!({"candidates": []})),
        Some(FailureClass::MalformedResponse)
    );
    let f = check(json!({"candidates": [{"finishReason": "SAFETY"}]}))
        .err()
        .unwrap();
    assert_eq!((f.status, f.phase), (Some(200), Phase::Body));
    assert!(f.message.contains("SAFETY"), "{}", f.message);
    assert_eq!(
        class(google(429, "RESOURCE_EXHAUSTED", "quota")),
        Some(FailureClass::RateLimited),
        "an error in a 200"
    );
}

#[test]
fn gemini_stream_events_show_their_progress() {
    let ev = |data: Value| {
        let text = format!("data: {data}\r\n\r\n");
        let mut r = crate::event::SseReader::default();
        r.push(text.as_bytes());
        let raw = r.next_event().unwrap();
        stream_event(&Event::parse(Api::Gemini, &raw), &raw)
    };
    let parts = |p: Value| json!({"candidates": [{"content": {"parts": p, "role": "model"}}]});
    assert_eq!(ev(parts(json!([{"text": "Hi"}]))), Ok(Progress::Content));
    assert_eq!(
        ev(parts(json!([{"functionCall": {"name": "f", "args": {}}}]))),
        Ok(Progress::Content)
    );
    assert_eq!(
        ev(parts(json!([{"text": "hmm", "thought": true}]))),
        Ok(Progress::Reasoning)
    );
    assert_eq!(
        ev(json!({"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}]})),
        Ok(Progress::End)
    );
    assert_eq!(
        ev(json!({"candidates": [{"finishReason": "SAFETY"}]}))
            .err()
            .map(|f| f.class),
        Some(FailureClass::ContentFilter)
    );
    assert_eq!(
        ev(google(503, "UNAVAILABLE", "overloaded"))
            .err()
            .map(|f| f.class),
        Some(FailureClass::Overloaded)
    );
}
