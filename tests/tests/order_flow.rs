//! The order flow end to end on the real broker: Magento orders (every fixture shape and
//! generated ones, with cancellations and refunds) → order-ingest → erp-writer → erp-sim.
//! erp-sim books a second order under a known reference here, so a double create shows.

mod flow;

use std::collections::BTreeMap;
use std::time::Duration;

use bridge_events::Event;
use bridge_events::erp::ErpOutcome;
use bridge_testkit::{stack, wait_until};
use flow::{Flow, MAPPING, TestResult, differences, expected, generate_with_lifecycles};

fn orders_wanted() -> usize {
    std::env::var("ERP_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// Waits until the ERP's books agree with Magento's final state.
async fn settle(flow: &Flow, timeout: Duration) -> TestResult {
    let mut last = Vec::new();
    let outcome = wait_until("the ERP to agree with Magento", timeout, || {
        let diff = differences(&flow.erp, &expected(&flow.sim));
        let done = diff.is_empty();
        last = diff;
        async move { done }
    })
    .await;
    if let Err(e) = outcome {
        let sample: Vec<&String> = last.iter().take(8).collect();
        let log = flow.writer_log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        return Err(format!(
            "{e}: {} differences, e.g. {sample:#?}\nwriter log (last lines, newest first): {tail:#?}",
            last.len()
        )
        .into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_order_reaches_the_erp_once_with_its_totals_cancellations_and_credits() -> TestResult
{
    let stack = stack()?;
    let mut flow = Flow::start(&stack.bootstrap, &stack.registry_url).await?;
    // Four orders in the works at once on three partitions: one worker stays idle. Each
    // ERP call takes 20 ms, so the backlog outlasts the workers' joining the group: a worker
    // that is assigned first cannot drain every partition before the others start.
    flow.order_workers = 4;
    flow.faults(erp_sim::Faults {
        latency_ms: 20,
        ..Default::default()
    });
    generate_with_lifecycles(&flow, orders_wanted());
    let mapping = flow.mapping_file("mapping.toml", MAPPING)?;
    let mut writer = flow.start_writer(&mapping).await?;
    settle(&flow, Duration::from_secs(240)).await?;

    // The writer has committed everything it read, with its verdicts.
    wait_until("lag back to zero", Duration::from_secs(30), || {
        let lag = flow.lag().ok();
        async move { lag == Some(0) }
    })
    .await?;
    // Every order in the ERP has one ACCEPTED verdict on the results topic, once.
    let in_erp = flow.erp.shared.books().orders.len();
    let results = flow.events(&flow.results).await?;
    let mut accepted = std::collections::BTreeSet::new();
    for event in &results {
        let Event::ErpOrderResult(result) = event else {
            return Err(format!("unexpected {} on the results topic", event.record_name()).into());
        };
        assert_eq!(result.outcome, ErpOutcome::Accepted, "{result:?}");
        assert!(result.erp_totals.is_some() && result.erp_order_id.is_some());
        assert!(
            accepted.insert(result.order_ref.clone()),
            "two verdicts for {}",
            result.order_ref
        );
    }
    assert_eq!(accepted.len(), in_erp);
    assert!(
        in_erp >= orders_wanted() / 2,
        "only {in_erp} orders in the ERP"
    );
    assert!(flow.parked()?.is_empty(), "parked: {:?}", flow.parked()?);
    assert_eq!(flow.erp.shared.books().duplicate_creates, 0);
    // `[writer] order_workers = 4` (the topic has 3 partitions): orders are in the works
    // at once, each worker with its own call in flight — one loop would make its calls
    // one after the other.
    let at_once = flow.erp.shared.in_flight.most();
    assert!(
        at_once >= 2,
        "the ERP never served two sales-order calls at once ({at_once})"
    );
    written_back_once(&flow).await?;
    shipments_come_back_once(&flow).await?;
    writer.stop()?;
    flow.stop().await
}

/// The ERP ships some orders: each comes back once as `OrderShipped` and is shipped once in
/// Magento with its tracking number — or, if Magento shipped it already, commented once.
async fn shipments_come_back_once(flow: &Flow) -> TestResult {
    let to_ship: Vec<String> = {
        let books = flow.erp.shared.books();
        books
            .orders
            .values()
            .filter(|o| o.status != "cancelled")
            .map(|o| o.external_ref.clone())
            .take(40)
            .collect()
    };
    for reference in &to_ship {
        let new = erp_sim::model::NewShipment {
            carrier: Some("ups".into()),
            tracking_number: Some(format!("1Z{reference}")),
        };
        flow.erp
            .shared
            .books()
            .ship(reference, new, bridge_events::now_millis())?;
    }
    // Shipping comments per order, from one read of the write-backs.
    let shipping_comments = || -> BTreeMap<String, usize> {
        flow.comments()
            .into_iter()
            .map(|(reference, texts)| {
                let shipped = texts
                    .iter()
                    .filter(|t| t.starts_with("Shipped by erp-sim (SH-"))
                    .count();
                (reference, shipped)
            })
            .collect()
    };
    wait_until(
        "every shipment written back to Magento",
        Duration::from_secs(60),
        || {
            let written = shipping_comments();
            let done = to_ship
                .iter()
                .all(|r| written.get(r).is_some_and(|n| *n > 0));
            async move { done }
        },
    )
    .await?;
    let events: Vec<String> = flow
        .events(&flow.results)
        .await?
        .into_iter()
        .filter_map(|e| match e {
            Event::OrderShipped(s) => Some(s.order_ref),
            _ => None,
        })
        .collect();
    let mut sorted = events.clone();
    sorted.sort();
    let mut wanted = to_ship.clone();
    wanted.sort();
    assert_eq!(sorted, wanted, "one OrderShipped per shipped order");

    let writebacks = flow.sim.shared.store().writebacks().to_vec();
    let written = shipping_comments();
    let mut shipped_in_magento = 0;
    for reference in &to_ship {
        assert_eq!(written.get(reference), Some(&1), "{reference}");
        let ships: Vec<_> = writebacks
            .iter()
            .filter(|w| w.kind == "order_ship" && &w.target == reference)
            .collect();
        assert!(ships.len() <= 1, "{reference} shipped twice in Magento");
        if let Some(ship) = ships.first() {
            shipped_in_magento += 1;
            assert_eq!(
                ship.body["tracks"][0]["track_number"],
                format!("1Z{reference}"),
                "{ship:?}"
            );
        }
    }
    // The generator ships some orders in Magento itself; the others the ERP's shipment did.
    assert!(
        shipped_in_magento > 0,
        "no order shipped through Magento's API"
    );
    Ok(())
}

/// Every order in the ERP has its verdict written back to Magento, once, naming the ERP
/// document.
async fn written_back_once(flow: &Flow) -> TestResult {
    let booked: Vec<(String, String)> = flow
        .erp
        .shared
        .books()
        .orders
        .values()
        .map(|o| (o.external_ref.clone(), o.id.clone()))
        .collect();
    wait_until(
        "every verdict written back",
        Duration::from_secs(120),
        || {
            let comments = flow.comments();
            let done = booked.iter().all(|(r, _)| comments.contains_key(r));
            async move { done }
        },
    )
    .await?;
    let comments = flow.comments();
    for (reference, erp_id) in &booked {
        let written = &comments[reference];
        assert_eq!(written.len(), 1, "{reference}: {written:?}");
        assert!(
            written[0].contains(&format!("Booked in erp-sim as {erp_id}")),
            "{written:?}"
        );
    }
    Ok(())
}

/// The faults the ERP injects in the faults test, by the name erp-sim counts them under.
const FAULTS: [&str; 5] = [
    "rate_limit",
    "error_every",
    "timeout",
    "maintenance",
    "error_burst",
];

/// The ERP answers 429s, 500s, a burst of 503s, a maintenance window and timeouts after
/// doing the work, while erp-writer is SIGKILLed five times: every order is still booked
/// exactly once (erp-sim books duplicates here, so none may be attempted), nothing is
/// parked, and the lag goes back to zero once the ERP recovers.
#[tokio::test(flavor = "multi_thread")]
async fn under_erp_faults_and_five_sigkills_every_order_is_still_booked_once() -> TestResult {
    let stack = stack()?;
    let flow = Flow::start(&stack.bootstrap, &stack.registry_url).await?;
    generate_with_lifecycles(&flow, orders_wanted());
    flow.faults(erp_sim::Faults {
        rate_limit_per_second: 30.0,
        retry_after_seconds: 1,
        error_every: 17,
        timeout_every: 61,
        hang_ms: 2_500,
        ..Default::default()
    });
    let mapping = flow.mapping_file("mapping.toml", MAPPING)?;
    let mut writer = flow.start_writer(&mapping).await?;
    let base = flow.erp.shared.faults().faults.clone();
    for kill in 0..5u64 {
        // Pacing the chaos, not waiting for a result: each kill lands mid-run.
        tokio::time::sleep(Duration::from_millis(2_000 + 500 * kill)).await;
        writer.kill()?;
        writer = flow.start_writer(&mapping).await?;
        // Windows of trouble open once the new writer is up, so it meets them.
        match kill {
            1 => flow.faults(erp_sim::Faults {
                maintenance: true,
                maintenance_until_ms: bridge_events::now_millis() + 3_000,
                ..base.clone()
            }),
            3 => flow.faults(erp_sim::Faults {
                error_burst: 25,
                ..base.clone()
            }),
            _ => {}
        }
    }
    // Faults go on until half the orders are in and each kind has fired; then the ERP
    // recovers.
    let half = expected(&flow.sim).len() / 2;
    wait_until(
        "half the orders in the ERP and every fault fired",
        Duration::from_secs(300),
        || {
            let booked = flow.erp.shared.books().orders.len();
            let fired = flow.erp.shared.faults().fired.clone();
            let all = FAULTS
                .iter()
                .all(|f| fired.get(*f).copied().unwrap_or(0) > 0);
            async move { booked >= half && all }
        },
    )
    .await?;
    let fired = flow.erp.shared.faults().fired.clone();
    flow.faults(erp_sim::Faults::default());
    settle(&flow, Duration::from_secs(300)).await?;
    wait_until("lag back to zero", Duration::from_secs(60), || {
        let lag = flow.lag().ok();
        async move { lag == Some(0) }
    })
    .await?;
    for fault in FAULTS {
        assert!(
            fired.get(fault).copied().unwrap_or(0) > 0,
            "{fault} never fired: {fired:?}"
        );
    }
    assert_eq!(flow.erp.shared.books().duplicate_creates, 0);
    let mut ids = std::collections::BTreeSet::new();
    let mut refs = std::collections::BTreeSet::new();
    for event in flow.events(&flow.results).await? {
        let Event::ErpOrderResult(result) = event else {
            continue;
        };
        assert_eq!(result.outcome, ErpOutcome::Accepted, "{result:?}");
        assert!(
            ids.insert(result.envelope.event_id.clone()),
            "{result:?} twice"
        );
        refs.insert(result.order_ref);
    }
    assert_eq!(refs.len(), flow.erp.shared.books().orders.len());
    assert!(flow.parked()?.is_empty(), "parked: {:?}", flow.parked()?);
    written_back_once(&flow).await?;
    writer.stop()?;
    flow.stop().await
}

/// An order with a SKU the mapping does not know is rejected (an `ErpOrderResult` naming
/// the SKU) and parked; once the mapping knows it and erp-writer restarts, `bridgectl
/// parked replay` puts the order into the ERP.
#[tokio::test(flavor = "multi_thread")]
async fn an_unmappable_sku_is_rejected_and_parked_by_name_and_replays_after_the_fix() -> TestResult
{
    let stack = stack()?;
    let flow = Flow::start(&stack.bootstrap, &stack.registry_url).await?;
    let mut order: serde_json::Value = serde_json::from_str(include_str!(
        "../../crates/magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
    ))?;
    order["entity_id"] = 777_001.into();
    order["increment_id"] = "WEB-777".into();
    order["updated_at"] = magento_sim::store::magento_now().into();
    order["items"][1]["sku"] = "GIFT CARD 50".into();
    let answer = reqwest::Client::new()
        .post(format!("{}/sim/import/orders", flow.sim.url()))
        .json(&serde_json::json!([order]))
        .send()
        .await?;
    assert!(answer.status().is_success());
    let mapping = flow.mapping_file("mapping.toml", MAPPING)?;
    let mut writer = flow.start_writer(&mapping).await?;

    wait_until(
        "the rejection and its parking",
        Duration::from_secs(60),
        || async { flow.parked().is_ok_and(|p| !p.is_empty()) },
    )
    .await?;
    let parked = flow.parked()?;
    assert!(
        parked.iter().all(|p| p.error_class == "unmappable"),
        "{parked:?}"
    );
    assert!(
        parked[0].message.contains("`GIFT CARD 50`"),
        "{}",
        parked[0].message
    );
    assert!(
        parked[0].message.contains("[items]"),
        "{}",
        parked[0].message
    );
    let rejected: Vec<_> = flow
        .events(&flow.results)
        .await?
        .into_iter()
        .filter_map(|e| match e {
            Event::ErpOrderResult(r) if r.order_ref == "WEB-777" => Some(r),
            _ => None,
        })
        .collect();
    assert!(!rejected.is_empty());
    for r in &rejected {
        assert_eq!(r.outcome, ErpOutcome::Rejected);
        assert_eq!(r.reason_code.as_deref(), Some("unmappable"));
        assert!(
            r.reason
                .as_deref()
                .unwrap_or_default()
                .contains("GIFT CARD 50")
        );
    }
    assert!(flow.erp.shared.books().order_by_ref("WEB-777").is_none());

    // The fix: the mapping learns the SKU; erp-writer restarts with it; the parked records
    // are replayed.
    writer.stop()?;
    let fixed = MAPPING.replace(
        r#"table = { "YOGA-KIT-24-YB01-24-ST08" = "KIT-YOGA-24" }"#,
        r#"table = { "YOGA-KIT-24-YB01-24-ST08" = "KIT-YOGA-24", "GIFT CARD 50" = "GIFT-50" }"#,
    );
    assert_ne!(fixed, MAPPING);
    let fixed = flow.mapping_file("fixed.toml", &fixed)?;
    let mut writer = flow.start_writer(&fixed).await?;
    let parked_topic = format!("{}-parked", flow.group);
    operator_sees_and_selects_the_parked_record(&flow, &parked_topic).await?;
    let status = std::process::Command::new(bridge_e2e::binary("bridgectl")?)
        .args(["--bootstrap-servers", &flow.bootstrap, "parked", "replay"])
        .arg(&parked_topic)
        .status()?;
    assert!(status.success());
    wait_until(
        "the replayed order in the ERP",
        Duration::from_secs(60),
        || {
            let booked = flow.erp.shared.books().order_by_ref("WEB-777").cloned();
            async move { booked.is_some() }
        },
    )
    .await?;
    let booked = flow
        .erp
        .shared
        .books()
        .order_by_ref("WEB-777")
        .cloned()
        .ok_or("not booked")?;
    assert!(booked.lines.iter().any(|l| l.item_code == "GIFT-50"));
    assert_eq!(
        booked.totals.grand_total,
        flow::money(&order["grand_total"])
    );
    wait_until("its ACCEPTED verdict", Duration::from_secs(60), || async {
        flow.events(&flow.results).await.is_ok_and(|events| {
            events.iter().any(|e| {
                matches!(e, Event::ErpOrderResult(r)
                    if r.order_ref == "WEB-777" && r.outcome == ErpOutcome::Accepted)
            })
        })
    })
    .await?;
    writer.stop()?;
    flow.stop().await
}

/// What an operator scripts before a replay: `status` exits 3 naming the parked topic;
/// `parked list` and `show` in JSON name the record without its payload; a dry run and a
/// selection that matches nothing produce nothing.
async fn operator_sees_and_selects_the_parked_record(flow: &Flow, parked: &str) -> TestResult {
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(bridge_e2e::binary("bridgectl")?)
            .args(["--bootstrap-servers", &flow.bootstrap, "--output", "json"])
            .args(args)
            .output()?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(out)
    };
    let json =
        |out: &std::process::Output| serde_json::from_slice::<serde_json::Value>(&out.stdout);
    let group = format!("--group={}={}", flow.group, flow.orders);
    let status = ctl(&["status", "--no-services", &group])?;
    assert_eq!(
        status.status.code(),
        Some(3),
        "parked records need attention"
    );
    let status = json(&status)?;
    assert!(status["attention"].to_string().contains(parked), "{status}");
    assert!(
        status["groups"][0]["partitions"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );

    let listed = json(&ctl(&["parked", "list", parked])?)?;
    let count = listed["count"].as_u64().ok_or("no count")?;
    assert!(count >= 1, "{listed}");
    let first = &listed["records"][0];
    assert_eq!(first["error_class"], "unmappable");
    assert!(
        first.get("payload").is_none(),
        "a listing carries no payload"
    );
    let (partition, offset) = (first["partition"].to_string(), first["offset"].to_string());
    let shown = json(&ctl(&["parked", "show", parked, &partition, &offset])?)?;
    assert_eq!(shown["origin"]["topic"], flow.orders.as_str());
    assert!(
        shown["payload_bytes"].as_u64().is_some_and(|n| n > 0),
        "{shown}"
    );

    let before = flow.events(&flow.orders).await?.len();
    let dry = ctl(&["parked", "replay", parked, "--dry-run"])?;
    assert!(dry.status.success());
    assert_eq!(json(&dry)?["count"].as_u64(), Some(count));
    let none = ctl(&["parked", "replay", parked, "--class", "no-such-class"])?;
    assert_eq!(json(&none)?["replayed"].as_u64(), Some(0));
    let beyond = ctl(&["parked", "replay", parked, "--from-offset", "1000000"])?;
    assert_eq!(json(&beyond)?["replayed"].as_u64(), Some(0));
    assert_eq!(
        flow.events(&flow.orders).await?.len(),
        before,
        "a dry run produced records"
    );
    let missing = ctl(&["parked", "show", parked, "0", "1000000"])?;
    assert_eq!(missing.status.code(), Some(1));
    Ok(())
}
