//! What stands between a handler and a system outside Kafka (the ERP, Magento's REST API):
//! a token bucket (their rate limit is ours too) and a circuit breaker (after `failures`
//! transient failures in a row it opens: no calls for `open_for`, then one probe; a good
//! probe closes it). While it is open the handler answers "retry later" at once, so the
//! runtime backs off and then pauses the partition — Kafka keeps the records.

use std::time::{Duration, Instant};

/// The longest a call waits in place for the rate limit; a longer wait is a retry later.
pub const MAX_ADMIT_WAIT: Duration = Duration::from_secs(5);

/// A token bucket: `rate` calls per second, bursts of up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` per second (0 = unlimited), bursts of `burst`.
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// How long to wait before the next call may go (and takes its token).
    pub fn take(&mut self) -> Duration {
        self.take_at(Instant::now())
    }

    /// Returns a token taken by [`RateLimiter::take`] whose call will not be made.
    pub fn give_back(&mut self) {
        if self.rate > 0.0 {
            self.tokens = (self.tokens + 1.0).min(self.burst);
        }
    }

    fn take_at(&mut self, now: Instant) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; this many transient failures in a row so far.
    Closed(u32),
    /// No calls until then.
    Open(Instant),
    /// The next call is a probe.
    HalfOpen,
}

/// A circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    failures: u32,
    open_for: Duration,
    state: BreakerState,
}

impl CircuitBreaker {
    /// Opens after `failures` transient failures in a row, for `open_for`.
    pub fn new(failures: u32, open_for: Duration) -> Self {
        Self {
            failures: failures.max(1),
            open_for,
            state: BreakerState::Closed(0),
        }
    }

    /// The state now (an open breaker whose time is up is half open).
    pub fn state(&mut self) -> BreakerState {
        self.state_at(Instant::now())
    }

    fn state_at(&mut self, now: Instant) -> BreakerState {
        if let BreakerState::Open(until) = self.state
            && now >= until
        {
            self.state = BreakerState::HalfOpen;
        }
        self.state
    }

    /// How long it stays open, if it is.
    pub fn open_remaining(&mut self) -> Option<Duration> {
        let now = Instant::now();
        match self.state_at(now) {
            BreakerState::Open(until) => Some(until.saturating_duration_since(now)),
            _ => None,
        }
    }

    /// A call (or probe) succeeded.
    pub fn success(&mut self) {
        self.state = BreakerState::Closed(0);
    }

    /// A call failed transiently; true when that opened the breaker.
    pub fn failure(&mut self) -> bool {
        self.failure_at(Instant::now())
    }

    fn failure_at(&mut self, now: Instant) -> bool {
        let failures = match self.state {
            BreakerState::Closed(n) => n + 1,
            BreakerState::HalfOpen | BreakerState::Open(_) => self.failures,
        };
        if failures >= self.failures {
            self.state = BreakerState::Open(now + self.open_for);
            true
        } else {
            self.state = BreakerState::Closed(failures);
            false
        }
    }

    /// Whether it is open or half open (for the metric).
    pub fn is_tripped(&self) -> bool {
        !matches!(self.state, BreakerState::Closed(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_past_the_cap_is_a_retry_later_and_owes_nothing() {
        let guard = Guard::new(
            "ERP",
            RateLimiter::new(0.01, 1),
            CircuitBreaker::new(5, Duration::from_secs(10)),
        );
        assert!(matches!(guard.admit(), Ok(wait) if wait.is_zero()));
        for _ in 0..3 {
            match guard.admit() {
                Err(crate::handler::HandlerError::Retryable {
                    retry_after: Some(wait),
                    ..
                }) => assert!(
                    wait > MAX_ADMIT_WAIT && wait <= Duration::from_secs(100),
                    "{wait:?}: refused calls must not pile up debt"
                ),
                other => panic!("expected a retry later, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_spaces_calls() {
        let start = Instant::now();
        let mut bucket = RateLimiter::new(10.0, 2);
        bucket.at = start;
        assert_eq!(bucket.take_at(start), Duration::ZERO);
        assert_eq!(bucket.take_at(start), Duration::ZERO);
        let wait = bucket.take_at(start);
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        // A second later the bucket is full again.
        let later = start + Duration::from_secs(1);
        assert_eq!(bucket.take_at(later), Duration::ZERO);
    }

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_and_half_opens_when_time_is_up() {
        let start = Instant::now();
        let mut breaker = CircuitBreaker::new(3, Duration::from_secs(5));
        assert!(!breaker.failure_at(start));
        breaker.success();
        assert!(!breaker.failure_at(start));
        assert!(!breaker.failure_at(start));
        assert!(breaker.failure_at(start));
        assert!(matches!(breaker.state_at(start), BreakerState::Open(_)));
        let later = start + Duration::from_secs(5);
        assert_eq!(breaker.state_at(later), BreakerState::HalfOpen);
        // A failed probe opens it again at once.
        assert!(breaker.failure_at(later));
        breaker.success();
        assert_eq!(breaker.state_at(later), BreakerState::Closed(0));
    }

    #[test]
    fn clones_of_a_guard_share_one_breaker() {
        let a = Guard::new(
            "the ERP",
            RateLimiter::new(0.0, 1),
            CircuitBreaker::new(2, Duration::from_secs(60)),
        );
        let b = a.clone();
        let _ = a.failed("timeout".into(), None);
        assert!(!b.is_tripped(), "one failure of two");
        let _ = b.failed("timeout".into(), None);
        assert!(
            a.is_tripped(),
            "the second failure came through the other clone"
        );
        assert!(a.admit().is_err() && b.admit().is_err());
    }
}

/// A rate limit and a circuit breaker around calls to one outside system, for handlers:
/// [`Guard::admit`] before a call (waits for a token; "retry later" while the circuit is
/// open; when it is half open the call is the probe), then [`Guard::succeeded`] or
/// [`Guard::failed`]. Clones share one limit and one breaker: every loop of a service that
/// calls the same system holds a clone, so the system sees the configured rate in total
/// and one outage opens the circuit for all of them.
#[derive(Debug, Clone)]
pub struct Guard {
    system: &'static str,
    shared: std::sync::Arc<std::sync::Mutex<Limits>>,
}

#[derive(Debug)]
struct Limits {
    limiter: RateLimiter,
    breaker: CircuitBreaker,
}

impl Guard {
    /// Guards calls to `system` (named in reasons and logs).
    pub fn new(system: &'static str, limiter: RateLimiter, breaker: CircuitBreaker) -> Self {
        Self {
            system,
            shared: std::sync::Arc::new(std::sync::Mutex::new(Limits { limiter, breaker })),
        }
    }

    fn limits(&self) -> std::sync::MutexGuard<'_, Limits> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets a call go (after waiting for the rate limit), or says to retry later while the
    /// circuit is open. Returns how long it waited.
    pub fn admit(&self) -> Result<Duration, crate::handler::HandlerError> {
        let wait = {
            let mut limits = self.limits();
            if let Some(wait) = limits.breaker.open_remaining() {
                return Err(crate::handler::HandlerError::Retryable {
                    reason: format!(
                        "{} is down (circuit open); waiting to probe it",
                        self.system
                    ),
                    retry_after: Some(wait),
                });
            }
            // The token is taken (or owed) now; the wait happens outside the lock.
            let wait = limits.limiter.take();
            // A thread never sleeps long for the limit: past the cap the call is retried
            // later (and the runtime's retry policy caps that wait too).
            if wait > MAX_ADMIT_WAIT {
                limits.limiter.give_back();
                return Err(crate::handler::HandlerError::Retryable {
                    reason: format!(
                        "{} rate limit: the next call may go in {} ms",
                        self.system,
                        wait.as_millis()
                    ),
                    retry_after: Some(wait),
                });
            }
            wait
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        Ok(wait)
    }

    /// The call went through (a business refusal counts: the system is up).
    pub fn succeeded(&self) {
        let mut limits = self.limits();
        if limits.breaker.is_tripped() {
            tracing::info!(system = self.system, "call succeeded; circuit closed");
        }
        limits.breaker.success();
    }

    /// The call failed transiently: counts towards opening the circuit and returns the
    /// "retry later" for the runtime.
    pub fn failed(
        &self,
        reason: String,
        retry_after: Option<Duration>,
    ) -> crate::handler::HandlerError {
        if self.limits().breaker.failure() {
            tracing::warn!(system = self.system, error = %reason, "failing; circuit opened");
        }
        crate::handler::HandlerError::Retryable {
            reason,
            retry_after,
        }
    }

    /// Whether the circuit is open or half open.
    pub fn is_tripped(&self) -> bool {
        self.limits().breaker.is_tripped()
    }
}
