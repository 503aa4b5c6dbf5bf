//! The order flow end to end on the real broker: Magento orders (every fixture shape and
//! generated ones, with cancellations and refunds) → order-ingest → erp-writer → erp-sim.
//! erp-sim books a second order under a known reference here, so a double create shows.

mod harness;

use std::time::Duration;

use bridge_events::Event;
use bridge_events::erp::ErpOutcome;
use bridge_testkit::{stack, wait_until};
use harness::{Flow, MAPPING, TestResult, differences, expected};
use magento_sim::Action;

fn orders_wanted() -> usize {
    std::env::var("ERP_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// Generates `count` orders and walks some through their lives: every fifth is cancelled,
/// every fifth invoiced and shipped, every fifth invoiced and refunded.
fn generate_with_lifecycles(flow: &Flow, count: usize) {
    let ids: Vec<u64> = flow
        .sim
        .shared
        .generate(count)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut store = flow.sim.shared.store();
    for (n, id) in ids.iter().enumerate() {
        let steps: &[Action] = match n % 5 {
            0 => &[Action::Cancel],
            1 => &[Action::Invoice, Action::Ship],
            2 => &[Action::Invoice, Action::Refund],
            _ => &[],
        };
        for step in steps {
            // Some templates are past these steps already; the sim refuses those.
            let _ = store.act(*id, *step);
        }
    }
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
    let flow = Flow::start(&stack.bootstrap, &stack.registry_url).await?;
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
    writer.stop()?;
    flow.stop().await
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

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
        match kill {
            1 => flow.faults(erp_sim::Faults {
                maintenance: true,
                maintenance_until_ms: now_ms() + 3_000,
                ..base.clone()
            }),
            3 => flow.faults(erp_sim::Faults {
                error_burst: 25,
                ..base.clone()
            }),
            _ => {}
        }
        writer.kill()?;
        writer = flow.start_writer(&mapping).await?;
    }
    // Faults go on until half the orders are in; then the ERP recovers.
    let half = expected(&flow.sim).len() / 2;
    wait_until(
        "half the orders in the ERP",
        Duration::from_secs(300),
        || {
            let booked = flow.erp.shared.books().orders.len();
            async move { booked >= half }
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
    for fault in [
        "rate_limit",
        "error_every",
        "timeout",
        "maintenance",
        "error_burst",
    ] {
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
    writer.stop()?;
    flow.stop().await
}
