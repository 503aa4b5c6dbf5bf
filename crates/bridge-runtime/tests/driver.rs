//! The handler contract through the test driver: dedupe, state, TTL, timers on both
//! clocks, and errors — with simulated time and no broker.

use std::time::Duration;

use bridge_events::Event;
use bridge_events::inventory::InventoryMovement;
use bridge_events::samples;
use bridge_runtime::driver::TestDriver;
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound, Timer, TimerKind};
use bridge_runtime::state::StateStore;
use rust_decimal::Decimal;

/// Counts movements per SKU; a wall-clock timer 60 s after the first movement emits the
/// count, an event-time timer marks when event time passes it. Quantity 0 is refused.
#[derive(Default)]
struct CountPerSku {
    fired: Vec<Timer>,
}

impl Handler for CountPerSku {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Event::InventoryMovement(m) = input.event else {
            return Ok(());
        };
        if m.quantity == Decimal::ZERO {
            return Err(HandlerError::Terminal {
                class: "zero_quantity",
                reason: format!("movement of `{}` has quantity 0", m.sku),
            });
        }
        let key = format!("count/{}", m.sku);
        let count = ctx.get(key.as_bytes())?.map(|v| v.len()).unwrap_or(0) + 1;
        if count == 1 {
            ctx.schedule(TimerKind::WallClock, ctx.now() + 60_000, &m.sku);
            ctx.schedule(TimerKind::EventTime, m.envelope.occurred_at + 1_000, &m.sku);
        }
        ctx.put(key.as_bytes(), &vec![b'x'; count], None);
        ctx.put(
            format!("seen/{}", m.sku).as_bytes(),
            b"1",
            Some(Duration::from_secs(30)),
        );
        Ok(())
    }

    fn on_timer(&mut self, timer: &Timer, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        self.fired.push(timer.clone());
        if timer.kind == TimerKind::WallClock {
            let count = ctx
                .get(format!("count/{}", timer.name).as_bytes())?
                .map(|v| v.len())
                .unwrap_or(0);
            let mut summary = samples::inventory_movement(&timer.name, "summary", count as i64);
            summary.envelope.event_id = format!("summary-{}", timer.name);
            ctx.emit("summaries", &timer.name, summary);
        }
        Ok(())
    }
}

const T0: i64 = 1_700_000_000_000;

fn movement(sku: &str, id: &str, occurred_at: i64) -> InventoryMovement {
    let mut m = samples::inventory_movement(sku, "ams", 1);
    m.envelope.event_id = id.to_owned();
    m.envelope.occurred_at = occurred_at;
    m
}

fn count(driver: &TestDriver<CountPerSku>, sku: &str) -> usize {
    driver
        .store()
        .get(format!("s/count/{sku}").as_bytes())
        .ok()
        .flatten()
        .map(|v| v.len().saturating_sub(8))
        .unwrap_or(0)
}

#[test]
fn a_duplicate_event_id_is_skipped_and_counted() -> Result<(), HandlerError> {
    let mut driver = TestDriver::new(CountPerSku::default(), T0);
    driver.send(movement("A", "e1", T0))?;
    driver.send(movement("A", "e1", T0))?;
    driver.send(movement("A", "e2", T0))?;
    assert_eq!(count(&driver, "A"), 2);
    assert_eq!(driver.duplicates, 1);
    Ok(())
}

#[test]
fn a_wall_clock_timer_fires_on_an_idle_partition() -> Result<(), HandlerError> {
    let mut driver = TestDriver::new(CountPerSku::default(), T0);
    driver.send(movement("A", "e1", T0))?;
    driver.send(movement("A", "e2", T0))?;
    assert!(driver.advance_to(T0 + 59_999)?.is_empty());
    // No record arrives; the clock alone makes it due.
    let outputs = driver.advance_to(T0 + 60_000)?;
    assert_eq!(outputs.len(), 1);
    let Event::InventoryMovement(summary) = outputs[0].event.as_ref() else {
        panic!("wrong output")
    };
    assert_eq!(summary.quantity, Decimal::from(-2));
    // Fired once: it is gone from state.
    assert!(driver.advance_to(T0 + 120_000)?.is_empty());
    Ok(())
}

#[test]
fn an_event_time_timer_follows_the_events_not_the_clock() -> Result<(), HandlerError> {
    let mut driver = TestDriver::new(CountPerSku::default(), T0);
    driver.send(movement("A", "e1", T0))?;
    driver.advance_to(T0 + 10_000)?;
    assert!(
        driver
            .handler()
            .fired
            .iter()
            .all(|t| t.kind != TimerKind::EventTime)
    );
    // Another SKU's event moves the partition's event time past T0 + 1 s.
    driver.send(movement("B", "e2", T0 + 1_000))?;
    assert!(
        driver
            .handler()
            .fired
            .iter()
            .any(|t| t.kind == TimerKind::EventTime && t.name == "A")
    );
    Ok(())
}

#[test]
fn entries_with_a_ttl_expire_and_are_swept() -> Result<(), HandlerError> {
    let mut driver = TestDriver::new(CountPerSku::default(), T0);
    driver.send(movement("A", "e1", T0))?;
    assert!(driver.store().get(b"s/seen/A")?.is_some());
    driver.advance_to(T0 + 30_001)?;
    assert_eq!(driver.store().get(b"s/seen/A")?, None);
    // Its expiry-index entry went with it (dedupe buckets have none: they expire by key).
    let index = driver.store().scan_prefix(b"x/")?;
    assert!(index.is_empty(), "{index:?}");
    assert!(
        driver.store().seen(b"e1", T0 + 30_001)?,
        "remembered for 7 days"
    );
    Ok(())
}

#[test]
fn a_terminal_error_parks_the_record_and_keeps_nothing_of_it() -> Result<(), HandlerError> {
    let mut driver = TestDriver::new(CountPerSku::default(), T0);
    let mut zero = movement("Z", "e-zero", T0);
    zero.quantity = Decimal::ZERO;
    driver.send(zero.clone())?;
    assert_eq!(driver.parked.len(), 1);
    assert!(driver.parked[0].1.to_string().contains("`Z`"));
    assert!(
        !driver.store().seen(b"e-zero", T0)?,
        "a parked record must stay replayable"
    );
    assert_eq!(count(&driver, "Z"), 0);
    // Replayed after a fix, the same event id is processed.
    zero.quantity = Decimal::ONE;
    driver.send(zero)?;
    assert_eq!(count(&driver, "Z"), 1);
    Ok(())
}

/// Emits a verdict for every movement and parks the negative ones as well (the sample
/// builder negates its quantity: a reservation takes stock).
struct VerdictAndPark;

impl Handler for VerdictAndPark {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Event::InventoryMovement(m) = input.event else {
            return Ok(());
        };
        let mut verdict = m.clone();
        verdict.envelope.event_id = format!("verdict-{}", m.envelope.event_id);
        ctx.emit("verdicts", &m.sku, verdict);
        if m.quantity < Decimal::ZERO {
            ctx.park("negative", format!("`{}` went negative", m.sku));
        }
        Ok(())
    }
}

#[test]
fn a_record_parked_by_the_handler_keeps_its_outputs_and_is_handled_again_on_replay()
-> Result<(), HandlerError> {
    let mut driver = TestDriver::new(VerdictAndPark, 0);
    let bad = samples::inventory_movement("SKU-1", "bad", 2);
    let outputs = driver.send(bad.clone())?;
    assert_eq!(outputs.len(), 1, "the verdict is produced");
    assert_eq!(driver.parked.len(), 1);
    assert!(matches!(
        &driver.parked[0].1,
        HandlerError::Terminal { class: "negative", reason } if reason.contains("SKU-1")
    ));
    // Not remembered for dedupe: the replayed record is handled again.
    let again = driver.send(bad)?;
    assert_eq!(again.len(), 1);
    assert_eq!(driver.duplicates, 0);
    // A record handled without parking is deduplicated as usual.
    let good = samples::inventory_movement("SKU-2", "good", -3);
    driver.send(good.clone())?;
    assert!(driver.send(good)?.is_empty());
    assert_eq!(driver.duplicates, 1);
    Ok(())
}

/// Walks its keys a page per punctuation (the reconciler's way through a large store),
/// remembering where it is in state; expired entries are skipped, not counted.
#[derive(Default)]
struct PagedScan {
    pages: Vec<Vec<String>>,
}

impl Handler for PagedScan {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Event::InventoryMovement(m) = input.event else {
            return Ok(());
        };
        let ttl = (m.sku == "k03").then(|| Duration::from_secs(1));
        ctx.put(format!("k/{}", m.sku).as_bytes(), b"v", ttl);
        // Sorts after every `k/` key but starts like one: a scan must stop at the prefix.
        ctx.put(b"l/other", b"v", None);
        Ok(())
    }

    fn on_punctuate(&mut self, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let cursor = ctx.get(b"cursor")?;
        let page = ctx.scan_page(b"k/", cursor.as_deref(), 2)?;
        if let Some((last, _)) = page.last() {
            ctx.put(b"cursor", &last.clone(), None);
        }
        self.pages.push(
            page.iter()
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .collect(),
        );
        Ok(())
    }
}

#[test]
fn a_punctuation_hook_pages_through_state_with_a_cursor() -> Result<(), HandlerError> {
    let mut driver = TestDriver::new(PagedScan::default(), 1_000);
    for sku in ["k01", "k02", "k03", "k04", "k05"] {
        let mut m = samples::inventory_movement(sku, "default", 1);
        m.envelope.event_id = format!("id-{sku}");
        driver.send(m)?;
    }
    // k03 has expired by the first punctuation.
    for t in 1..=4 {
        driver.advance_to(10_000 + t)?;
    }
    assert_eq!(
        driver.handler().pages,
        vec![
            vec!["k/k01".to_owned(), "k/k02".to_owned()],
            vec!["k/k04".to_owned(), "k/k05".to_owned()],
            vec![],
            vec![],
        ]
    );
    Ok(())
}
