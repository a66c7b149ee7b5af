//! Prometheus metrics of the operator (served on `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

/// All operator metrics; cheap to clone (each metric is an Arc inside).
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub failovers_seen: Counter,
    pub label_moves: Counter,
    /// Seconds from receiving `+switch-master` to the role labels being moved.
    pub switch_to_label_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            reconcile_errors: Family::default(),
            failovers_seen: Counter::default(),
            label_moves: Counter::default(),
            switch_to_label_seconds: Histogram::new(
                [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0].into_iter(),
            ),
        }
    }
}

impl Metrics {
    /// Registers every metric under the `rf_operator` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("rf_operator");
        r.register("reconciles", "Reconciliations run", self.reconciles.clone());
        r.register("reconcile_errors", "Reconciliation errors by kind", self.reconcile_errors.clone());
        r.register("failovers_seen", "Master changes observed through the sentinels", self.failovers_seen.clone());
        r.register("label_moves", "Role label patches applied to server pods", self.label_moves.clone());
        r.register(
            "switch_master_to_label_seconds",
            "Time from receiving +switch-master to the role labels being moved",
            self.switch_to_label_seconds.clone(),
        );
    }

    /// The text exposition of a registry.
    pub fn encode(registry: &Registry) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed() {
        let m = Metrics::default();
        let mut reg = Registry::default();
        m.register(&mut reg);
        m.reconciles.inc();
        m.reconcile_errors.get_or_create(&ErrorLabels { error: "kube".into() }).inc();
        m.switch_to_label_seconds.observe(0.02);
        let text = Metrics::encode(&reg);
        assert!(text.contains("rf_operator_reconciles_total 1"), "{text}");
        assert!(text.contains("rf_operator_reconcile_errors_total{error=\"kube\"} 1"), "{text}");
        assert!(text.contains("rf_operator_switch_master_to_label_seconds_count 1"), "{text}");
        assert!(text.contains("rf_operator_failovers_seen_total 0"), "{text}");
    }
}
