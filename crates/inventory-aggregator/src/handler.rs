//! The aggregation handler: movements into per-(SKU, source) window aggregates in the
//! partition's state, one `StockDeltaAggregated` per key when its window closes.
//!
//! State of one input partition (keys under the runtime's handler prefix):
//! - `agg/<start>/<sku|source>` → the [`Aggregate`] (JSON);
//! - `open/<start>` → the wall-clock idle-close time of an open window (i64, big-endian);
//! - `closed/<start>` → marker of a closed window, kept for `closed_retention`.
//!
//! `<start>` is zero-padded so a window's keys are one prefix scan. Each open window has
//! two timers named `close/<start>`: event time at end + grace, and wall clock at
//! [`Windows::idle_close_at`] so a quiet partition closes it too. The first to fire closes
//! the window; closing cancels the other.
//!
//! The wall clock closes a window only once its partition has been quiet for a grace
//! period; while records flow, event time closes windows.
//!
//! A movement whose window has closed (by either clock) is never dropped: it goes into the
//! window open at the partition's current event time — the next emission for its key —
//! which is then flagged `late_correction`.

use std::time::Duration;

use bridge_events::inventory::{InventoryMovement, StockDeltaAggregated};
use bridge_events::{AvroEvent, Envelope, Event, Millis, ids::FactIdentity};
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound, Timer, TimerKind};

use crate::metrics::AggregatorMetrics;
use crate::window::{Aggregate, Windows};

const CLOSE: &str = "close/";

/// The aggregator.
pub struct Aggregator {
    windows: Windows,
    closed_retention: Duration,
    output_topic: String,
    metrics: AggregatorMetrics,
}

impl Aggregator {
    /// An aggregator with these windows, emitting to `output_topic`.
    pub fn new(
        windows: Windows,
        closed_retention: Duration,
        output_topic: &str,
        metrics: AggregatorMetrics,
    ) -> Self {
        Self {
            windows,
            closed_retention,
            output_topic: output_topic.to_owned(),
            metrics,
        }
    }

    fn is_closed(ctx: &Context<'_>, start: Millis) -> Result<bool, HandlerError> {
        Ok(ctx.get(closed_key(start).as_bytes())?.is_some())
    }

    /// Open: not closed (closing deletes the open marker in the step that writes the closed
    /// one). The open marker is usually in the open batch already, the closed one is
    /// almost never there: asking for it first saves a store miss per movement.
    fn is_open(ctx: &Context<'_>, start: Millis) -> Result<bool, HandlerError> {
        Ok(ctx.get(open_key(start).as_bytes())?.is_some())
    }

    /// The window a movement at `at` goes into, whether it is a late correction, and
    /// whether it is known to be open already.
    fn target_window(
        &self,
        ctx: &Context<'_>,
        at: Millis,
    ) -> Result<(Millis, bool, bool), HandlerError> {
        let own = self.windows.start_of(at);
        let watermark = ctx.watermark()?.unwrap_or(at);
        let closed_by_event_time = self.windows.closes_at(own) <= watermark;
        if !closed_by_event_time {
            if Self::is_open(ctx, own)? {
                return Ok((own, false, true));
            }
            if !Self::is_closed(ctx, own)? {
                return Ok((own, false, false));
            }
        }
        // The window open at the partition's event time, or the first one after it that a
        // quiet partition has not closed yet (bounded: closed markers are finite).
        let mut start = self.windows.start_of(watermark).max(own);
        for _ in 0..10_000 {
            if !Self::is_closed(ctx, start)? {
                return Ok((start, true, false));
            }
            start = self.windows.end_of(start);
        }
        Err(HandlerError::Fatal {
            reason: format!("no open window within 10,000 windows after {start}"),
        })
    }

    fn open(&self, ctx: &mut Context<'_>, start: Millis) -> Result<(), HandlerError> {
        let open = open_key(start);
        if ctx.get(open.as_bytes())?.is_some() {
            return Ok(());
        }
        let idle_close = self.windows.idle_close_at(start, ctx.now());
        ctx.put(open.as_bytes(), &idle_close.to_be_bytes(), None);
        let name = format!("{CLOSE}{start}");
        ctx.schedule(TimerKind::EventTime, self.windows.closes_at(start), &name);
        ctx.schedule(TimerKind::WallClock, idle_close, &name);
        self.metrics.open_windows.inc();
        Ok(())
    }

    /// The wall clock closes a window only in an idle partition, one its consumer has read
    /// to the end: while a backlog is read, event time does it (a partition catching up —
    /// after a restart, say — would otherwise close every window it opens one grace period
    /// later, and split its movements into corrections). Postponed by a grace period.
    fn postpone_while_catching_up(
        &self,
        ctx: &mut Context<'_>,
        start: Millis,
    ) -> Result<bool, HandlerError> {
        if ctx.caught_up() || ctx.get(open_key(start).as_bytes())?.is_none() {
            return Ok(false);
        }
        let at = ctx.now().saturating_add(self.windows.grace);
        ctx.put(open_key(start).as_bytes(), &at.to_be_bytes(), None);
        ctx.schedule(TimerKind::WallClock, at, &format!("{CLOSE}{start}"));
        Ok(true)
    }

    fn close(&self, ctx: &mut Context<'_>, start: Millis) -> Result<(), HandlerError> {
        let open = open_key(start);
        let Some(idle_close) = ctx.get(open.as_bytes())? else {
            return Ok(()); // the other clock closed it already
        };
        let name = format!("{CLOSE}{start}");
        if let Ok(at) = <[u8; 8]>::try_from(idle_close.as_slice()) {
            ctx.cancel(TimerKind::WallClock, i64::from_be_bytes(at), &name);
        }
        ctx.cancel(TimerKind::EventTime, self.windows.closes_at(start), &name);
        ctx.delete(open.as_bytes());
        ctx.put(
            closed_key(start).as_bytes(),
            &[],
            Some(self.closed_retention),
        );
        self.metrics.open_windows.dec();

        let end = self.windows.end_of(start);
        let prefix = agg_prefix(start);
        for (key, raw) in ctx.scan(prefix.as_bytes())? {
            ctx.delete(&key);
            let entity = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let aggregate = match Aggregate::decode(&raw) {
                Ok(aggregate) => aggregate,
                Err(e) => {
                    return Err(HandlerError::Fatal {
                        reason: format!("window state of `{entity}` at {start} is corrupt: {e}"),
                    });
                }
            };
            let Some((sku, source_code)) = entity.split_once('|') else {
                continue;
            };
            let delta = emission(sku, source_code, start, end, &aggregate, ctx.now());
            if aggregate.late_correction {
                self.metrics.late_windows.inc();
            }
            self.metrics.emitted.inc();
            ctx.emit(&self.output_topic, source_code, Event::from(delta));
        }
        let delay = (ctx.now() - end).max(0) as f64 / 1000.0;
        self.metrics.emission_delay_seconds.observe(delay);
        Ok(())
    }
}

impl Handler for Aggregator {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Event::InventoryMovement(movement) = input.event else {
            return Err(HandlerError::Terminal {
                class: "unexpected_event",
                reason: format!(
                    "{} on the inventory movements topic",
                    input.event.envelope().event_type
                ),
            });
        };
        if movement.sku.contains('|') || movement.source_code.contains('|') {
            return Err(HandlerError::Terminal {
                class: "invalid_key",
                reason: format!(
                    "SKU `{}` or source `{}` contains `|`, the key separator",
                    movement.sku, movement.source_code
                ),
            });
        }
        // Placed by the runtime's event time: a movement dated further ahead of the wall
        // clock than allowed counts as dated the latest time allowed.
        let at = ctx.event_time().unwrap_or(movement.envelope.occurred_at);
        let (start, late, open) = self.target_window(ctx, at)?;
        if late {
            self.metrics.late_movements.inc();
            tracing::debug!(
                event_id = %movement.envelope.event_id,
                sku = %movement.sku,
                source = %movement.source_code,
                occurred_at = at,
                into_window = start,
                "movement after its window closed: carried into the next emission as a correction"
            );
        }
        if !open {
            self.open(ctx, start)?;
        }
        fold(ctx, start, movement, late)
    }

    fn on_timer(&mut self, timer: &Timer, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Some(Ok(start)) = timer.name.strip_prefix(CLOSE).map(str::parse::<Millis>) else {
            return Ok(());
        };
        if timer.kind == TimerKind::WallClock && self.postpone_while_catching_up(ctx, start)? {
            return Ok(());
        }
        self.close(ctx, start)
    }
}

fn fold(
    ctx: &mut Context<'_>,
    start: Millis,
    movement: &InventoryMovement,
    late: bool,
) -> Result<(), HandlerError> {
    let mut key = agg_prefix(start);
    key.reserve(movement.sku.len() + 1 + movement.source_code.len());
    key.push_str(&movement.sku);
    key.push('|');
    key.push_str(&movement.source_code);
    let mut aggregate = match ctx.get(key.as_bytes())? {
        Some(raw) => Aggregate::decode(&raw).map_err(|e| HandlerError::Fatal {
            reason: format!("window state `{key}` is corrupt: {e}"),
        })?,
        None => Aggregate::new(&movement.envelope.source, movement.envelope.occurred_at),
    };
    aggregate
        .add(movement, late)
        .map_err(|e| HandlerError::Terminal {
            class: "out_of_range",
            reason: format!(
                "a movement of {} on `{}|{}`: its window's sum {e}",
                movement.quantity, movement.sku, movement.source_code
            ),
        })?;
    ctx.put(key.as_bytes(), &aggregate.encode(), None);
    Ok(())
}

/// The event for one key's closed window; its id is the same on every replay.
fn emission(
    sku: &str,
    source_code: &str,
    start: Millis,
    end: Millis,
    aggregate: &Aggregate,
    now: Millis,
) -> StockDeltaAggregated {
    let entity = format!("{sku}|{source_code}");
    let event_id = FactIdentity {
        source: &aggregate.source,
        entity: &entity,
        fact: "StockDeltaAggregated",
        version: Some(start),
    }
    .event_id();
    StockDeltaAggregated {
        envelope: Envelope {
            event_id,
            event_type: StockDeltaAggregated::RECORD.to_owned(),
            schema_version: StockDeltaAggregated::VERSION,
            occurred_at: end,
            produced_at: now,
            source: aggregate.source.clone(),
            correlation_id: entity,
            causation_id: None,
        },
        sku: sku.to_owned(),
        source_code: source_code.to_owned(),
        window_start: start,
        window_end: end,
        net_delta: aggregate.net_delta,
        absolute_level: aggregate.absolute_level,
        total_delta: Some(aggregate.moved()),
        movement_count: aggregate.movement_count,
        first_event_at: aggregate.first_event_at,
        last_event_at: aggregate.last_event_at,
        late_correction: aggregate.late_correction,
    }
}

/// `prefix`, the window start zero-padded to 20 digits, then `suffix`: sortable as text
/// for every start a movement can have (after 1970). Written by hand: `format!` was a
/// tenth of the aggregator's time in the benchmark (several keys per movement).
fn window_key(prefix: &str, start: Millis, suffix: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + 20 + suffix.len());
    key.push_str(prefix);
    match u64::try_from(start) {
        Ok(mut n) => {
            let mut digits = [b'0'; 20];
            for digit in digits.iter_mut().rev() {
                *digit = b'0' + (n % 10) as u8;
                n /= 10;
            }
            key.extend(digits.iter().map(|&d| char::from(d)));
        }
        Err(_) => key.push_str(&format!("{start:020}")),
    }
    key.push_str(suffix);
    key
}

fn agg_prefix(start: Millis) -> String {
    window_key("agg/", start, "/")
}

fn open_key(start: Millis) -> String {
    window_key("open/", start, "")
}

fn closed_key(start: Millis) -> String {
    window_key("closed/", start, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_are_the_zero_padded_start_that_sorts_as_text() {
        for start in [0, 7, 1_700_000_040_000, i64::MAX, -300_000, i64::MIN] {
            assert_eq!(open_key(start), format!("open/{start:020}"));
            assert_eq!(agg_prefix(start), format!("agg/{start:020}/"));
        }
        assert!(closed_key(59_999) < closed_key(60_000));
    }
}
