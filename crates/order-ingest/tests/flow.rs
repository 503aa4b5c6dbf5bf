//! order-ingest end to end on the real broker and registry, fed by magento-sim: both
//! paths give the same events, exactly once; the poller misses nothing while orders change
//! under it; bad deliveries are refused or parked and ingest keeps going.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bridge_events::Event;
use bridge_testkit::{stack, wait_until};
use harness::{AnyError, Harness, Paths, TestResult, without_produced_at};
use magento_sim::SimConfig;
use order_ingest::magento::{Obj, map_creditmemo, map_order};
use serde_json::{Value, json};

const FIXTURE_ORDERS: [u64; 3] = [5, 8, 17];
const FIXTURE_CREDITMEMO: u64 = 9;

async fn post(url: String) -> Result<(), AnyError> {
    let answer = reqwest::Client::new().post(url).send().await?;
    if !answer.status().is_success() {
        return Err(format!("{} answered {}", answer.url(), answer.status()).into());
    }
    Ok(())
}

/// What the fixtures must become: the mapping of the REST shapes the sim serves.
fn expected_fixture_events(h: &Harness) -> Result<BTreeMap<String, Event>, AnyError> {
    let store = h.sim.shared.store();
    let mut expected = BTreeMap::new();
    let mut add = |mapped: order_ingest::magento::Mapped| {
        for event in mapped
            .orders
            .into_iter()
            .chain(mapped.movements.into_iter().map(Event::InventoryMovement))
        {
            expected.insert(
                event.envelope().event_id.clone(),
                without_produced_at(event),
            );
        }
    };
    for id in FIXTURE_ORDERS {
        let order = store.order(id).ok_or("fixture order missing in the sim")?;
        add(map_order(&Obj::root(order), "magento:default", 0)?);
    }
    let memo = store
        .creditmemo(FIXTURE_CREDITMEMO)
        .ok_or("fixture credit memo missing")?;
    let order = store.order(17).ok_or("order 17 missing")?;
    add(map_creditmemo(
        &Obj::root(memo),
        &Obj::root(order),
        "magento:default",
        0,
    )?);
    Ok(expected)
}

fn blank(events: BTreeMap<String, Event>) -> BTreeMap<String, Event> {
    events
        .into_iter()
        .map(|(id, e)| (id, without_produced_at(e)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_through_both_paths_is_the_same_events_exactly_once() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let expected = expected_fixture_events(&h)?;
    assert!(expected.len() >= 12, "{} expected events", expected.len());

    // 1. Webhooks only: the sim announces each fixture order and the credit memo.
    let state = tempfile::tempdir()?;
    let ingest = h.ingest(state.path(), Paths::WEBHOOK).await?;
    for id in FIXTURE_ORDERS {
        post(format!("{}/sim/orders/{id}/announce", h.sim.url())).await?;
    }
    post(format!(
        "{}/sim/creditmemos/{FIXTURE_CREDITMEMO}/announce",
        h.sim.url()
    ))
    .await?;
    wait_until(
        "4 deliveries answered 200",
        Duration::from_secs(60),
        || async { h.deliveries().await.is_ok_and(|d| d["delivered"] == 4) },
    )
    .await?;
    let by_webhook = blank(h.published_once().await?);
    assert_eq!(by_webhook, expected, "webhook path, field by field");

    // 2. The poller over the same state: every fact is already published.
    ingest.stop().await?;
    let ingest = h.ingest(state.path(), Paths::BOTH).await?;
    wait_until(
        "the poller re-read every fixture",
        Duration::from_secs(60),
        || async { h.metric("bridge_dedupe_hits_total").await >= expected.len() as f64 },
    )
    .await?;
    // Delivered again while the poller runs: still nothing new.
    post(format!("{}/sim/orders/8/announce", h.sim.url())).await?;
    wait_until(
        "the repeated delivery answered",
        Duration::from_secs(30),
        || async { h.deliveries().await.is_ok_and(|d| d["delivered"] == 5) },
    )
    .await?;
    assert_eq!(
        blank(h.published_once().await?),
        expected,
        "exactly once after both paths"
    );
    ingest.stop().await?;

    // 3. The poller alone, from scratch: the same events with the same ids.
    let alone = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let ingest = alone.ingest(state.path(), Paths::POLL).await?;
    wait_until(
        "the poller published the fixtures",
        Duration::from_secs(60),
        || async {
            alone
                .published_once()
                .await
                .is_ok_and(|p| p.len() >= expected.len())
        },
    )
    .await?;
    assert_eq!(
        blank(alone.published_once().await?),
        expected,
        "poll path, field by field"
    );
    ingest.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_deliveries_are_refused_or_parked_and_ingest_goes_on() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let ingest = h.ingest(state.path(), Paths::WEBHOOK).await?;
    let url = format!("http://127.0.0.1:{}/webhooks/adobe-io", h.webhook_port);
    let client = reqwest::Client::new();
    let send = |body: Vec<u8>, sign: bool, tamper: bool| {
        let mut request = client.post(&url).body(body.clone());
        if sign {
            for (name, mut value) in h.sim.shared.signer.headers(&body) {
                if tamper && name.starts_with("x-adobe-digital-signature") {
                    value = value.chars().rev().collect();
                }
                request = request.header(name, value);
            }
        }
        request.send()
    };
    let event = |value: Value| {
        json!({
            "specversion": "1.0",
            "type": "com.adobe.commerce.observer.sales_order_save_commit_after",
            "id": "3f1c", "recipient_client_id": "magento-erp-bridge",
            "data": {"key": "k", "value": value}
        })
        .to_string()
        .into_bytes()
    };
    let good = event(json!({"increment_id": "000000005", "items": [{"order_id": "5"}]}));

    // Unsigned, and signed by someone else: 401.
    assert_eq!(send(good.clone(), false, false).await?.status(), 401);
    assert_eq!(send(good.clone(), true, true).await?.status(), 401);
    // Another recipient: 401.
    let other = String::from_utf8(event(json!({"increment_id": "000000005"})))?
        .replace("magento-erp-bridge", "someone-else");
    assert_eq!(send(other.into_bytes(), true, false).await?.status(), 401);
    // Malformed JSON, signed: 400 with the reason.
    let answer = send(b"{\"specversion\": \"1.0\", ".to_vec(), true, false).await?;
    assert_eq!(answer.status(), 400);
    assert!(answer.text().await?.contains("malformed JSON"));
    assert_eq!(
        h.events(&h.orders).await?.len(),
        0,
        "nothing produced for refused deliveries"
    );

    // No order named: parked, the field named.
    let answer = send(event(json!({"state": "new"})), true, false).await?;
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await?.contains("parked"));
    // An order Magento does not know, whole in the payload, with a SKU Magento would not
    // allow (a control character): parked naming `items[0].sku`.
    let mut unknown: Value = serde_json::from_str(include_str!(
        "fixtures/magento/orders/order_simple_bundle_configurable_pending.json"
    ))?;
    unknown["entity_id"] = 99_999.into();
    unknown["increment_id"] = "000099999".into();
    unknown["items"][0]["sku"] = "MS-TEE\u{7}-L".into();
    let answer = send(event(unknown), true, false).await?;
    assert_eq!(answer.status(), 200);

    // A good delivery afterwards is published.
    let answer = send(good, true, false).await?;
    assert_eq!(answer.status(), 200, "{}", answer.text().await?);
    let orders = h.events(&h.orders).await?;
    assert!(
        orders
            .iter()
            .any(|e| matches!(e, Event::OrderPlaced(p) if p.order_ref == "000000005"))
    );

    let parked = h.parked()?;
    assert_eq!(parked.len(), 2, "{parked:?}");
    let message = |r: &bridge_testkit::Record| {
        r.headers
            .iter()
            .find(|(k, _)| k == "bridge.error.message")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    // Parked records spread over partitions: find each by its reason.
    let unnamed = parked
        .iter()
        .find(|r| message(r).contains("data.value.increment_id"))
        .ok_or("no parked record names data.value.increment_id")?;
    assert!(
        unnamed
            .payload
            .as_deref()
            .is_some_and(|p| p.starts_with(b"{"))
    );
    let bad_sku = parked
        .iter()
        .find(|r| message(r).contains("items[0].sku"))
        .ok_or("no parked record names items[0].sku")?;
    // The original bytes are kept, and the order is the key.
    assert!(
        String::from_utf8_lossy(bad_sku.payload.as_deref().unwrap_or_default())
            .contains("000099999")
    );
    assert_eq!(bad_sku.key.as_deref(), Some(&b"000099999"[..]));
    assert!(
        h.metric(
            "bridge_ingest_webhooks_rejected_total{service=\"order-ingest\",reason=\"signature\"}"
        )
        .await
            >= 2.0
    );
    ingest.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_poller_misses_nothing_while_5000_orders_change_under_it() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let orders: usize = std::env::var("INGEST_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    h.sim.shared.generate(orders);
    let state = tempfile::tempdir()?;
    let ingest = h.ingest(state.path(), Paths::POLL).await?;
    // While it polls: invoices, shipments, cancellations, refunds and plain saves, many in
    // the same second.
    let ids: Vec<u64> = h
        .sim
        .shared
        .store()
        .orders()
        .filter_map(|o| o["entity_id"].as_u64())
        .collect();
    let actions = [
        magento_sim::Action::Touch,
        magento_sim::Action::Invoice,
        magento_sim::Action::Ship,
        magento_sim::Action::Cancel,
        magento_sim::Action::Refund,
    ];
    for round in 0..6 {
        for (n, id) in ids.iter().enumerate().filter(|(n, _)| n % 7 == round % 7) {
            let _ = h
                .sim
                .shared
                .store()
                .act(*id, actions[(n + round) % actions.len()]);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // What the final state of the store must have produced (earlier states may or may not
    // have been seen, depending on timing; the final ones must all be there).
    let expected: BTreeSet<String> = {
        let store = h.sim.shared.store();
        let mut ids = BTreeSet::new();
        for order in store.orders() {
            let mapped = map_order(&Obj::root(order), "magento:default", 0)?;
            ids.extend(mapped.orders.iter().map(|e| e.envelope().event_id.clone()));
        }
        for memo in store.creditmemos() {
            let order_id = memo["order_id"]
                .as_u64()
                .ok_or("credit memo without order")?;
            let order = store.order(order_id).ok_or("credit memo of no order")?;
            let mapped = map_creditmemo(&Obj::root(memo), &Obj::root(order), "magento:default", 0)?;
            ids.extend(mapped.orders.iter().map(|e| e.envelope().event_id.clone()));
        }
        ids
    };
    let missing = std::sync::atomic::AtomicUsize::new(expected.len());
    wait_until(
        "every final fact published",
        Duration::from_secs(300),
        || async {
            match h.published_once().await {
                Ok(published) => {
                    let left = expected
                        .iter()
                        .filter(|id| !published.contains_key(*id))
                        .count();
                    missing.store(left, std::sync::atomic::Ordering::Relaxed);
                    left == 0
                }
                Err(_) => false,
            }
        },
    )
    .await
    .map_err(|e| format!("{e}: {missing:?} of {} facts missing", expected.len()))?;
    // published_once fails on any id seen twice.
    let published = h.published_once().await?;
    assert!(published.len() >= expected.len());
    assert!(h.parked()?.is_empty());
    ingest.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_of_your_own_imported_into_the_sim_goes_through_both_paths_once() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let ingest = h.ingest(state.path(), Paths::BOTH).await?;
    let mut order: Value = serde_json::from_str(include_str!(
        "fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
    ))?;
    order["entity_id"] = "424242".into();
    order["increment_id"] = "WEB-424242".into();
    order["updated_at"] = magento_sim::store::magento_now().into();
    let answer = reqwest::Client::new()
        .post(format!("{}/sim/import/orders", h.sim.url()))
        .json(&json!([order]))
        .send()
        .await?;
    assert!(answer.status().is_success());
    let expected = map_order(&Obj::root(&order), "magento:default", 0)?;
    let ids: BTreeSet<String> = expected
        .orders
        .iter()
        .map(|e| e.envelope().event_id.clone())
        .chain(
            expected
                .movements
                .iter()
                .map(|m| m.envelope.event_id.clone()),
        )
        .collect();
    wait_until(
        "the imported order published",
        Duration::from_secs(60),
        || async {
            h.published_once()
                .await
                .is_ok_and(|p| ids.iter().all(|id| p.contains_key(id)))
        },
    )
    .await?;
    wait_until("its delivery answered", Duration::from_secs(60), || async {
        h.deliveries()
            .await
            .is_ok_and(|d| d["pending"] == 0 && d["delivered"] == 1)
    })
    .await?;
    // Both paths saw it (the poller re-reads it every poll); each event is there once.
    let published = h.published_once().await?;
    let placed = published
        .values()
        .filter(|e| matches!(e, Event::OrderPlaced(p) if p.order_ref == "WEB-424242"))
        .count();
    assert_eq!(placed, 1);
    ingest.stop().await?;
    Ok(())
}
