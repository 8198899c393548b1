//! The Gemini API wire format: `generateContent` and `streamGenerateContent?alt=sse` under
//! `/v1beta/models/{model}`, keys in `x-goog-api-key`, errors in Google's shape with its
//! status strings, and the content filter as a 200 with `finishReason: SAFETY`.

use serde_json::{Value, json};

use crate::support::{Sim, parse_sse, read_stream};

fn body() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "what is six times seven"}]}]})
}

fn ask(sim: &Sim, model: &str, stream: bool, body: &Value) -> reqwest::RequestBuilder {
    let url = if stream {
        format!(
            "{}/v1beta/models/{model}:streamGenerateContent?alt=sse",
            sim.url
        )
    } else {
        format!("{}/v1beta/models/{model}:generateContent", sim.url)
    };
    sim.client()
        .post(url)
        .header("x-goog-api-key", "AIzaSyTestKey-0042")
        .json(body)
}

#[tokio::test]
async fn a_whole_answer_names_its_model_usage_and_finish_reason() {
    let sim = Sim::start();
    let r = ask(&sim, "sim-gemini", false, &body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-goog-request-id"], "req_sim_1");
    let v: Value = r.json().await.unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(c["content"]["role"], "model");
    assert!(
        c["content"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("End of answer.")
    );
    assert_eq!(v["modelVersion"], "sim-gemini");
    assert!(v["usageMetadata"]["promptTokenCount"].as_u64().unwrap() > 0);
    assert!(v["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap() > 10);
    let log = sim.settled_attempts(Some("sim-gemini")).await;
    assert_eq!(log[0].api, plumb_simulator::Api::Gemini);
    assert_eq!(log[0].key_hint.as_deref(), Some("0042"));
    assert!(!log[0].stream);
}

#[tokio::test]
async fn a_stream_sends_partial_responses_and_ends_with_the_finish_reason_and_usage() {
    let sim = Sim::start();
    let (text, err) =
        read_stream(ask(&sim, "sim-gemini", true, &body()).send().await.unwrap()).await;
    assert!(err.is_none());
    assert!(text.contains("\r\n\r\n"), "Google frames events with CRLF");
    let events: Vec<Value> = parse_sse(&text).iter().filter_map(|e| e.json()).collect();
    let last = events.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(
        last["usageMetadata"]["candidatesTokenCount"]
            .as_u64()
            .unwrap()
            > 10
    );
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["candidates"][0].get("finishReason").is_none())
    );
    let said: String = events
        .iter()
        .filter_map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert!(said.ends_with("End of answer."));
    assert!(sim.settled_attempts(Some("sim-gemini")).await[0].stream);
}

#[tokio::test]
async fn a_forced_function_is_called_whole_and_a_schema_is_followed() {
    let sim = Sim::start();
    let mut b = body();
    b["tools"] = json!([{"functionDeclarations": [{"name": "get_weather",
        "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}]);
    b["toolConfig"] = json!({"functionCallingConfig": {"mode": "ANY"}});
    let v: Value = ask(&sim, "sim-gemini", false, &b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let call = &v["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "get_weather");
    assert!(call["args"]["city"].is_string());
    let mut b = body();
    b["generationConfig"] = json!({"responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}});
    let v: Value = ask(&sim, "sim-gemini", false, &b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(serde_json::from_str::<Value>(text).unwrap()["n"].is_i64());
}

#[tokio::test]
async fn errors_come_in_googles_shape_with_its_status_strings() {
    let sim = Sim::start();
    for (fault, status, google) in [
        ("rate_limited:retry_after=7", 429, "RESOURCE_EXHAUSTED"),
        ("unauthorized", 400, "INVALID_ARGUMENT"),
        ("forbidden", 403, "PERMISSION_DENIED"),
        ("model_not_found", 404, "NOT_FOUND"),
        ("context_length", 400, "INVALID_ARGUMENT"),
        ("server_error", 500, "INTERNAL"),
        ("unavailable", 503, "UNAVAILABLE"),
        ("overloaded", 503, "UNAVAILABLE"),
    ] {
        let r = ask(&sim, "sim-gemini", false, &body())
            .header("x-sim-fault", fault)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{fault}");
        assert!(
            r.headers().get("retry-after").is_none(),
            "{fault}: Google says it in the body"
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], status, "{fault}");
        assert_eq!(v["error"]["status"], google, "{fault}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        match fault {
            "unauthorized" => assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID"),
            "context_length" => assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("exceeds the maximum number of tokens")
            ),
            f if f.starts_with("rate_limited") => {
                let retry = v["error"]["details"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
                    .unwrap();
                assert_eq!(retry["retryDelay"], "7s");
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_content_filter_is_a_200_whose_candidate_finished_with_safety() {
    let sim = Sim::start();
    let v: Value = ask(&sim, "sim-gemini", false, &body())
        .header("x-sim-fault", "content_filter")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["candidates"][0]["finishReason"], "SAFETY");
    assert!(v["candidates"][0].get("content").is_none());
    let (text, _) = read_stream(
        ask(&sim, "sim-gemini", true, &body())
            .header("x-sim-fault", "content_filter")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let events: Vec<Value> = parse_sse(&text).iter().filter_map(|e| e.json()).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["candidates"][0]["finishReason"], "SAFETY");
}

#[tokio::test]
async fn stream_faults_apply_to_gemini_streams() {
    let sim = Sim::start();
    let (text, err) = read_stream(
        ask(&sim, "sim-gemini", true, &body())
            .header("x-sim-fault", "stream_cut:after=2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_some(), "cut");
    assert_eq!(parse_sse(&text).len(), 2);
    let (text, _) = read_stream(
        ask(&sim, "sim-gemini", true, &body())
            .header("x-sim-fault", "stream_error:after=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let last: Value = parse_sse(&text).last().unwrap().json().unwrap();
    assert_eq!(last["error"]["status"], "UNAVAILABLE");
    let (text, _) = read_stream(
        ask(&sim, "sim-gemini", true, &body())
            .header("x-sim-fault", "malformed_event:at=1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        parse_sse(&text)[1].json().is_none(),
        "the second event is not JSON"
    );
}

#[tokio::test]
async fn keys_are_read_from_x_goog_api_key_only() {
    let sim = Sim::start_with(
        &[],
        Some("models:\n  locked:\n    api_key: AIzaSyRight-4242\n"),
    );
    let url = format!("{}/v1beta/models/locked:generateContent", sim.url);
    let r = sim
        .client()
        .post(&url)
        .header("x-goog-api-key", "AIzaSyRight-4242")
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A key in the query string is not looked at.
    let r = sim
        .client()
        .post(format!("{url}?key=AIzaSyRight-4242"))
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let r = sim
        .client()
        .post(format!("{}/v1beta/models/locked:countTokens", sim.url))
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "NOT_FOUND");
}
