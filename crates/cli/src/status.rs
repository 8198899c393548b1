//! `plumb status`: the cluster's `LlmRoute`s as their status says — conditions, the generation
//! the sidecars serve, the sidecars, and per target what the fleet knows (state, error rate,
//! latency, breaker consensus, rate-limit window, learned deadline, certification).
//!
//! It reads only what the operator wrote (`crates/operator/src/status.rs`); it decides nothing.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use plumb_api::{LlmRoute, LlmRouteStatus, TargetStatus};
use serde::Serialize;

use crate::exit::{self, Failure};
use crate::render::{Output, Style, structured, table};

/// Which routes.
#[derive(Clone, Debug)]
pub struct Selection {
    /// The namespace, or every one.
    pub namespace: Option<String>,
    /// One route by name.
    pub route: Option<String>,
}

/// One route as `status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Model names.
    pub models: Vec<String>,
    /// `metadata.generation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The status as the operator wrote it.
    pub status: LlmRouteStatus,
}

fn view(route: &LlmRoute) -> RouteView {
    RouteView {
        namespace: route.metadata.namespace.clone().unwrap_or_default(),
        name: route.metadata.name.clone().unwrap_or_default(),
        models: route.spec.matches.models.clone(),
        generation: route.metadata.generation,
        status: route.status.clone().unwrap_or_default(),
    }
}

fn api(client: &kube::Client, namespace: Option<&str>) -> Api<LlmRoute> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn unavailable(e: kube::Error) -> Failure {
    Failure::new(
        exit::UNAVAILABLE,
        format!("cannot read LlmRoutes from the cluster: {e}"),
    )
}

/// Reads the selected routes once.
pub async fn read(client: &kube::Client, sel: &Selection) -> Result<Vec<RouteView>, Failure> {
    let api = api(client, sel.namespace.as_deref());
    let mut routes: Vec<RouteView> = match &sel.route {
        Some(name) => match api.get_opt(name).await.map_err(unavailable)? {
            Some(r) => vec![view(&r)],
            None => {
                return Err(Failure::new(
                    exit::FAILED,
                    format!(
                        "no LlmRoute {name:?} in namespace {}",
                        sel.namespace.as_deref().unwrap_or("(all)")
                    ),
                ));
            }
        },
        None => api
            .list(&ListParams::default())
            .await
            .map_err(unavailable)?
            .items
            .iter()
            .map(view)
            .collect(),
    };
    routes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(routes)
}

/// Renders the selected routes again whenever one changes, writing each rendering to `out`,
/// until the watch ends or `out` refuses.
pub async fn watch(
    client: &kube::Client,
    sel: &Selection,
    output: Output,
    style: Style,
    clear: bool,
    mut out: impl FnMut(&str) -> bool,
) -> Result<(), Failure> {
    let api = api(client, sel.namespace.as_deref());
    let mut config = watcher::Config::default();
    if let Some(name) = &sel.route {
        config = config.fields(&format!("metadata.name={name}"));
    }
    let mut stream = watcher(api, config).boxed();
    let mut routes: BTreeMap<(String, String), RouteView> = BTreeMap::new();
    let mut init: BTreeMap<(String, String), RouteView> = BTreeMap::new();
    let mut last = String::new();
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| {
            Failure::new(exit::UNAVAILABLE, format!("watching LlmRoutes failed: {e}"))
        })?;
        let key = |r: &LlmRoute| {
            (
                r.metadata.namespace.clone().unwrap_or_default(),
                r.metadata.name.clone().unwrap_or_default(),
            )
        };
        let ready = match event {
            watcher::Event::Init => {
                init.clear();
                false
            }
            watcher::Event::InitApply(r) => {
                init.insert(key(&r), view(&r));
                false
            }
            watcher::Event::InitDone => {
                routes = std::mem::take(&mut init);
                true
            }
            watcher::Event::Apply(r) => {
                routes.insert(key(&r), view(&r));
                true
            }
            watcher::Event::Delete(r) => {
                routes.remove(&key(&r));
                true
            }
        };
        if !ready {
            continue;
        }
        let list: Vec<RouteView> = routes.values().cloned().collect();
        let text = render(&list, output, style).map_err(|e| Failure::new(exit::FAILED, e))?;
        if text != last {
            let frame = if clear {
                format!("\x1b[2J\x1b[H{text}")
            } else {
                format!("{text}\n")
            };
            if !out(&frame) {
                return Ok(());
            }
            last = text;
        }
    }
    Ok(())
}

fn condition<'a>(s: &'a LlmRouteStatus, kind: &str) -> Option<&'a Condition> {
    s.conditions.iter().find(|c| c.type_ == kind)
}

/// Renders routes as the user asked.
pub fn render(routes: &[RouteView], output: Output, style: Style) -> Result<String, String> {
    if let Some(s) = structured(output, &routes)? {
        return Ok(s);
    }
    if routes.is_empty() {
        return Ok("No LlmRoutes found.\n".to_owned());
    }
    let cond = |s: &LlmRouteStatus, kind: &str, good: &str| {
        condition(s, kind).map_or_else(
            || style.dim("-"),
            |c| {
                let text = if c.reason.is_empty() {
                    c.status.clone()
                } else {
                    format!("{} ({})", c.status, c.reason)
                };
                if c.status == good {
                    style.good(&text)
                } else if c.status == "Unknown" {
                    style.warn(&text)
                } else {
                    style.bad(&text)
                }
            },
        )
    };
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            let s = &r.status;
            let generation = format!(
                "{}/{}/{}",
                r.generation.map_or_else(|| "-".into(), |g| g.to_string()),
                s.observed_generation
                    .map_or_else(|| "-".into(), |g| g.to_string()),
                s.serving_generation
                    .map_or_else(|| "-".into(), |g| g.to_string()),
            );
            let sidecars = s.sidecars.as_ref().map_or_else(
                || "-".into(),
                |sc| format!("{}/{}", sc.programmed, sc.connected),
            );
            vec![
                format!("{}/{}", r.namespace, r.name),
                r.models.join(","),
                cond(s, "Accepted", "True"),
                cond(s, "Programmed", "True"),
                cond(s, "Degraded", "False"),
                generation,
                sidecars,
                s.healthy.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ROUTE",
            "MODELS",
            "ACCEPTED",
            "PROGRAMMED",
            "DEGRADED",
            "GEN (SPEC/SEEN/SERVING)",
            "SIDECARS",
            "HEALTHY",
        ],
        &rows,
        style,
    );
    for r in routes {
        let s = &r.status;
        let problems: Vec<&Condition> = s
            .conditions
            .iter()
            .filter(|c| {
                (c.type_ == "Degraded" && c.status == "True")
                    || (c.type_ != "Degraded" && c.status != "True")
            })
            .filter(|c| !c.message.is_empty())
            .collect();
        let rejections = s
            .sidecars
            .as_ref()
            .map(|sc| sc.rejections.as_slice())
            .unwrap_or_default();
        if s.targets.is_empty() && problems.is_empty() && rejections.is_empty() {
            continue;
        }
        out.push('\n');
        out.push_str(&style.bold(&format!("{}/{}", r.namespace, r.name)));
        out.push('\n');
        for c in problems {
            out.push_str(&format!(
                "  {} {}: {}\n",
                style.warn(&c.type_),
                c.reason,
                c.message
            ));
        }
        for rej in rejections {
            out.push_str(&format!(
                "  {} {}: {}\n",
                style.bad("rejected by"),
                rej.pod,
                rej.reason
            ));
        }
        if !s.targets.is_empty() {
            let rows: Vec<Vec<String>> = s.targets.iter().map(|t| target_row(t, style)).collect();
            let t = table(
                &[
                    "  TARGET",
                    "STATE",
                    "ATTEMPTS/1m",
                    "ERROR RATE",
                    "ERRORS",
                    "P50",
                    "P99",
                    "BREAKERS OPEN",
                    "RATE-LIMITED UNTIL",
                    "FIRST TOKEN",
                    "EQUIVALENCE",
                ],
                &rows,
                style,
            );
            out.push_str(&t);
            for t in &s.targets {
                if let Some(m) = &t.message {
                    out.push_str(&format!("  {}: {m}\n", t.name));
                }
            }
        }
    }
    Ok(out)
}

fn target_row(t: &TargetStatus, style: Style) -> Vec<String> {
    let state = match t.state.as_str() {
        "Healthy" => style.good(&t.state),
        "Unknown" => style.dim(&t.state),
        "Degraded" | "RateLimited" => style.warn(&t.state),
        _ => style.bad(&t.state),
    };
    let ms = |v: f64| {
        if v >= 1000.0 {
            format!("{:.1}s", v / 1000.0)
        } else {
            format!("{v:.0}ms")
        }
    };
    let dash = || "-".to_owned();
    vec![
        format!("  {}", t.name),
        state,
        t.attempts.to_string(),
        t.error_rate
            .map_or_else(dash, |r| format!("{:.1}%", r * 100.0)),
        if t.errors.is_empty() {
            dash()
        } else {
            t.errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        },
        t.latency_ms.as_ref().map_or_else(dash, |l| ms(l.p50)),
        t.latency_ms.as_ref().map_or_else(dash, |l| ms(l.p99)),
        t.breakers
            .as_ref()
            .map_or_else(dash, |b| format!("{}/{}", b.open, b.reporting)),
        t.rate_limited_until.clone().unwrap_or_else(dash),
        t.first_token.as_ref().map_or_else(dash, |f| {
            format!(
                "{} (p99 {}, n={})",
                ms(f.deadline_ms),
                ms(f.p99_ms),
                f.samples
            )
        }),
        t.equivalence.as_ref().map_or_else(dash, |e| {
            let verdict = if e.certified {
                style.good("certified")
            } else {
                style.warn("uncertified")
            };
            format!(
                "{verdict} {}/{} lower={:.2}",
                e.agreements, e.samples, e.lower_bound
            )
        }),
    ]
}
