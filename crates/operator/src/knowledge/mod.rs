//! The knowledge store at work: the sidecars' reports go in ([`Knowledge::report`]) — only
//! what the namespace's compiled routes allow ([`plumb_knowledge::fleet::admit`]) — the
//! fleet's view goes out to every sidecar of the namespace (at once on a state change, else at
//! most once per push interval), each route's status shows it per target, and what a human
//! should hear of becomes an Event on the route. The merging and planning themselves are pure
//! and live in `plumb-knowledge` ([`plumb_knowledge::fleet`]).
//!
//! Status is written by server-side apply under its own field manager
//! (`plumb-operator-knowledge`: `status.targets` and `status.healthy`), at most every
//! `min_interval` for a change of state and every `interval` for changed numbers, and never when
//! nothing material changed, so a busy fleet does not flood the API server. A new leader reads
//! every route's status first and starts from it: open upstreams stay open, rate-limit windows
//! hold, certifications keep their samples.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use plumb_api::{
    BreakersStatus, EquivalenceStatus, FirstTokenStatus, LatencyStatus, LlmRoute, TargetStatus,
    TokenTimeStatus, UpstreamStatus,
};
use plumb_knowledge::fleet::admit::{self, Catalog, RouteCatalog};
use plumb_knowledge::fleet::{Seed, Settings};
use plumb_knowledge::{Fleet, FleetEvent, TargetState, TargetSummary};
use plumb_policy::UpstreamKey;
use plumb_proto::v1;
use plumb_telemetry::clock;
use plumb_telemetry::operator::{
    NamespaceLabels, NamespaceReasonLabels, OperatorMetrics, ResultLabels,
};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

mod status;

pub use status::{Change, StatusPace, change, run};
use status::{parse_ms, target_status, upstream_key};

/// The field manager of the knowledge in status.
pub const MANAGER: &str = "plumb-operator-knowledge";

/// What the store needs of an accepted route.
#[derive(Clone, Debug, PartialEq)]
struct RouteInfo {
    uid: Option<String>,
    /// `(name, upstream, primary-grade)`.
    targets: Vec<(String, UpstreamKey, bool)>,
    /// The equivalence threshold and minimum samples that certify.
    certify: (f64, u32),
    /// Its deadlines (what a learned first-token deadline is drawn within).
    deadlines: plumb_policy::Deadlines,
}

/// A route's knowledge as its status shows it: `(namespace, name)`, the targets, and the
/// `Healthy` column.
type RouteStatus = ((String, String), Vec<TargetStatus>, String);

/// What was last written of a route: the targets, the column, and when.
type Written = HashMap<(String, String), (Vec<TargetStatus>, Option<String>, Instant)>;

/// The store, its subscribers, and the routes it summarises.
pub struct Knowledge {
    fleet: Mutex<Fleet>,
    channels: Mutex<HashMap<String, watch::Sender<Arc<v1::Knowledge>>>>,
    routes: Mutex<BTreeMap<(String, String), RouteInfo>>,
    /// Per namespace, what its compiled routes let its sidecars report.
    catalogs: Mutex<HashMap<String, Catalog>>,
    /// Certifications read from status, waiting for their route to be compiled (which says
    /// which targets are its primaries): (namespace, route) → (candidate, agreements, samples).
    seeded_certs: Mutex<SeededCerts>,
    push_every: Duration,
    metrics: Arc<OperatorMetrics>,
}

type SeededCerts = HashMap<(String, String), Vec<(String, UpstreamKey, u64, u64)>>;

impl Knowledge {
    /// An empty store; changes that are not urgent are pushed at most every `push_every`.
    pub fn new(
        settings: Settings,
        push_every: Duration,
        metrics: Arc<OperatorMetrics>,
    ) -> Knowledge {
        Knowledge {
            fleet: Mutex::new(Fleet::new(settings)),
            channels: Mutex::new(HashMap::new()),
            routes: Mutex::new(BTreeMap::new()),
            catalogs: Mutex::new(HashMap::new()),
            seeded_certs: Mutex::new(HashMap::new()),
            push_every,
            metrics,
        }
    }

    fn channel(&self, namespace: &str) -> watch::Sender<Arc<v1::Knowledge>> {
        self.channels
            .lock()
            .entry(namespace.to_owned())
            .or_insert_with(|| watch::channel(Arc::new(v1::Knowledge::default())).0)
            .clone()
    }

    /// The namespace's knowledge, now and as it changes.
    pub fn subscribe(&self, namespace: &str) -> watch::Receiver<Arc<v1::Knowledge>> {
        self.channel(namespace).subscribe()
    }

    fn publish(&self, namespace: &str) {
        let k = self.fleet.lock().knowledge(namespace, clock::unix_ms_now());
        self.channel(namespace).send_replace(Arc::new(k));
        self.metrics
            .knowledge_pushes
            .get_or_create(&NamespaceLabels {
                namespace: namespace.to_owned(),
            })
            .inc();
    }

    /// A sidecar connected.
    pub fn connected(&self, namespace: &str, pod: &str) {
        self.fleet.lock().connected(namespace, pod);
    }

    /// A sidecar disconnected (its prober duty passes on at the next tick).
    pub fn disconnected(&self, namespace: &str, pod: &str) {
        self.fleet.lock().disconnected(namespace, pod);
    }

    /// Merges what the namespace's routes allow of a sidecar's report (the rest is dropped
    /// and counted); a state change is pushed to the namespace at once. The report is admitted
    /// in place, not copied.
    pub fn report(&self, namespace: &str, pod: &str, report: v1::Report) {
        self.metrics.knowledge_reports.inc();
        let now = clock::unix_ms_now();
        let (admitted, dropped) = {
            let catalogs = self.catalogs.lock();
            let empty = Catalog::new();
            let catalog = catalogs.get(namespace).unwrap_or(&empty);
            admit::admit_owned(report, catalog, now, &admit::Limits::default())
        };
        for (why, n) in &dropped {
            self.metrics
                .report_items_dropped
                .get_or_create(&NamespaceReasonLabels {
                    namespace: namespace.to_owned(),
                    reason: why.as_str(),
                })
                .inc_by(*n);
        }
        if !dropped.is_empty() {
            tracing::debug!(%namespace, %pod, ?dropped, "parts of a report dropped or clamped");
        }
        let urgent = self.fleet.lock().report(namespace, pod, &admitted, now);
        if urgent {
            self.publish(namespace);
        }
    }

    /// Plans every namespace and pushes what changed.
    pub fn tick(&self) {
        let (pushes, open) = {
            let mut fleet = self.fleet.lock();
            let pushes = fleet.tick(clock::unix_ms_now(), self.push_every);
            (pushes, fleet.open_upstreams())
        };
        for (namespace, n) in open {
            self.metrics
                .open_upstreams
                .get_or_create(&NamespaceLabels { namespace })
                .set(n as i64);
        }
        for ns in pushes.namespaces {
            self.publish(&ns);
        }
    }

    /// An accepted route: its targets are summarised in its status.
    pub fn describe(
        &self,
        namespace: &str,
        name: &str,
        uid: Option<String>,
        route: &plumb_policy::Route,
    ) {
        let info = RouteInfo {
            uid,
            targets: route
                .all_targets()
                .map(|t| {
                    (
                        t.name.clone(),
                        t.upstream.clone(),
                        route.is_primary_grade(t),
                    )
                })
                .collect(),
            certify: (route.equivalence.threshold, route.equivalence.min_samples),
            deadlines: route.deadlines,
        };
        self.routes
            .lock()
            .insert((namespace.to_owned(), name.to_owned()), info);
        self.catalogs
            .lock()
            .entry(namespace.to_owned())
            .or_default()
            .insert(name.to_owned(), RouteCatalog::of(route));
        self.credit_seeded_certs(namespace, name);
    }

    /// Certifications read from status are credited to the route's first primary once the
    /// route is compiled (status does not say which targets are primaries).
    fn credit_seeded_certs(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(primary) = self.routes.lock().get(&key).and_then(|info| {
            info.targets
                .iter()
                .find(|(_, _, p)| *p)
                .map(|(_, k, _)| k.clone())
        }) else {
            return;
        };
        let Some(certs) = self.seeded_certs.lock().remove(&key) else {
            return;
        };
        let mut fleet = self.fleet.lock();
        for (target, candidate, agreements, samples) in certs {
            fleet.seed(
                namespace,
                name,
                &target,
                &candidate,
                Seed {
                    equivalence: Some((primary.clone(), agreements, samples)),
                    ..Seed::default()
                },
                clock::unix_ms_now(),
            );
        }
    }

    /// A deleted route: nothing more is admitted of it.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.routes
            .lock()
            .remove(&(namespace.to_owned(), name.to_owned()));
        let mut catalogs = self.catalogs.lock();
        if let Some(c) = catalogs.get_mut(namespace) {
            c.remove(name);
            if c.is_empty() {
                catalogs.remove(namespace);
            }
        }
    }

    /// Each known route's targets as its status shows them, and its `Healthy` column.
    fn statuses(&self, now_ms: i64) -> Vec<RouteStatus> {
        let routes = self.routes.lock().clone();
        let fleet = self.fleet.lock();
        routes
            .into_iter()
            .map(|((ns, name), info)| {
                let summaries = fleet.summary(&ns, &name, &info.targets, now_ms);
                let healthy = summaries.iter().filter(|s| s.healthy()).count();
                let column = format!("{healthy}/{}", summaries.len());
                let targets = summaries
                    .into_iter()
                    .zip(&info.targets)
                    .map(|(s, (_, key, _))| target_status(s, key, info.certify, &info.deadlines))
                    .collect();
                ((ns, name), targets, column)
            })
            .collect()
    }

    /// Restores what the routes' statuses recorded.
    pub fn seed(&self, routes: &[LlmRoute]) -> usize {
        let now = clock::unix_ms_now();
        let mut credit = Vec::new();
        let mut fleet = self.fleet.lock();
        let mut seeded = 0;
        for route in routes {
            let (Some(ns), Some(status)) = (route.namespace(), route.status.as_ref()) else {
                continue;
            };
            let name = route.name_any();
            let certs: Vec<(String, UpstreamKey, u64, u64)> = status
                .targets
                .iter()
                .filter_map(|t| {
                    let e = t.equivalence.as_ref()?;
                    Some((
                        t.name.clone(),
                        upstream_key(&t.upstream),
                        e.agreements,
                        e.samples,
                    ))
                })
                .collect();
            if !certs.is_empty() {
                seeded += certs.len();
                self.seeded_certs
                    .lock()
                    .insert((ns.clone(), name.clone()), certs);
                credit.push((ns.clone(), name.clone()));
            }
            for t in &status.targets {
                let seed = Seed {
                    open: (TargetState::parse(&t.state) == Some(TargetState::Open)).then(|| {
                        (
                            t.open_since.as_deref().and_then(parse_ms).unwrap_or(now),
                            t.message
                                .clone()
                                .unwrap_or_else(|| "open before the operator restarted".into()),
                        )
                    }),
                    rate_limited_until_ms: t.rate_limited_until.as_deref().and_then(parse_ms),
                    equivalence: None,
                };
                if seed != Seed::default() {
                    seeded += 1;
                }
                fleet.seed(&ns, &name, &t.name, &upstream_key(&t.upstream), seed, now);
            }
        }
        drop(fleet);
        // Routes already compiled take their certifications now; the others when they are.
        for (ns, name) in credit {
            self.credit_seeded_certs(&ns, &name);
        }
        seeded
    }

    fn take_events(&self) -> Vec<FleetEvent> {
        self.fleet.lock().take_events()
    }

    /// The routes of a namespace with a target on `upstream`, with their uid.
    fn routes_using(
        &self,
        namespace: &str,
        upstream: &UpstreamKey,
    ) -> Vec<(String, Option<String>, String)> {
        self.routes
            .lock()
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .flat_map(|((_, name), info)| {
                info.targets
                    .iter()
                    .filter(|(_, k, _)| k == upstream)
                    .map(|(t, _, _)| (name.clone(), info.uid.clone(), t.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn uid_of(&self, namespace: &str, name: &str) -> Option<String> {
        self.routes
            .lock()
            .get(&(namespace.to_owned(), name.to_owned()))
            .and_then(|i| i.uid.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_certifications_are_credited_to_the_primary_once_the_route_is_compiled() {
        let set = plumb_policy::parse_routes_file(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: chat, namespace: team-a}\nspec:\n  match: {models: [chat]}\n  targets:\n    - {name: cheap, provider: openai, baseUrl: 'http://h/v1', model: mini, credentials: {none: true}, priority: 2}\n    - {name: primary, provider: openai, baseUrl: 'http://h/v1', model: gpt, credentials: {none: true}}\n    - {name: backup, provider: openai, baseUrl: 'http://h/v1', model: claude, credentials: {none: true}, priority: 1}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let route = &set.routes()[0];
        let status_of = |name: &str, eq: Option<(u64, u64)>| TargetStatus {
            name: name.into(),
            upstream: {
                let t = route.all_targets().find(|t| t.name == name);
                let k = t.map(|t| t.upstream.clone()).unwrap_or_else(|| panic!());
                UpstreamStatus {
                    base_url: k.base_url,
                    model: k.model,
                    credential: k.credential,
                }
            },
            state: "Healthy".into(),
            equivalence: eq.map(|(agreements, samples)| EquivalenceStatus {
                agreements,
                samples,
                ..EquivalenceStatus::default()
            }),
            ..TargetStatus::default()
        };
        let mut llm: LlmRoute = serde_json::from_value(json!({
            "apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
            "metadata": {"name": "chat", "namespace": "team-a"},
            "spec": {"match": {"models": ["chat"]}, "targets": []},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        llm.status = Some(plumb_api::LlmRouteStatus {
            targets: vec![
                status_of("cheap", None),
                status_of("primary", None),
                status_of("backup", Some((30, 31))),
            ],
            ..plumb_api::LlmRouteStatus::default()
        });
        let k = Knowledge::new(
            Settings::default(),
            Duration::from_secs(1),
            Arc::new(OperatorMetrics::new()),
        );
        assert_eq!(k.seed(&[llm]), 1);
        // Not credited before the route is compiled: status does not say which is primary.
        assert!(
            k.fleet
                .lock()
                .knowledge("team-a", 0)
                .certifications
                .is_empty()
        );
        k.describe("team-a", "chat", None, route);
        let certs = k.fleet.lock().knowledge("team-a", 0).certifications;
        assert_eq!(certs.len(), 1);
        assert_eq!(
            certs[0].primary.as_ref().map(|u| u.model.as_str()),
            Some("gpt")
        );
        assert_eq!((certs[0].agreements, certs[0].samples), (30, 31));
    }

    #[test]
    fn reports_are_held_against_the_namespaces_routes_before_they_reach_the_fleet() {
        let set = plumb_policy::parse_routes_file(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: chat, namespace: team-a}\nspec:\n  match: {models: [chat]}\n  targets:\n    - {name: primary, provider: openai, baseUrl: 'http://h/v1', model: gpt, credentials: {none: true}}\n    - {name: backup, provider: openai, baseUrl: 'http://h/v1', model: claude, credentials: {none: true}, priority: 1}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let route = &set.routes()[0];
        let metrics = Arc::new(OperatorMetrics::new());
        let k = Knowledge::new(Settings::default(), Duration::from_secs(1), metrics.clone());
        k.describe("team-a", "chat", None, route);
        let primary = route.targets[0].upstream.clone();
        let now = clock::unix_ms_now();
        let target = |route: &str, upstream: &UpstreamKey, until: i64| v1::TargetReport {
            route: route.into(),
            target: "primary".into(),
            upstream: Some(plumb_knowledge::upstream_to_proto(upstream)),
            outcomes: [("rate_limited".to_owned(), 1)].into_iter().collect(),
            rate_limited_until_unix_ms: until,
            ..v1::TargetReport::default()
        };
        let invented = UpstreamKey {
            model: "invented".into(),
            ..primary.clone()
        };
        k.report(
            "team-a",
            "web-1",
            v1::Report {
                sequence: 1,
                targets: vec![
                    // A window a year ahead on the real target, and the same on routes and
                    // upstreams that do not exist.
                    target("chat", &primary, now + 365 * 86_400_000),
                    target("invented", &primary, now + 60_000),
                    target("chat", &invented, now + 60_000),
                ],
                equivalence: vec![v1::EquivalenceSamples {
                    route: "chat".into(),
                    primary: Some(plumb_knowledge::upstream_to_proto(&primary)),
                    candidate: Some(plumb_knowledge::upstream_to_proto(
                        &route.targets[1].upstream,
                    )),
                    agreements: 1_000_000,
                    samples: 1_000_000,
                }],
                urgent: true,
            },
        );
        let known = k.fleet.lock().knowledge("team-a", now);
        assert_eq!(known.upstreams.len(), 1, "{known:?}");
        let until = known.upstreams[0].rate_limited_until_unix_ms;
        assert!(
            until > now && until <= clock::unix_ms_now() + 3_600_000,
            "the window is at most an hour ahead: {until} at {now}"
        );
        assert!(known.certifications.is_empty(), "the route does not shadow");
        let text = metrics.encode_for(None).0;
        for reason in [
            "unknown_route",
            "wrong_upstream",
            "window_clamped",
            "not_shadowing",
        ] {
            assert!(
                text.contains(&format!(
                    "plumb_operator_report_items_dropped_total{{namespace=\"team-a\",reason=\"{reason}\"}} 1"
                )),
                "{reason}: {text}"
            );
        }
        // A deleted route's reports are no longer admitted.
        k.forget("team-a", "chat");
        k.report(
            "team-a",
            "web-1",
            v1::Report {
                sequence: 2,
                targets: vec![target("chat", &primary, 0)],
                ..v1::Report::default()
            },
        );
        assert!(
            metrics.encode_for(None).0.contains(
                "plumb_operator_report_items_dropped_total{namespace=\"team-a\",reason=\"unknown_route\"} 2"
            )
        );
    }
}
