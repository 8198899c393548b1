//! Google Vertex AI over the wire: Gemini and Claude models at Vertex's paths behind tokens
//! the simulator's own Google issued (its token endpoint, its metadata server), Claude's body
//! held to Vertex's rules, streamed errors wrapped in an array.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Sim, read_stream};

const BASE: &str = "/v1/projects/sim-project/locations/us-east5/publishers";

async fn metadata_token(sim: &Sim) -> String {
    let r = sim
        .client()
        .get(format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/token",
            sim.url
        ))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    v["access_token"].as_str().unwrap().to_owned()
}

fn gemini(sim: &Sim, method: &str, token: Option<&str>) -> reqwest::RequestBuilder {
    let mut b = sim
        .client()
        .post(format!("{}{BASE}/google/models/gemini-2.5-pro:{method}", sim.url))
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "what is six times seven"}]}]}));
    if let Some(t) = token {
        b = b.bearer_auth(t);
    }
    b
}

fn claude(sim: &Sim, method: &str, token: &str, body: Value) -> reqwest::RequestBuilder {
    sim.client()
        .post(format!(
            "{}{BASE}/anthropic/models/claude-sonnet-4-5:{method}",
            sim.url
        ))
        .bearer_auth(token)
        .json(&body)
}

#[tokio::test]
async fn the_metadata_server_wants_its_flavor_and_vertex_wants_its_tokens() {
    let sim = Sim::start();
    let r = sim
        .client()
        .get(format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/token",
            sim.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no Metadata-Flavor: Google");
    let r = gemini(&sim, "generateContent", None).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    let r = gemini(&sim, "generateContent", Some("ya29.forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a token it never issued");
    let token = metadata_token(&sim).await;
    assert!(token.starts_with("ya29."));
    let r = gemini(&sim, "generateContent", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    let (text, err) = read_stream(
        gemini(&sim, "streamGenerateContent?alt=sse", Some(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert!(text.contains("\"finishReason\":\"STOP\""), "{text}");
    let log = sim.settled_attempts(Some("gemini-2.5-pro")).await;
    assert_eq!(log.len(), 4);
    assert_eq!(log[2].api, plumb_simulator::Api::Gemini);
    assert_eq!(
        log[3].path.as_deref(),
        Some(format!("{BASE}/google/models/gemini-2.5-pro:streamGenerateContent").as_str())
    );
    assert!(log[3].stream);
    let (_, counts) = sim.admin(Method::GET, "google", Value::Null).await;
    assert_eq!(counts["metadata"], 1);
}

#[tokio::test]
async fn claude_on_vertex_takes_vertexs_version_and_no_model() {
    let sim = Sim::start();
    let token = metadata_token(&sim).await;
    let messages = json!([{"role": "user", "content": "what is six times seven"}]);
    let r = claude(
        &sim,
        "rawPredict",
        &token,
        json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 100, "model": "claude-sonnet-4-5", "messages": messages}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400, "a model in the body");
    let r = claude(
        &sim,
        "rawPredict",
        &token,
        json!({"max_tokens": 100, "messages": messages}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400, "no anthropic_version");
    let r = claude(
        &sim,
        "rawPredict",
        &token,
        json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 100, "messages": messages}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    let (text, err) = read_stream(
        claude(
            &sim,
            "streamRawPredict",
            &token,
            json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 100, "messages": messages}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert!(text.contains("event: message_stop"), "{text}");
}

#[tokio::test]
async fn tokens_expire_when_set_and_streamed_errors_come_wrapped_in_an_array() {
    let sim = Sim::start();
    let (status, _) = sim
        .admin(Method::PUT, "google", json!({"token_lifetime_s": 1}))
        .await;
    assert_eq!(status, 200);
    let token = metadata_token(&sim).await;
    let r = gemini(&sim, "streamGenerateContent?alt=sse", Some(&token))
        .header("x-sim-fault", "rate_limited:retry_after=3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["error"]["status"], "RESOURCE_EXHAUSTED", "{v}");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let r = gemini(&sim, "generateContent", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "expired");
    let (status, _) = sim
        .admin(Method::PUT, "google", json!({"fail_next": 1}))
        .await;
    assert_eq!(status, 200);
    let r = sim
        .client()
        .get(format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/token",
            sim.url
        ))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "the failure asked for");
}
