//! How long to wait before retrying a retryable failure: exponential backoff with jitter
//! (the `backoff` crate), at least as long as the other side asked (`Retry-After`) up to
//! the policy's `max_delay` (an answer from outside never parks a thread longer), and a
//! bound after which the runtime stops retrying in place and pauses the partition (Kafka
//! keeps the record; consumption resumes after a successful probe).

use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::exponential::ExponentialBackoff;
use backoff::{Clock, SystemClock};

/// The retry settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// First delay.
    pub initial: Duration,
    /// Growth per attempt.
    pub multiplier: f64,
    /// Largest delay.
    pub max_delay: Duration,
    /// ± this fraction of randomness on each delay, so many clients do not retry in step.
    pub jitter: f64,
    /// Stop retrying in place after this long in total; then pause the partition.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            multiplier: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: 0.3,
            give_up_after: Duration::from_secs(120),
        }
    }
}

/// The delays of one retry sequence, timed by clock `C` (the system clock, or a test one).
pub struct Retries<C: Clock = SystemClock> {
    backoff: ExponentialBackoff<C>,
    attempts: u32,
    policy: RetryPolicy,
}

impl RetryPolicy {
    /// A new sequence for one failing operation.
    pub fn start(&self) -> Retries {
        self.start_with_clock(SystemClock {})
    }

    /// A new sequence timed by `clock`.
    pub fn start_with_clock<C: Clock>(&self, clock: C) -> Retries<C> {
        let start_time = clock.now();
        let backoff = ExponentialBackoff {
            current_interval: self.initial,
            initial_interval: self.initial,
            randomization_factor: self.jitter,
            multiplier: self.multiplier,
            max_interval: self.max_delay,
            start_time,
            max_elapsed_time: Some(self.give_up_after),
            clock,
        };
        Retries {
            backoff,
            attempts: 0,
            policy: *self,
        }
    }

    /// `delay`, or the other side's `Retry-After` when longer — capped at `max_delay`: the
    /// answer comes from outside and must not park a loop thread for hours.
    fn honour(&self, delay: Duration, retry_after: Option<Duration>) -> Duration {
        let asked = retry_after.map_or(delay, |asked| asked.max(delay));
        asked.min(self.max_delay.max(delay))
    }

    /// The delay after failed attempt `attempt` (1, 2, …) of an operation retried across
    /// steps — its attempt count kept in state, where a [`Retries`] cannot live:
    /// `initial × multiplier^(attempt − 1)`, capped at `max_delay`, ± the jitter, never
    /// shorter than `retry_after` — which is itself capped at `max_delay`, so no answer can
    /// make a caller wait longer than that. No give-up: the caller decides when to stop.
    pub fn delay_for(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(63) as i32;
        let base = (self.initial.as_secs_f64() * self.multiplier.powi(exponent))
            .min(self.max_delay.as_secs_f64());
        let spread = rand::random_range(-1.0..=1.0) * self.jitter;
        let delay = Duration::from_secs_f64((base * (1.0 + spread)).max(0.0));
        self.honour(delay, retry_after)
    }
}

impl<C: Clock> Retries<C> {
    /// The delay before the next attempt — never shorter than `retry_after`, never longer
    /// than the policy's `max_delay` — or `None` when the policy gives up.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        let delay = self.backoff.next_backoff()?;
        self.attempts += 1;
        Some(self.policy.honour(delay, retry_after))
    }

    /// Attempts handed out so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_the_jitter_band_and_stay_capped() {
        let policy = RetryPolicy {
            give_up_after: Duration::from_secs(3600),
            ..RetryPolicy::default()
        };
        let mut retries = policy.start();
        let mut expected = policy.initial.as_secs_f64();
        for _ in 0..12 {
            let Some(delay) = retries.next_delay(None) else {
                panic!("gave up early")
            };
            let d = delay.as_secs_f64();
            let base = expected.min(policy.max_delay.as_secs_f64());
            assert!(
                d >= base * (1.0 - policy.jitter) - 1e-9
                    && d <= base * (1.0 + policy.jitter) + 1e-9,
                "{d} vs {base}"
            );
            expected *= policy.multiplier;
        }
        assert_eq!(retries.attempts(), 12);
    }

    #[test]
    fn delays_kept_across_steps_grow_by_attempt_within_the_band_and_stay_capped() {
        let policy = RetryPolicy::default();
        for attempt in 1..=40 {
            let d = policy.delay_for(attempt, None).as_secs_f64();
            let base = (policy.initial.as_secs_f64() * 2f64.powi(attempt as i32 - 1))
                .min(policy.max_delay.as_secs_f64());
            assert!(
                d >= base * (1.0 - policy.jitter) - 1e-9
                    && d <= base * (1.0 + policy.jitter) + 1e-9,
                "attempt {attempt}: {d} vs {base}"
            );
        }
        let asked = Duration::from_secs(20);
        assert_eq!(policy.delay_for(1, Some(asked)), asked);
    }

    #[test]
    fn a_retry_after_beyond_the_cap_waits_only_the_cap() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let a_year = Some(Duration::from_secs(365 * 24 * 3600));
        assert_eq!(policy.delay_for(1, a_year), policy.max_delay);
        let mut retries = policy.start();
        assert_eq!(retries.next_delay(a_year), Some(policy.max_delay));
        assert_eq!(
            policy.delay_for(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn retry_after_is_honoured_when_longer() {
        let mut retries = RetryPolicy::default().start();
        assert_eq!(
            retries.next_delay(Some(Duration::from_secs(10))),
            Some(Duration::from_secs(10))
        );
    }

    /// A clock the test moves by hand.
    struct TestClock(std::rc::Rc<std::cell::Cell<std::time::Instant>>);

    impl Clock for TestClock {
        fn now(&self) -> std::time::Instant {
            self.0.get()
        }
    }

    #[test]
    fn the_policy_gives_up_after_its_bound() {
        let now = std::rc::Rc::new(std::cell::Cell::new(std::time::Instant::now()));
        let policy = RetryPolicy {
            give_up_after: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        let mut retries = policy.start_with_clock(TestClock(now.clone()));
        assert!(retries.next_delay(None).is_some());
        now.set(now.get() + Duration::from_secs(59));
        assert!(retries.next_delay(None).is_some());
        now.set(now.get() + Duration::from_secs(2));
        assert_eq!(
            retries.next_delay(None),
            None,
            "past the bound: pause the partition instead"
        );
    }
}
