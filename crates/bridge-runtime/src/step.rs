//! One unit of work, the same in the runtime's transactional loop and in the test driver:
//! dedupe by event id, run the handler, track event time, and fire due timers. A step
//! returns the outputs and the state writes; nothing is applied until the caller commits.
//!
//! A record fires event-time timers only when it moves the watermark; wall-clock timers
//! and the TTL sweep run at punctuation (every commit interval in the runtime, on
//! `advance_to` in the test driver). That keeps a record's own work to point reads and
//! writes: no range scan per record (it was a third of the loop's time in the benchmark).

use std::time::Duration;

use bridge_events::Millis;

use crate::handler::{
    Context, Handler, HandlerError, Inbound, Output, TimerKind, parse_timer, sweep_dedupe,
    sweep_expired, timer_key, timer_prefix,
};
use crate::state::keys;
use crate::state::{Overlay, StateStore, Write, prefix_end};

/// The partition a punctuation runs for, and whether its consumer has read to its end.
#[derive(Debug, Clone, Copy)]
pub struct Partition {
    /// The input partition.
    pub id: i32,
    /// No backlog: see [`crate::handler::Context::caught_up`].
    pub caught_up: bool,
}

/// Settings of a step.
#[derive(Debug, Clone, Copy)]
pub struct StepConfig {
    /// How long an event id is remembered for dedupe.
    pub dedupe_ttl: Duration,
    /// At most this many expired entries are removed per partition per punctuation.
    pub sweep_limit: usize,
    /// At most this many expired dedupe buckets (each up to 64 KiB of event ids) are
    /// removed per partition per punctuation.
    pub dedupe_sweep_limit: usize,
    /// How far ahead of the wall clock an input's event time may be: a later
    /// `occurred_at` (a clock ahead, a bogus date) counts as now plus this, so one record
    /// cannot move its partition's event time into the future — closing every open window
    /// at once and holding the next ones open until then.
    pub max_event_time_ahead: Duration,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            dedupe_ttl: Duration::from_secs(7 * 24 * 3600),
            sweep_limit: 10_000,
            dedupe_sweep_limit: 64,
            max_event_time_ahead: Duration::from_secs(60),
        }
    }
}

/// What a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler ran.
    Handled,
    /// Its event id was seen before: skipped.
    Duplicate,
}

/// The result of a step: produce `outputs` and `writes` (to the changelog) in one
/// transaction, then apply `writes` to the store.
#[derive(Debug)]
pub struct Step {
    /// Events to produce.
    pub outputs: Vec<Output>,
    /// State changes.
    pub writes: Vec<Write>,
    /// The input's event id, to remember for dedupe until the time given.
    pub remember: Option<(Vec<u8>, Millis)>,
    /// What happened to the input.
    pub outcome: Outcome,
    /// The handler parked the input too (class, reason): see [`Context::park`].
    pub parked: Option<(&'static str, String)>,
    /// When the step read the timers: no event-time timer is due before this once its
    /// writes are applied (`Millis::MAX`: there is none). For
    /// [`StateStore::learn_event_timer_floor`].
    pub event_timer_floor: Option<Millis>,
    /// The input's `occurred_at` was further ahead of the wall clock than
    /// [`StepConfig::max_event_time_ahead`]: its event time was taken as now plus that.
    pub event_time_ahead: bool,
}

impl Step {
    /// Applies the step's writes to `store` as of input `offset`, with what it learnt of
    /// the timers; returns the outputs to produce.
    pub fn apply_to(
        self,
        store: &mut dyn StateStore,
        offset: i64,
    ) -> Result<Vec<Output>, crate::state::StateError> {
        store.apply_owned(self.writes, offset)?;
        if let Some((event_id, expires_at)) = self.remember {
            store.remember(event_id, expires_at, offset)?;
        }
        if let Some(floor) = self.event_timer_floor {
            store.learn_event_timer_floor(floor);
        }
        Ok(self.outputs)
    }
}

fn read_watermark(state: &Overlay<'_>) -> Result<Option<Millis>, HandlerError> {
    Ok(state
        .get(keys::WATERMARK)?
        .and_then(|raw| <[u8; 8]>::try_from(raw.as_slice()).ok())
        .map(i64::from_be_bytes))
}

/// Processes one record. On error nothing of the record's work is kept.
pub fn process<H: Handler + ?Sized>(
    handler: &mut H,
    store: &dyn StateStore,
    input: &Inbound<'_>,
    now: Millis,
    config: &StepConfig,
) -> Result<Step, HandlerError> {
    let envelope = input.event.envelope();
    if store.seen(envelope.event_id.as_bytes(), now)? {
        tracing::debug!(event_id = %envelope.event_id, offset = input.offset, "duplicate event skipped");
        return Ok(Step {
            outputs: Vec::new(),
            writes: Vec::new(),
            remember: None,
            outcome: Outcome::Duplicate,
            parked: None,
            event_timer_floor: None,
            event_time_ahead: false,
        });
    }
    let latest = now.saturating_add(config.max_event_time_ahead.as_millis() as i64);
    let event_time_ahead = envelope.occurred_at > latest;
    let event_time = envelope.occurred_at.min(latest);
    if event_time_ahead {
        tracing::debug!(
            event_id = %envelope.event_id,
            occurred_at = envelope.occurred_at,
            event_time,
            "event time ahead of the wall clock: taken as now plus the allowed lead"
        );
    }
    let mut state = Overlay::new(store);
    let watermark = read_watermark(&state)?;
    let advanced = watermark.is_none_or(|w| event_time > w);
    if advanced {
        state.put(keys::WATERMARK.to_vec(), event_time.to_be_bytes().to_vec());
    }
    let mut ctx = Context::new(state, now, input.partition, false);
    ctx.event_time = Some(event_time);
    handler.handle(input, &mut ctx)?;
    let Context {
        mut state,
        mut outputs,
        parked,
        ..
    } = ctx;
    // A parked record is not remembered, so a replay of it is handled again.
    let remember = parked.is_none().then(|| {
        let expires = now.saturating_add(config.dedupe_ttl.as_millis() as i64);
        (envelope.event_id.as_bytes().to_vec(), expires)
    });
    let mut event_timer_floor = None;
    // Timers are read only if one may be due: below the store's floor there is none, so
    // only this record's own timers can be.
    let may_be_due = |floor: Option<Millis>| floor.is_none_or(|f| f <= event_time);
    if advanced
        && (may_be_due(store.event_timer_floor())
            || state
                .earliest_own_event_timer()
                .is_some_and(|at| at <= event_time))
    {
        let more;
        let partition = Partition {
            id: input.partition,
            caught_up: false,
        };
        (more, state, event_timer_floor) = fire(handler, state, None, partition, now)?;
        outputs.extend(more);
    }
    Ok(Step {
        outputs,
        writes: state.into_writes(),
        remember,
        outcome: Outcome::Handled,
        parked,
        event_timer_floor,
        event_time_ahead,
    })
}

/// Fires every due timer (wall clock up to `now`, event time up to the watermark) and
/// sweeps expired entries; the runtime calls this on its punctuation interval, so idle
/// partitions still close their windows.
pub fn punctuate<H: Handler + ?Sized>(
    handler: &mut H,
    store: &dyn StateStore,
    now: Millis,
    partition: Partition,
    config: &StepConfig,
) -> Result<Step, HandlerError> {
    let mut ctx = Context::new(Overlay::new(store), now, partition.id, partition.caught_up);
    handler.on_punctuate(&mut ctx)?;
    let Context {
        state,
        outputs: mut early,
        ..
    } = ctx;
    let (outputs, mut state, event_timer_floor) = fire(handler, state, Some(now), partition, now)?;
    early.extend(outputs);
    let outputs = early;
    sweep_expired(&mut state, now, config.sweep_limit)?;
    sweep_dedupe(&mut state, now, config.dedupe_sweep_limit)?;
    Ok(Step {
        outputs,
        writes: state.into_writes(),
        remember: None,
        outcome: Outcome::Handled,
        parked: None,
        event_timer_floor,
        event_time_ahead: false,
    })
}

/// What firing leaves: outputs, the state, and the event-time timer floor after it.
type Fired<'a> = (Vec<Output>, Overlay<'a>, Option<Millis>);

/// Fires the due event-time timers and, given `wall_clock`, the due wall-clock ones;
/// also returns when the first event-time timer left is due (`Millis::MAX`: none left).
fn fire<'a, H: Handler + ?Sized>(
    handler: &mut H,
    state: Overlay<'a>,
    wall_clock: Option<Millis>,
    partition: Partition,
    now: Millis,
) -> Result<Fired<'a>, HandlerError> {
    let mut ctx = Context::new(state, now, partition.id, partition.caught_up);
    let mut settled = false;
    // A timer may set another one that is already due; loop until none is, bounded.
    for _ in 0..1000 {
        let watermark = read_watermark(&ctx.state)?;
        let mut due = Vec::new();
        for (kind, limit) in [
            (TimerKind::WallClock, wall_clock),
            (TimerKind::EventTime, watermark),
        ] {
            let Some(limit) = limit else { continue };
            // Only the due timers, a bounded number per round.
            let due_end = timer_key(kind, limit.saturating_add(1), "");
            for (key, _) in ctx.state.range(timer_prefix(kind), Some(&due_end), 1000)? {
                match parse_timer(kind, &key) {
                    Some(timer) if timer.at <= limit => due.push((key, timer)),
                    Some(_) => break,
                    None => continue,
                }
            }
        }
        if due.is_empty() {
            settled = true;
            break;
        }
        for (key, timer) in due {
            ctx.state.delete(key);
            handler.on_timer(&timer, &mut ctx)?;
        }
    }
    // Unknown if the rounds ran out with timers still due.
    let floor = if settled {
        let prefix = timer_prefix(TimerKind::EventTime);
        let first = ctx.state.range(prefix, prefix_end(prefix).as_deref(), 1)?;
        Some(
            first
                .first()
                .and_then(|(key, _)| parse_timer(TimerKind::EventTime, key))
                .map_or(Millis::MAX, |timer| timer.at),
        )
    } else {
        None
    };
    let Context { state, outputs, .. } = ctx;
    Ok((outputs, state, floor))
}

#[cfg(test)]
mod tests {
    use bridge_events::Event;
    use bridge_events::samples::inventory_movement;

    use super::*;
    use crate::handler::Timer;
    use crate::state::{Entries, MemoryStore, Pending, StateError};

    /// A store that never knows its timer floor: every step reads the timers (the
    /// reference the floor must not change).
    #[derive(Default)]
    struct Unknowing(MemoryStore);

    impl StateStore for Unknowing {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            self.0.get(key)
        }
        fn range(
            &self,
            start: &[u8],
            end: Option<&[u8]>,
            limit: usize,
        ) -> Result<Entries, StateError> {
            self.0.range(start, end, limit)
        }
        fn apply_owned(&mut self, writes: Vec<Write>, offset: i64) -> Result<(), StateError> {
            self.0.apply_owned(writes, offset)
        }
        fn offset(&self) -> Option<i64> {
            self.0.offset()
        }
    }

    /// Sets timers around each record's event time (some already due, some cancelled, a
    /// chain from each fired one) and notes every timer that fires.
    #[derive(Default)]
    struct Scheduler {
        fired: Vec<(Millis, String)>,
    }

    fn mix(n: i64) -> i64 {
        (n.wrapping_mul(2_654_435_761) >> 7).rem_euclid(1_000)
    }

    impl Handler for Scheduler {
        fn handle(
            &mut self,
            input: &Inbound<'_>,
            ctx: &mut Context<'_>,
        ) -> Result<(), HandlerError> {
            let at = input.event.envelope().occurred_at;
            let n = input.offset;
            ctx.schedule(TimerKind::EventTime, at + mix(n) - 300, &format!("r{n}"));
            if n % 3 == 0 {
                ctx.schedule(TimerKind::EventTime, at + 2_000, &format!("late{n}"));
            }
            if n % 7 == 0 && n > 3 {
                ctx.cancel(
                    TimerKind::EventTime,
                    at - 7 * 10 + 2_000,
                    &format!("late{}", n - 7),
                );
            }
            Ok(())
        }

        fn on_timer(&mut self, timer: &Timer, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
            self.fired.push((timer.at, timer.name.clone()));
            if timer.name.starts_with('r') && mix(timer.at) < 300 {
                ctx.schedule(TimerKind::EventTime, timer.at + mix(timer.at), "chain");
            }
            Ok(())
        }
    }

    fn record(n: i64) -> Event {
        let mut movement = inventory_movement(&format!("sku-{n}"), "default", 1);
        // Mostly forward, sometimes back (a record that does not move the watermark).
        movement.envelope.occurred_at = 1_000 + n * 10 - if n % 5 == 0 { 400 } else { 0 };
        movement.into()
    }

    /// The timers fired, and how many steps read the timers.
    fn run_through<S: StateStore>(
        store: &mut S,
        mut commit: impl FnMut(&mut S, i64) -> Result<(), StateError>,
    ) -> Result<(Vec<(Millis, String)>, usize), HandlerError> {
        let mut handler = Scheduler::default();
        let config = StepConfig::default();
        let mut reads = 0;
        for n in 0..600 {
            let event = record(n);
            let input = Inbound {
                event: &event,
                topic: "in",
                partition: 0,
                offset: n,
            };
            let step = process(&mut handler, &*store, &input, 0, &config)?;
            reads += usize::from(step.event_timer_floor.is_some());
            step.apply_to(store, n)?;
            commit(store, n)?;
        }
        Ok((handler.fired, reads))
    }

    /// Notes the event time each record is handled at.
    #[derive(Default)]
    struct EventTimes(Vec<Option<Millis>>);

    impl Handler for EventTimes {
        fn handle(&mut self, _: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
            self.0.push(ctx.event_time());
            Ok(())
        }
    }

    /// A record dated further ahead of the wall clock than allowed moves the watermark
    /// only to now plus the lead, and is handled (and flagged) at that time; one within
    /// the lead keeps its own time.
    #[test]
    fn event_time_is_at_most_the_allowed_lead_ahead_of_the_wall_clock() -> Result<(), HandlerError>
    {
        let config = StepConfig::default();
        let lead = config.max_event_time_ahead.as_millis() as i64;
        let now = 1_000_000;
        let mut store = MemoryStore::default();
        let mut handler = EventTimes::default();
        let mut flags = Vec::new();
        for (n, at) in [(0, now + 2 * 86_400_000), (1, now + lead - 1)] {
            let mut movement = inventory_movement("sku", "default", 1);
            movement.envelope.event_id = format!("e{n}");
            movement.envelope.occurred_at = at;
            let event: Event = movement.into();
            let input = Inbound {
                event: &event,
                topic: "in",
                partition: 0,
                offset: n,
            };
            let step = process(&mut handler, &store, &input, now, &config)?;
            flags.push(step.event_time_ahead);
            step.apply_to(&mut store, n)?;
        }
        assert_eq!(handler.0, [Some(now + lead), Some(now + lead - 1)]);
        assert_eq!(flags, [true, false]);
        let watermark = store.get(keys::WATERMARK)?.map(|raw| raw.to_vec());
        assert_eq!(watermark, Some((now + lead).to_be_bytes().to_vec()));
        Ok(())
    }

    /// The floor only skips reads that would find nothing due: the same timers fire in
    /// the same order with it as without it, across commits.
    #[test]
    fn the_timer_floor_changes_no_timer_that_fires() -> Result<(), HandlerError> {
        let (reference, every) = run_through(&mut Unknowing::default(), |_, _| Ok(()))?;
        assert!(
            reference.len() > 600,
            "the scenario fires timers: {}",
            reference.len()
        );
        let mut pending = Pending::new(MemoryStore::default())?;
        let (fired, reads) = run_through(&mut pending, |pending, n| {
            if n % 50 == 49 {
                pending.commit(n)?;
            }
            Ok(())
        })?;
        assert_eq!(fired, reference);
        assert!(reads < every, "the floor skipped reads: {reads} of {every}");
        let (fired, _) = run_through(&mut MemoryStore::default(), |_, _| Ok(()))?;
        assert_eq!(fired, reference);
        // An abort drops writes the floor may have been learnt over: unknown again.
        assert!(pending.event_timer_floor().is_some());
        pending.abort();
        assert_eq!(pending.event_timer_floor(), None);
        Ok(())
    }
}
