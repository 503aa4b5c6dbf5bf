//! The aggregator on the runtime's test driver: simulated time, in-memory state, no broker.

use std::time::Duration;

use bridge_events::inventory::{InventoryMovement, MovementKind, StockDeltaAggregated};
use bridge_events::{Event, Millis, samples};
use bridge_runtime::driver::TestDriver;
use bridge_runtime::handler::{HandlerError, Output};
use bridge_runtime::step::StepConfig;
use inventory_aggregator::handler::Aggregator;
use inventory_aggregator::metrics::AggregatorMetrics;
use inventory_aggregator::window::Windows;
use rust_decimal::Decimal;

const MIN: Millis = 60_000;
/// A window boundary well after 1970, so the tests look like real times.
const T0: Millis = 1_700_000_100_000 - 1_700_000_100_000 % (5 * MIN);

struct Fixture {
    driver: TestDriver<Aggregator>,
    metrics: AggregatorMetrics,
    next_id: u32,
}

impl Fixture {
    /// Windows of 5 min with 1 min grace; the wall clock starts at `T0`, and movements may be
    /// dated up to a day ahead of it (most tests move event time alone).
    fn new() -> Self {
        Self::with_lead(Duration::from_secs(24 * 3600))
    }

    /// As [`Fixture::new`], with movements allowed `lead` ahead of the wall clock.
    fn with_lead(lead: Duration) -> Self {
        let metrics = AggregatorMetrics::unregistered();
        let windows = Windows {
            size: 5 * MIN,
            grace: MIN,
        };
        let aggregator = Aggregator::new(
            windows,
            Duration::from_secs(8 * 24 * 3600),
            "deltas",
            metrics.clone(),
        );
        Self {
            driver: TestDriver::new(aggregator, T0).with_config(StepConfig {
                max_event_time_ahead: lead,
                ..StepConfig::default()
            }),
            metrics,
            next_id: 0,
        }
    }

    fn movement(
        &mut self,
        sku: &str,
        kind: MovementKind,
        qty: i64,
        at: Millis,
    ) -> InventoryMovement {
        let mut movement = samples::inventory_movement(sku, "wh-a", 0);
        self.next_id += 1;
        movement.envelope.event_id = format!("movement-{}", self.next_id);
        movement.envelope.occurred_at = at;
        movement.kind = kind;
        movement.quantity = Decimal::from(qty);
        movement
    }

    fn send(&mut self, movement: InventoryMovement) -> Vec<StockDeltaAggregated> {
        match self.driver.send(movement) {
            Ok(outputs) => deltas(outputs),
            Err(e) => panic!("handler failed: {e}"),
        }
    }

    fn reserve(&mut self, sku: &str, qty: i64, at: Millis) -> Vec<StockDeltaAggregated> {
        let movement = self.movement(sku, MovementKind::Reservation, -qty, at);
        self.send(movement)
    }

    fn advance_to(&mut self, now: Millis) -> Vec<StockDeltaAggregated> {
        match self.driver.advance_to(now) {
            Ok(outputs) => deltas(outputs),
            Err(e) => panic!("punctuation failed: {e}"),
        }
    }
}

fn deltas(outputs: Vec<Output>) -> Vec<StockDeltaAggregated> {
    outputs
        .into_iter()
        .map(|output| match *output.event {
            Event::StockDeltaAggregated(delta) => {
                assert_eq!(output.topic, "deltas");
                assert_eq!(
                    output.key, delta.source_code,
                    "keyed by source for batching"
                );
                delta
            }
            other => panic!("unexpected output {other:?}"),
        })
        .collect()
}

fn one(mut emitted: Vec<StockDeltaAggregated>) -> StockDeltaAggregated {
    assert_eq!(emitted.len(), 1, "expected one emission: {emitted:?}");
    emitted.remove(0)
}

#[test]
fn a_window_holds_its_half_open_interval_and_closes_when_event_time_passes_end_plus_grace() {
    let mut f = Fixture::new();
    assert!(f.reserve("RED", 1, T0).is_empty());
    assert!(f.reserve("RED", 2, T0 + 5 * MIN - 1).is_empty());
    // The next window: nothing closes yet (event time is inside the grace period).
    assert!(f.reserve("RED", 4, T0 + 5 * MIN).is_empty());
    assert!(f.reserve("RED", 8, T0 + 6 * MIN - 1).is_empty());
    // Event time reaches end + grace of the first window: it closes, once.
    let first = one(f.reserve("BLUE", 1, T0 + 6 * MIN));
    assert_eq!(
        (first.sku.as_str(), first.source_code.as_str()),
        ("RED", "wh-a")
    );
    assert_eq!((first.window_start, first.window_end), (T0, T0 + 5 * MIN));
    assert_eq!(first.net_delta, Decimal::from(-3));
    assert_eq!(first.movement_count, 2);
    assert_eq!(
        (first.first_event_at, first.last_event_at),
        (T0, T0 + 5 * MIN - 1)
    );
    assert!(!first.late_correction);
    assert!(
        f.reserve("BLUE", 1, T0 + 7 * MIN).is_empty(),
        "closed windows emit once"
    );
    // The second window holds the boundary record and the one inside its grace.
    let mut second = f.reserve("RED", 1, T0 + 11 * MIN);
    second.sort_by(|a, b| a.sku.cmp(&b.sku));
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].net_delta, Decimal::from(-12));
    assert_eq!(second[0].net_delta, Decimal::from(-2));
    assert_eq!(second[0].window_start, T0 + 5 * MIN);
}

#[test]
fn a_movement_within_grace_still_counts_in_its_own_window() {
    let mut f = Fixture::new();
    f.reserve("RED", 1, T0 + MIN);
    f.reserve("RED", 1, T0 + 5 * MIN + 30_000); // next window, moves event time into grace
    f.reserve("RED", 5, T0 + 4 * MIN); // out of order, but within grace
    let closed = one(f.reserve("RED", 1, T0 + 6 * MIN));
    assert_eq!(closed.net_delta, Decimal::from(-6));
    assert!(!closed.late_correction);
    assert_eq!(f.metrics.late_movements.get(), 0);
}

#[test]
fn a_quiet_partition_closes_its_windows_on_the_wall_clock() {
    let mut f = Fixture::new();
    f.reserve("RED", 3, T0 + MIN);
    f.reserve("BLUE", 1, T0 + 2 * MIN);
    assert!(
        f.advance_to(T0 + 6 * MIN - 1).is_empty(),
        "not before end + grace"
    );
    let mut closed = f.advance_to(T0 + 6 * MIN);
    closed.sort_by(|a, b| a.sku.cmp(&b.sku));
    assert_eq!(closed.len(), 2);
    assert_eq!(closed[0].sku, "BLUE");
    assert_eq!(closed[1].net_delta, Decimal::from(-3));
    // Event time passing later does not emit it again.
    assert!(f.reserve("RED", 1, T0 + 20 * MIN).is_empty());
    assert!(
        f.advance_to(T0 + 30 * MIN).len() == 1,
        "only the new window"
    );
    assert_eq!(f.metrics.open_windows.get(), 0);
}

/// A movement dated a day ahead (a clock ahead, a bogus date) with the shipped lead of
/// 60 s: it counts as dated a minute from now. The windows open now close on time, and the
/// movements after it land in their own windows, emitted on time — it does not hold the
/// partition's windows open for a day.
#[test]
fn a_movement_dated_far_ahead_does_not_hold_the_windows_open() {
    let mut f = Fixture::with_lead(StepConfig::default().max_event_time_ahead);
    let day = 24 * 60 * MIN;
    f.driver.set_caught_up(true);
    assert!(f.reserve("RED", 1, T0 + MIN).is_empty());
    f.advance_to(T0 + 2 * MIN);
    assert!(f.reserve("BLUE", 5, T0 + day).is_empty());
    assert_eq!(f.driver.event_time_ahead, 1);
    f.advance_to(T0 + 3 * MIN);
    assert!(f.reserve("RED", 2, T0 + 3 * MIN).is_empty());
    // Both windows' movements come out with the wall clock: the first window at its end
    // plus grace, BLUE's with it (it was placed at T0 + 3 min, in the first window).
    let mut closed = f.advance_to(T0 + 6 * MIN);
    closed.sort_by(|a, b| a.sku.cmp(&b.sku));
    let got: Vec<_> = closed
        .iter()
        .map(|d| (d.sku.as_str(), d.window_start, d.total_delta))
        .collect();
    assert_eq!(
        got,
        [
            ("BLUE", T0, Some(Decimal::from(-5))),
            ("RED", T0, Some(Decimal::from(-3)))
        ]
    );
    assert_eq!(
        closed[0].last_event_at,
        T0 + day,
        "the date it claimed is kept"
    );
    // The next movement, on time, is in its own window, emitted at its end plus grace.
    f.advance_to(T0 + 7 * MIN);
    assert!(f.reserve("RED", 4, T0 + 7 * MIN).is_empty());
    let next = one(f.advance_to(T0 + 11 * MIN));
    assert_eq!(
        (next.window_start, next.late_correction),
        (T0 + 5 * MIN, false)
    );
}

#[test]
fn a_window_first_seen_while_catching_up_still_gets_its_grace() {
    let mut f = Fixture::new();
    f.advance_to(T0 + 60 * MIN); // the wall clock is an hour past the data
    f.reserve("RED", 1, T0 + MIN);
    assert!(f.advance_to(T0 + 60 * MIN + 30_000).is_empty());
    assert_eq!(
        one(f.advance_to(T0 + 61 * MIN)).net_delta,
        Decimal::from(-1)
    );
}

#[test]
fn a_late_movement_is_carried_into_the_next_emission_for_its_key_flagged_late() {
    let mut f = Fixture::new();
    f.reserve("RED", 1, T0 + MIN);
    one(f.reserve("RED", 2, T0 + 7 * MIN)); // closes the first window
    // Late by event time: its window [T0, T0+5m) closed at T0+6m.
    assert!(f.reserve("RED", 10, T0 + 2 * MIN).is_empty());
    assert_eq!(f.metrics.late_movements.get(), 1);
    let next = one(f.reserve("RED", 1, T0 + 11 * MIN));
    assert_eq!(next.window_start, T0 + 5 * MIN);
    assert_eq!(
        next.net_delta,
        Decimal::from(-12),
        "the correction and the window's own"
    );
    assert!(next.late_correction);
    assert_eq!(
        next.first_event_at,
        T0 + 2 * MIN,
        "shows where the correction is from"
    );
    assert_eq!(f.metrics.late_windows.get(), 1);
}

#[test]
fn a_movement_for_a_window_the_wall_clock_closed_is_a_correction_too() {
    let mut f = Fixture::new();
    f.reserve("RED", 1, T0 + MIN);
    one(f.advance_to(T0 + 6 * MIN)); // quiet partition: closed by the wall clock
    // Event time is still T0+1m; the window is closed all the same.
    assert!(f.reserve("RED", 4, T0 + 3 * MIN).is_empty());
    let correction = one(f.advance_to(T0 + 12 * MIN));
    assert!(correction.late_correction);
    assert_eq!(
        correction.window_start,
        T0 + 5 * MIN,
        "the first window still open"
    );
    assert_eq!(correction.net_delta, Decimal::from(-4));
}

#[test]
fn a_duplicate_movement_is_counted_once() {
    let mut f = Fixture::new();
    let movement = f.movement("RED", MovementKind::Shipment, -2, T0 + MIN);
    f.send(movement.clone());
    f.send(movement);
    assert_eq!(f.driver.duplicates, 1);
    let closed = one(f.advance_to(T0 + 6 * MIN));
    assert_eq!(
        (closed.net_delta, closed.movement_count),
        (Decimal::from(-2), 1)
    );
}

#[test]
fn releases_net_out_reservations_returns_add_back_and_sets_are_levels() {
    let mut f = Fixture::new();
    for (kind, qty) in [
        (MovementKind::Reservation, -3),
        (MovementKind::CancellationRelease, 3),
        (MovementKind::Reservation, -2),
        (MovementKind::Shipment, -2),
        (MovementKind::Return, 1),
    ] {
        let movement = f.movement("RED", kind, qty, T0 + MIN);
        f.send(movement);
    }
    let closed = one(f.advance_to(T0 + 6 * MIN));
    assert_eq!(closed.net_delta, Decimal::from(-3));
    assert_eq!(
        closed.total_delta,
        Some(Decimal::from(-3)),
        "no set: the same sum"
    );
    assert_eq!(closed.absolute_level, None);
    assert_eq!(closed.movement_count, 5);
}

/// Magento's level (for who reads levels) and every movement (for the ERP, which owns
/// levels and is posted the movements): the deltas before a set are not lost to it.
#[test]
fn a_set_is_a_level_that_the_deltas_after_it_apply_on() {
    let mut f = Fixture::new();
    for (kind, qty) in [
        (MovementKind::Reservation, -3),
        (MovementKind::SourceItemSet, 40),
        (MovementKind::Shipment, -2),
        (MovementKind::SourceItemSet, 38),
        (MovementKind::Return, 1),
        (MovementKind::Reservation, -4),
    ] {
        let movement = f.movement("RED", kind, qty, T0 + MIN);
        f.send(movement);
    }
    let closed = one(f.advance_to(T0 + 6 * MIN));
    assert_eq!(
        closed.absolute_level,
        Some(Decimal::from(38)),
        "the last level set"
    );
    assert_eq!(
        closed.net_delta,
        Decimal::from(-3),
        "the deltas after it: 35 at the end"
    );
    assert_eq!(
        closed.total_delta,
        Some(Decimal::from(-8)),
        "every delta, before the sets too; no set counted"
    );
    assert_eq!(closed.movement_count, 6);
}

#[test]
fn emissions_have_the_same_ids_on_a_replay_and_different_ids_per_window() {
    let run = || {
        let mut f = Fixture::new();
        f.reserve("RED", 1, T0 + MIN);
        let mut emitted = f.reserve("RED", 1, T0 + 6 * MIN);
        emitted.extend(f.advance_to(T0 + 20 * MIN));
        let mut ids: Vec<String> = emitted.into_iter().map(|d| d.envelope.event_id).collect();
        ids.sort();
        ids
    };
    let ids = run();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids, run());
}

#[test]
fn a_key_with_the_separator_is_parked_naming_it() {
    let mut f = Fixture::new();
    let movement = f.movement("RED|XL", MovementKind::Reservation, -1, T0);
    assert!(f.send(movement).is_empty());
    assert_eq!(f.driver.parked.len(), 1);
    match &f.driver.parked[0].1 {
        HandlerError::Terminal { class, reason } => {
            assert_eq!(*class, "invalid_key");
            assert!(reason.contains("RED|XL"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_wall_clock_waits_while_the_partition_catches_up() {
    let mut f = Fixture::new();
    f.reserve("RED", 1, T0 + MIN);
    // A backlog is being read (after a restart, say): the window stays open ...
    f.driver.set_caught_up(false);
    assert!(f.advance_to(T0 + 6 * MIN).is_empty());
    f.reserve("RED", 1, T0 + 4 * MIN);
    assert!(f.advance_to(T0 + 60 * MIN).is_empty());
    // ... and takes the backlog's movements as its own, not as corrections; once the
    // consumer has read to the end, the wall clock closes it a grace period later.
    f.driver.set_caught_up(true);
    assert!(f.advance_to(T0 + 60 * MIN + 1).is_empty());
    let closed = one(f.advance_to(T0 + 61 * MIN));
    assert_eq!(
        (closed.window_start, closed.net_delta),
        (T0, Decimal::from(-2))
    );
    assert!(!closed.late_correction);
    assert_eq!(f.metrics.late_movements.get(), 0);
}
