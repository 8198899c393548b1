//! End to end: the real API server for custom resources (behind the fake for core objects),
//! the `plumb-operator` process, `plumb-sidecar` processes taking their routes from it, and the
//! simulator as the provider.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::Command;
use std::time::Duration;

use plumb_testenv::FakeCore;

use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const ROUTES_A: &str = "/apis/plumb.dev/v1alpha1/namespaces/team-a/llmroutes";

#[tokio::test]
async fn operator_e2e_routes_reach_sidecars_status_follows_and_traffic_never_stops() {
    let env = env().await;
    env.fake.put_secret(
        "team-a",
        "llm-keys",
        CREDENTIALS,
        &[("openai", "sk-test-team-a")],
    );
    env.fake.put_secret(
        "team-b",
        "llm-keys",
        CREDENTIALS,
        &[("openai", "sk-test-team-b")],
    );
    env.fake
        .add_token("tok-a", "team-a", "web", "web-1", AUDIENCE);
    env.fake
        .add_token("tok-b", "team-b", "web", "web-b", AUDIENCE);
    env.fake
        .add_token("tok-other-audience", "team-a", "web", "web-x", "kubernetes");
    let port = free_port();
    let mut operator = env.operator(port);
    let policy_url = format!("https://127.0.0.1:{port}");
    let op_admin = operator.words[4].clone();

    // A route in team-a, a sidecar of team-a: the sidecar serves it, with the Secret's key.
    let (status, body) = env
        .send(
            Method::POST,
            ROUTES_A,
            Some(&env.route("team-a", "chat", "chat", json!({}))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let cache = env.dir.path().join("policy-a.json");
    let a = env.sidecar(&policy_url, "team-a", "web-1", "tok-a", Some(&cache));
    eventually("sidecar A serves the route", || async {
        env.chat(&a, "chat").await.0 == 200
    })
    .await;
    let seen = env.sim.attempts(Some("sim-gpt"));
    assert_eq!(
        seen.last()
            .unwrap()
            .key_hint
            .as_deref()
            .map(|h| h.ends_with("am-a")),
        Some(true),
        "the Secret's key"
    );
    eventually("the route is Accepted and Programmed", || async {
        let r = env.get(&format!("{ROUTES_A}/chat")).await;
        condition(&r, "Accepted")["status"] == "True"
            && condition(&r, "Programmed")["status"] == "True"
            && r["status"]["observedGeneration"] == 1
    })
    .await;
    let r = env.get(&format!("{ROUTES_A}/chat")).await;
    assert_eq!(
        condition(&r, "Programmed")["message"],
        "1 of 1 sidecars run generation 1"
    );
    assert_eq!(r["status"]["sidecars"]["connected"], 1);

    // A rotated key reaches the sidecar without a restart (the operator watches Secrets).
    env.fake.put_secret(
        "team-a",
        "llm-keys",
        CREDENTIALS,
        &[("openai", "sk-test-rotated")],
    );
    eventually("the rotated key is used", || async {
        env.chat(&a, "chat").await;
        env.sim
            .attempts(Some("sim-gpt"))
            .last()
            .and_then(|at| at.key_hint.clone())
            .is_some_and(|h| h.ends_with("ated"))
    })
    .await;

    // Traffic runs through every change below; not one request may fail.
    let load = Load::start(env.client.clone(), a.words[3].clone());

    // A valid update reaches the sidecar: a second model name.
    let (status, body) = env
        .update(&format!("{ROUTES_A}/chat"), |r| {
            r["spec"]["match"]["models"] = json!(["chat", "chat-v2"]);
        })
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("the update reaches sidecar A", || async {
        env.chat(&a, "chat-v2").await.0 == 200
    })
    .await;
    eventually("generation 2 is acknowledged in status", || async {
        let r = env.get(&format!("{ROUTES_A}/chat")).await;
        condition(&r, "Programmed")["message"] == "1 of 1 sidecars run generation 2"
    })
    .await;

    // An invalid update (a CEL rule only the compiler can check) is refused, says why, and the
    // last good generation keeps serving.
    let (status, body) = env
        .update(&format!("{ROUTES_A}/chat"), |r| {
            r["spec"]["match"]["models"] = json!(["chat", "chat-v3"]);
            r["spec"]["contract"] =
                json!({"rules": [{"expression": "answer.score >", "message": "m"}]});
        })
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("the invalid update is refused in status", || async {
        let r = env.get(&format!("{ROUTES_A}/chat")).await;
        condition(&r, "Accepted")["status"] == "False" && r["status"]["observedGeneration"] == 3
    })
    .await;
    let r = env.get(&format!("{ROUTES_A}/chat")).await;
    let msg = condition(&r, "Accepted")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.starts_with("spec.contract.rules[0].expression: not a valid CEL"),
        "{msg}"
    );
    assert_eq!(
        condition(&r, "Degraded")["message"],
        "generation 3 was refused; generation 2 keeps serving"
    );
    assert_eq!(r["status"]["servingGeneration"], 2);
    assert_eq!(env.chat(&a, "chat-v2").await.0, 200);
    assert_eq!(
        env.chat(&a, "chat-v3").await.0,
        404,
        "generation 3 never served"
    );
    assert!(
        env.fake.events().iter().any(|e| e["reason"] == "Invalid"),
        "an Event says the route was refused"
    );

    // A route whose Secret does not exist is refused by the sidecar, by name, and its status
    // says why; the other routes keep serving.
    let mut keyless = env.route("team-a", "keyless", "keyless", json!({}));
    keyless["spec"]["targets"][0]["credentials"] =
        json!({"secretRef": {"name": "missing", "key": "openai"}});
    let (status, body) = env.send(Method::POST, ROUTES_A, Some(&keyless)).await;
    assert_eq!(status, 201, "{body}");
    eventually("the sidecar's refusal lands in status", || async {
        let r = env.get(&format!("{ROUTES_A}/keyless")).await;
        condition(&r, "Programmed")["reason"] == "Rejected"
    })
    .await;
    let r = env.get(&format!("{ROUTES_A}/keyless")).await;
    let msg = condition(&r, "Programmed")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("web-1: ") && msg.contains("\"missing\" was not found"),
        "{msg}"
    );
    assert_eq!(r["status"]["sidecars"]["rejections"][0]["pod"], "web-1");
    assert_eq!(
        condition(&r, "Accepted")["status"],
        "True",
        "the spec itself is fine"
    );
    assert_eq!(env.chat(&a, "chat-v2").await.0, 200);
    assert_eq!(env.chat(&a, "keyless").await.0, 404);

    // A Secret that is not labelled for routes cannot be borrowed by a route: the route is
    // refused by the Secret's name, and the operator never read its data (it watches only
    // labelled Secrets and looks others up by their metadata alone).
    env.fake.put_secret(
        "team-a",
        "db-password",
        &[("app", "db")],
        &[("password", "hunter2-db-secret")],
    );
    let mut borrowed = env.route("team-a", "borrowed", "borrowed", json!({}));
    borrowed["spec"]["targets"][0]["credentials"] =
        json!({"secretRef": {"name": "db-password", "key": "password"}});
    let (status, body) = env.send(Method::POST, ROUTES_A, Some(&borrowed)).await;
    assert_eq!(status, 201, "{body}");
    eventually(
        "the route naming an unlabelled Secret is refused",
        || async {
            let r = env.get(&format!("{ROUTES_A}/borrowed")).await;
            condition(&r, "Accepted")["reason"] == "SecretNotLabelled"
        },
    )
    .await;
    let r = env.get(&format!("{ROUTES_A}/borrowed")).await;
    let msg = condition(&r, "Accepted")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("kubectl -n team-a label secret db-password plumb.dev/credentials=true"),
        "{msg}"
    );
    assert_eq!(env.chat(&a, "borrowed").await.0, 404, "never served");
    let reads = env.fake.secret_reads();
    assert!(
        reads.iter().all(|r| !r.contains("/secrets/db-password")),
        "{reads:?}"
    );
    assert!(
        reads
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/secrets?"))
            .all(|r| r.contains("labelSelector=plumb.dev%2Fcredentials%3Dtrue")),
        "every list and watch of Secrets is label-selected: {reads:?}"
    );
    assert!(
        !env.sim
            .attempts(None)
            .iter()
            .any(|at| at.key_hint.as_deref().is_some_and(|h| h.ends_with("cret"))),
        "the unlabelled Secret's value never reached a provider"
    );

    // Namespace isolation: team-b's sidecar never gets team-a's routes, and vice versa.
    let routes_b = "/apis/plumb.dev/v1alpha1/namespaces/team-b/llmroutes";
    let (status, _) = env
        .send(
            Method::POST,
            routes_b,
            Some(&env.route("team-b", "b-chat", "b-chat", json!({}))),
        )
        .await;
    assert_eq!(status, 201);
    let b = env.sidecar(&policy_url, "team-b", "web-b", "tok-b", None);
    eventually("sidecar B serves its own route", || async {
        env.chat(&b, "b-chat").await.0 == 200
    })
    .await;
    assert_eq!(
        env.chat(&b, "chat").await.0,
        404,
        "team-a's route is not in team-b"
    );
    assert_eq!(
        env.chat(&a, "b-chat").await.0,
        404,
        "team-b's route is not in team-a"
    );

    // Bad identities are refused: an unknown token, a token for another audience, a token of
    // another namespace than the sidecar claims.
    let bad_token = env.sidecar(&policy_url, "team-a", "web-2", "not-a-token", None);
    let wrong_audience = env.sidecar(&policy_url, "team-a", "web-x", "tok-other-audience", None);
    let wrong_ns = env.sidecar(&policy_url, "team-b", "web-y", "tok-a", None);
    eventually("the operator refused all three", || async {
        let m = env
            .client
            .get(format!("{op_admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.contains(r#"plumb_operator_refused_streams_total{reason="bad_token"}"#)
            && m.contains(r#"plumb_operator_refused_streams_total{reason="wrong_namespace"}"#)
    })
    .await;
    for p in [&bad_token, &wrong_audience, &wrong_ns] {
        let ready = env
            .client
            .get(format!("{}/readyz", p.words[5]))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(ready, 503, "a refused sidecar has no policy");
        assert_eq!(env.chat(p, "chat").await.0, 503);
    }

    // The operator dies: the sidecars keep serving (fail static). It comes back on the same
    // address: they reconnect and are programmed again.
    drop(operator);
    // A lower bound, not a guess: longer than the sidecar's 3 s control-plane timeout, so the
    // sidecar has given the stream up and serves from its last good policy alone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(env.chat(&a, "chat").await.0, 200);
    operator = env.operator(port);
    eventually("sidecar A reconnects to the new operator", || async {
        let r = env.get(&format!("{ROUTES_A}/chat")).await;
        condition(&r, "Programmed")["status"] == "True"
    })
    .await;

    let (n, failed) = load.finish().await;
    assert!(n > 20, "{n} requests sent");
    assert_eq!(
        failed, 0,
        "{failed} of {n} requests failed during updates and the operator's restart"
    );

    // A restarted sidecar serves from its cache before it reaches an operator.
    drop(operator);
    drop(a);
    let a2 = env.sidecar(&policy_url, "team-a", "web-1", "tok-a", Some(&cache));
    assert_eq!(
        env.chat(&a2, "chat-v2").await.0,
        200,
        "served from the policy cache"
    );
}

#[tokio::test]
async fn operator_e2e_route_warnings_reach_status_and_proxy_credentials_follow_the_secret_label_rule()
 {
    let env = env().await;
    env.fake.put_secret(
        "team-a",
        "llm-keys",
        CREDENTIALS,
        &[("openai", "sk-test-team-a")],
    );
    env.fake
        .add_token("tok-a", "team-a", "web", "web-1", AUDIENCE);
    let port = free_port();
    let _operator = env.operator(port);

    // Two embedding models, not declared the same model: accepted, with the warning.
    let mut embed = env.route("team-a", "embed", "embed", json!({}));
    let base = format!("{}/v1", env.sim.base_url());
    embed["spec"]["targets"] = json!([
        {"name": "openai", "provider": "openai", "baseUrl": base, "model": "text-embedding-3-small",
         "credentials": {"secretRef": {"name": "llm-keys", "key": "openai"}}},
        {"name": "local", "provider": "openai-compatible", "baseUrl": base, "model": "nomic-embed-text",
         "credentials": {"none": true}, "priority": 1}
    ]);
    let (status, body) = env.send(Method::POST, ROUTES_A, Some(&embed)).await;
    assert_eq!(status, 201, "{body}");
    eventually("the warning is in status", || async {
        let r = env.get(&format!("{ROUTES_A}/embed")).await;
        r["status"]["warnings"][0].as_str().is_some_and(|w| {
            w.contains("[openai (text-embedding-3-small)] and [local (nomic-embed-text)]")
        })
    })
    .await;
    let r = env.get(&format!("{ROUTES_A}/embed")).await;
    assert_eq!(condition(&r, "Accepted")["status"], "True");
    assert_eq!(
        condition(&r, "Accepted")["message"],
        "generation 1 compiles: 2 targets, with a warning in status.warnings"
    );

    // Declared the same model: the warning goes.
    let (status, body) = env
        .update(&format!("{ROUTES_A}/embed"), |r| {
            r["spec"]["sameModel"] = json!([["openai", "local"]]);
        })
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("the warning is gone", || async {
        let r = env.get(&format!("{ROUTES_A}/embed")).await;
        r["status"]["observedGeneration"] == 2 && r["status"].get("warnings").is_none()
    })
    .await;

    // A sameModel group naming no target is refused by the compiler, by its place.
    let mut unknown = env.route("team-a", "unknown", "unknown", json!({}));
    unknown["spec"]["sameModel"] = json!([["sim", "nope"]]);
    let (status, body) = env.send(Method::POST, ROUTES_A, Some(&unknown)).await;
    assert_eq!(status, 201, "{body}");
    eventually("the unknown name is refused", || async {
        let r = env.get(&format!("{ROUTES_A}/unknown")).await;
        condition(&r, "Accepted")["message"] == "spec.sameModel[0][1]: no target is named \"nope\""
    })
    .await;

    // A proxy's credentials follow the rule of every Secret a route names: unlabelled, refused
    // by name; its data never read.
    let proxy = plumb_simulator::testkit::TestProxy::start(
        Some(format!("Basic {}", b64_encode("user:hunter2-proxy"))),
        None,
    )
    .await
    .unwrap();
    env.fake.put_secret(
        "team-a",
        "corp-proxy",
        &[("app", "proxy")],
        &[("auth", "user:hunter2-proxy")],
    );
    let mut proxied = env.route("team-a", "proxied", "proxied", json!({}));
    proxied["spec"]["targets"][0]["proxy"] =
        json!({"url": proxy.url(), "credentialsSecret": {"name": "corp-proxy", "key": "auth"}});
    let (status, body) = env.send(Method::POST, ROUTES_A, Some(&proxied)).await;
    assert_eq!(status, 201, "{body}");
    eventually("the unlabelled proxy Secret is refused", || async {
        let r = env.get(&format!("{ROUTES_A}/proxied")).await;
        condition(&r, "Accepted")["reason"] == "SecretNotLabelled"
    })
    .await;
    let r = env.get(&format!("{ROUTES_A}/proxied")).await;
    let msg = condition(&r, "Accepted")["message"].as_str().unwrap();
    assert!(
        msg.contains("kubectl -n team-a label secret corp-proxy plumb.dev/credentials=true"),
        "{msg}"
    );
    assert!(!r.to_string().contains("hunter2"), "{r}");
    assert!(
        env.fake
            .secret_reads()
            .iter()
            .all(|r| !r.contains("/secrets/corp-proxy")),
        "never read"
    );
    // Labelled, it is delivered to the sidecars: the target's requests go through its proxy
    // with its credentials.
    env.fake.put_secret(
        "team-a",
        "corp-proxy",
        CREDENTIALS,
        &[("auth", "user:hunter2-proxy")],
    );
    let sidecar = env.sidecar(
        &format!("https://127.0.0.1:{port}"),
        "team-a",
        "web-1",
        "tok-a",
        None,
    );
    eventually("the sidecar serves through the route's proxy", || async {
        env.chat(&sidecar, "proxied").await.0 == 200
    })
    .await;
    let seen = proxy.seen();
    assert_eq!(
        seen[0].line,
        format!(
            "POST http://{}/v1/chat/completions HTTP/1.1",
            env.sim.addr()
        )
    );
    assert_eq!(
        seen[0].auth,
        Some(format!("Basic {}", b64_encode("user:hunter2-proxy")))
    );
    let r = env.get(&format!("{ROUTES_A}/proxied")).await;
    assert_eq!(condition(&r, "Accepted")["status"], "True");
    assert!(!r.to_string().contains("hunter2"), "{r}");
    // A proxy URL with a password in it is refused by the API server's schema or the compiler,
    // without repeating it.
    let mut inline = env.route("team-a", "inline", "inline", json!({}));
    inline["spec"]["targets"][0]["proxy"] = json!({"url": "http://u:hunter2@proxy.corp:3128"});
    let (status, body) = env.send(Method::POST, ROUTES_A, Some(&inline)).await;
    assert_eq!(status, 201, "{body}");
    eventually("the password in the proxy URL is refused", || async {
        let r = env.get(&format!("{ROUTES_A}/inline")).await;
        condition(&r, "Accepted")["status"] == "False"
    })
    .await;
    let r = env.get(&format!("{ROUTES_A}/inline")).await;
    assert!(
        !r["status"].to_string().contains("hunter2"),
        "{}",
        r["status"]
    );
}

#[tokio::test]
async fn operator_e2e_one_leader_serves_policy_and_a_new_one_takes_over_without_failed_requests() {
    let env = env().await;
    env.fake.put_secret(
        "team-a",
        "llm-keys",
        CREDENTIALS,
        &[("openai", "sk-test-team-a")],
    );
    env.fake
        .add_token("tok-a", "team-a", "web", "web-1", AUDIENCE);
    let (p1, p2) = (free_port(), free_port());
    let op1 = env.operator_named(p1, "operator-1");
    let op2 = env.operator_named(p2, "operator-2");
    let leader_of = |fake: &FakeCore| {
        ["operator-1", "operator-2"]
            .into_iter()
            .filter(|p| {
                fake.pod_labels("plumb-system", p)
                    .get("plumb.dev/leader")
                    .map(String::as_str)
                    == Some("true")
            })
            .collect::<Vec<_>>()
    };
    eventually("one replica leads", || async {
        leader_of(&env.fake).len() == 1
    })
    .await;
    let first = leader_of(&env.fake)[0];
    assert_eq!(
        env.fake
            .lease_holder("plumb-system", "plumb-operator-leader")
            .as_deref(),
        Some(first)
    );
    let (mut leader, follower, follower_port) = if first == "operator-1" {
        (Some(op1), op2, p2)
    } else {
        (Some(op2), op1, p1)
    };

    let service = leader_service(
        env.fake.clone(),
        vec![("operator-1".into(), p1), ("operator-2".into(), p2)],
    )
    .await;
    let (status, body) = env
        .send(
            Method::POST,
            ROUTES_A,
            Some(&env.route("team-a", "chat", "chat", json!({}))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let a = env.sidecar(
        &format!("https://127.0.0.1:{service}"),
        "team-a",
        "web-1",
        "tok-a",
        None,
    );
    eventually("the sidecar serves the route", || async {
        env.chat(&a, "chat").await.0 == 200
    })
    .await;

    // The follower serves no policy.
    let direct = env.sidecar(
        &format!("https://127.0.0.1:{follower_port}"),
        "team-a",
        "web-9",
        "tok-a",
        None,
    );
    let follower_admin = follower.words[4].clone();
    eventually("the follower refuses streams", || async {
        env.client
            .get(format!("{follower_admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains(r#"plumb_operator_refused_streams_total{reason="not_leader"}"#)
    })
    .await;
    assert_eq!(env.chat(&direct, "chat").await.0, 503);

    // Traffic while the leader dies: the follower takes the Lease, labels itself, and the
    // sidecar reconnects through the Service to it; no request fails.
    let load = Load::start(env.client.clone(), a.words[3].clone());
    eventually("traffic flows", || async { load.sent() >= 5 }).await;
    drop(leader.take());
    let second = if first == "operator-1" {
        "operator-2"
    } else {
        "operator-1"
    };
    eventually("the follower takes over", || async {
        leader_of(&env.fake) == vec![second]
    })
    .await;
    // A change made after the takeover reaches the sidecar from the new leader.
    let (status, _) = env
        .update(&format!("{ROUTES_A}/chat"), |r| {
            r["spec"]["match"]["models"] = json!(["chat", "chat-after"]);
        })
        .await;
    assert_eq!(status, 200);
    eventually("the new leader's policy reaches the sidecar", || async {
        env.chat(&a, "chat-after").await.0 == 200
    })
    .await;
    let (n, failed) = load.finish().await;
    assert!(n > 10, "{n}");
    assert_eq!(
        failed, 0,
        "{failed} of {n} requests failed across the leader change"
    );
    drop(follower);
}

fn b64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

// Multi-threaded: the operator sets up its certificate through the fake before it prints where it
// listens, while this test blocks reading that line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_e2e_manages_its_certificate_rotates_it_and_keeps_the_ca_bundle() {
    let env = env().await;
    env.fake
        .add_token("tok-a", "team-a", "web", "web-1", AUDIENCE);
    env.fake.put_secret(
        "team-a",
        "llm-keys",
        CREDENTIALS,
        &[("openai", "sk-test-team-a")],
    );
    env.fake.put_webhook_configuration(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "plumb-sidecar-injector"},
        "webhooks": [
            {"name": "namespace.inject.plumb.dev", "clientConfig": {"service": {"name": "w", "namespace": "plumb-system"}}},
            {"name": "pod.inject.plumb.dev", "clientConfig": {"service": {"name": "w", "namespace": "plumb-system"}}},
        ]
    }));
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plumb-operator"));
    cmd.args([
        "--policy-listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        "127.0.0.1:0",
        "--webhook-listen",
        "127.0.0.1:0",
        "--heartbeat-interval",
        "1s",
        "--manage-certificates",
        "--webhook-configuration",
        "plumb-sidecar-injector",
        "--certificate-dns-names",
        "localhost,127.0.0.1",
        // A certificate lives 8 s and is re-issued 5 s before it expires: several rotations
        // during the test.
        "--certificate-validity",
        "8s",
        "--certificate-renew-before",
        "5s",
        "--certificate-check-interval",
        "500ms",
        "--leader-elect=false",
    ])
    .env("KUBECONFIG", &env.kubeconfig)
    .env("POD_NAMESPACE", "plumb-system");
    let operator = spawn(cmd);
    let webhook_url = format!("{}/inject", operator.words[6]);

    // The operator made the Secret and put its CA in every webhook of the configuration.
    let secret = env
        .fake
        .secret("plumb-system", "plumb-operator-tls")
        .unwrap();
    let ca = b64(secret["data"]["ca.crt"].as_str().unwrap());
    let first_cert = secret["data"]["tls.crt"].as_str().unwrap().to_owned();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    let cfg = env
        .fake
        .webhook_configuration("plumb-sidecar-injector")
        .unwrap();
    for w in cfg["webhooks"].as_array().unwrap() {
        assert_eq!(b64(w["clientConfig"]["caBundle"].as_str().unwrap()), ca);
    }

    // The webhook and the policy service serve certificates the CA vouches for.
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE", "object": {"metadata": {"labels": {"plumb.dev/inject": "enabled"}},
            "spec": {"containers": [{"name": "app", "image": "app"}]}}}});
    let r: Value = trusting
        .post(&webhook_url)
        .json(&review)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["response"]["allowed"], true);
    assert!(r["response"]["patch"].is_string(), "{r}");
    let ca_file = env.dir.path().join("managed-ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let (status, _) = env
        .send(
            Method::POST,
            ROUTES_A,
            Some(&env.route("team-a", "chat", "chat", json!({}))),
        )
        .await;
    assert_eq!(status, 201);
    let sidecar = |pod: &str| {
        let token_file = env.dir.path().join(format!("token-{pod}"));
        std::fs::write(&token_file, "tok-a").unwrap();
        let mut cmd = Command::new(bin("plumb-sidecar"));
        cmd.args([
            "--control-plane",
            &format!("https://127.0.0.1:{port}"),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--ca-file")
        .arg(&ca_file)
        .env("POD_NAMESPACE", "team-a")
        .env("POD_NAME", pod);
        spawn(cmd)
    };
    let a = sidecar("web-1");
    eventually("the sidecar trusts the managed certificate", || async {
        env.chat(&a, "chat").await.0 == 200
    })
    .await;

    // The certificate is re-issued from the same CA before it expires; new connections get the
    // new one and still trust it; the CA bundle does not change.
    eventually("the certificate is re-issued", || async {
        env.fake
            .secret("plumb-system", "plumb-operator-tls")
            .unwrap()["data"]["tls.crt"]
            .as_str()
            .unwrap()
            != first_cert
    })
    .await;
    let rotated = env
        .fake
        .secret("plumb-system", "plumb-operator-tls")
        .unwrap();
    assert_eq!(
        b64(rotated["data"]["ca.crt"].as_str().unwrap()),
        ca,
        "same CA"
    );
    let b = sidecar("web-2");
    eventually(
        "a sidecar connecting after the rotation trusts it too",
        || async { env.chat(&b, "chat").await.0 == 200 },
    )
    .await;
    let r = trusting
        .post(&webhook_url)
        .json(&review)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the webhook serves the new certificate");
    assert_eq!(env.chat(&a, "chat").await.0, 200);
    drop(operator);
}
