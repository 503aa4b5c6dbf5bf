//! erp-writer's handler through the runtime's test driver against a real erp-sim (HTTP,
//! in process) — no broker: crash recovery, stale customers, the circuit breaker.

use std::sync::Arc;
use std::time::Duration;

use bridge_events::Event;
use bridge_events::erp::ErpOutcome;
use bridge_events::order::OrderPlaced;
use bridge_runtime::driver::TestDriver;
use bridge_runtime::guard::{CircuitBreaker, Guard, RateLimiter};
use bridge_runtime::handler::HandlerError;
use erp_sim::{ErpSim, ErpSimConfig};
use erp_writer::connector::ErpConnector;
use erp_writer::connector::erp_sim::ErpSimConnector;
use erp_writer::handler::ErpWriter;
use erp_writer::mapping::Mapping;
use erp_writer::metrics::WriterMetrics;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MAPPING: &str = include_str!("../../../deploy/config/mapping.toml");
const ORDER: &str = include_str!(
    "../../order-ingest/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
);

struct Setup {
    runtime: tokio::runtime::Runtime,
    erp: ErpSim,
    driver: TestDriver<ErpWriter<ErpSimConnector>>,
}

fn setup() -> Result<Setup, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let erp = runtime.block_on(ErpSim::start(ErpSimConfig {
        rules: erp_sim::Rules {
            allow_duplicate_refs: true,
            ..Default::default()
        },
        ..Default::default()
    }))?;
    let connector = Arc::new(ErpSimConnector::new(&erp.url(), Duration::from_secs(2))?);
    let metrics = Arc::new(bridge_runtime::metrics::Metrics::new("erp-writer"));
    let writer = ErpWriter::new(
        connector,
        Arc::new(Mapping::parse(MAPPING)?),
        runtime.handle().clone(),
        Guard::new(
            "the ERP",
            RateLimiter::new(0.0, 1),
            CircuitBreaker::new(3, Duration::from_secs(60)),
        ),
        "results",
        WriterMetrics::register(&metrics),
    );
    Ok(Setup {
        runtime,
        erp,
        driver: TestDriver::new(writer, 0),
    })
}

/// The fixture order as placed, under reference `reference`.
fn placed(reference: &str) -> Result<OrderPlaced, Box<dyn std::error::Error>> {
    let mut value: serde_json::Value = serde_json::from_str(ORDER)?;
    value["increment_id"] = reference.into();
    let mapped = order_ingest::magento::map_order(
        &order_ingest::magento::Obj::root(&value),
        "magento:default",
        0,
    )?;
    mapped
        .orders
        .into_iter()
        .find_map(|e| match e {
            Event::OrderPlaced(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| "no OrderPlaced".into())
}

fn verdict(outputs: &[bridge_runtime::handler::Output]) -> Option<(ErpOutcome, Option<String>)> {
    outputs.iter().find_map(|o| match &o.event {
        Event::ErpOrderResult(r) => Some((r.outcome, r.erp_order_id.clone())),
        _ => None,
    })
}

/// The writer crashed after the ERP booked the order and before the commit: the replayed
/// record finds the order by reference and records it — no second order.
#[test]
fn a_replay_after_a_crash_records_the_order_the_erp_already_has() -> TestResult {
    let mut s = setup()?;
    let order = placed("CRASH-1")?;
    let mapping = Mapping::parse(MAPPING)?;
    let doc = mapping.sales_order(&order)?;
    let connector = ErpSimConnector::new(&s.erp.url(), Duration::from_secs(2))?;
    let booked = s.runtime.block_on(async {
        connector
            .ensure_customers(std::slice::from_ref(&doc.customer))
            .await?;
        connector.create_order(&doc).await
    })?;
    let outputs = s.driver.send(order)?;
    assert_eq!(
        verdict(&outputs),
        Some((ErpOutcome::Accepted, Some(booked.doc.id.clone())))
    );
    assert_eq!(s.erp.shared.books().orders.len(), 1);
    assert_eq!(s.erp.shared.books().duplicate_creates, 0);
    Ok(())
}

/// A customer the ERP no longer knows (merged, deleted, a restored ERP) is found or
/// created again instead of rejecting the order.
#[test]
fn a_customer_the_erp_forgot_is_created_again() -> TestResult {
    let mut s = setup()?;
    let first = s.driver.send(placed("CUST-1")?)?;
    assert!(matches!(verdict(&first), Some((ErpOutcome::Accepted, _))));
    s.erp.shared.books().customers.clear();
    let second = s.driver.send(placed("CUST-2")?)?;
    assert!(
        matches!(verdict(&second), Some((ErpOutcome::Accepted, _))),
        "{second:?}"
    );
    assert!(s.driver.parked.is_empty());
    Ok(())
}

/// While the ERP is down the breaker opens after three failures; from then on the handler
/// answers "retry later" without calling the ERP, until its time is up.
#[test]
fn the_circuit_opens_and_spares_a_down_erp() -> TestResult {
    let mut s = setup()?;
    s.erp.shared.faults().set(erp_sim::Faults {
        maintenance: true,
        ..Default::default()
    });
    let order = placed("DOWN-1")?;
    for _ in 0..3 {
        let e = s.driver.send(order.clone());
        assert!(matches!(e, Err(HandlerError::Retryable { .. })), "{e:?}");
    }
    let calls = s.erp.shared.faults().fired.get("maintenance").copied();
    let e = s.driver.send(order);
    match e {
        Err(HandlerError::Retryable {
            reason,
            retry_after,
        }) => {
            assert!(reason.contains("circuit open"), "{reason}");
            assert!(retry_after.is_some());
        }
        other => return Err(format!("expected retry later, got {other:?}").into()),
    }
    assert_eq!(
        s.erp.shared.faults().fired.get("maintenance").copied(),
        calls
    );
    assert!(s.erp.shared.books().orders.is_empty());
    Ok(())
}
