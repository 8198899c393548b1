//! Egress through an HTTP proxy: `HTTPS_PROXY` tunnels `https://` upstreams with `CONNECT`
//! (TLS to the provider inside), `HTTP_PROXY` takes `http://` ones in absolute form,
//! `NO_PROXY` goes direct, a target's own `proxy` overrides the environment, and a proxy that
//! refuses is a `connect` failure naming it — never its credentials. A proxy in the test
//! process records what it was asked to carry; the simulator's attempt log shows what arrived.

use base64::Engine as _;
use serde_json::Value;

use crate::support::{
    Sidecar, TestProxy, attempts, chat, header, metrics, refused, route, simulator, target,
    tls_simulator,
};

fn basic(credentials: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// One route `chat` over one OpenAI target at `base`, plus `extra` under the target.
fn one_target(base: &str, extra: &str) -> String {
    route(
        "chat",
        &[target("up", "openai", base, "sim-gpt", extra)],
        "  classes: {connect: {retries: 0}}\n",
    )
}

#[tokio::test]
async fn https_upstreams_are_tunnelled_through_https_proxy_with_tls_inside() {
    let (sim, _dir, ca) = tls_simulator().await;
    let proxy = TestProxy::start(None, None).await.unwrap();
    // A name, not an address, so the CONNECT names the host the certificate is for.
    let base = format!("https://localhost:{}/v1", sim.addr().port());
    let sc = Sidecar::start_with_env_and_args(
        &one_target(&base, ""),
        &[("HTTPS_PROXY", &proxy.url())],
        &["--ca-file", &ca],
    );
    for stream in [false, true] {
        let r = sc.openai(chat(stream)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-plumb-served-by"), "up");
    }
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    assert_eq!(
        seen[0].line,
        format!("CONNECT localhost:{} HTTP/1.1", sim.addr().port())
    );
    assert_eq!(seen[0].auth, None);
    assert_eq!(
        attempts(&sim, "sim-gpt").await.len(),
        2,
        "both arrived, over TLS"
    );
}

#[tokio::test]
async fn http_upstreams_go_to_http_proxy_in_absolute_form_with_its_credentials() {
    let sim = simulator().await;
    let proxy = TestProxy::start(Some(basic("team:s3cret")), None)
        .await
        .unwrap();
    let base = format!("http://localhost:{}/v1", sim.addr().port());
    let proxy_url = format!("http://team:s3cret@{}", proxy.addr);
    let sc = Sidecar::start_with_env_and_args(
        &one_target(&base, ""),
        &[
            ("http_proxy", &proxy_url),
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ],
        &[],
    );
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = proxy.seen();
    assert_eq!(
        seen[0].line,
        format!(
            "POST http://localhost:{}/v1/chat/completions HTTP/1.1",
            sim.addr().port()
        )
    );
    assert_eq!(seen[0].auth.as_deref(), Some(basic("team:s3cret").as_str()));
    assert_eq!(attempts(&sim, "sim-gpt").await.len(), 1);
    // Without them, the proxy's 407 is a connect failure naming it, not the upstream's answer.
    let sc = Sidecar::start_with_env_and_args(
        &one_target(&base, ""),
        &[("HTTP_PROXY", &proxy.url())],
        &[],
    );
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "connect");
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "up: connect (proxy {}: answered 407 Proxy Authentication Required",
            proxy.addr
        )),
        "{msg}"
    );
    assert_eq!(
        attempts(&sim, "sim-gpt").await.len(),
        1,
        "nothing more arrived"
    );
}

#[tokio::test]
async fn no_proxy_hosts_are_reached_directly() {
    let sim = simulator().await;
    let proxy = TestProxy::start(None, None).await.unwrap();
    let base = format!("http://localhost:{}/v1", sim.addr().port());
    for no_proxy in [
        "localhost",
        ".svc,LOCALHOST",
        "*",
        &format!("localhost:{}", sim.addr().port()),
        "127.0.0.1,localhost",
    ] {
        let sc = Sidecar::start_with_env_and_args(
            &one_target(&base, ""),
            &[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", no_proxy)],
            &[],
        );
        let r = sc.openai(chat(false)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{no_proxy}");
    }
    // An address in a CIDR, in the lower-case variable.
    let base_ip = format!("{}/v1", sim.base_url());
    let sc = Sidecar::start_with_env_and_args(
        &one_target(&base_ip, ""),
        &[
            ("HTTP_PROXY", &proxy.url()),
            ("no_proxy", "10.0.0.0/8, 127.0.0.0/8"),
        ],
        &[],
    );
    assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 200);
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    // Another port of the same host is not bypassed.
    let sc = Sidecar::start_with_env_and_args(
        &one_target(&base, ""),
        &[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", "localhost:1")],
        &[],
    );
    assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 200);
    assert_eq!(proxy.seen().len(), 1);
}

#[tokio::test]
async fn a_proxy_that_wants_credentials_is_a_connect_failure_naming_the_proxy() {
    let (sim, _dir, ca) = tls_simulator().await;
    let proxy = TestProxy::start(Some(basic("u:hunter2pass")), None)
        .await
        .unwrap();
    let base = format!("https://localhost:{}/v1", sim.addr().port());
    let routes = one_target(&base, "");
    // No credentials: 407, classified connect, the proxy named.
    let sc = Sidecar::start_with_env_and_args(
        &routes,
        &[("HTTPS_PROXY", &proxy.url())],
        &["--ca-file", &ca],
    );
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "connect");
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "up: connect (proxy {}: answered CONNECT to localhost:{} with 407 Refused (the proxy wants credentials",
            proxy.addr,
            sim.addr().port()
        )),
        "{msg}"
    );
    assert!(
        attempts(&sim, "sim-gpt").await.is_empty(),
        "nothing reached the provider"
    );
    // Wrong credentials: the same, and the password shows nowhere.
    let wrong = format!("http://u:WRONGpass99@{}", proxy.addr);
    let sc =
        Sidecar::start_with_env_and_args(&routes, &[("HTTPS_PROXY", &wrong)], &["--ca-file", &ca]);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-failure-classes"), "connect");
    let heads = format!("{:?}", r.headers());
    let text = format!("{heads} {}", r.text().await.unwrap());
    let m = metrics(&sc.admin).await;
    let logs = String::from_utf8_lossy(&sc.logs.lock()).into_owned();
    for (what, t) in [("response", &text), ("metrics", &m), ("logs", &logs)] {
        assert!(!t.contains("WRONGpass99"), "{what} leaks the password: {t}");
        assert!(
            !t.contains(&basic("u:WRONGpass99")[6..]),
            "{what} leaks the header: {t}"
        );
    }
    assert!(
        logs.contains(&format!("https via {}", proxy.addr)),
        "{logs}"
    );
    // The right ones: served.
    let right = format!("http://u:hunter2pass@{}", proxy.addr);
    let sc =
        Sidecar::start_with_env_and_args(&routes, &[("HTTPS_PROXY", &right)], &["--ca-file", &ca]);
    assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 200);
    assert_eq!(
        proxy.seen().last().unwrap().auth.as_deref(),
        Some(basic("u:hunter2pass").as_str())
    );
}

#[tokio::test]
async fn refusals_and_an_absent_proxy_are_connect_failures_and_fail_over() {
    let (sim, _dir, ca) = tls_simulator().await;
    let refusing = TestProxy::start(None, Some(403)).await.unwrap();
    let base = format!("https://localhost:{}/v1", sim.addr().port());
    // Nothing listens on the first proxy; the second answers CONNECT with 403; the fallback
    // goes direct and answers.
    let (_dead, dead) = refused();
    let routes = route(
        "chat",
        &[
            target(
                "dead",
                "openai",
                &base,
                "sim-gpt",
                &format!("      proxy: {{url: 'http://{dead}'}}\n"),
            ),
            target(
                "refused",
                "openai",
                &base,
                "sim-gpt",
                &format!(
                    "      priority: 1\n      proxy: {{url: '{}'}}\n",
                    refusing.url()
                ),
            ),
            target(
                "direct",
                "openai",
                &base,
                "sim-gpt-mini",
                "      priority: 2\n      proxy: {none: true}\n",
            ),
        ],
        "  classes: {connect: {retries: 0}}\n",
    );
    let sc = Sidecar::start_with_env_and_args(&routes, &[], &["--ca-file", &ca]);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "direct");
    assert_eq!(header(&r, "x-plumb-failure-classes"), "connect,connect");
    assert_eq!(
        refusing.seen()[0].line,
        format!("CONNECT localhost:{} HTTP/1.1", sim.addr().port())
    );
    // Without the fallback, the client sees both proxies named.
    let routes = route(
        "chat",
        &[
            target(
                "dead",
                "openai",
                &base,
                "sim-gpt",
                &format!("      proxy: {{url: 'http://{dead}'}}\n"),
            ),
            target(
                "refused",
                "openai",
                &base,
                "sim-gpt",
                &format!(
                    "      priority: 1\n      proxy: {{url: '{}'}}\n",
                    refusing.url()
                ),
            ),
        ],
        "  classes: {connect: {retries: 0}}\n",
    );
    let sc = Sidecar::start_with_env_and_args(&routes, &[], &["--ca-file", &ca]);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("dead: connect (proxy {dead}: cannot connect: ")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "refused: connect (proxy {}: answered CONNECT to localhost:{} with 403 Refused)",
            refusing.addr,
            sim.addr().port()
        )),
        "{msg}"
    );
    assert!(attempts(&sim, "sim-gpt").await.is_empty());
}

#[tokio::test]
async fn a_targets_own_proxy_or_none_overrides_the_environment() {
    let (sim, _dir, ca) = tls_simulator().await;
    let from_env = TestProxy::start(None, None).await.unwrap();
    let own = TestProxy::start(None, None).await.unwrap();
    let base = format!("https://localhost:{}/v1", sim.addr().port());
    let routes = format!(
        "{}---\n{}",
        one_target(&base, "      proxy: {none: true}\n"),
        route(
            "own",
            &[target(
                "up",
                "openai",
                &base,
                "sim-gpt-mini",
                &format!("      proxy: {{url: '{}'}}\n", own.url())
            )],
            "",
        )
        .replace("name: r,", "name: r2,"),
    );
    let sc = Sidecar::start_with_env_and_args(
        &routes,
        &[("HTTPS_PROXY", &from_env.url())],
        &["--ca-file", &ca],
    );
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200, "none: true goes direct");
    let mut own_chat = chat(false);
    own_chat["model"] = "own".into();
    let r = sc.openai(own_chat).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(from_env.seen().is_empty(), "{:?}", from_env.seen());
    assert_eq!(own.seen().len(), 1);
    assert!(own.seen()[0].line.starts_with("CONNECT localhost:"));
}

#[tokio::test]
async fn an_unusable_proxy_variable_exits_64_without_showing_its_password() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let Err((code, err)) = Sidecar::start_with(
        &one_target(&base, ""),
        &[("HTTPS_PROXY", "socks5://user:topsecret42@proxy:1080")],
    ) else {
        panic!("started with a socks proxy");
    };
    assert_eq!(code, Some(64));
    assert!(
        err.contains("HTTPS_PROXY=\"socks5://***@proxy:1080\" is not an http:// proxy"),
        "{err}"
    );
    assert!(!err.contains("topsecret42"), "{err}");
}
