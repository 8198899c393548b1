//! The policy in force: the routes and their keys, swapped atomically so a reload never drops
//! or mixes in-flight requests (each request keeps the snapshot it started with), plus the
//! state that outlives reloads — breakers, retry budgets, certifications and shadow limits.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;
use plumb_policy::{Route, RouteId, RouteSet};
use plumb_telemetry::{Metrics, TargetLabels};

use crate::breaker::Breakers;
use crate::equivalence::Certifications;
use crate::equivalence::limits::Shadows;
use crate::fleet::Fleet;
use crate::keys::Keys;
use crate::observe::RouteHandles;
use crate::retry::Budget;

/// One complete, valid policy.
#[derive(Debug)]
pub struct Policy {
    /// The routes.
    pub routes: RouteSet,
    /// Their keys.
    pub keys: Keys,
    /// Where it came from (a file path and hash, or a control-plane version), for logs.
    pub version: String,
}

/// The policy and the per-upstream and per-route state that survives reloads.
pub struct Table {
    current: ArcSwapOption<Policy>,
    /// Breakers by upstream.
    pub breakers: Breakers,
    /// What shadow sampling learned of each route's candidates.
    pub certifications: Certifications,
    /// Each route's shadow limits in force.
    pub shadows: Shadows,
    /// What the fleet says, and what this sidecar reports to it.
    pub fleet: Fleet,
    /// The deadlines learned of each upstream.
    pub learned: crate::learned::Learned,
    budgets: Mutex<crate::ConfigMap<RouteId, Arc<Budget>>>,
    /// Each route's metric handles, rebuilt with every policy.
    handles: ArcSwap<crate::ConfigMap<RouteId, Arc<RouteHandles>>>,
}

impl Default for Table {
    fn default() -> Self {
        Table::new()
    }
}

impl Table {
    /// No policy yet: the sidecar is not ready.
    pub fn new() -> Table {
        Table {
            current: ArcSwapOption::empty(),
            breakers: Breakers::default(),
            certifications: Certifications::default(),
            shadows: Shadows::default(),
            fleet: Fleet::new(),
            learned: crate::learned::Learned::default(),
            budgets: Mutex::default(),
            handles: ArcSwap::from_pointee(crate::ConfigMap::default()),
        }
    }

    /// The policy in force, if any.
    pub fn current(&self) -> Option<Arc<Policy>> {
        self.current.load_full()
    }

    /// Puts a new policy in force. Breakers and budgets of the routes it keeps are kept.
    pub fn apply(&self, policy: Policy, metrics: &Metrics) {
        for route in policy.routes.routes() {
            self.budget(&route.id, route.retry_budget)
                .update(route.retry_budget);
            for t in &route.targets {
                self.breakers.configure(&t.upstream, route.breaker);
                let state = self.breakers.get(&t.upstream, route.breaker).state();
                metrics
                    .breaker_state
                    .get_or_create(&TargetLabels {
                        route: route.id.to_string(),
                        target: t.name.clone(),
                    })
                    .set(state.gauge());
            }
        }
        let handles = policy
            .routes
            .routes()
            .iter()
            .map(|r| (r.id.clone(), Arc::new(RouteHandles::new(r))))
            .collect();
        self.handles.store(Arc::new(handles));
        self.current.store(Some(Arc::new(policy)));
    }

    /// The metric handles of `route` (fresh ones for a route of an older policy).
    pub fn handles(&self, route: &Route) -> Arc<RouteHandles> {
        self.handles
            .load()
            .get(&route.id)
            .cloned()
            .unwrap_or_else(|| Arc::new(RouteHandles::new(route)))
    }

    /// Puts the fleet's knowledge of `namespace` in force: directives, retry budget scales,
    /// certifications. Breakers of upstreams a fleet probe just found healthy may probe at once.
    pub fn apply_knowledge(&self, namespace: &str, k: &plumb_proto::v1::Knowledge) {
        for key in self.fleet.apply(k) {
            if let Some(b) = self.breakers.existing(&key) {
                b.probe_now();
            }
        }
        self.learned.seed(&k.upstreams);
        let scales = self.fleet.view().retry_scales.clone();
        for (id, budget) in self.budgets.lock().iter() {
            budget.set_scale(scales.get(&id.name).copied().unwrap_or(1.0));
        }
        self.certifications.set_fleet(namespace, &k.certifications);
    }

    /// The control stream is gone: the sidecar runs on its own evidence.
    pub fn forget_fleet(&self) {
        self.fleet.forget();
        for budget in self.budgets.lock().values() {
            budget.set_scale(1.0);
        }
        self.certifications.forget_fleet();
    }

    /// The retry budget of a route.
    pub fn budget(&self, id: &RouteId, settings: plumb_policy::RetryBudget) -> Arc<Budget> {
        self.budgets
            .lock()
            .entry(id.clone())
            .or_insert_with(|| {
                let b = Budget::new(settings);
                b.set_scale(
                    self.fleet
                        .view()
                        .retry_scales
                        .get(&id.name)
                        .copied()
                        .unwrap_or(1.0),
                );
                Arc::new(b)
            })
            .clone()
    }
}
