//! Tumbling windows and what one (SKU, source) accumulates in one of them — pure logic,
//! no state store.
//!
//! Deltas (reservations, shipments, releases, returns) are summed. An MSI source-item
//! *set* is an absolute level, not a delta: it is never added to a sum. A window carries
//! `total_delta` = every delta in it, before and after a set (what the movements moved:
//! what erp-writer posts to the ERP, which owns stock levels), and for Magento's level
//! `absolute_level` = the last level set and `net_delta` = the deltas after it, in stream
//! order (the order Magento produced them: one key is one partition), so the level at the
//! window's end is `absolute_level + net_delta`, as the `StockDeltaAggregated` schema
//! documents. Without a set, `net_delta` = `total_delta`.

use bridge_events::Millis;
use bridge_events::decimal::{DecimalError, checked_add};
use bridge_events::inventory::{InventoryMovement, MovementKind};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Window size and grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// Length of a window in ms (windows are `[start, start + size)`, aligned to the epoch).
    pub size: Millis,
    /// How long after its end a window still takes movements, in ms.
    pub grace: Millis,
}

impl Windows {
    /// The start of the window holding `at`.
    pub fn start_of(&self, at: Millis) -> Millis {
        at.div_euclid(self.size) * self.size
    }

    /// The end (exclusive) of the window starting at `start`.
    pub fn end_of(&self, start: Millis) -> Millis {
        start.saturating_add(self.size)
    }

    /// The event time at which the window starting at `start` closes.
    pub fn closes_at(&self, start: Millis) -> Millis {
        self.end_of(start).saturating_add(self.grace)
    }

    /// The wall-clock time at which a window first seen at wall-clock `now` closes if its
    /// partition goes quiet: its end plus grace, or — for a window opened late, e.g. while
    /// catching up on a backlog — `now` plus grace, so it still gets its grace period.
    pub fn idle_close_at(&self, start: Millis, now: Millis) -> Millis {
        self.end_of(start).max(now).saturating_add(self.grace)
    }
}

/// The tag of the first binary format (no total delta); JSON starts with `{`.
const BINARY_V1: u8 = 0x01;
/// The tag of [`Aggregate::encode`]'s format.
const BINARY_V2: u8 = 0x02;
/// v1: tag, net delta, level flag and level, count, first and last event time, late flag.
const FIXED_LEN_V1: usize = 1 + 16 + 1 + 16 + 8 + 8 + 8 + 1;
/// v2: v1's fields with the total delta after the level.
const FIXED_LEN: usize = FIXED_LEN_V1 + 16;

/// What one key has accumulated in one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Sum of the deltas after the last absolute level set (all of them without one).
    pub net_delta: Decimal,
    /// The last absolute level set.
    pub absolute_level: Option<Decimal>,
    /// Sum of every delta, before and after a level set. Read from a state written before
    /// it was kept: `net_delta` (the deltas before a set in that window were not kept).
    #[serde(default)]
    pub total_delta: Option<Decimal>,
    /// Movements folded in.
    pub movement_count: i64,
    /// Earliest `occurred_at`.
    pub first_event_at: Millis,
    /// Latest `occurred_at`.
    pub last_event_at: Millis,
    /// Holds movements that arrived after their own window had closed.
    pub late_correction: bool,
    /// Source of the movements (`magento:<store>`), for the emitted envelope.
    pub source: String,
}

impl Aggregate {
    /// An empty aggregate for movements from `source`.
    pub fn new(source: &str, at: Millis) -> Self {
        Self {
            net_delta: Decimal::ZERO,
            absolute_level: None,
            total_delta: Some(Decimal::ZERO),
            movement_count: 0,
            first_event_at: at,
            last_event_at: at,
            late_correction: false,
            source: source.to_owned(),
        }
    }

    /// The state value: a version byte, then fixed-width fields and the source
    /// (serde_json was a tenth of the aggregator's time in the benchmark).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + self.source.len());
        out.push(BINARY_V2);
        out.extend_from_slice(&self.net_delta.serialize());
        match self.absolute_level {
            Some(level) => {
                out.push(1);
                out.extend_from_slice(&level.serialize());
            }
            None => {
                out.push(0);
                out.extend_from_slice(&[0; 16]);
            }
        }
        out.extend_from_slice(&self.moved().serialize());
        out.extend_from_slice(&self.movement_count.to_be_bytes());
        out.extend_from_slice(&self.first_event_at.to_be_bytes());
        out.extend_from_slice(&self.last_event_at.to_be_bytes());
        out.push(u8::from(self.late_correction));
        out.extend_from_slice(self.source.as_bytes());
        out
    }

    /// Reads a state value: [`Self::encode`]'s, or the JSON earlier versions wrote (a
    /// changelog restored after an upgrade still holds it).
    pub fn decode(raw: &[u8]) -> Result<Self, String> {
        match raw.first() {
            Some(&BINARY_V2) => Self::decode_binary(&raw[1..], true),
            Some(&BINARY_V1) => Self::decode_binary(&raw[1..], false),
            Some(b'{') => serde_json::from_slice(raw).map_err(|e| e.to_string()),
            Some(tag) => Err(format!("unknown aggregate format {tag:#04x}")),
            None => Err("empty aggregate".into()),
        }
    }

    /// The fields after the tag; `with_total`: v2, else v1.
    fn decode_binary(raw: &[u8], with_total: bool) -> Result<Self, String> {
        let fixed = if with_total { FIXED_LEN } else { FIXED_LEN_V1 };
        if raw.len() < fixed - 1 {
            return Err(format!(
                "aggregate of {} bytes, shorter than its {fixed} fixed bytes",
                raw.len() + 1,
            ));
        }
        let (decimal, rest) = raw.split_at(16);
        let (has_level, rest) = rest.split_at(1);
        let (level, rest) = rest.split_at(16);
        let (total, rest) = rest.split_at(if with_total { 16 } else { 0 });
        let (count, rest) = rest.split_at(8);
        let (first, rest) = rest.split_at(8);
        let (last, rest) = rest.split_at(8);
        let (late, source) = rest.split_at(1);
        let decimal_at = |b: &[u8]| -> Result<Decimal, String> {
            Ok(Decimal::deserialize(
                b.try_into().map_err(|_| "bad decimal width")?,
            ))
        };
        let millis = |b: &[u8]| -> Result<i64, String> {
            Ok(i64::from_be_bytes(
                b.try_into().map_err(|_| "bad integer width")?,
            ))
        };
        Ok(Self {
            net_delta: decimal_at(decimal)?,
            absolute_level: match has_level[0] {
                0 => None,
                _ => Some(decimal_at(level)?),
            },
            total_delta: match with_total {
                true => Some(decimal_at(total)?),
                false => None,
            },
            movement_count: millis(count)?,
            first_event_at: millis(first)?,
            last_event_at: millis(last)?,
            late_correction: late[0] != 0,
            source: String::from_utf8(source.to_vec())
                .map_err(|e| format!("source is not UTF-8: {e}"))?,
        })
    }

    /// Every delta folded in: `total_delta`, or for a state written before it was kept,
    /// `net_delta`.
    pub fn moved(&self) -> Decimal {
        self.total_delta.unwrap_or(self.net_delta)
    }

    /// Folds one movement in; `late` marks it as a correction of an already closed window.
    /// A movement that would take a sum out of what the output event holds is refused and
    /// leaves the window as it was.
    pub fn add(&mut self, movement: &InventoryMovement, late: bool) -> Result<(), DecimalError> {
        match movement.kind {
            MovementKind::SourceItemSet => {
                self.total_delta = Some(self.moved());
                self.absolute_level = Some(movement.quantity);
                self.net_delta = Decimal::ZERO;
            }
            MovementKind::Reservation
            | MovementKind::Shipment
            | MovementKind::CancellationRelease
            | MovementKind::Return => {
                let total = checked_add(self.moved(), movement.quantity)?;
                let net = checked_add(self.net_delta, movement.quantity)?;
                self.total_delta = Some(total);
                self.net_delta = net;
            }
        }
        let at = movement.envelope.occurred_at;
        self.movement_count += 1;
        self.first_event_at = self.first_event_at.min(at);
        self.last_event_at = self.last_event_at.max(at);
        self.late_correction |= late;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_events::samples;

    const MIN: Millis = 60_000;

    fn windows() -> Windows {
        Windows {
            size: 5 * MIN,
            grace: MIN,
        }
    }

    #[test]
    fn windows_are_aligned_half_open_intervals() {
        let w = windows();
        assert_eq!(w.start_of(0), 0);
        assert_eq!(w.start_of(5 * MIN - 1), 0);
        assert_eq!(w.start_of(5 * MIN), 5 * MIN);
        assert_eq!(w.start_of(-1), -5 * MIN);
        assert_eq!(w.closes_at(5 * MIN), 11 * MIN);
    }

    #[test]
    fn an_idle_window_gets_its_grace_even_when_first_seen_late() {
        let w = windows();
        assert_eq!(w.idle_close_at(0, MIN), 6 * MIN);
        assert_eq!(w.idle_close_at(0, 60 * MIN), 61 * MIN);
    }

    #[test]
    fn the_state_value_round_trips_and_earlier_formats_still_read() -> Result<(), String> {
        let mut movement = samples::inventory_movement("SKU-1", "default", -3);
        let mut aggregate = Aggregate::new("magento:default", movement.envelope.occurred_at);
        aggregate.add(&movement, false).map_err(|e| e.to_string())?;
        assert_eq!(
            Aggregate::decode(&aggregate.encode()),
            Ok(aggregate.clone())
        );
        movement.kind = MovementKind::SourceItemSet;
        movement.quantity = "12.5".parse().unwrap_or_default();
        aggregate.add(&movement, true).map_err(|e| e.to_string())?;
        let raw = aggregate.encode();
        assert_eq!(Aggregate::decode(&raw), Ok(aggregate.clone()));
        let json = serde_json::to_vec(&aggregate).unwrap_or_default();
        assert_eq!(Aggregate::decode(&json), Ok(aggregate.clone()));
        assert!(Aggregate::decode(&raw[..FIXED_LEN - 1]).is_err());
        // v1, before the total was kept (v2 puts it right after the level, bytes 34..50):
        // the total reads as the net delta.
        let mut v1 = raw.clone();
        v1[0] = BINARY_V1;
        v1.drain(34..50);
        assert_eq!(v1.len(), FIXED_LEN_V1 + aggregate.source.len());
        let old = Aggregate::decode(&v1)?;
        assert_eq!(old.total_delta, None);
        assert_eq!((old.moved(), old.net_delta), (Decimal::ZERO, Decimal::ZERO));
        assert_eq!(old.absolute_level, Some("12.5".parse().unwrap_or_default()));
        assert!(Aggregate::decode(&[]).is_err());
        assert!(Aggregate::decode(&[0x7f]).is_err());
        Ok(())
    }

    #[test]
    fn a_sum_leaving_the_event_range_is_refused_and_the_window_kept() -> Result<(), DecimalError> {
        let mut movement = samples::inventory_movement("SKU-1", "default", 1);
        movement.quantity = Decimal::from(99_999_999_999_999_i64);
        let mut aggregate = Aggregate::new("magento:default", movement.envelope.occurred_at);
        aggregate.add(&movement, false)?;
        let before = aggregate.clone();
        assert_eq!(
            aggregate.add(&movement, false),
            Err(DecimalError::OutOfRange)
        );
        assert_eq!(aggregate, before);
        Ok(())
    }

    #[test]
    fn sets_are_levels_not_deltas() -> Result<(), DecimalError> {
        let mut movement = samples::inventory_movement("SKU-1", "default", 2);
        let mut aggregate = Aggregate::new("magento:default", movement.envelope.occurred_at);
        movement.kind = MovementKind::Reservation;
        aggregate.add(&movement, false)?;
        movement.kind = MovementKind::SourceItemSet;
        movement.quantity = Decimal::from(40);
        aggregate.add(&movement, false)?;
        movement.kind = MovementKind::Return;
        movement.quantity = Decimal::from(1);
        aggregate.add(&movement, true)?;
        assert_eq!(
            aggregate.net_delta,
            Decimal::from(1),
            "for the level: only the deltas after the set"
        );
        assert_eq!(
            aggregate.moved(),
            Decimal::from(-1),
            "for the ledger: every delta (-2 reserved, 1 returned), the set none of them"
        );
        assert_eq!(aggregate.absolute_level, Some(Decimal::from(40)));
        assert_eq!(aggregate.movement_count, 3);
        assert!(aggregate.late_correction);
        Ok(())
    }
}
