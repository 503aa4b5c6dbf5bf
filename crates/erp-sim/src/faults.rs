//! Fault injection: what the ERP does wrong, set at start (`--faults FILE`, TOML) or at run
//! time (`PUT /admin/faults`, JSON of the same shape; `POST /admin/faults/burst`).
//!
//! Transport faults apply to every `/api/*` request in this order: maintenance window →
//! 503 with `Retry-After`; rate limit (a token bucket) → 429 with `Retry-After`; an error
//! burst (the next N requests) or every Nth request → 5xx; latency; and every Nth request
//! *times out after doing its work* (the nastiest case: the caller cannot know whether the
//! order was created). Business faults apply to sales-order creation: every Nth is rejected
//! as a validation error; named or every Nth order silently loses a line or has its tax
//! rounded wrongly (accepted with a 201 — only reconciliation can tell).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The fault settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added to every API request.
    pub latency_ms: u64,
    /// Requests per second before 429s; 0 = unlimited.
    pub rate_limit_per_second: f64,
    /// `Retry-After` seconds on a 429.
    pub retry_after_seconds: u64,
    /// Under maintenance: every API request gets 503 until the window ends (or it is
    /// switched off).
    pub maintenance: bool,
    /// End of the maintenance window, milliseconds since the epoch; 0 = until switched off.
    pub maintenance_until_ms: i64,
    /// The next this many API requests fail with `burst_status`.
    pub error_burst: u32,
    /// The status of a burst (default 503).
    pub burst_status: u16,
    /// Every Nth API request fails with 500; 0 = never.
    pub error_every: u32,
    /// Every Nth API request does its work and then hangs `hang_ms` before answering;
    /// 0 = never.
    pub timeout_every: u32,
    /// How long a timed-out request hangs.
    pub hang_ms: u64,
    /// Every Nth new sales order is rejected with `validation`; 0 = never.
    pub reject_every: u32,
    /// Every Nth new sales order with more than one line silently drops its last line.
    pub drop_line_every: u32,
    /// These external references silently drop their last line.
    pub drop_line_refs: Vec<String>,
    /// Every Nth new sales order has its tax truncated instead of rounded.
    pub wrong_tax_rounding_every: u32,
    /// These external references have their tax truncated.
    pub wrong_tax_rounding_refs: Vec<String>,
}

impl Faults {
    /// Reads a TOML fault file.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// What the transport faults decide for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it (after `delay`), then hang for `hang` if set.
    Serve {
        /// Added latency.
        delay: Duration,
        /// A hang after the work.
        hang: Option<Duration>,
    },
    /// Answer this status, with `Retry-After` seconds if set.
    Fail {
        /// The status.
        status: u16,
        /// The `Retry-After` header.
        retry_after: Option<u64>,
        /// Why, for the body.
        code: &'static str,
    },
}

/// The faults with their counters.
#[derive(Debug)]
pub struct FaultState {
    /// The settings.
    pub faults: Faults,
    requests: u64,
    orders: u64,
    tokens: f64,
    refilled: Instant,
    /// How many times each fault fired.
    pub fired: std::collections::BTreeMap<&'static str, u64>,
}

impl FaultState {
    /// Counters at zero.
    pub fn new(faults: Faults) -> Self {
        Self {
            tokens: faults.rate_limit_per_second.max(1.0),
            faults,
            requests: 0,
            orders: 0,
            refilled: Instant::now(),
            fired: Default::default(),
        }
    }

    /// Replaces the settings (counters go on).
    pub fn set(&mut self, faults: Faults) {
        self.tokens = faults.rate_limit_per_second.max(1.0);
        self.faults = faults;
    }

    fn fire(&mut self, name: &'static str) {
        *self.fired.entry(name).or_default() += 1;
    }

    /// The transport verdict for the next request at `now_ms`.
    pub fn request(&mut self, now_ms: i64) -> Verdict {
        self.requests += 1;
        let f = &self.faults;
        if f.maintenance && (f.maintenance_until_ms == 0 || now_ms < f.maintenance_until_ms) {
            let left = if f.maintenance_until_ms == 0 {
                5
            } else {
                ((f.maintenance_until_ms - now_ms) / 1000).clamp(1, 60) as u64
            };
            self.fire("maintenance");
            return Verdict::Fail {
                status: 503,
                retry_after: Some(left),
                code: "maintenance",
            };
        }
        if f.rate_limit_per_second > 0.0 {
            let rate = f.rate_limit_per_second;
            let elapsed = self.refilled.elapsed().as_secs_f64();
            self.refilled = Instant::now();
            self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
            if self.tokens < 1.0 {
                let retry_after = self.faults.retry_after_seconds.max(1);
                self.fire("rate_limit");
                return Verdict::Fail {
                    status: 429,
                    retry_after: Some(retry_after),
                    code: "rate_limited",
                };
            }
            self.tokens -= 1.0;
        }
        if self.faults.error_burst > 0 {
            self.faults.error_burst -= 1;
            self.fire("error_burst");
            let status = match self.faults.burst_status {
                0 => 503,
                s => s,
            };
            return Verdict::Fail {
                status,
                retry_after: None,
                code: "unavailable",
            };
        }
        if every(self.faults.error_every, self.requests) {
            self.fire("error_every");
            return Verdict::Fail {
                status: 500,
                retry_after: None,
                code: "internal_error",
            };
        }
        let hang = every(self.faults.timeout_every, self.requests).then(|| {
            Duration::from_millis(match self.faults.hang_ms {
                0 => 30_000,
                ms => ms,
            })
        });
        if hang.is_some() {
            self.fire("timeout");
        }
        Verdict::Serve {
            delay: Duration::from_millis(self.faults.latency_ms),
            hang,
        }
    }

    /// The business faults for the next new sales order `external_ref` with `lines` lines.
    pub fn order(&mut self, external_ref: &str, lines: usize) -> OrderFaults {
        self.orders += 1;
        let n = self.orders;
        let f = &self.faults;
        let faults = OrderFaults {
            reject: every(f.reject_every, n),
            drop_line: lines > 1
                && (every(f.drop_line_every, n)
                    || f.drop_line_refs.iter().any(|r| r == external_ref)),
            wrong_tax_rounding: every(f.wrong_tax_rounding_every, n)
                || f.wrong_tax_rounding_refs.iter().any(|r| r == external_ref),
        };
        for (on, name) in [
            (faults.reject, "reject"),
            (faults.drop_line, "drop_line"),
            (faults.wrong_tax_rounding, "wrong_tax_rounding"),
        ] {
            if on {
                self.fire(name);
            }
        }
        faults
    }
}

/// Business faults for one order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderFaults {
    /// Reject it as a validation error.
    pub reject: bool,
    /// Drop its last line silently.
    pub drop_line: bool,
    /// Truncate its tax.
    pub wrong_tax_rounding: bool,
}

fn every(n: u32, count: u64) -> bool {
    n > 0 && count.is_multiple_of(u64::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_fails_the_next_requests_then_serves() {
        let mut state = FaultState::new(Faults {
            error_burst: 2,
            ..Faults::default()
        });
        for _ in 0..2 {
            assert!(matches!(
                state.request(0),
                Verdict::Fail { status: 503, .. }
            ));
        }
        assert!(matches!(state.request(0), Verdict::Serve { .. }));
    }

    #[test]
    fn maintenance_ends_when_its_window_does() {
        let mut state = FaultState::new(Faults {
            maintenance: true,
            maintenance_until_ms: 10_000,
            ..Faults::default()
        });
        assert_eq!(
            state.request(5_000),
            Verdict::Fail {
                status: 503,
                retry_after: Some(5),
                code: "maintenance"
            }
        );
        assert!(matches!(state.request(10_000), Verdict::Serve { .. }));
    }

    #[test]
    fn the_rate_limit_answers_429_with_retry_after() {
        let mut state = FaultState::new(Faults {
            rate_limit_per_second: 2.0,
            retry_after_seconds: 3,
            ..Faults::default()
        });
        let verdicts: Vec<Verdict> = (0..5).map(|_| state.request(0)).collect();
        assert!(verdicts.iter().any(|v| matches!(
            v,
            Verdict::Fail {
                status: 429,
                retry_after: Some(3),
                ..
            }
        )));
    }

    #[test]
    fn a_single_line_order_never_drops_its_line() {
        let mut state = FaultState::new(Faults {
            drop_line_every: 1,
            ..Faults::default()
        });
        assert!(!state.order("1", 1).drop_line);
        assert!(state.order("2", 2).drop_line);
    }
}
