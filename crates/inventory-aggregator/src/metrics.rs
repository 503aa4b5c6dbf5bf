//! The aggregator's own series, next to the runtime's (records in/out, dedupe hits,
//! parked, lag).

use std::sync::Arc;

use bridge_runtime::metrics::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;

/// The series.
#[derive(Clone)]
pub struct AggregatorMetrics {
    /// Windows opened and not yet closed by this process (per partition it owns).
    pub open_windows: Gauge,
    /// `StockDeltaAggregated` events emitted (one per key and closed window).
    pub emitted: Counter,
    /// Movements that arrived after their window had closed.
    pub late_movements: Counter,
    /// Emitted aggregates carrying late movements.
    pub late_windows: Counter,
    /// Seconds from a window's end to its emission.
    pub emission_delay_seconds: Histogram,
}

impl AggregatorMetrics {
    /// Registers the series with the service's registry.
    pub fn register(metrics: &Arc<Metrics>) -> Self {
        let this = Self::unregistered();
        metrics.register_with_unit(
            "aggregator_open_windows",
            "Windows open in this process",
            Unit::Other("windows".into()),
            this.open_windows.clone(),
        );
        metrics.register(
            "aggregator_emitted",
            "Aggregates emitted (one per SKU, source and closed window)",
            this.emitted.clone(),
        );
        metrics.register(
            "aggregator_late_movements",
            "Movements that arrived after their window closed (carried as corrections)",
            this.late_movements.clone(),
        );
        metrics.register(
            "aggregator_late_corrections",
            "Emitted aggregates flagged as late corrections",
            this.late_windows.clone(),
        );
        metrics.register_with_unit(
            "aggregator_emission_delay_seconds",
            "Seconds from a window's end to its emission",
            Unit::Seconds,
            this.emission_delay_seconds.clone(),
        );
        this
    }

    /// Series not exported anywhere (tests).
    pub fn unregistered() -> Self {
        Self {
            open_windows: Gauge::default(),
            emitted: Counter::default(),
            late_movements: Counter::default(),
            late_windows: Counter::default(),
            emission_delay_seconds: Histogram::new(exponential_buckets(0.1, 2.0, 14)),
        }
    }
}
