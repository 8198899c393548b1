//! Scripted plans through the admin API.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::{Sim, chat_body, messages_body};

#[tokio::test]
async fn first_n_attempts_fail_then_the_model_recovers() {
    let sim = Sim::start();
    let (status, _) = sim
        .admin(
            Method::PUT,
            "plans/sim-gpt",
            json!({"fault": "server_error", "first": 2}),
        )
        .await;
    assert_eq!(status, 200);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            sim.openai(chat_body("sim-gpt", false))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![500, 500, 200, 200]);
    // Other models are untouched.
    assert_eq!(
        sim.openai(chat_body("sim-gpt-mini", false))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let faults: Vec<_> = sim
        .attempts(Some("sim-gpt"))
        .await
        .into_iter()
        .map(|a| a.fault)
        .collect();
    assert_eq!(
        faults,
        vec![
            Some("server_error".into()),
            Some("server_error".into()),
            None,
            None
        ]
    );
}

#[tokio::test]
async fn timed_plan_fails_for_its_duration_then_recovers() {
    let sim = Sim::start();
    sim.admin(
        Method::PUT,
        "plans/sim-claude",
        json!({"fault": "overloaded", "for": "400ms"}),
    )
    .await;
    assert_eq!(
        sim.anthropic(messages_body("sim-claude", false))
            .send()
            .await
            .unwrap()
            .status(),
        529
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        sim.anthropic(messages_body("sim-claude", false))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn share_plan_fails_about_that_share_and_star_covers_every_model() {
    let sim = Sim::start();
    sim.admin(
        Method::PUT,
        "plans/*",
        json!({"fault": "unavailable", "share": 0.5, "seed": 7}),
    )
    .await;
    let mut failed = 0;
    for i in 0..200 {
        let model = if i % 2 == 0 {
            "sim-gpt"
        } else {
            "anything-else"
        };
        if sim
            .openai(chat_body(model, false))
            .send()
            .await
            .unwrap()
            .status()
            == 503
        {
            failed += 1;
        }
    }
    assert!((60..140).contains(&failed), "{failed} of 200");
}

#[tokio::test]
async fn header_fault_wins_over_the_plan_and_plans_can_be_listed_and_removed() {
    let sim = Sim::start();
    sim.admin(
        Method::PUT,
        "plans/sim-gpt",
        json!({"fault": "server_error", "first": 5}),
    )
    .await;
    let r = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "forbidden")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, plans) = sim.admin(Method::GET, "plans", json!({})).await;
    assert_eq!(plans["plans"]["sim-gpt"]["fault"], "server_error");
    let (_, removed) = sim.admin(Method::DELETE, "plans/sim-gpt", json!({})).await;
    assert_eq!(removed["removed"], true);
    assert_eq!(
        sim.openai(chat_body("sim-gpt", false))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn bad_plans_are_refused_with_a_reason_and_reset_clears_everything() {
    let sim = Sim::start();
    let (status, body) = sim
        .admin(Method::PUT, "plans/m", json!({"fault": "server_error"}))
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("exactly one of"));
    let (status, body) = sim
        .admin(
            Method::PUT,
            "plans/m",
            json!({"fault": "warp_drive", "first": 1}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("warp_drive"));

    sim.admin(
        Method::PUT,
        "plans/sim-gpt",
        json!({"fault": "server_error", "first": 9}),
    )
    .await;
    sim.openai(chat_body("sim-gpt", false))
        .send()
        .await
        .unwrap();
    let (status, _) = sim.admin(Method::POST, "reset", json!({})).await;
    assert_eq!(status, 200);
    assert!(sim.attempts(None).await.is_empty());
    assert_eq!(
        sim.openai(chat_body("sim-gpt", false))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, _) = sim.admin(Method::GET, "nothing-here", json!({})).await;
    assert_eq!(status, 404);
}
