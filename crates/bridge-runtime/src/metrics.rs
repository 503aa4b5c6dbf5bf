//! The runtime's Prometheus metrics, served in the OpenMetrics text format. Names are
//! `bridge_<name>_<unit>[_total]`; every gauge and histogram that measures a quantity
//! declares its unit (`# UNIT`); 0/1 state flags (`bridge_service_ready`,
//! `bridge_erp_breaker_open`) are unitless. Labels come from a small fixed set
//! (`bridge_service`, topic, partition, error_code) — never ids. The service's label is
//! `bridge_service`, not `service`: the Prometheus Operator sets `service` (the Kubernetes
//! Service scraped) on every target. Latency histograms carry the trace id of a recent
//! observation as an exemplar when spans are exported.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exemplar of a latency observation: the trace it was made in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    /// 32 hex digits.
    pub trace_id: String,
}

/// A latency histogram whose buckets keep the trace id of an observation.
pub type LatencyHistogram = HistogramWithExemplars<TraceExemplar>;

/// Observes `value` in `histogram` with the current span's trace id as its exemplar when
/// spans are exported and the trace is sampled.
pub fn observe_traced(histogram: &LatencyHistogram, value: f64) {
    let exemplar = crate::telemetry::spans_exported()
        .then(crate::trace::current_sampled_trace_id)
        .flatten()
        .map(|trace_id| TraceExemplar { trace_id });
    histogram.observe(value, exemplar, None);
}

/// Labels of per-partition series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
}

/// Labels of per-topic series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    /// Topic.
    pub topic: String,
}

/// Labels of error series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The fixed error class, e.g. `unknown_sku`, `body_mismatch`, `retryable`.
    pub error_code: String,
}

/// Every metric the runtime records for one service.
pub struct Metrics {
    /// Behind a lock so services can add their own series after start.
    registry: std::sync::Mutex<Registry>,
    /// Input records consumed.
    pub records_in: Family<PartitionLabels, Counter>,
    /// Output records produced (committed or not).
    pub records_out: Family<TopicLabels, Counter>,
    /// Handler and codec errors by class.
    pub errors: Family<ErrorLabels, Counter>,
    /// Records parked by class.
    pub parked: Family<ErrorLabels, Counter>,
    /// Errors the consumer reported, by librdkafka error code.
    pub consumer_errors: Family<ErrorLabels, Counter>,
    /// Inputs skipped as duplicates of an event id already processed.
    pub dedupe_hits: Counter,
    /// Inputs whose `occurred_at` was further ahead of the wall clock than allowed (their
    /// event time was taken as now plus the allowed lead).
    pub event_time_ahead: Counter,
    /// Transactions committed.
    pub commits: Counter,
    /// Transactions aborted.
    pub aborts: Counter,
    /// Time to commit a transaction.
    pub commit_seconds: Histogram,
    /// Time to restore a partition's state.
    pub restore_seconds: Histogram,
    /// How old each input was when processed: its `occurred_at` to now (the delay every
    /// hop adds up to), with trace exemplars.
    pub event_age_seconds: LatencyHistogram,
    /// Changelog records read in restores.
    pub restored_records: Counter,
    /// Consumer lag per partition (librdkafka statistics).
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// Partitions paused after retries gave up (Kafka keeps their records).
    pub paused_partitions: Gauge,
    /// 1 while the service reports ready.
    pub ready: Gauge,
}

impl Metrics {
    /// A fresh set, every series labelled with `service`.
    pub fn new(service: &str) -> Self {
        // The process's series under their usual names; the runtime's under `bridge_`.
        let mut registry = Registry::with_labels(
            [(
                std::borrow::Cow::Borrowed("bridge_service"),
                std::borrow::Cow::Owned(service.to_owned()),
            )]
            .into_iter(),
        );
        registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        let metrics = Self {
            records_in: Family::default(),
            records_out: Family::default(),
            errors: Family::default(),
            parked: Family::default(),
            consumer_errors: Family::default(),
            dedupe_hits: Counter::default(),
            event_time_ahead: Counter::default(),
            commits: Counter::default(),
            aborts: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            restore_seconds: Histogram::new([
                0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ]),
            event_age_seconds: LatencyHistogram::new(exponential_buckets(0.005, 2.0, 18)),
            restored_records: Counter::default(),
            consumer_lag: Family::default(),
            paused_partitions: Gauge::default(),
            ready: Gauge::default(),
            registry: std::sync::Mutex::new(Registry::default()),
        };
        let bridge = registry.sub_registry_with_prefix("bridge");
        bridge.register(
            "records_in",
            "Input records consumed",
            metrics.records_in.clone(),
        );
        bridge.register(
            "records_out",
            "Output records produced",
            metrics.records_out.clone(),
        );
        bridge.register(
            "errors",
            "Handler and codec errors by class",
            metrics.errors.clone(),
        );
        bridge.register("parked", "Records parked by class", metrics.parked.clone());
        bridge.register(
            "consumer_errors",
            "Errors the consumer reported, by librdkafka error code",
            metrics.consumer_errors.clone(),
        );
        bridge.register(
            "dedupe_hits",
            "Inputs skipped as duplicates",
            metrics.dedupe_hits.clone(),
        );
        bridge.register(
            "event_time_ahead",
            "Inputs dated further ahead of the wall clock than allowed (taken as now plus the allowed lead)",
            metrics.event_time_ahead.clone(),
        );
        bridge.register(
            "transactions_committed",
            "Transactions committed",
            metrics.commits.clone(),
        );
        bridge.register(
            "transactions_aborted",
            "Transactions aborted",
            metrics.aborts.clone(),
        );
        with_unit(
            bridge,
            "transaction_commit_seconds",
            "Time to commit a transaction",
            Unit::Seconds,
            metrics.commit_seconds.clone(),
        );
        with_unit(
            bridge,
            "state_restore_seconds",
            "Time to restore a partition's state",
            Unit::Seconds,
            metrics.restore_seconds.clone(),
        );
        with_unit(
            bridge,
            "event_age_seconds",
            "Age of each input when processed (its occurred_at to now)",
            Unit::Seconds,
            metrics.event_age_seconds.clone(),
        );
        bridge.register(
            "state_restored_records",
            "Changelog records read in restores",
            metrics.restored_records.clone(),
        );
        with_unit(
            bridge,
            "paused_partitions",
            "Partitions paused after retries gave up",
            Unit::Other("partitions".into()),
            metrics.paused_partitions.clone(),
        );
        with_unit(
            bridge,
            "consumer_lag_records",
            "Consumer lag per partition",
            Unit::Other("records".into()),
            metrics.consumer_lag.clone(),
        );
        bridge.register(
            "service_ready",
            "Whether the service reports ready (1) or not (0)",
            metrics.ready.clone(),
        );
        Self {
            registry: std::sync::Mutex::new(registry),
            ..metrics
        }
    }

    /// Adds a service's own series (`bridge_<name>…`, labelled with the service like the
    /// runtime's). Register once, at start; keep the handle to update it.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sub_registry_with_prefix("bridge")
            .register(name, help, metric);
    }

    /// [`Metrics::register`] with the unit the series measures; `name` ends in the unit
    /// (`erp_call_seconds`, `open_windows`), as OpenMetrics requires.
    pub fn register_with_unit(
        &self,
        name: &str,
        help: &str,
        unit: Unit,
        metric: impl prometheus_client::registry::Metric,
    ) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        with_unit(
            registry.sub_registry_with_prefix("bridge"),
            name,
            help,
            unit,
            metric,
        );
    }

    /// The OpenMetrics text format for `/metrics` ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Registers `name` (which ends in `_<unit>`) with `unit`: prometheus-client appends the
/// unit itself, so it is taken off the name first.
fn with_unit(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Unit,
    metric: impl prometheus_client::registry::Metric,
) {
    let suffix = format!("_{}", unit.as_str());
    let base = name.strip_suffix(suffix.as_str()).unwrap_or(name);
    registry.register_with_unit(base, help, unit, metric);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_the_service_and_fixed_labels_only() {
        let metrics = Metrics::new("erp-writer");
        metrics
            .records_in
            .get_or_create(&PartitionLabels {
                topic: "bridge.orders.v1".into(),
                partition: 2,
            })
            .inc();
        metrics
            .parked
            .get_or_create(&ErrorLabels {
                error_code: "unknown_sku".into(),
            })
            .inc_by(3);
        metrics.commit_seconds.observe(0.004);
        let text = metrics.render();
        assert!(text.contains(r#"bridge_records_in_total{bridge_service="erp-writer",topic="bridge.orders.v1",partition="2"} 1"#), "{text}");
        assert!(
            text.contains(
                r#"bridge_parked_total{bridge_service="erp-writer",error_code="unknown_sku"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains("bridge_transaction_commit_seconds_count"),
            "{text}"
        );
        // The process's own series keep the names dashboards know.
        let resident = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"process_resident_memory_bytes{bridge_service="erp-writer"} "#)
            })
            .and_then(|v| v.parse::<f64>().ok());
        assert!(resident.is_some_and(|b| b > 0.0), "{text}");
        assert!(
            text.contains(r#"process_cpu_seconds_total{bridge_service="erp-writer"} "#),
            "{text}"
        );
    }

    #[test]
    fn openmetrics_with_units_and_trace_exemplars() {
        let metrics = Metrics::new("inventory-aggregator");
        metrics
            .consumer_lag
            .get_or_create(&PartitionLabels {
                topic: "bridge.inventory-movements.v1".into(),
                partition: 0,
            })
            .set(12);
        metrics.event_age_seconds.observe(
            0.02,
            Some(TraceExemplar {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            }),
            None,
        );
        let text = metrics.render();
        for line in [
            "# UNIT bridge_consumer_lag_records records",
            "# UNIT bridge_paused_partitions partitions",
            "# UNIT bridge_transaction_commit_seconds seconds",
            "# UNIT bridge_event_age_seconds seconds",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing: {text}");
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("bridge_event_age_seconds_bucket{")
                    && l.contains(r#"# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.02"#)),
            "{text}"
        );
        assert!(!text.contains("_seconds_seconds"), "{text}");
    }

    #[test]
    fn series_added_later_are_under_the_runtime_prefix() {
        let metrics = Metrics::new("reconciler");
        let runs = prometheus_client::metrics::counter::Counter::<u64>::default();
        metrics.register("reconciler_runs", "Runs", runs.clone());
        runs.inc();
        let text = metrics.render();
        assert!(
            text.contains(r#"bridge_reconciler_runs_total{bridge_service="reconciler"} 1"#),
            "{text}"
        );
    }
}
