//! order-ingest end to end on the real broker and registry, fed by magento-sim: both
//! paths give the same events, exactly once; the poller misses nothing while orders change
//! under it. Bad and hostile input: `secure_by_default.rs`.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bridge_events::Event;
use bridge_events::inventory::MovementKind;
use bridge_testkit::{stack, wait_until};
use harness::{AnyError, Harness, Paths, TestResult, without_produced_at};
use magento::{Obj, map_creditmemo, map_order, map_shipment};
use magento_sim::SimConfig;
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
    let mut add = |mapped: magento::Mapped| {
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
    let expected: BTreeMap<String, String> = {
        let store = h.sim.shared.store();
        let mut ids = BTreeMap::new();
        let named = |e: &Event| {
            let envelope = e.envelope();
            (
                envelope.event_id.clone(),
                format!("{} of {}", envelope.event_type, envelope.correlation_id),
            )
        };
        for order in store.orders() {
            let mapped = map_order(&Obj::root(order), "magento:default", 0)?;
            ids.extend(mapped.orders.iter().map(named));
        }
        for memo in store.creditmemos() {
            let order_id = memo["order_id"]
                .as_u64()
                .ok_or("credit memo without order")?;
            let order = store.order(order_id).ok_or("credit memo of no order")?;
            let mapped = map_creditmemo(&Obj::root(memo), &Obj::root(order), "magento:default", 0)?;
            ids.extend(mapped.orders.iter().map(named));
        }
        ids
    };
    let missing = std::sync::atomic::AtomicUsize::new(expected.len());
    let failure = std::sync::Mutex::new(String::new());
    let sample = std::sync::Mutex::new(Vec::<String>::new());
    let waited = wait_until(
        "every final fact published",
        Duration::from_secs(300),
        || async {
            match h.published_once().await {
                Ok(published) => {
                    let left: Vec<&String> = expected
                        .iter()
                        .filter(|(id, _)| !published.contains_key(*id))
                        .map(|(_, what)| what)
                        .collect();
                    if let Ok(mut sample) = sample.lock() {
                        *sample = left.iter().take(5).map(|w| w.to_string()).collect();
                    }
                    missing.store(left.len(), std::sync::atomic::Ordering::Relaxed);
                    left.is_empty()
                }
                Err(e) => {
                    if let Ok(mut last) = failure.lock() {
                        *last = e.to_string();
                    }
                    false
                }
            }
        },
    )
    .await;
    if let Err(e) = waited {
        let failure = failure.lock().map(|f| f.clone()).unwrap_or_default();
        let sample = sample.lock().map(|s| s.join("; ")).unwrap_or_default();
        let metrics = h.metrics().await.unwrap_or_default();
        let poll_lines: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("ingest_poll"))
            .collect();
        return Err(format!(
            "{e}: {missing:?} of {} facts missing, e.g. {sample} (last read error: {failure}; {poll_lines:?})",
            expected.len()
        )
        .into());
    }
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
        "../../magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
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
    let ids: BTreeSet<String> = expected.event_ids().map(str::to_owned).collect();
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

/// Stock per MSI source: a shipment from `wh_east` (webhook and poller) is its movements
/// once; the source-item sync publishes every level once and then only what changed.
#[tokio::test(flavor = "multi_thread")]
async fn shipments_and_source_items_become_movements_per_source_once() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let paths = Paths {
        source_items: true,
        ..Paths::BOTH
    };
    let ingest = h.ingest(state.path(), paths).await?;
    let sim = h.sim.url();
    let created: Value = reqwest::Client::new()
        .post(format!("{sim}/sim/orders"))
        .json(&json!({"count": 1}))
        .send()
        .await?
        .json()
        .await?;
    let id = created[0]["entity_id"]
        .as_u64()
        .ok_or("no order generated")?;
    post(format!("{sim}/sim/orders/{id}/invoice")).await?;
    post(format!("{sim}/sim/orders/{id}/ship?source=wh_east")).await?;
    let (expected, levels) = {
        let store = h.sim.shared.store();
        let shipment = store
            .shipments()
            .find(|s| s["order_id"] == id)
            .ok_or("the sim made no shipment")?;
        let order = store.order(id).ok_or("order gone")?;
        let mapped = map_shipment(
            &Obj::root(shipment),
            &Obj::root(order),
            "magento:default",
            0,
        )?;
        let levels: BTreeMap<String, rust_decimal::Decimal> = store
            .source_items()
            .map(|i| {
                let key = format!(
                    "{}|{}",
                    i["sku"].as_str().unwrap_or_default(),
                    i["source_code"].as_str().unwrap_or_default()
                );
                (key, i["quantity"].to_string().parse().unwrap_or_default())
            })
            .collect();
        (mapped.movements, levels)
    };
    assert!(
        expected
            .iter()
            .any(|m| m.source_code == "wh_east" && m.quantity.is_sign_negative())
    );
    wait_until(
        "the shipment's movements published",
        Duration::from_secs(60),
        || async {
            h.published_once().await.is_ok_and(|p| {
                expected.iter().all(|m| {
                    matches!(p.get(&m.envelope.event_id), Some(Event::InventoryMovement(got))
                    if got.quantity == m.quantity && got.source_code == m.source_code)
                })
            })
        },
    )
    .await?;
    wait_until(
        "both webhook deliveries answered",
        Duration::from_secs(60),
        || async { h.deliveries().await.is_ok_and(|d| d["pending"] == 0) },
    )
    .await?;

    // Levels: every source item once, at the quantity the sim holds (after the shipment).
    let sets = |p: &BTreeMap<String, Event>| -> BTreeMap<String, Vec<rust_decimal::Decimal>> {
        let mut sets: BTreeMap<String, Vec<_>> = BTreeMap::new();
        let mut by_time: Vec<_> = p
            .values()
            .filter_map(|e| match e {
                Event::InventoryMovement(m) if m.kind == MovementKind::SourceItemSet => Some(m),
                _ => None,
            })
            .collect();
        by_time.sort_by_key(|m| m.envelope.occurred_at);
        for m in by_time {
            sets.entry(format!("{}|{}", m.sku, m.source_code))
                .or_default()
                .push(m.quantity);
        }
        sets
    };
    wait_until("every level published", Duration::from_secs(60), || async {
        h.published_once().await.is_ok_and(|p| {
            let sets = sets(&p);
            levels
                .iter()
                .all(|(k, q)| sets.get(k).and_then(|v| v.last()) == Some(q))
        })
    })
    .await?;
    // One level changes in Magento (the last in the sync's order, so a sync that sees it
    // has re-read every other one): only it is published again.
    let (last_key, _) = levels.iter().next_back().ok_or("no source items")?;
    let (sku, source) = last_key.split_once('|').ok_or("key")?;
    let answer = reqwest::Client::new()
        .post(format!("{sim}/rest/V1/inventory/source-items"))
        .json(&json!({"sourceItems": [{"sku": sku, "source_code": source, "quantity": 7, "status": 1}]}))
        .send()
        .await?;
    assert!(answer.status().is_success());
    let seven: rust_decimal::Decimal = 7.into();
    wait_until(
        "the changed level published",
        Duration::from_secs(60),
        || async {
            h.published_once()
                .await
                .is_ok_and(|p| sets(&p).get(last_key).and_then(|v| v.last()) == Some(&seven))
        },
    )
    .await?;
    let sets = sets(&h.published_once().await?);
    // A level is published when it differs from the last one, never again unchanged
    // (the shipped SKUs were read before and after the shipment: two levels each).
    for (key, quantities) in &sets {
        assert!(
            quantities.windows(2).all(|w| w[0] != w[1]),
            "{key} published unchanged: {quantities:?}"
        );
        assert_eq!(
            quantities.last(),
            Some(if key == last_key {
                &seven
            } else {
                &levels[key]
            })
        );
    }
    assert_eq!(sets.len(), levels.len());
    ingest.stop().await?;
    Ok(())
}

/// Adobe Commerce synchronous webhooks never hold checkout: a *before place* hook is
/// answered `success` and produces nothing; an *after save* hook naming an order is
/// answered `success` and the order is ingested behind it; with a key configured, an
/// unsigned or forged hook is `401`.
#[tokio::test(flavor = "multi_thread")]
async fn commerce_webhooks_answer_success_at_once_and_ring_the_doorbell() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let key = state.path().join("commerce.pem");
    std::fs::write(&key, h.sim.shared.signer.public_pem(0).ok_or("no sim key")?)?;
    let mut config = h.config(state.path(), Paths::WEBHOOK)?;
    config.ingest.webhook.commerce_public_key_file = Some(key);
    config
        .ingest
        .webhook
        .routes
        .push(order_ingest::config::Route::Commerce);
    let ingest = h.ingest_with(config, Paths::WEBHOOK).await?;
    let url = format!("http://127.0.0.1:{}/webhooks/commerce", h.webhook_port);
    let http = reqwest::Client::new();
    let signed = |body: &[u8]| h.sim.shared.signer.headers(body)[0].1.clone();

    let before: Value = serde_json::from_str(include_str!(
        "../../magento/tests/fixtures/magento/events/webhook_plugin_order_management_place_request.json"
    ))?;
    let body = serde_json::to_vec(&before)?;
    let answer = http
        .post(&url)
        .header("x-adobe-commerce-webhook-signature", signed(&body))
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await?, json!({"op": "success"}));

    let unsigned = http.post(&url).body(body.clone()).send().await?;
    assert_eq!(unsigned.status(), 401);
    let forged = http
        .post(&url)
        .header(
            "x-adobe-commerce-webhook-signature",
            signed(b"another body"),
        )
        .body(body)
        .send()
        .await?;
    assert_eq!(forged.status(), 401);

    // An after-save observer hook for fixture order 8 (entity id only).
    let after = json!({
        "eventName": "observer.sales_order_save_after",
        "data": {"order": {"entity_id": "8", "state": "processing"}},
    });
    let body = serde_json::to_vec(&after)?;
    let answer = http
        .post(&url)
        .header("x-adobe-commerce-webhook-signature", signed(&body))
        .body(body)
        .send()
        .await?;
    assert_eq!(answer.status(), 200);
    let expected = {
        let store = h.sim.shared.store();
        let order = store.order(8).ok_or("fixture order 8")?;
        map_order(&Obj::root(order), "magento:default", 0)?
    };
    let ids: BTreeSet<String> = expected.event_ids().map(str::to_owned).collect();
    wait_until(
        "order 8 ingested behind the hook",
        Duration::from_secs(60),
        || async {
            h.published_once()
                .await
                .is_ok_and(|p| p.keys().cloned().collect::<BTreeSet<_>>() == ids)
        },
    )
    .await?;
    assert!(h.parked()?.is_empty(), "nothing parked");
    ingest.stop().await?;
    Ok(())
}

/// A second holding exactly one page of changes, read from that second, fills the page and
/// the by-id page after it is empty: the poller goes on with the next second instead of
/// stopping there for ever (it did, and every later change was missed).
#[tokio::test(flavor = "multi_thread")]
async fn a_second_holding_exactly_a_page_of_changes_does_not_stop_the_poller() -> TestResult {
    let stack = stack()?;
    let h = Harness::new(&stack.bootstrap, &stack.registry_url, SimConfig::default()).await?;
    let state = tempfile::tempdir()?;
    let mut config = h.config(state.path(), Paths::POLL)?;
    config.ingest.poll.page_size = 5;
    let template: Value = serde_json::from_str(include_str!(
        "../../magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
    ))?;
    // Five orders in one second (one page), three in the next.
    let orders: Vec<Value> = (0..8)
        .map(|n| {
            let mut order = template.clone();
            order["entity_id"] = (900_000 + n).into();
            order["increment_id"] = format!("PAGE-{n}").into();
            order["updated_at"] = if n < 5 {
                "2020-01-01 10:00:00"
            } else {
                "2020-01-01 10:00:01"
            }
            .into();
            order
        })
        .collect();
    let answer = reqwest::Client::new()
        .post(format!("{}/sim/import/orders", h.sim.url()))
        .json(&orders)
        .send()
        .await?;
    assert!(answer.status().is_success());
    let ingest = h.ingest_with(config, Paths::POLL).await?;
    let wanted: BTreeSet<String> = (0..8).map(|n| format!("PAGE-{n}")).collect();
    let placed = || async {
        h.published_once().await.map(|p| {
            p.values()
                .filter_map(|e| match e {
                    Event::OrderPlaced(o) if o.order_ref.starts_with("PAGE-") => {
                        Some(o.order_ref.clone())
                    }
                    _ => None,
                })
                .collect::<BTreeSet<String>>()
        })
    };
    wait_until(
        "all eight orders published",
        Duration::from_secs(60),
        || async { placed().await.is_ok_and(|p| p == wanted) },
    )
    .await?;
    ingest.stop().await?;
    Ok(())
}
