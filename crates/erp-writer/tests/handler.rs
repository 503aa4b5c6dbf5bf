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
use erp::connector::erp_sim::ErpSimConnector;
use erp::connector::{ErpConnector, ErpError, ErpOrder, Posted, SalesOrderDoc};
use erp::mapping::Mapping;
use erp_sim::{ErpSim, ErpSimConfig};
use erp_writer::config::ShipmentSettings;
use erp_writer::customers::Ensured;
use erp_writer::handler::ErpWriter;
use erp_writer::metrics::WriterMetrics;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MAPPING: &str = include_str!("../../../deploy/config/mapping.toml");
const ORDER: &str = include_str!(
    "../../magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
);

struct Setup {
    runtime: tokio::runtime::Runtime,
    erp: ErpSim,
    driver: TestDriver<ErpWriter<ErpSimConnector>>,
}

fn setup() -> Result<Setup, Box<dyn std::error::Error>> {
    setup_with(ShipmentSettings {
        enabled: false,
        ..ShipmentSettings::default()
    })
}

fn setup_with(shipments: ShipmentSettings) -> Result<Setup, Box<dyn std::error::Error>> {
    setup_sharing(shipments, Ensured::default())
}

/// The writer skips the customers in `ensured` (the batch loop's).
fn setup_sharing(
    shipments: ShipmentSettings,
    ensured: Ensured,
) -> Result<Setup, Box<dyn std::error::Error>> {
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
    )
    .with_shipments(shipments)
    .with_ensured(ensured);
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
    let mapped = magento::map_order(&magento::Obj::root(&value), "magento:default", 0)?;
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
    outputs.iter().find_map(|o| match o.event.as_ref() {
        Event::ErpOrderResult(r) => Some((r.outcome, r.erp_order_id.clone())),
        _ => None,
    })
}

/// Books `doc` in erp-sim as the writer would (its customer first), outside the writer.
fn book(
    s: &Setup,
    connector: &ErpSimConnector,
    doc: &SalesOrderDoc,
) -> Result<Posted<ErpOrder>, ErpError> {
    s.runtime.block_on(async {
        connector
            .ensure_customers(std::slice::from_ref(&doc.customer))
            .await?;
        connector.create_order(doc).await
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
    let booked = book(&s, &connector, &doc)?;
    let outputs = s.driver.send(order)?;
    assert_eq!(
        verdict(&outputs),
        Some((ErpOutcome::Accepted, Some(booked.doc.id.clone())))
    );
    assert_eq!(s.erp.shared.books().orders.len(), 1);
    assert_eq!(s.erp.shared.books().duplicate_creates, 0);
    Ok(())
}

/// The reconciler's page of orders is one search: the booked ones by reference, the
/// unknown ones left out, across erp-sim's limit of 1,000 references per request.
#[test]
fn orders_are_found_by_reference_a_page_at_a_time() -> TestResult {
    let s = setup()?;
    let mapping = Mapping::parse(MAPPING)?;
    let connector = ErpSimConnector::new(&s.erp.url(), Duration::from_secs(2))?;
    let mut booked = Vec::new();
    for reference in ["FIND-1", "FIND-2"] {
        let doc = mapping.sales_order(&placed(reference)?)?;
        booked.push(book(&s, &connector, &doc)?.doc);
    }
    let mut asked: Vec<String> = (0..1500).map(|n| format!("NOT-BOOKED-{n}")).collect();
    asked.insert(3, "FIND-1".into());
    asked.push("FIND-2".into());
    let found = s.runtime.block_on(connector.find_orders(&asked))?;
    assert_eq!(found.len(), 2, "{:?}", found.keys().collect::<Vec<_>>());
    for order in &booked {
        assert_eq!(found.get(&order.external_ref), Some(order));
    }
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

/// The ERP's shipments come back as `OrderShipped` events, each once: the journal position
/// is kept in state; a full page is followed by the next at once, else the interval waits.
#[test]
fn the_erps_shipments_come_back_once_each_as_order_shipped() -> TestResult {
    let mut s = setup_with(ShipmentSettings {
        enabled: true,
        poll_interval_ms: 10_000,
        page_size: 2,
    })?;
    for reference in ["SHIP-1", "SHIP-2", "SHIP-3", "SHIP-4"] {
        let outputs = s.driver.send(placed(reference)?)?;
        assert!(matches!(verdict(&outputs), Some((ErpOutcome::Accepted, _))));
    }
    let shipped = |outputs: &[bridge_runtime::handler::Output]| -> Vec<(String, Option<String>)> {
        outputs
            .iter()
            .filter_map(|o| match o.event.as_ref() {
                Event::OrderShipped(e) => Some((e.order_ref.clone(), e.tracking_number.clone())),
                _ => None,
            })
            .collect()
    };
    assert!(shipped(&s.driver.advance_to(1_000)?).is_empty());

    let ship = |s: &Setup, reference: &str| {
        let new = erp_sim::model::NewShipment {
            carrier: Some("ups".into()),
            tracking_number: Some(format!("1Z-{reference}")),
        };
        s.erp.shared.books().ship(reference, new, 5_000).map(|_| ())
    };
    ship(&s, "SHIP-2")?;
    assert!(
        shipped(&s.driver.advance_to(5_000)?).is_empty(),
        "not before the poll interval"
    );
    assert_eq!(
        shipped(&s.driver.advance_to(11_000)?),
        [("SHIP-2".to_owned(), Some("1Z-SHIP-2".to_owned()))]
    );
    assert!(shipped(&s.driver.advance_to(21_000)?).is_empty(), "once");

    for reference in ["SHIP-1", "SHIP-3", "SHIP-4"] {
        ship(&s, reference)?;
    }
    let first = shipped(&s.driver.advance_to(31_000)?);
    let second = shipped(&s.driver.advance_to(31_001)?);
    assert_eq!(
        (first.len(), second.len()),
        (2, 1),
        "a full page reads on at once"
    );
    let mut all: Vec<String> = first.into_iter().chain(second).map(|(r, _)| r).collect();
    all.sort();
    assert_eq!(all, ["SHIP-1", "SHIP-3", "SHIP-4"]);
    assert!(shipped(&s.driver.advance_to(61_000)?).is_empty());
    Ok(())
}

/// New customers are found or created in batches ahead of their orders (chunks of the
/// limit, one request each); customers already ensured are not sent again; the orders of
/// ensured customers are booked without any customer call of their own.
#[test]
fn customers_are_ensured_in_batches_ahead_of_their_orders() -> TestResult {
    use erp_writer::calls::ErpCaller;
    use erp_writer::customers::{CustomerBatching, CustomerSync};

    let ensured = Ensured::default();
    let mut s = setup_sharing(
        ShipmentSettings {
            enabled: false,
            ..ShipmentSettings::default()
        },
        ensured.clone(),
    )?;
    let metrics = Arc::new(bridge_runtime::metrics::Metrics::new("erp-writer"));
    let writer_metrics = WriterMetrics::register(&metrics);
    let guard = Guard::new(
        "the ERP",
        RateLimiter::new(0.0, 1),
        CircuitBreaker::new(3, Duration::from_secs(60)),
    );
    let sync = CustomerSync::new(
        Arc::new(ErpSimConnector::new(&s.erp.url(), Duration::from_secs(2))?),
        Arc::new(Mapping::parse(MAPPING)?),
        ErpCaller::new(s.runtime.handle().clone(), guard, writer_metrics.clone()),
        CustomerBatching {
            wait: Duration::from_millis(500),
            limit: 200,
            remember: Duration::from_secs(3600),
        },
        writer_metrics.clone(),
        ensured,
    );
    let mut customers = TestDriver::new(sync, 0);
    let order_of = |n: usize| -> Result<OrderPlaced, Box<dyn std::error::Error>> {
        let mut order = placed(&format!("BATCH-{n}"))?;
        order.customer_ref = format!("customer:batch-{}", n % 450);
        order.customer_is_guest = false;
        Ok(order)
    };
    // 900 orders of 450 customers, each customer twice.
    for n in 0..900 {
        customers.send(order_of(n)?)?;
    }
    assert_eq!(s.erp.shared.books().customer_batches, 0, "collecting");
    customers.advance_to(500)?;
    {
        let books = s.erp.shared.books();
        assert_eq!(books.customer_batches, 3, "200 + 200 + 50");
        assert_eq!(books.largest_customer_batch, 200);
        assert_eq!(
            books
                .customers
                .keys()
                .filter(|r| r.starts_with("customer:batch-"))
                .count(),
            450
        );
    }
    assert_eq!(writer_metrics.customers_ensured.get(), 450);
    // Known customers are not sent again.
    for n in 0..450 {
        customers.send(order_of(n)?)?;
    }
    customers.advance_to(2_000)?;
    assert_eq!(s.erp.shared.books().customer_batches, 3);
    // Their orders are booked with no customer call.
    for n in 0..5 {
        let outputs = s.driver.send(order_of(n)?)?;
        assert!(matches!(verdict(&outputs), Some((ErpOutcome::Accepted, _))));
    }
    assert_eq!(s.erp.shared.books().customer_batches, 3);
    Ok(())
}

/// An order that arrives before its customer's batch is sent (a store at a trickle)
/// ensures that customer alone, first — no refused create on the way.
#[test]
fn an_order_ahead_of_its_customer_batch_ensures_the_customer_itself() -> TestResult {
    let mut s = setup()?;
    let mut order = placed("AHEAD-1")?;
    order.customer_ref = "customer:new-one".into();
    order.customer_is_guest = false;
    let outputs = s.driver.send(order)?;
    assert!(matches!(verdict(&outputs), Some((ErpOutcome::Accepted, _))));
    let books = s.erp.shared.books();
    assert_eq!(books.customer_batches, 1);
    assert_eq!(books.largest_customer_batch, 1);
    assert!(books.customers.contains_key("customer:new-one"));
    assert_eq!(books.rejected.get("unknown_customer"), None);
    Ok(())
}
