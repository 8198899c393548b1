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
        OperatorMetrics {
            registry,
            reconciles,
            reconcile_errors,
            connected_sidecars,
            push_seconds,
            refused_streams,
        }
    }

    /// The exposition a scraper asked for (see [`crate::Metrics::encode_for`]).
    pub fn encode_for(&self, accept: Option<&str>) -> (String, &'static str) {
        crate::encode_registry_for(&self.registry, accept)
    }
}
