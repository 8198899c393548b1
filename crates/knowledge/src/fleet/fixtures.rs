//! Fixtures for the store's tests: upstreams, sidecar reports, and a fleet of connected pods.

use plumb_policy::UpstreamKey;
use plumb_proto::v1;

use super::{Fleet, Settings};
use crate::upstream_to_proto;

pub(super) fn key(model: &str) -> UpstreamKey {
    UpstreamKey {
        base_url: "https://llm.example/v1".into(),
        model: model.into(),
        credential: "secret:keys/openai".into(),
    }
}

pub(super) fn target(route: &str, name: &str, model: &str) -> v1::TargetReport {
    v1::TargetReport {
        route: route.into(),
        target: name.into(),
        upstream: Some(upstream_to_proto(&key(model))),
        breaker: v1::BreakerState::Closed as i32,
        cooldown_ms: 1_000,
        ..v1::TargetReport::default()
    }
}

pub(super) fn report(targets: Vec<v1::TargetReport>) -> v1::Report {
    v1::Report {
        sequence: 1,
        targets,
        equivalence: Vec::new(),
        urgent: false,
    }
}

pub(super) fn outcomes(pairs: &[(&str, u64)]) -> std::collections::HashMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

pub(super) fn directive<'a>(
    k: &'a v1::Knowledge,
    model: &str,
) -> Option<&'a v1::UpstreamDirective> {
    k.upstreams
        .iter()
        .find(|d| d.upstream.as_ref().is_some_and(|u| u.model == model))
}

pub(super) fn fleet_of(pods: &[&str]) -> Fleet {
    let mut f = Fleet::new(Settings::default());
    for p in pods {
        f.connected("team-a", p);
    }
    f
}
