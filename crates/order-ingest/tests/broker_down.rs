//! Kafka down for 30 s while webhooks arrive: the webhooks are answered 503 (so Magento /
//! Adobe retry), and once the broker is back every delivery is published exactly once —
//! nothing acknowledged is lost. Runs on a broker of its own, which it stops.

mod harness;

use std::time::{Duration, Instant};

use bridge_events::Event;
use bridge_testkit::{KafkaBroker, stack, wait_until};
use harness::{Harness, Paths, TestResult};
use magento_sim::SimConfig;

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_for_30_s_webhooks_get_503_and_nothing_acknowledged_is_lost() -> TestResult {
    let stack = stack()?;
    let broker = tokio::task::spawn_blocking(KafkaBroker::start).await??;
    let h = Harness::new(
        &broker.bootstrap(),
        &stack.registry_url,
        SimConfig::default(),
    )
    .await?;
    let state = tempfile::tempdir()?;
    let ingest = h.ingest(state.path(), Paths::WEBHOOK).await?;

    let mut placed: Vec<String> = h
        .sim
        .shared
        .generate(5)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    // (Refunded orders are announced twice: the order and its credit memo.)
    let all_taken = || async {
        h.deliveries()
            .await
            .is_ok_and(|d| d["pending"] == 0 && d["delivered"].as_u64() >= Some(5))
    };
    wait_until(
        "the first deliveries taken",
        Duration::from_secs(60),
        all_taken,
    )
    .await?;
    let before = h.deliveries().await?["delivered"].clone();

    let broker = tokio::task::spawn_blocking(move || broker.stop().map(|()| broker)).await??;
    let down_at = Instant::now();
    placed.extend(h.sim.shared.generate(10).into_iter().map(|(_, r)| r));
    wait_until("deliveries refused with 503", Duration::from_secs(60), || async {
        h.metric("bridge_ingest_webhooks_rejected_total{bridge_service=\"order-ingest\",reason=\"unavailable\"}")
            .await
            >= 10.0
    })
    .await?;
    let stats = h.deliveries().await?;
    assert_eq!(
        stats["delivered"], before,
        "nothing acknowledged while kafka is down: {stats}"
    );
    // The scenario is an outage of 30 s, not a race to wait out.
    tokio::time::sleep_until((down_at + Duration::from_secs(30)).into()).await;
    let _broker = tokio::task::spawn_blocking(move || broker.restart().map(|()| broker)).await??;

    wait_until(
        "every delivery taken after the outage",
        Duration::from_secs(180),
        all_taken,
    )
    .await?;
    assert_eq!(h.deliveries().await?["given_up"], 0);
    // Each id once (published_once fails otherwise), and every order placed.
    let published = h.published_once().await?;
    for order_ref in &placed {
        assert!(
            published
                .values()
                .any(|e| matches!(e, Event::OrderPlaced(p) if &p.order_ref == order_ref)),
            "order {order_ref} is missing"
        );
    }
    ingest.stop().await?;
    Ok(())
}
