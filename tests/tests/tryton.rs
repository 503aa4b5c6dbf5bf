//! The order flow against a real Tryton 8.0 (JSON-RPC): a handful of fixture-shaped
//! orders become confirmed sales, and a second erp-writer that has lost all its state and
//! reads every order again (a duplicate delivery of each) creates no second sale — Tryton
//! does not keep references unique; the writer's look-up does. A stock adjustment moves
//! Tryton's on-hand stock once, however often it is posted.
//!
//! Needs Tryton on `TRYTON_URL` (default `http://127.0.0.1:8000`, db `erp`, admin/admin):
//! `make test-tryton` installs, starts and stops it around this test.

mod flow;

use std::time::Duration;

use bridge_events::Event;
use bridge_events::erp::{ErpOutcome, OrderShipped};
use bridge_testkit::{stack, wait_until};
use erp::connector::tryton::{TrytonConnector, TrytonSettings};
use erp::connector::{ErpConnector, ErpError, ErpLine, StockAdjustmentDoc};
use flow::{Flow, MAPPING, TestResult};
use rust_decimal::Decimal;

fn tryton_url() -> String {
    std::env::var("TRYTON_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into())
}

fn tryton() -> Result<TrytonConnector, Box<dyn std::error::Error + Send + Sync>> {
    Ok(TrytonConnector::new(
        TrytonSettings {
            base_url: tryton_url(),
            database: "erp".into(),
            user: "admin".into(),
            password: "admin".into(),
        },
        Duration::from_secs(10),
    )?)
}

/// The shipped mapping, with Tryton's warehouse code and its product codes (the SKUs).
fn tryton_mapping() -> String {
    let rules_start = MAPPING.find("rules = [").unwrap_or(0);
    let rules_end = MAPPING[rules_start..]
        .find("]\n")
        .map_or(rules_start, |e| rules_start + e + 2);
    let mut mapping = MAPPING.to_owned();
    mapping.replace_range(
        rules_start..rules_end,
        "rules = [ { pattern = \".+\", code = \"$0\" } ]\n",
    );
    mapping.replace("default = \"WH-MAIN\"", "default = \"WH\"")
}

/// The `OrderShipped` events of `order_ref` on the results topic.
async fn shipped_events(flow: &Flow, order_ref: &str) -> Vec<OrderShipped> {
    flow.events(&flow.results)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| match e {
            Event::OrderShipped(s) if s.order_ref == order_ref => Some(s),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a running Tryton: make test-tryton"]
async fn orders_become_tryton_sales_once_even_when_delivered_again_without_state() -> TestResult {
    let stack = stack()?;
    let mut flow = Flow::start(&stack.bootstrap, &stack.registry_url).await?;
    let tryton = tryton()?;
    tryton.probe().await?;
    // A handful of orders with SKUs Tryton knows, under references new to its database.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let template: serde_json::Value = serde_json::from_str(include_str!(
        "../../crates/magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
    ))?;
    let refs: Vec<String> = (0..4).map(|n| format!("TRY-{}-{n}", &run[..8])).collect();
    let orders: Vec<serde_json::Value> = refs
        .iter()
        .enumerate()
        .map(|(n, reference)| {
            let mut order = template.clone();
            order["entity_id"] = (880_000 + n as u64).into();
            order["increment_id"] = reference.as_str().into();
            order["updated_at"] = magento_sim::store::magento_now().into();
            if n % 2 == 1 {
                order["customer_is_guest"] = 1.into();
                order["customer_id"] = serde_json::Value::Null;
            }
            order
        })
        .collect();
    let answer = reqwest::Client::new()
        .post(format!("{}/sim/import/orders", flow.sim.url()))
        .json(&orders)
        .send()
        .await?;
    assert!(answer.status().is_success());
    flow.writer_erp = Some(format!(
        "[writer.erp]\nconnector = \"tryton\"\nbase_url = \"{}\"\ndatabase = \"erp\"\nuser = \"admin\"\npassword = \"admin\"\ntimeout_ms = 10000\nrate_limit_per_second = 0",
        tryton_url()
    ));
    let mapping = flow.mapping_file("tryton.toml", &tryton_mapping())?;
    let mut writer = flow.start_writer(&mapping).await?;
    let all_booked = || async {
        let mut booked = 0;
        for reference in &refs {
            if let Ok(Some(order)) = tryton.find_order(reference).await
                && order.status == "processing"
            {
                booked += 1;
            }
        }
        booked == refs.len()
    };
    wait_until(
        "every order a confirmed Tryton sale",
        Duration::from_secs(120),
        all_booked,
    )
    .await
    .map_err(|e| format!("{e}\n{}", flow.writer_log()))?;
    for reference in &refs {
        let order = tryton.find_order(reference).await?.ok_or("not booked")?;
        assert_eq!(order.lines.len(), 3, "two items and shipping: {order:?}");
        assert!(
            order.totals.grand_total > order.totals.subtotal,
            "taxed: {order:?}"
        );
    }
    // A credit memo on the first order (one item back, a refund Magento totalled itself):
    // a confirmed return sale at minus the memo's total, under `<order>/<memo>`.
    let memo_ref = format!("CM-{}", &run[..8]);
    let credit_ref = format!("{}/{memo_ref}", refs[0]);
    let mut memo: serde_json::Value = serde_json::from_str(include_str!(
        "../../crates/magento/tests/fixtures/magento/orders/creditmemo_get.json"
    ))?;
    memo["entity_id"] = 990_001.into();
    memo["increment_id"] = memo_ref.as_str().into();
    memo["order_id"] = 880_000.into();
    memo["updated_at"] = magento_sim::store::magento_now().into();
    memo["order_currency_code"] = template["order_currency_code"].clone();
    for (key, value) in [
        ("grand_total", 30.5),
        ("subtotal", 28.0),
        ("tax_amount", 2.5),
        ("shipping_amount", 0.0),
    ] {
        memo[key] = value.into();
    }
    let mut item = memo["items"][0].clone();
    item["order_item_id"] = template["items"][0]["item_id"].clone();
    item["sku"] = template["items"][0]["sku"].clone();
    item["qty"] = 1.into();
    item["row_total"] = 28.0.into();
    item["tax_amount"] = 2.5.into();
    memo["items"] = serde_json::json!([item]);
    let answer = reqwest::Client::new()
        .post(format!("{}/sim/import/creditmemos", flow.sim.url()))
        .json(&memo)
        .send()
        .await?;
    assert!(answer.status().is_success(), "{}", answer.text().await?);
    let credited = || async {
        matches!(
            tryton.find_order(&credit_ref).await,
            Ok(Some(sale)) if sale.status == "processing"
        )
    };
    wait_until(
        "the credit memo a confirmed Tryton return sale",
        Duration::from_secs(120),
        credited,
    )
    .await
    .map_err(|e| format!("{e}\n{}", flow.writer_log()))?;
    let credit = tryton.find_order(&credit_ref).await?.ok_or("no return")?;
    assert_eq!(
        credit.totals.grand_total,
        Decimal::new(-3050, 2),
        "{credit:?}"
    );
    assert!(
        credit
            .lines
            .iter()
            .any(|l| l.quantity == Decimal::from(-1) && l.item_code == item["sku"]),
        "the item comes back: {credit:?}"
    );

    // Tryton ships the second order: it comes back as OrderShipped with its tracking.
    let shipped = tryton.find_order(&refs[1]).await?.ok_or("not booked")?;
    let sale_id: i64 = shipped.id.parse()?;
    let tracking = format!("TRK-{}", &run[..8]);
    tryton.ship_sale(sale_id, &tracking).await?;
    wait_until(
        "the Tryton shipment back as OrderShipped",
        Duration::from_secs(60),
        || async { !shipped_events(&flow, &refs[1]).await.is_empty() },
    )
    .await
    .map_err(|e| format!("{e}\n{}", flow.writer_log()))?;
    let first = shipped_events(&flow, &refs[1]).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].tracking_number.as_deref(), Some(tracking.as_str()));
    assert_eq!(first[0].erp_order_id, shipped.id);
    assert_eq!(first[0].erp_system, "tryton");

    // The reconciler's walk over every sale, two references a page, finds ours, sorted.
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = tryton.order_refs(after.as_deref(), 2).await?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        assert!(page.len() <= 2);
        walked.extend(page);
        after = Some(last);
    }
    let mut sorted = walked.clone();
    sorted.sort();
    assert_eq!(walked, sorted);
    // The reconciler's page lookup: every sale by reference, an unknown one left out.
    let mut asked = refs.to_vec();
    asked.push("NEVER-BOOKED".into());
    let found = tryton.find_orders(&asked).await?;
    assert_eq!(
        found.len(),
        refs.len(),
        "{:?}",
        found.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        found.get(&refs[1]).map(|o| o.id.clone()),
        Some(shipped.id.clone())
    );
    for reference in &refs {
        assert!(
            walked.contains(reference),
            "{reference} not walked: {walked:?}"
        );
    }
    writer.stop()?;

    // Lost state, everything delivered again: a new group reads the topic from the start.
    flow.group = format!("{}-again", flow.group);
    flow::create_writer_topics(&flow.bootstrap, &flow.group).await?;
    let mut again = flow.start_writer(&mapping).await?;
    wait_until(
        "the second writer caught up",
        Duration::from_secs(120),
        || {
            let lag = flow.lag().ok();
            async move { lag == Some(0) }
        },
    )
    .await?;
    // The second writer read Tryton's shipments from the start: the same shipment is the
    // same event (one id), so the shop ships the order once.
    wait_until(
        "the second writer read the shipments again",
        Duration::from_secs(60),
        || async { shipped_events(&flow, &refs[1]).await.len() >= 2 },
    )
    .await?;
    let again_shipped = shipped_events(&flow, &refs[1]).await;
    assert!(
        again_shipped
            .iter()
            .all(|s| s.envelope.event_id == first[0].envelope.event_id),
        "{again_shipped:?}"
    );
    for reference in refs.iter().chain([&credit_ref]) {
        let sales = tryton.sales_with_reference(reference).await?;
        assert_eq!(sales.len(), 1, "{reference}: sales {sales:?}");
    }
    // Both writers said ACCEPTED with the same sale (one event id per verdict).
    let verdicts: Vec<_> = flow
        .events(&flow.results)
        .await?
        .into_iter()
        .filter_map(|e| match e {
            Event::ErpOrderResult(r) if refs.contains(&r.order_ref) => Some(r),
            _ => None,
        })
        .collect();
    assert!(
        verdicts
            .iter()
            .all(|v| v.outcome == ErpOutcome::Accepted && v.erp_system == "tryton")
    );
    // The sim's own fixture orders (a bundle of SKUs Tryton does not stock) may be parked;
    // none of these.
    for parked in flow.parked()? {
        let key = String::from_utf8_lossy(parked.key.as_deref().unwrap_or_default()).into_owned();
        assert!(!refs.contains(&key), "{key} parked: {}", parked.message);
    }
    again.stop()?;
    flow.stop().await
}

/// On-hand quantity per item code in `warehouse`.
async fn levels(
    tryton: &TrytonConnector,
    warehouse: &str,
) -> Result<std::collections::HashMap<String, Decimal>, ErpError> {
    Ok(tryton
        .stock_levels(warehouse)
        .await?
        .into_iter()
        .map(|l| (l.item_code, l.quantity))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a running Tryton: make test-tryton"]
async fn a_stock_adjustment_moves_tryton_stock_once() -> TestResult {
    let tryton = tryton()?;
    tryton.probe().await?;
    let (added, removed) = ("WS12-M-Orange", "MH01-S-Gray");
    let before = levels(&tryton, "WH").await?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let adjustment = StockAdjustmentDoc {
        external_ref: format!("stock:WH:{}:1", stamp.as_millis()),
        warehouse: "WH".into(),
        lines: vec![
            ErpLine {
                item_code: added.into(),
                quantity: Decimal::from(3),
            },
            ErpLine {
                item_code: removed.into(),
                quantity: Decimal::from(-2),
            },
        ],
    };
    let posted = tryton.post_stock_adjustment(&adjustment).await?;
    assert!(posted.new, "{posted:?}");
    let after = levels(&tryton, "WH").await?;
    let moved = |code: &str| {
        after.get(code).copied().unwrap_or_default() - before.get(code).copied().unwrap_or_default()
    };
    assert_eq!(moved(added), Decimal::from(3));
    assert_eq!(moved(removed), Decimal::from(-2));

    // The same window again (a replay after a crash): found, nothing moves.
    let again = tryton.post_stock_adjustment(&adjustment).await?;
    assert!(!again.new);
    assert_eq!(again.doc, posted.doc);
    assert_eq!(levels(&tryton, "WH").await?, after);

    // A warehouse Tryton does not know is a refusal that names it.
    let nowhere = StockAdjustmentDoc {
        warehouse: "WH-NOWHERE".into(),
        ..adjustment
    };
    match tryton.post_stock_adjustment(&nowhere).await {
        Err(ErpError::Rejected { code, reason }) => {
            assert_eq!(code, "unknown_warehouse");
            assert!(reason.contains("WH-NOWHERE"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    Ok(())
}
