//! The operator's metrics: reconciles, errors by reason, connected sidecars, push latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A result label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok`, or what went wrong.
    pub result: &'static str,
}

/// A reason label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// A fixed reason.
    pub reason: &'static str,
}

/// A namespace label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// The namespace (bounded by the cluster's namespaces with sidecars).
    pub namespace: String,
}

/// A namespace and a fixed reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceReasonLabels {
    /// The namespace (bounded by the cluster's namespaces with sidecars).
    pub namespace: String,
    /// A fixed reason.
    pub reason: &'static str,
}

/// Every metric of the operator.
pub struct OperatorMetrics {
    registry: Registry,
    /// `plumb_operator_reconciles_total{result}`.
    pub reconciles: Family<ResultLabels, Counter>,
    /// `plumb_operator_reconcile_errors_total{reason}`.
    pub reconcile_errors: Family<ReasonLabels, Counter>,
    /// `plumb_operator_connected_sidecars{namespace}`.
    pub connected_sidecars: Family<NamespaceLabels, Gauge>,
    /// `plumb_operator_push_seconds`: from a snapshot's publication to a sidecar's
    /// acknowledgement of it.
    pub push_seconds: Histogram,
    /// `plumb_operator_refused_streams_total{reason}`: control streams refused.
    pub refused_streams: Family<ReasonLabels, Counter>,
    /// `plumb_operator_closed_streams_total{reason}`: control streams the operator ended
    /// (token expired or refused, another pod's token, silence, no longer the leader).
    pub closed_streams: Family<ReasonLabels, Counter>,
    /// `plumb_operator_oversized_snapshots_total{namespace}`: route generations refused because
    /// the namespace's snapshot would be over the control stream's message limit with them.
    pub oversized_snapshots: Family<NamespaceLabels, Counter>,
    /// `plumb_operator_knowledge_reports_total`: sidecar reports merged.
    pub knowledge_reports: Counter,
    /// `plumb_operator_report_items_dropped_total{namespace, reason}`: parts of sidecar reports
    /// the namespace's routes do not allow (unknown routes, targets, upstreams, outcomes,
    /// pairs), or clamped (counts, windows, cool-downs, samples).
    pub report_items_dropped: Family<NamespaceReasonLabels, Counter>,
    /// `plumb_operator_knowledge_pushes_total{namespace}`: the fleet's knowledge pushed to a
    /// namespace's sidecars.
    pub knowledge_pushes: Family<NamespaceLabels, Counter>,
    /// `plumb_operator_open_upstreams{namespace}`: upstreams every sidecar of the namespace
    /// skips.
    pub open_upstreams: Family<NamespaceLabels, Gauge>,
    /// `plumb_operator_knowledge_status_writes_total{result}`: per-target status written.
    pub knowledge_status_writes: Family<ResultLabels, Counter>,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        OperatorMetrics::new()
    }
}

impl OperatorMetrics {
    /// A registry with every metric registered.
    pub fn new() -> OperatorMetrics {
        let mut registry = Registry::default();
        let reconciles = Family::<ResultLabels, Counter>::default();
        let reconcile_errors = Family::<ReasonLabels, Counter>::default();
        let connected_sidecars = Family::<NamespaceLabels, Gauge>::default();
        let push_seconds = Histogram::new([
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0,
        ]);
        let refused_streams = Family::<ReasonLabels, Counter>::default();
        let closed_streams = Family::<ReasonLabels, Counter>::default();
        let knowledge_reports = Counter::default();
        let oversized_snapshots = Family::<NamespaceLabels, Counter>::default();
        let report_items_dropped = Family::<NamespaceReasonLabels, Counter>::default();
        let knowledge_pushes = Family::<NamespaceLabels, Counter>::default();
        let open_upstreams = Family::<NamespaceLabels, Gauge>::default();
        let knowledge_status_writes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "plumb_operator_knowledge_reports",
            "Sidecar health reports merged into the fleet's knowledge",
            knowledge_reports.clone(),
        );
        registry.register(
            "plumb_operator_oversized_snapshots",
            "Route generations refused because the namespace's policy snapshot would be over the control stream's message limit",
            oversized_snapshots.clone(),
        );
        registry.register(
            "plumb_operator_report_items_dropped",
            "Parts of sidecar reports dropped or clamped because the namespace's routes do not allow them, by reason",
            report_items_dropped.clone(),
        );
        registry.register(
            "plumb_operator_knowledge_pushes",
            "The fleet's knowledge pushed to a namespace's sidecars",
            knowledge_pushes.clone(),
        );
        registry.register(
            "plumb_operator_open_upstreams",
            "Upstreams every sidecar of the namespace skips until a probe finds them healthy",
            open_upstreams.clone(),
        );
        registry.register(
            "plumb_operator_knowledge_status_writes",
            "Writes of the fleet's per-target knowledge to LlmRoute status, by result",
            knowledge_status_writes.clone(),
        );
        registry.register(
            "plumb_operator_reconciles",
            "LlmRoute reconciles by result",
            reconciles.clone(),
        );
        registry.register(
            "plumb_operator_reconcile_errors",
            "Failed reconciles by reason (retried)",
            reconcile_errors.clone(),
        );
        registry.register(
            "plumb_operator_connected_sidecars",
            "Sidecars connected to the policy server, by namespace",
            connected_sidecars.clone(),
        );
        registry.register(
            "plumb_operator_push_seconds",
            "Time from a policy snapshot's publication to a sidecar's acknowledgement",
            push_seconds.clone(),
        );
        registry.register(
            "plumb_operator_refused_streams",
            "Sidecar control streams refused, by reason",
            refused_streams.clone(),
        );
        registry.register(
            "plumb_operator_closed_streams",
            "Sidecar control streams the operator ended, by reason",
            closed_streams.clone(),
        );
        OperatorMetrics {
            registry,
            reconciles,
            reconcile_errors,
            connected_sidecars,
            push_seconds,
            refused_streams,
            closed_streams,
            knowledge_reports,
            oversized_snapshots,
            report_items_dropped,
            knowledge_pushes,
            open_upstreams,
            knowledge_status_writes,
        }
    }

    /// The exposition a scraper asked for (see [`crate::Metrics::encode_for`]).
    pub fn encode_for(&self, accept: Option<&str>) -> (String, &'static str) {
        crate::encode_registry_for(&self.registry, accept)
    }
}
