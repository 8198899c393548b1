//! AWS Bedrock's Converse wire format and AWS identity: `/model/{id}/converse` and
//! `/converse-stream` (event-stream frames), SigV4 checked by recomputing the signature, a
//! Bedrock API key as a bearer token, errors named by `x-amzn-errortype`, exception frames
//! mid-stream, a cut inside a frame; STS `AssumeRoleWithWebIdentity` and the
//! container-credentials endpoint issuing credentials that verify.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use bytes::BytesMut;
use plumb_simulator::aws::{
    ACCESS_KEY_ID, CONTAINER_PATH, CONTAINER_TOKEN, SECRET_ACCESS_KEY, WEB_IDENTITY_TOKEN,
};
use serde_json::{Value, json};

use crate::support::Sim;

const CLAUDE: &str = "anthropic.sim-claude-v1:0";
const CLAUDE_PATH: &str = "anthropic.sim-claude-v1%3A0";

fn body() -> Value {
    json!({"messages": [{"role": "user", "content": [{"text": "what is six times seven"}]}]})
}

/// A request to the Converse API signed with `(id, secret, token)`.
fn signed(
    sim: &Sim,
    stream: bool,
    body: &Value,
    (id, secret, token): (&str, &str, Option<&str>),
) -> reqwest::RequestBuilder {
    let op = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    let url = format!("{}/model/{CLAUDE_PATH}/{op}", sim.url);
    let bytes = body.to_string();
    let identity = Credentials::new(id, secret, token.map(str::to_owned), None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("bedrock")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [("content-type", "application/json")];
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(bytes.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let (add, _) = instructions.into_parts();
    let mut b = sim
        .client()
        .post(&url)
        .header("content-type", "application/json")
        .body(bytes);
    for h in add {
        b = b.header(h.name(), h.value());
    }
    b
}

/// The frames of an event stream: (`:event-type` or `:exception-type`, payload).
fn decode(bytes: &[u8]) -> (Vec<(String, Value)>, bool) {
    let mut buf = BytesMut::from(bytes);
    let mut d = MessageFrameDecoder::new();
    let mut out = Vec::new();
    while let Ok(DecodedFrame::Complete(m)) = d.decode_frame(&mut buf) {
        let name = m
            .headers()
            .iter()
            .find(|h| h.name().as_str() == ":event-type" || h.name().as_str() == ":exception-type")
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        out.push((
            name,
            serde_json::from_slice(m.payload()).unwrap_or(Value::Null),
        ));
    }
    (out, !buf.is_empty())
}

#[tokio::test]
async fn a_signed_converse_answer_names_its_stop_reason_and_usage() {
    let sim = Sim::start();
    let r = signed(
        &sim,
        false,
        &body(),
        (ACCESS_KEY_ID, SECRET_ACCESS_KEY, None),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stopReason"], "end_turn");
    let text = v["output"]["message"]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.ends_with("End of answer."));
    assert!(v["usage"]["outputTokens"].as_u64().unwrap() > 10);
    let log = sim.settled_attempts(Some(CLAUDE)).await;
    assert_eq!(log[0].api, plumb_simulator::Api::Bedrock);
    assert_eq!(
        log[0].key_hint.as_deref(),
        Some(&ACCESS_KEY_ID[ACCESS_KEY_ID.len() - 4..])
    );
}

#[tokio::test]
async fn a_converse_stream_is_frames_from_message_start_to_metadata() {
    let sim = Sim::start();
    let r = signed(
        &sim,
        true,
        &body(),
        (ACCESS_KEY_ID, SECRET_ACCESS_KEY, None),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    let (frames, rest) = decode(&r.bytes().await.unwrap());
    assert!(!rest);
    let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "messageStart");
    assert_eq!(
        &names[names.len() - 3..],
        ["contentBlockStop", "messageStop", "metadata"]
    );
    let text: String = frames
        .iter()
        .filter_map(|(_, p)| p.pointer("/delta/text").and_then(Value::as_str))
        .collect();
    assert!(text.ends_with("End of answer."));
    assert_eq!(frames[frames.len() - 2].1["stopReason"], "end_turn");
}

#[tokio::test]
async fn a_wrong_signature_an_unknown_key_and_no_signature_are_refused_in_bedrocks_words() {
    let sim = Sim::start();
    let r = signed(&sim, false, &body(), (ACCESS_KEY_ID, "wrong-secret", None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-amzn-errortype"], "InvalidSignatureException");
    let v: Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("signature"));
    let r = signed(&sim, false, &body(), ("AKIAUNKNOWN000000000", "x", None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "UnrecognizedClientException"
    );
    // A Bedrock API key is a bearer token.
    let r = sim
        .client()
        .post(format!("{}/model/{CLAUDE_PATH}/converse", sim.url))
        .bearer_auth("ABSKtestkey-0042")
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn faults_come_in_bedrocks_shape_mid_stream_as_exception_frames_and_cuts_inside_a_frame() {
    let sim = Sim::start();
    let creds = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, None);
    for (fault, status, exception) in [
        ("rate_limited", 429, "ThrottlingException"),
        ("context_length", 400, "ValidationException"),
        ("unavailable", 503, "ServiceUnavailableException"),
        ("model_not_found", 404, "ResourceNotFoundException"),
    ] {
        let r = signed(&sim, false, &body(), creds)
            .header("x-sim-fault", fault)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{fault}");
        assert!(
            r.headers()["x-amzn-errortype"]
                .to_str()
                .unwrap()
                .starts_with(exception),
            "{fault}"
        );
        let v: Value = r.json().await.unwrap();
        assert!(v["message"].is_string(), "{v}");
    }
    let r = signed(&sim, true, &body(), creds)
        .header("x-sim-fault", "stream_error:after=2")
        .send()
        .await
        .unwrap();
    let (frames, _) = decode(&r.bytes().await.unwrap_or_default());
    assert_eq!(frames.last().unwrap().0, "serviceUnavailableException");
    let r = signed(&sim, true, &body(), creds)
        .header("x-sim-fault", "stream_cut:after=2")
        .send()
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut r = r;
    while let Ok(Some(chunk)) = r.chunk().await {
        got.extend_from_slice(&chunk);
    }
    let (frames, partial) = decode(&got);
    assert!(partial, "cut inside a frame");
    assert_eq!(frames.last().unwrap().0, "contentBlockDelta");
    let r = signed(&sim, false, &body(), creds)
        .header("x-sim-fault", "content_filter")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stopReason"], "guardrail_intervened");
}

#[tokio::test]
async fn sts_and_the_container_endpoint_issue_credentials_that_sign_and_expire() {
    let sim = Sim::start();
    let r = sim
        .client()
        .post(format!("{}/", sim.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=t&WebIdentityToken={WEB_IDENTITY_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    let tag = |n: &str| {
        let open = format!("<{n}>");
        let s = xml.find(&open).unwrap() + open.len();
        xml[s..s + xml[s..].find('<').unwrap()].to_owned()
    };
    let (id, secret, token) = (
        tag("AccessKeyId"),
        tag("SecretAccessKey"),
        tag("SessionToken"),
    );
    let r = signed(&sim, false, &body(), (&id, &secret, Some(&token)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = signed(&sim, false, &body(), (&id, &secret, Some("not-the-token")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Credentials that last no time are expired when used.
    let r = sim
        .client()
        .put(format!("{}/_sim/aws", sim.url))
        .json(&json!({"expiry_secs": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = sim
        .client()
        .get(format!("{}{CONTAINER_PATH}", sim.url))
        .header("authorization", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = sim
        .client()
        .get(format!("{}{CONTAINER_PATH}", sim.url))
        .header("authorization", CONTAINER_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let creds = (
        v["AccessKeyId"].as_str().unwrap(),
        v["SecretAccessKey"].as_str().unwrap(),
        v["Token"].as_str(),
    );
    let r = signed(&sim, false, &body(), creds).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-amzn-errortype"], "ExpiredTokenException");
    let identity: Vec<String> = sim
        .settled_attempts(None)
        .await
        .into_iter()
        .map(|a| a.endpoint)
        .filter(|e| e != "chat")
        .collect();
    assert_eq!(
        identity,
        ["sts", "container-credentials", "container-credentials"]
    );
}
