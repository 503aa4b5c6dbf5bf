//! erp-writer's own series, next to the runtime's (records in/out, parked, retries,
//! paused partitions, lag).

use std::sync::Arc;

use bridge_runtime::metrics::{LatencyHistogram, Metrics};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Unit;

use erp::connector::ErpError;

/// An ERP call's operation and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `create_order`, `find_order`, ...
    pub op: String,
    /// `ok`, `rejected`, `unavailable`, `protocol`.
    pub outcome: String,
}

/// A verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `accepted` or `rejected`.
    pub verdict: String,
}

/// The series.
#[derive(Clone)]
pub struct WriterMetrics {
    /// ERP calls by operation and outcome.
    pub calls: Family<CallLabels, Counter>,
    /// ERP call latency.
    pub call_seconds: LatencyHistogram,
    /// 1 while the circuit breaker is open.
    pub breaker_open: Gauge,
    /// Calls that waited for the rate limit.
    pub rate_limited: Counter,
    /// Order verdicts.
    pub verdicts: Family<VerdictLabels, Counter>,
    /// Stock adjustment requests by outcome (`posted`, `existing`, `rejected`, `retry`).
    pub stock_adjustments: Family<VerdictLabels, Counter>,
    /// Window aggregates taken into a batch.
    pub stock_lines: Counter,
    /// Resync requests handled, by what they did.
    pub resyncs: Family<VerdictLabels, Counter>,
    /// Customers found or created in the ERP ahead of their orders, in batches.
    pub customers_ensured: Counter,
}

impl WriterMetrics {
    /// Registers the series with the service's registry.
    pub fn register(metrics: &Arc<Metrics>) -> Self {
        let this = Self {
            calls: Family::default(),
            call_seconds: LatencyHistogram::new(exponential_buckets(0.001, 2.0, 16)),
            breaker_open: Gauge::default(),
            rate_limited: Counter::default(),
            verdicts: Family::default(),
            stock_adjustments: Family::default(),
            stock_lines: Counter::default(),
            resyncs: Family::default(),
            customers_ensured: Counter::default(),
        };
        metrics.register(
            "erp_calls",
            "ERP calls by operation and outcome",
            this.calls.clone(),
        );
        metrics.register_with_unit(
            "erp_call_seconds",
            "ERP call latency",
            Unit::Seconds,
            this.call_seconds.clone(),
        );
        metrics.register(
            "erp_breaker_open",
            "1 while the circuit breaker is open",
            this.breaker_open.clone(),
        );
        metrics.register(
            "erp_rate_limited",
            "ERP calls that waited for the rate limit",
            this.rate_limited.clone(),
        );
        metrics.register("erp_verdicts", "Order verdicts", this.verdicts.clone());
        metrics.register(
            "erp_stock_adjustments",
            "Stock adjustment requests by outcome",
            this.stock_adjustments.clone(),
        );
        metrics.register(
            "erp_stock_lines",
            "Window aggregates taken into stock adjustment batches",
            this.stock_lines.clone(),
        );
        metrics.register(
            "erp_customers_ensured",
            "Customers found or created in the ERP ahead of their orders, in batches",
            this.customers_ensured.clone(),
        );
        metrics.register(
            "erp_resyncs",
            "Resync requests handled, by what they did to the ERP",
            this.resyncs.clone(),
        );
        this
    }

    /// Counts a resync by what it did.
    pub fn resync(&self, repair: &str) {
        self.resyncs
            .get_or_create(&VerdictLabels {
                verdict: repair.to_owned(),
            })
            .inc();
    }

    /// Counts a call.
    pub fn call<T>(&self, op: &str, result: &Result<T, ErpError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(ErpError::Rejected { .. }) => "rejected",
            Err(ErpError::Unavailable { .. }) => "unavailable",
            Err(ErpError::Protocol(_)) => "protocol",
        };
        self.calls
            .get_or_create(&CallLabels {
                op: op.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a stock adjustment request's outcome.
    pub fn verdict_stock(&self, outcome: &str) {
        self.stock_adjustments
            .get_or_create(&VerdictLabels {
                verdict: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a verdict.
    pub fn verdict(&self, verdict: &str) {
        self.verdicts
            .get_or_create(&VerdictLabels {
                verdict: verdict.to_owned(),
            })
            .inc();
    }
}
