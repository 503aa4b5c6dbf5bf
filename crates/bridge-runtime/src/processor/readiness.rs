//! What a processing loop tells `/readyz`: ready once it has joined its group and restored
//! the state of the partitions it was given; not ready while it restores, or while its
//! input topic does not exist. And what it tells `/healthz`: a heartbeat each round, with
//! restores exempt from the bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::health::{Health, Heartbeat};

/// One loop's part of the service's readiness (named by the group id, and the worker when
/// several loops share a group).
pub(super) struct Readiness {
    health: Arc<Health>,
    heartbeat: Arc<Heartbeat>,
    part: String,
    input_topic: String,
    assigned: bool,
    input_missing: bool,
}

impl Readiness {
    /// Not ready: the loop is starting.
    pub(super) fn new(
        health: Arc<Health>,
        part: &str,
        input_topic: &str,
        stall_after: Duration,
    ) -> Self {
        health.waiting_for(part, "starting");
        Self {
            heartbeat: health.heartbeat(part, stall_after),
            health,
            part: part.to_owned(),
            input_topic: input_topic.to_owned(),
            assigned: false,
            input_missing: false,
        }
    }

    /// The loop finished a round at `now`.
    pub(super) fn beat(&self, now: Instant) {
        self.heartbeat.beat(now);
    }

    /// Restoring `partition` before processing it (exempt from the liveness bound until
    /// [`Readiness::assigned`]).
    pub(super) fn restoring(&self, partition: i32) {
        self.heartbeat.exempt(true);
        self.waiting(format!("restoring the state of partition {partition}"));
    }

    /// Waiting for something the loop names (e.g. a changelog topic).
    pub(super) fn waiting(&self, reason: String) {
        self.health.waiting_for(&self.part, reason);
    }

    /// An assignment is restored; one with partitions proves the input topic exists.
    pub(super) fn assigned(&mut self, partitions: usize) {
        self.heartbeat.exempt(false);
        self.assigned = true;
        if partitions > 0 {
            self.input_missing = false;
        }
        self.report();
    }

    /// The consumer said the input topic does not exist.
    pub(super) fn input_missing(&mut self) {
        self.input_missing = true;
        self.report();
    }

    /// Subscribed; ready after the first assignment.
    pub(super) fn report(&self) {
        let topic = &self.input_topic;
        match (self.input_missing, self.assigned) {
            (true, _) => self.waiting(format!(
                "input topic {topic} does not exist (bridgectl create-topics makes it)"
            )),
            (false, false) => self.waiting(format!("joining its consumer group on {topic}")),
            (false, true) => self.health.ready(&self.part),
        }
    }
}
