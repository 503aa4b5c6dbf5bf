//! erp-writer's stock flow through the runtime's test driver against a real erp-sim (HTTP,
//! in process) — no broker: batching per window and warehouse, chunking, sealing before
//! posting, retries that never post twice.

use std::sync::Arc;
use std::time::Duration;

use bridge_events::inventory::StockDeltaAggregated;
use bridge_events::{Event, Millis, samples};
use bridge_runtime::driver::TestDriver;
use bridge_runtime::guard::{CircuitBreaker, Guard, RateLimiter};
use bridge_runtime::handler::{HandlerError, Output};
use erp::connector::erp_sim::ErpSimConnector;
use erp::mapping::Mapping;
use erp_sim::Faults;
use erp_sim::{ErpSim, ErpSimConfig};
use erp_writer::calls::ErpCaller;
use erp_writer::metrics::WriterMetrics;
use erp_writer::stock::{Batching, StockWriter};
use rust_decimal::Decimal;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MAPPING: &str = include_str!("../../../deploy/config/mapping.toml");
const MIN: Millis = 60_000;
const W0: Millis = 1_700_000_100_000 - 1_700_000_100_000 % (5 * MIN);
/// Wall clock: the window closed a little while ago.
const NOW: Millis = W0 + 6 * MIN;

struct Setup {
    _runtime: tokio::runtime::Runtime,
    erp: ErpSim,
    driver: TestDriver<StockWriter<ErpSimConnector>>,
    next: u32,
}

fn setup(limit: usize, faults: Faults) -> Result<Setup, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let erp = runtime.block_on(ErpSim::start(ErpSimConfig {
        faults,
        ..Default::default()
    }))?;
    let connector = Arc::new(ErpSimConnector::new(
        &erp.url(),
        Duration::from_millis(500),
    )?);
    let metrics = WriterMetrics::register(&Arc::new(bridge_runtime::metrics::Metrics::new(
        "erp-writer",
    )));
    let guard = Guard::new(
        "the ERP",
        RateLimiter::new(0.0, 1),
        CircuitBreaker::new(100, Duration::from_millis(1)),
    );
    let writer = StockWriter::new(
        connector,
        Arc::new(Mapping::parse(MAPPING)?),
        ErpCaller::new(runtime.handle().clone(), guard, metrics.clone()),
        Batching {
            wait: Duration::from_secs(5),
            limit,
            retry: Default::default(),
        },
        "results",
        metrics,
    );
    Ok(Setup {
        _runtime: runtime,
        erp,
        driver: TestDriver::new(writer, NOW),
        next: 0,
    })
}

impl Setup {
    fn delta(
        &mut self,
        sku: &str,
        source: &str,
        qty: i64,
        window_start: Millis,
    ) -> StockDeltaAggregated {
        self.next += 1;
        let mut envelope =
            samples::envelope::<StockDeltaAggregated>(&format!("{sku}|{source}"), window_start);
        envelope.event_id = format!("delta-{}", self.next);
        StockDeltaAggregated {
            envelope,
            sku: sku.into(),
            source_code: source.into(),
            window_start,
            window_end: window_start + 5 * MIN,
            net_delta: Decimal::from(qty),
            absolute_level: None,
            total_delta: Some(Decimal::from(qty)),
            movement_count: 1,
            first_event_at: window_start,
            last_event_at: window_start,
            late_correction: false,
        }
    }

    fn send(&mut self, delta: StockDeltaAggregated) -> Result<Vec<Output>, HandlerError> {
        self.driver.send(delta)
    }

    /// Advances the wall clock by `ms`, punctuating every 200 ms like the runtime does.
    fn run_for(&mut self, from: Millis, ms: Millis) -> Result<Vec<Output>, HandlerError> {
        let mut outputs = Vec::new();
        let mut t = from;
        while t <= from + ms {
            outputs.extend(self.driver.advance_to(t)?);
            t += 200;
        }
        Ok(outputs)
    }

    fn stock(&self, warehouse: &str, item: &str) -> Decimal {
        self.erp
            .shared
            .books()
            .stock
            .get(&(warehouse.to_owned(), item.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    fn adjustments(&self) -> Vec<(String, usize)> {
        self.erp
            .shared
            .books()
            .adjustments
            .values()
            .map(|a| (a.adjustment.external_ref.clone(), a.adjustment.lines.len()))
            .collect()
    }
}

fn posted(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o.event.as_ref() {
            Event::StockAdjustmentPosted(p) => Some(p.window_key.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn one_window_and_warehouse_is_one_adjustment_posted_after_it_was_sealed() -> TestResult {
    let mut s = setup(500, Faults::default())?;
    for (sku, source, qty) in [
        ("RED", "default", -3),
        ("BLUE", "default", 2),
        ("RED", "wh_east", -1),
    ] {
        let delta = s.delta(sku, source, qty, W0);
        assert!(s.send(delta)?.is_empty());
    }
    // Before the batch wait nothing goes out; at it the batch is sealed, and posted at the
    // punctuation after (on committed state).
    assert!(s.run_for(NOW, 4_800)?.is_empty());
    assert!(
        s.driver.advance_to(NOW + 5_000)?.is_empty(),
        "sealed, not yet posted"
    );
    assert!(s.adjustments().is_empty());
    let out = s.run_for(NOW + 5_200, 400)?;
    let mut refs = posted(&out);
    refs.sort();
    assert_eq!(
        refs,
        vec![
            format!("stock:WH-EAST:{W0}:1"),
            format!("stock:WH-MAIN:{W0}:1")
        ]
    );
    assert_eq!(s.adjustments().len(), 2, "one per warehouse");
    assert_eq!(s.stock("WH-MAIN", "RED"), Decimal::from(-3));
    assert_eq!(s.stock("WH-MAIN", "BLUE"), Decimal::from(2));
    assert_eq!(s.stock("WH-EAST", "RED"), Decimal::from(-1));
    Ok(())
}

#[test]
fn a_big_window_is_chunked_to_the_batch_limit_and_late_lines_make_the_next_chunk() -> TestResult {
    let mut s = setup(2, Faults::default())?;
    for n in 0..5 {
        let delta = s.delta(&format!("SKU-{n}"), "default", -1, W0);
        s.send(delta)?;
    }
    let out = s.run_for(NOW, 6_000)?;
    assert_eq!(posted(&out).len(), 3);
    let mut sizes: Vec<usize> = s.adjustments().iter().map(|a| a.1).collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 2, 2]);
    // A line for the same window after the seal: the batch's next chunk number.
    let late = s.delta("SKU-9", "default", 4, W0);
    s.send(late)?;
    let out = s.run_for(NOW + 6_200, 6_000)?;
    assert_eq!(posted(&out), vec![format!("stock:WH-MAIN:{W0}:4")]);
    assert_eq!(s.stock("WH-MAIN", "SKU-9"), Decimal::from(4));
    Ok(())
}

/// The ERP books the adjustment and then times out (as if erp-writer died before
/// recording it): the retry posts the same sealed document, the ERP says it exists, and
/// the stock moved once.
/// A window with a Magento level set in it: the ERP owns levels, so the level is not
/// posted, and every movement of the window is, before the set too (`total_delta`). A
/// delta from a producer before schema v3 has no total: its `net_delta` is posted.
#[test]
fn a_window_with_a_level_set_posts_every_movement_and_not_the_level() -> TestResult {
    let mut s = setup(500, Faults::default())?;
    // Shipped 2, then Magento's level was set to 40, then 1 reserved.
    let mut with_set = s.delta("RED", "default", -1, W0);
    with_set.absolute_level = Some(Decimal::from(40));
    with_set.total_delta = Some(Decimal::from(-3));
    let mut before_v3 = s.delta("BLUE", "default", 4, W0);
    before_v3.absolute_level = Some(Decimal::from(10));
    before_v3.total_delta = None;
    for delta in [with_set, before_v3] {
        assert!(s.send(delta)?.is_empty());
    }
    let out = s.run_for(NOW, 5_600)?;
    assert_eq!(posted(&out), vec![format!("stock:WH-MAIN:{W0}:1")]);
    assert_eq!(s.stock("WH-MAIN", "RED"), Decimal::from(-3));
    assert_eq!(s.stock("WH-MAIN", "BLUE"), Decimal::from(4));
    Ok(())
}

#[test]
fn an_adjustment_the_erp_booked_before_timing_out_is_not_booked_twice() -> TestResult {
    let mut s = setup(
        500,
        Faults {
            timeout_every: 1,
            hang_ms: 2_000,
            ..Faults::default()
        },
    )?;
    let delta = s.delta("RED", "default", -5, W0);
    s.send(delta)?;
    let first = s.run_for(NOW, 5_400)?;
    assert!(posted(&first).is_empty(), "the post timed out");
    assert_eq!(s.adjustments().len(), 1, "but the ERP booked it");
    s.erp.shared.faults().set(Faults::default());
    let out = s.run_for(NOW + 5_600, 10_000)?;
    assert_eq!(posted(&out), vec![format!("stock:WH-MAIN:{W0}:1")]);
    assert_eq!(s.adjustments().len(), 1);
    assert_eq!(s.stock("WH-MAIN", "RED"), Decimal::from(-5));
    Ok(())
}

#[test]
fn a_source_without_a_warehouse_is_parked_naming_it() -> TestResult {
    let mut s = setup(500, Faults::default())?;
    let delta = s.delta("RED", "popup_store", -1, W0);
    s.send(delta)?;
    assert_eq!(s.driver.parked.len(), 1);
    let reason = s.driver.parked[0].1.to_string();
    assert!(reason.contains("popup_store"), "{reason}");
    assert!(s.run_for(NOW, 6_000)?.is_empty());
    Ok(())
}
