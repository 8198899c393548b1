//! The same model on three clouds (`examples/routes/claude-everywhere.yaml`): Claude on
//! Anthropic's API, on Bedrock (SigV4 with the environment's keys) and on Vertex AI (a
//! service-account key), declared `sameModel`. When the first two fail, every client family
//! gets its answer from the third as the same model, whole and streamed; when they recover,
//! Anthropic serves again. The simulator's attempt log is the witness of each hop.

use plumb_simulator::aws::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use plumb_simulator::google_auth::test_service_account;
use serde_json::json;

use crate::gemini::{ask, told};
use crate::support::{Sidecar, attempts, header, plan, route, simulator, target};

const ON_BEDROCK: &str = "anthropic.sim-claude-v1:0";
const ON_VERTEX: &str = "claude-sonnet-4-5";

#[tokio::test]
async fn claude_fails_over_across_three_clouds_as_the_same_model() {
    let sim = simulator().await;
    let routes = route(
        "chat",
        &[
            target("anthropic", "anthropic", &sim.base_url(), "sim-claude", ""),
            target(
                "bedrock",
                "bedrock",
                &sim.base_url(),
                ON_BEDROCK,
                "      region: us-east-1\n      priority: 1\n",
            )
            .replace("{none: true}", "{aws: true}"),
            crate::vertex::vertex(
                &sim,
                "vertex",
                ON_VERTEX,
                "{env: PLUMB_VERTEX_SA}",
                "      priority: 2\n",
            ),
        ],
        "  classes: {rateLimited: {retries: 0}, overloaded: {retries: 0}}\n  equivalence: {mode: enforce}\n  sameModel: [[anthropic, bedrock, vertex]]\n",
    );
    let key = test_service_account(&format!("{}/token", sim.base_url()));
    let sc = Sidecar::start_with_env_and_args(
        &routes,
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("PLUMB_VERTEX_SA", &key),
        ],
        &[],
    );
    plan(
        &sim,
        "sim-claude",
        json!({"fault": "overloaded", "first": 100}),
    );
    plan(
        &sim,
        ON_BEDROCK,
        json!({"fault": "rate_limited", "first": 100}),
    );
    let mut asked = 0;
    for family in ["anthropic", "openai", "responses"] {
        for stream in [false, true] {
            let r = ask(&sc, family, stream, json!({})).send().await.unwrap();
            asked += 1;
            assert_eq!(r.status(), 200, "{family}, stream={stream}");
            assert_eq!(header(&r, "x-plumb-served-by"), "vertex");
            assert_eq!(header(&r, "x-plumb-equivalence"), "same-model");
            // The first request tries each cloud in turn; later ones skip a cloud whose
            // rate-limit window or breaker is open, without an attempt.
            let classes = header(&r, "x-plumb-failure-classes");
            if asked == 1 {
                assert_eq!(classes, "overloaded,rate_limited");
            } else {
                assert!(
                    ["overloaded,rate_limited", "overloaded", "rate_limited", ""]
                        .contains(&classes),
                    "{family}, stream={stream}: {classes}"
                );
            }
            let (text, _, _) = told(family, stream, r).await;
            assert!(text.ends_with("End of answer."), "{family}: {text}");
        }
    }
    // Each cloud was asked in order until its rate window or breaker stopped it being asked:
    // Anthropic and Bedrock answered with their errors, Vertex with every answer.
    let anthropic = attempts(&sim, "sim-claude").await;
    let bedrock = attempts(&sim, ON_BEDROCK).await;
    let vertex = attempts(&sim, ON_VERTEX).await;
    assert!(!anthropic.is_empty() && anthropic.iter().all(|a| a.status == 529));
    assert!(!bedrock.is_empty() && bedrock.iter().all(|a| a.status == 429));
    assert_eq!(vertex.len(), asked);
    assert!(vertex.iter().all(|a| a.status == 200));
    assert!(
        bedrock
            .iter()
            .all(|a| a.key_hint.as_deref() == Some(&ACCESS_KEY_ID[ACCESS_KEY_ID.len() - 4..])),
        "Bedrock's requests were signed with the environment's key"
    );
}
