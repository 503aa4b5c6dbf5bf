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
    Context, Handler, HandlerError, Inbound, Output, TimerKind, get_live, keys, parse_timer,
    put_dedupe, sweep_dedupe, sweep_expired, timer_key, timer_prefix,
};
use crate::state::{Overlay, StateStore, Write};

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
    /// Dedupe entries looked at per partition per punctuation (expired ones are removed).
    pub dedupe_sweep_limit: usize,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            dedupe_ttl: Duration::from_secs(7 * 24 * 3600),
            sweep_limit: 10_000,
            dedupe_sweep_limit: 1_000,
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
    /// What happened to the input.
    pub outcome: Outcome,
    /// The handler parked the input too (class, reason): see [`Context::park`].
    pub parked: Option<(&'static str, String)>,
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
    let dedupe_key = keys::with(keys::DEDUPE, envelope.event_id.as_bytes());
    let mut state = Overlay::new(store);
    if get_live(&state, &dedupe_key, now)?.is_some() {
        tracing::debug!(event_id = %envelope.event_id, offset = input.offset, "duplicate event skipped");
        return Ok(Step {
            outputs: Vec::new(),
            writes: Vec::new(),
            outcome: Outcome::Duplicate,
            parked: None,
        });
    }
    let watermark = read_watermark(&state)?;
    let advanced = watermark.is_none_or(|w| envelope.occurred_at > w);
    if advanced {
        state.put(
            keys::WATERMARK.to_vec(),
            envelope.occurred_at.to_be_bytes().to_vec(),
        );
    }
    let mut ctx = Context::new(state, now, input.partition, false);
    handler.handle(input, &mut ctx)?;
    let Context {
        mut state,
        mut outputs,
        parked,
        ..
    } = ctx;
    if parked.is_none() {
        let expires = now.saturating_add(config.dedupe_ttl.as_millis() as i64);
        put_dedupe(&mut state, dedupe_key, expires);
    }
    if advanced {
        let more;
        let partition = Partition {
            id: input.partition,
            caught_up: false,
        };
        (more, state) = fire(handler, state, None, partition, now)?;
        outputs.extend(more);
    }
    Ok(Step {
        outputs,
        writes: state.into_writes(),
        outcome: Outcome::Handled,
        parked,
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
    let (outputs, mut state) = fire(handler, state, Some(now), partition, now)?;
    early.extend(outputs);
    let outputs = early;
    sweep_expired(&mut state, now, config.sweep_limit)?;
    sweep_dedupe(&mut state, now, config.dedupe_sweep_limit)?;
    Ok(Step {
        outputs,
        writes: state.into_writes(),
        outcome: Outcome::Handled,
        parked: None,
    })
}

/// Fires the due event-time timers and, given `wall_clock`, the due wall-clock ones.
fn fire<'a, H: Handler + ?Sized>(
    handler: &mut H,
    state: Overlay<'a>,
    wall_clock: Option<Millis>,
    partition: Partition,
    now: Millis,
) -> Result<(Vec<Output>, Overlay<'a>), HandlerError> {
    let mut ctx = Context::new(state, now, partition.id, partition.caught_up);
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
            for (key, _) in ctx.state.range(&timer_prefix(kind), Some(&due_end), 1000)? {
                match parse_timer(kind, &key) {
                    Some(timer) if timer.at <= limit => due.push((key, timer)),
                    Some(_) => break,
                    None => continue,
                }
            }
        }
        if due.is_empty() {
            break;
        }
        for (key, timer) in due {
            ctx.state.delete(key);
            handler.on_timer(&timer, &mut ctx)?;
        }
    }
    let Context { state, outputs, .. } = ctx;
    Ok((outputs, state))
}
