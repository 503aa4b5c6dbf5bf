//! The reconciler's series, next to the runtime's: runs, orders checked, findings opened
//! and resolved, mismatches by kind as of the last run, repairs asked, rounding tolerated,
//! and the sync delay (Magento `updated_at` → ERP booked) — trends, not only outages.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bridge_runtime::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Unit;

/// A finding kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `LINE_MISSING`, ...
    pub kind: String,
}

/// A side or target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SideLabels {
    /// `magento` or `erp`.
    pub side: String,
}

/// The series.
#[derive(Clone)]
pub struct ReconcilerMetrics {
    /// Finished runs (per partition).
    pub runs: Counter,
    /// Duration of the last finished run, seconds.
    pub run_seconds: Gauge<f64, AtomicU64>,
    /// When the last run finished, seconds since the epoch.
    pub last_run: Gauge<f64, AtomicU64>,
    /// Orders compared.
    pub orders_checked: Counter,
    /// Orders not compared yet because they changed within the settle time.
    pub orders_unsettled: Counter,
    /// Stock rows compared.
    pub stock_checked: Counter,
    /// Findings opened or changed, by kind.
    pub opened: Family<KindLabels, Counter>,
    /// Findings resolved, by kind.
    pub resolved: Family<KindLabels, Counter>,
    /// Open findings by kind as of each partition's last run.
    pub mismatches: Family<KindLabels, Gauge>,
    /// Repairs asked, by side repaired.
    pub resyncs: Family<SideLabels, Counter>,
    /// API reads that failed, by side (the slice is tried again).
    pub api_errors: Family<SideLabels, Counter>,
    /// Σ amount differences within the tolerance (order currency units, all currencies).
    pub rounding: Counter<f64, AtomicU64>,
    /// Seconds from Magento's `updated_at` to the ERP's booking, per order.
    pub sync_delay: Histogram,
    per_partition: Arc<Mutex<HashMap<i32, BTreeMap<String, i64>>>>,
}

impl ReconcilerMetrics {
    /// Registers the series.
    pub fn register(metrics: &Arc<Metrics>) -> Self {
        let this = Self {
            runs: Counter::default(),
            run_seconds: Gauge::default(),
            last_run: Gauge::default(),
            orders_checked: Counter::default(),
            orders_unsettled: Counter::default(),
            stock_checked: Counter::default(),
            opened: Family::default(),
            resolved: Family::default(),
            mismatches: Family::default(),
            resyncs: Family::default(),
            api_errors: Family::default(),
            rounding: Counter::default(),
            sync_delay: Histogram::new([
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0,
            ]),
            per_partition: Arc::default(),
        };
        metrics.register(
            "reconciler_runs",
            "Finished reconciliation runs (per partition)",
            this.runs.clone(),
        );
        metrics.register_with_unit(
            "reconciler_run_seconds",
            "Duration of the last finished run",
            Unit::Seconds,
            this.run_seconds.clone(),
        );
        metrics.register_with_unit(
            "reconciler_last_run_timestamp_seconds",
            "When the last run finished",
            Unit::Seconds,
            this.last_run.clone(),
        );
        metrics.register(
            "reconciler_orders_checked",
            "Orders compared",
            this.orders_checked.clone(),
        );
        metrics.register(
            "reconciler_orders_unsettled",
            "Orders skipped as still changing (settle time)",
            this.orders_unsettled.clone(),
        );
        metrics.register(
            "reconciler_stock_checked",
            "Stock rows (SKU, source) compared",
            this.stock_checked.clone(),
        );
        metrics.register(
            "reconciler_findings_opened",
            "Findings opened or changed, by kind",
            this.opened.clone(),
        );
        metrics.register(
            "reconciler_findings_resolved",
            "Findings resolved, by kind",
            this.resolved.clone(),
        );
        metrics.register_with_unit(
            "reconciler_open_findings",
            "Open findings by kind as of the last run",
            Unit::Other("findings".into()),
            this.mismatches.clone(),
        );
        metrics.register(
            "reconciler_resyncs",
            "Repairs requested, by side repaired",
            this.resyncs.clone(),
        );
        metrics.register(
            "reconciler_api_errors",
            "Failed API reads, by side",
            this.api_errors.clone(),
        );
        metrics.register(
            "reconciler_rounding_difference",
            "Sum of amount differences within the rounding tolerance",
            this.rounding.clone(),
        );
        metrics.register_with_unit(
            "reconciler_sync_delay_seconds",
            "Magento updated_at to ERP booking, per order",
            Unit::Seconds,
            this.sync_delay.clone(),
        );
        this
    }

    /// Records the open findings by kind of `partition`'s finished run.
    pub fn run_finished(&self, partition: i32, open: &BTreeMap<String, i64>) {
        let mut all = self.per_partition.lock().unwrap_or_else(|p| p.into_inner());
        let before = all.insert(partition, open.clone()).unwrap_or_default();
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for counts in all.values() {
            for (kind, n) in counts {
                *totals.entry(kind.clone()).or_default() += n;
            }
        }
        let kinds: std::collections::BTreeSet<&String> = all
            .values()
            .flat_map(|c| c.keys())
            .chain(before.keys())
            .collect();
        for kind in kinds {
            let n = totals.get(kind).copied().unwrap_or_default();
            self.mismatches
                .get_or_create(&KindLabels { kind: kind.clone() })
                .set(n);
        }
    }

    /// Counts a failed read.
    pub fn api_error(&self, side: &str) {
        self.api_errors
            .get_or_create(&SideLabels {
                side: side.to_owned(),
            })
            .inc();
    }
}
