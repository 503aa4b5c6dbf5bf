//! The test driver: runs a [`Handler`] exactly as the runtime does — dedupe, state,
//! timers, commit — with simulated time and in-memory state, and no broker (the
//! counterpart of Kafka Streams' TopologyTestDriver).

use bridge_events::{Event, Millis};

use crate::handler::{Handler, HandlerError, Inbound, Output};
use crate::state::{MemoryStore, Pending};
use crate::step::{self, Outcome, StepConfig};

/// Drives one handler over one partition.
pub struct TestDriver<H: Handler> {
    handler: H,
    store: Pending<MemoryStore>,
    now: Millis,
    next_offset: i64,
    config: StepConfig,
    topic: String,
    caught_up: bool,
    /// Events skipped as duplicates.
    pub duplicates: u64,
    /// Events dated further ahead of the wall clock than allowed
    /// ([`StepConfig::max_event_time_ahead`]).
    pub event_time_ahead: u64,
    /// Records parked — by a terminal error or by [`crate::handler::Context::park`] — with
    /// the reason.
    pub parked: Vec<(Event, HandlerError)>,
}

impl<H: Handler> TestDriver<H> {
    /// A driver at wall-clock time `now`.
    pub fn new(handler: H, now: Millis) -> Self {
        Self {
            handler,
            store: Pending::empty(),
            now,
            next_offset: 0,
            config: StepConfig::default(),
            topic: "input".into(),
            caught_up: true,
            duplicates: 0,
            event_time_ahead: 0,
            parked: Vec::new(),
        }
    }

    /// With other step settings.
    pub fn with_config(mut self, config: StepConfig) -> Self {
        self.config = config;
        self
    }

    /// Feeds one event as the next record and commits; returns what it emitted. A terminal
    /// error parks the record (see [`TestDriver::parked`]); other errors are returned.
    pub fn send(&mut self, event: impl Into<Event>) -> Result<Vec<Output>, HandlerError> {
        let event = event.into();
        let offset = self.next_offset;
        self.next_offset += 1;
        let input = Inbound {
            event: &event,
            topic: &self.topic,
            partition: 0,
            offset,
        };
        match step::process(
            &mut self.handler,
            &self.store,
            &input,
            self.now,
            &self.config,
        ) {
            Ok(mut step) => {
                if step.outcome == Outcome::Duplicate {
                    self.duplicates += 1;
                }
                if step.event_time_ahead {
                    self.event_time_ahead += 1;
                }
                if let Some((class, reason)) = step.parked.take() {
                    self.parked
                        .push((event.clone(), HandlerError::Terminal { class, reason }));
                }
                let outputs = step.apply_to(&mut self.store, offset)?;
                self.store.commit(offset)?;
                Ok(outputs)
            }
            Err(error @ HandlerError::Terminal { .. }) => {
                self.parked.push((event, error));
                Ok(Vec::new())
            }
            Err(error) => Err(error),
        }
    }

    /// Whether later punctuations see the partition as read to its end (the default) or
    /// as catching up on a backlog; see [`crate::handler::Context::caught_up`].
    pub fn set_caught_up(&mut self, caught_up: bool) {
        self.caught_up = caught_up;
    }

    /// Moves the wall clock to `now` and fires what is due, as the runtime's punctuation does.
    pub fn advance_to(&mut self, now: Millis) -> Result<Vec<Output>, HandlerError> {
        self.now = self.now.max(now);
        let partition = step::Partition {
            id: 0,
            caught_up: self.caught_up,
        };
        let step = step::punctuate(
            &mut self.handler,
            &self.store,
            self.now,
            partition,
            &self.config,
        )?;
        let outputs = step.apply_to(&mut self.store, self.next_offset - 1)?;
        self.store.commit(self.next_offset - 1)?;
        Ok(outputs)
    }

    /// The committed state (all of it, runtime keys included).
    pub fn store(&self) -> &MemoryStore {
        self.store.store()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }
}
