//! A run's progress, kept in the partition's state so a run survives restarts and
//! proceeds in bounded slices: orders page by page (by key), then — on partition 0 — stock
//! page by page. A daily summary is logged when the day turns.

use std::collections::BTreeMap;

use bridge_events::Millis;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Which part of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Orders of this partition.
    Orders,
    /// Every ERP order against Magento (partition 0 only).
    ErpOrders,
    /// Stock (partition 0 only).
    Stock,
}

/// A run under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Active {
    /// When it started.
    pub started_at: Millis,
    /// Where it is.
    pub phase: Phase,
    /// The last order key compared.
    pub cursor: Option<String>,
    /// The last ERP order reference compared.
    #[serde(default)]
    pub erp_cursor: Option<String>,
    /// The last stock page compared.
    pub stock_page: usize,
    /// Repairs asked in this run.
    pub resyncs: u32,
    /// Orders compared.
    pub checked: u64,
    /// Stock rows compared.
    pub stock_checked: u64,
    /// Open findings by kind at the end of each entity's comparison.
    pub open: BTreeMap<String, i64>,
    /// Σ rounding tolerated.
    pub rounding: Decimal,
}

impl Active {
    /// A run starting `now`.
    pub fn new(now: Millis) -> Self {
        Self {
            started_at: now,
            phase: Phase::Orders,
            cursor: None,
            erp_cursor: None,
            stock_page: 0,
            resyncs: 0,
            checked: 0,
            stock_checked: 0,
            open: BTreeMap::new(),
            rounding: Decimal::ZERO,
        }
    }
}

/// The partition's run state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The next run starts at this time (0: at once).
    pub next_at: Millis,
    /// The run under way.
    pub active: Option<Active>,
}

/// The UTC day of a time, `YYYY-MM-DD`.
pub fn day_of(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// What a day's runs found: logged once when the day turns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DailySummary {
    /// The day.
    pub day: String,
    /// Runs finished.
    pub runs: u64,
    /// Orders compared.
    pub orders_checked: u64,
    /// Findings opened, by kind.
    pub opened: BTreeMap<String, u64>,
    /// Sync delays seen, seconds (bounded sample).
    pub delays: Vec<f64>,
    /// Σ rounding tolerated.
    pub rounding: Decimal,
}

const DELAY_SAMPLE: usize = 100_000;

/// Today's summary, shared by the loop's handler and the control endpoint.
pub type SharedSummary = std::sync::Arc<std::sync::Mutex<DailySummary>>;

impl DailySummary {
    /// Makes this `day`'s summary: another day's is logged and started afresh. Called
    /// before anything is counted, so what a run counts before its end is in its day (the
    /// first run's sync delays were dropped when its end set the day).
    pub fn turn_to(&mut self, day: String) {
        if self.day != day {
            if !self.day.is_empty() {
                self.log();
            }
            *self = DailySummary {
                day,
                ..DailySummary::default()
            };
        }
    }

    /// Notes a sync delay.
    pub fn delay(&mut self, seconds: f64) {
        if self.delays.len() < DELAY_SAMPLE {
            self.delays.push(seconds);
        }
    }

    /// The `q` quantile (0–1) of the sync delays, seconds.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        if self.delays.is_empty() {
            return None;
        }
        let mut sorted = self.delays.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }

    /// As JSON (`GET /summary` on the control endpoint).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "day": self.day,
            "runs": self.runs,
            "orders_checked": self.orders_checked,
            "findings_opened": self.opened,
            "sync_delay_seconds": {
                "p50": self.percentile(0.5),
                "p90": self.percentile(0.9),
                "p99": self.percentile(0.99),
                "orders": self.delays.len(),
            },
            "rounding_tolerated": self.rounding.to_string(),
        })
    }

    /// Logs it.
    pub fn log(&self) {
        let p = |q| {
            self.percentile(q)
                .map_or("-".to_owned(), |s| format!("{s:.1}s"))
        };
        tracing::info!(
            day = %self.day,
            runs = self.runs,
            orders_checked = self.orders_checked,
            findings_opened = ?self.opened,
            sync_delay_p50 = %p(0.5),
            sync_delay_p90 = %p(0.9),
            sync_delay_p99 = %p(0.99),
            rounding_tolerated = %self.rounding,
            "daily reconciliation summary"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
        assert_eq!(day_of(1_795_996_799_999), "2026-11-29");
        assert_eq!(day_of(1_795_996_800_000), "2026-11-30");
    }

    #[test]
    fn what_is_counted_before_the_first_run_ends_stays_in_its_day() {
        let mut summary = DailySummary::default();
        summary.turn_to("2026-11-30".into());
        summary.delay(4.0);
        summary.turn_to("2026-11-30".into());
        summary.runs += 1;
        assert_eq!(summary.percentile(0.5), Some(4.0));
        summary.turn_to("2026-12-01".into());
        assert_eq!(summary.percentile(0.5), None);
        assert_eq!(summary.runs, 0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = DailySummary::default();
        assert_eq!(s.percentile(0.5), None);
        for d in 1..=100 {
            s.delay(f64::from(d));
        }
        assert_eq!(s.percentile(0.5), Some(50.0));
        assert_eq!(s.percentile(0.99), Some(99.0));
        assert_eq!(s.percentile(1.0), Some(100.0));
    }
}
