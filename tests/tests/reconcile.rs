//! The reconciler on the real broker, closing the loop: Magento orders → order-ingest →
//! erp-writer → erp-sim, where erp-sim silently drops a line or rounds tax wrongly on some
//! orders; the reconciler finds exactly those orders, explains each, asks for resyncs that
//! erp-writer carries out, and its next run finds nothing. Stock drift introduced in the
//! ERP is found per SKU and source and repaired in Magento by magento-writer.

mod flow;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bridge_events::Event;
use bridge_events::reconciliation::{
    FindingKind, FindingState, ReconciliationFinding, ResyncTarget,
};
use bridge_testkit::{metric_sum, stack, wait_until};
use erp::mapping::Mapping;
use flow::reconciliation::*;
use flow::{Flow, MAPPING, TestResult, differences, expected, generate_with_lifecycles};
use rust_decimal::Decimal;

#[tokio::test(flavor = "multi_thread")]
async fn faulted_orders_are_found_explained_repaired_and_then_clean() -> TestResult {
    let stack = stack()?;
    let mut flow = Flow::start(&stack.bootstrap, &stack.registry_url).await?;
    flow.faults(erp_sim::Faults {
        drop_line_every: 7,
        wrong_tax_rounding_every: 5,
        ..Default::default()
    });
    generate_with_lifecycles(&flow, count("RECONCILE_ORDERS", 150));
    let mapping = flow.mapping_file("mapping.toml", MAPPING)?;
    let mut writer = flow.start_writer(&mapping).await?;
    let faulted = booked_but_faulted(&flow, Duration::from_secs(240)).await?;
    // Booked wrongly and then cancelled on both sides: history, which neither the
    // reconciler nor a repair touches (their short totals stay as booked).
    let history: BTreeSet<String> = flow
        .erp
        .shared
        .books()
        .faulted
        .keys()
        .filter(|r| !faulted.contains(*r))
        .cloned()
        .collect();
    assert!(
        faulted.len() >= 3,
        "too few faulted orders to test: {faulted:?}"
    );
    // Why each order is wrong (the repairs clear erp-sim's list).
    let books: BTreeMap<String, Vec<&str>> = flow
        .erp
        .shared
        .books()
        .faulted
        .iter()
        .filter(|(r, _)| faulted.contains(*r))
        .map(|(r, why)| (r.clone(), why.clone()))
        .collect();

    flow.start_reconciler(
        &mapping,
        1500,
        "page_size = 25\n[reconciler.stock]\nenabled = false",
    )
    .await?;
    // The first findings name exactly the faulted orders, each explained.
    wait_until(
        "findings for every faulted order",
        Duration::from_secs(120),
        || async {
            let found: BTreeSet<String> = findings(&flow)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|f| f.entity_ref)
                .collect();
            faulted.is_subset(&found)
        },
    )
    .await?;
    let first = findings(&flow).await?;
    let named: BTreeSet<String> = first.iter().map(|f| f.entity_ref.clone()).collect();
    assert_eq!(
        named, faulted,
        "findings for orders that are fine, or missing ones"
    );
    for f in &first {
        assert_eq!(f.entity_type, "order");
        assert!(f.explanation.contains(&f.entity_ref), "{}", f.explanation);
        let why = &books[&f.entity_ref];
        match f.kind {
            FindingKind::LineMissing => {
                assert!(why.contains(&"drop_line"), "{f:?}");
                assert!(
                    f.explanation.contains("is missing line"),
                    "{}",
                    f.explanation
                );
            }
            FindingKind::TaxMismatch => assert!(
                why.contains(&"wrong_tax_rounding") || why.contains(&"drop_line"),
                "{f:?}"
            ),
            // A refund of a short-booked order exceeds what the ERP lets credit: that memo
            // waits too, and the resync books it once the order is whole.
            FindingKind::TotalMismatch
            | FindingKind::DiscountMismatch
            | FindingKind::RefundMismatch => {}
            other => panic!("unexpected finding {other:?}: {}", f.explanation),
        }
    }
    for (reference, why) in &books {
        let kinds: Vec<FindingKind> = first
            .iter()
            .filter(|f| &f.entity_ref == reference)
            .map(|f| f.kind)
            .collect();
        if why.contains(&"drop_line") {
            assert!(
                kinds.contains(&FindingKind::LineMissing),
                "{reference}: {kinds:?}"
            );
        } else {
            assert!(
                kinds.contains(&FindingKind::TaxMismatch),
                "{reference}: {kinds:?}"
            );
        }
    }
    // Each asked for a resync of its order in the ERP.
    let requests: BTreeSet<String> = flow
        .events(&flow.resync)
        .await?
        .into_iter()
        .filter_map(|e| match e {
            Event::ResyncRequested(r) if r.target == ResyncTarget::Erp => Some(r.entity_ref),
            _ => None,
        })
        .collect();
    assert_eq!(requests, faulted);

    // erp-writer repairs them; the reconciler resolves every finding.
    wait_until(
        "every finding resolved",
        Duration::from_secs(180),
        || async {
            let all = findings(&flow).await.unwrap_or_default();
            !all.is_empty() && open_by_entity(&all).is_empty()
        },
    )
    .await?;
    let left: Vec<String> = differences(&flow.erp, &expected(&flow.sim))
        .into_iter()
        .filter(|d| !history.contains(d.split(':').next().unwrap_or_default()))
        .collect();
    assert!(
        left.is_empty(),
        "the ERP still differs from Magento: {left:#?}"
    );
    let left: Vec<String> = flow
        .erp
        .shared
        .books()
        .faulted
        .keys()
        .filter(|r| faulted.contains(*r))
        .cloned()
        .collect();
    assert!(left.is_empty(), "still faulted: {left:?}");
    // And the next runs find nothing new.
    let settled = findings(&flow).await?.len();
    more_runs(&flow, 2.0).await?;
    assert_eq!(
        findings(&flow).await?.len(),
        settled,
        "new findings on a clean run"
    );
    assert_eq!(flow.erp.shared.books().duplicate_creates, 0);
    writer.stop()?;
    flow.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn stock_drift_in_the_erp_is_found_per_sku_and_source_and_repaired_in_magento() -> TestResult
{
    let stack = stack()?;
    let mut flow = Flow::start(&stack.bootstrap, &stack.registry_url).await?;
    let mapping_text = Mapping::parse(MAPPING)?;
    // The ERP starts with Magento's quantities (an aligned go-live)...
    let items: Vec<(String, String, Decimal)> = flow
        .sim
        .shared
        .store()
        .source_items()
        .filter_map(|i| {
            let quantity = flow::money(&i["quantity"]);
            Some((
                i["sku"].as_str()?.to_owned(),
                i["source_code"].as_str()?.to_owned(),
                quantity,
            ))
        })
        .collect();
    assert!(
        items.len() >= 4,
        "the sim has too few source items: {items:?}"
    );
    let mut seeded = 0;
    {
        let mut books = flow.erp.shared.books();
        for (sku, source, quantity) in &items {
            let (Ok(item), Ok(warehouse)) =
                (mapping_text.item_code(sku), mapping_text.warehouse(source))
            else {
                continue;
            };
            books.stock.insert((warehouse, item), *quantity);
            seeded += 1;
        }
    }
    assert!(seeded >= 4);
    // ... then drifts on two of them.
    let drifted: Vec<(String, Decimal)> = items
        .iter()
        .filter(|(sku, source, _)| {
            mapping_text.item_code(sku).is_ok() && mapping_text.warehouse(source).is_ok()
        })
        .take(2)
        .enumerate()
        .map(|(n, (sku, source, quantity))| {
            let erp = if n == 0 {
                *quantity + Decimal::from(7)
            } else {
                (*quantity - Decimal::from(3)).max(Decimal::ZERO)
            };
            (format!("{sku}|{source}"), erp)
        })
        .collect();
    {
        let mut books = flow.erp.shared.books();
        for (entity, erp) in &drifted {
            let (sku, source) = entity.rsplit_once('|').ok_or("entity")?;
            let key = (
                mapping_text.warehouse(source)?,
                mapping_text.item_code(sku)?,
            );
            books.stock.insert(key, *erp);
        }
    }
    // And someone keyed an order into the ERP under a shop reference Magento never had.
    {
        let mut books = flow.erp.shared.books();
        books.customers(&[erp_sim::model::NewCustomer {
            external_ref: "customer:manual".into(),
            name: "Manual".into(),
        }]);
        let manual: erp_sim::model::NewSalesOrder = serde_json::from_value(serde_json::json!({
            "external_ref": "MANUAL-1",
            "customer_ref": "customer:manual",
            "currency": "USD",
            "order_date": "2026-11-29",
            "warehouse": "WH-MAIN",
            "lines": [{"item_code": "GEAR-MB01", "quantity": "1", "unit_price": "10"}],
        }))?;
        books
            .create_order(manual, Default::default())
            .map_err(|r| format!("{r:?}"))?;
    }
    let mapping = flow.mapping_file("mapping.toml", MAPPING)?;
    flow.start_reconciler(&mapping, 1000, "[reconciler.stock]\nsettle_ms = 1500")
        .await?;
    let outcome = wait_until(
        "stock findings resolved in Magento",
        Duration::from_secs(60),
        || async {
            let all = stock_findings(&flow).await.unwrap_or_default();
            let store = flow.sim.shared.store();
            let repaired = drifted.iter().all(|(entity, erp)| {
                store.source_items().any(|i| {
                    format!(
                        "{}|{}",
                        i["sku"].as_str().unwrap_or_default(),
                        i["source_code"].as_str().unwrap_or_default()
                    ) == *entity
                        && flow::money(&i["quantity"]) == *erp
                })
            });
            repaired && !all.is_empty() && open_by_entity(&all).is_empty()
        },
    )
    .await;
    if let Err(e) = outcome {
        let metrics = flow.reconciler_metrics().await.unwrap_or_default();
        let interesting: Vec<&str> = metrics
            .lines()
            .filter(|l| l.contains("reconciler") && !l.starts_with('#'))
            .collect();
        return Err(format!(
            "{e}\nfindings: {:#?}\nresyncs: {:#?}\nmetrics: {interesting:#?}",
            stock_findings(&flow).await?,
            flow.events(&flow.resync).await?
        )
        .into());
    }
    let all = stock_findings(&flow).await?;
    let named: BTreeSet<&str> = all.iter().map(|f| f.entity_ref.as_str()).collect();
    let wanted: BTreeSet<&str> = drifted.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(named, wanted);
    for f in all.iter().filter(|f| f.state == FindingState::Open) {
        assert_eq!(f.kind, FindingKind::StockMismatch);
        assert_eq!(f.entity_type, "stock");
        let erp = &drifted
            .iter()
            .find(|(e, _)| *e == f.entity_ref)
            .ok_or("drift")?
            .1;
        assert_eq!(
            f.erp_value.as_deref(),
            Some(erp.normalize().to_string().as_str())
        );
        assert!(
            f.explanation.contains("the ERP (authoritative) has"),
            "{}",
            f.explanation
        );
    }
    // The ERP-only order is reported once, by the scan over the ERP's orders.
    let manual: Vec<ReconciliationFinding> = findings(&flow)
        .await?
        .into_iter()
        .filter(|f| f.entity_ref == "MANUAL-1")
        .collect();
    assert_eq!(manual.len(), 1, "{manual:#?}");
    assert_eq!(manual[0].kind, FindingKind::OrderMissingInMagento);
    assert!(
        manual[0]
            .explanation
            .contains("has the shop reference #MANUAL-1, but Magento has no such order"),
        "{}",
        manual[0].explanation
    );
    // Magento got exactly one write per drifted item.
    let writes: Vec<String> = flow
        .sim
        .shared
        .store()
        .writebacks()
        .iter()
        .filter(|w| w.kind == "source_items")
        .map(|w| w.target.clone())
        .collect();
    let mut sorted = writes.clone();
    sorted.sort();
    let mut expected_writes: Vec<String> = wanted.iter().map(|s| (*s).to_owned()).collect();
    expected_writes.sort();
    assert_eq!(sorted, expected_writes);
    flow.stop().await
}

/// A clean store — every fixture shape among generated orders, with cancellations, refunds
/// and shipments — gives no finding at all (`RECONCILE_CLEAN_ORDERS`, default 10,000;
/// 100,000 for a large store: docs/decisions/reconciler.md has the numbers).
#[tokio::test(flavor = "multi_thread")]
async fn a_clean_run_over_many_orders_finds_nothing() -> TestResult {
    let stack = stack()?;
    let mut flow = Flow::start(&stack.bootstrap, &stack.registry_url).await?;
    let wanted = count("RECONCILE_CLEAN_ORDERS", 10_000);
    // Bounds that grow with the store (`RECONCILE_CLEAN_ORDERS=100000` for a large one).
    let scaled = |at_least: u64| Duration::from_secs(at_least.max(wanted as u64 / 10));
    generate_with_lifecycles(&flow, wanted);
    let mapping = flow.mapping_file("mapping.toml", MAPPING)?;
    let mut writer = flow.start_writer(&mapping).await?;
    let booking = std::time::Instant::now();
    let faulted = booked_but_faulted(&flow, scaled(900)).await?;
    assert!(faulted.is_empty());
    println!(
        "{wanted} orders booked through the flow in {:.1} s",
        booking.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_mib();
    let started = std::time::Instant::now();
    let control = bridge_testkit::free_port()?;
    let extra = format!(
        "page_size = 200\ncontrol_listen = \"127.0.0.1:{control}\"\ncontrol_token = \"control-token\"\n[reconciler.stock]\nenabled = false"
    );
    // Its own process, so its memory is its own.
    let mut process = flow
        .start_reconciler_process(&mapping, 3_600_000, &extra)
        .await?;
    // One full run on every partition: every order the ERP has compared.
    let in_erp = flow.erp.shared.books().orders.len() as f64;
    wait_until("a full run over every order", scaled(600), || async {
        let checked = flow
            .reconciler_metrics()
            .await
            .map(|m| metric_sum(&m, "bridge_reconciler_orders_checked_total"))
            .unwrap_or_default();
        runs(&flow).await >= 3.0 && checked >= in_erp
    })
    .await?;
    let checked = metric_sum(
        &flow.reconciler_metrics().await?,
        "bridge_reconciler_orders_checked_total",
    );
    let found = findings(&flow).await?;
    assert!(
        found.is_empty(),
        "false positives: {:#?}",
        found.iter().take(5).collect::<Vec<_>>()
    );
    println!(
        "clean run: {checked} orders compared in {:.1} s, no finding; the test process's \
         peak RSS {rss_before} MiB before the run (sims, broker clients, services), {} MiB \
         after",
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    let peak = process.memory("VmHWM") >> 20;
    println!("the reconciler's own peak RSS over {checked} orders: {peak} MiB");
    assert!(
        peak < RECONCILER_PEAK_MIB,
        "the reconciler peaked at {peak} MiB"
    );
    // Today's summary: what the daily line will say.
    let summary: serde_json::Value = flow::http()
        .get(format!("http://127.0.0.1:{control}/summary"))
        .bearer_auth("control-token")
        .send()
        .await?
        .json()
        .await?;
    assert!(
        summary["orders_checked"].as_f64().unwrap_or_default() >= in_erp,
        "{summary}"
    );
    assert_eq!(
        summary["findings_opened"],
        serde_json::json!({}),
        "{summary}"
    );
    let p50 = summary["sync_delay_seconds"]["p50"]
        .as_f64()
        .ok_or("no sync delay")?;
    let p99 = summary["sync_delay_seconds"]["p99"]
        .as_f64()
        .ok_or("no sync delay")?;
    assert!(0.0 <= p50 && p50 <= p99, "{summary}");
    println!(
        "sync delay p50 {p50:.1} s, p99 {p99:.1} s over {} orders",
        summary["sync_delay_seconds"]["orders"]
    );
    // The next scheduled run is an hour away; one asked for now runs at once.
    let before = runs(&flow).await;
    let reconcile = format!("http://127.0.0.1:{control}/reconcile");
    let anonymous = reqwest::Client::new().post(&reconcile).send().await?;
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let answer = reqwest::Client::new()
        .post(&reconcile)
        .bearer_auth("control-token")
        .send()
        .await?;
    assert_eq!(answer.status(), reqwest::StatusCode::ACCEPTED);
    wait_until("the run asked for", scaled(300), || async {
        runs(&flow).await >= before + 3.0
    })
    .await?;
    assert!(findings(&flow).await?.is_empty());
    process.stop()?;
    writer.stop()?;
    flow.stop().await
}

/// Faults made by hand in the ERP's data (erp-sim's `PATCH`/`DELETE /admin/sales-orders`):
/// each is found as its kind; what a resync can repair is repaired, what a person must
/// decide stays open, and a repair that cannot help is asked for at most three times.
#[tokio::test(flavor = "multi_thread")]
async fn hand_made_erp_faults_are_found_by_kind_and_the_repairable_ones_repaired() -> TestResult {
    let stack = stack()?;
    let mut flow = Flow::start(&stack.bootstrap, &stack.registry_url).await?;
    // No cancellations or refunds here: every order stays open in both systems.
    flow.sim.shared.generate(30);
    let mapping = flow.mapping_file("mapping.toml", MAPPING)?;
    let mut writer = flow.start_writer(&mapping).await?;
    booked_but_faulted(&flow, Duration::from_secs(180)).await?;
    let picked: Vec<(String, String)> = {
        let books = flow.erp.shared.books();
        books
            .orders
            .values()
            .filter(|o| o.status == "confirmed" && o.credited.is_zero())
            .filter_map(|o| Some((o.external_ref.clone(), o.lines.first()?.item_code.clone())))
            .take(6)
            .collect()
    };
    assert_eq!(picked.len(), 6, "too few orders to tamper with");
    let erp = reqwest::Client::new();
    let admin = |r: &str| format!("{}/admin/sales-orders/{r}", flow.erp.url());
    let patches = [
        serde_json::json!({"quantities": {picked[0].1.clone(): "97"}}),
        serde_json::json!({"status": "cancelled"}),
        serde_json::json!(null),
        serde_json::json!({"tax_amount": "0.01"}),
        serde_json::json!({"customer_ref": "customer:someone-else"}),
        serde_json::json!({"credited": "5.00"}),
    ];
    for ((reference, _), patch) in picked.iter().zip(&patches) {
        let answer = if patch.is_null() {
            erp.delete(admin(reference)).send().await?
        } else {
            erp.patch(admin(reference)).json(patch).send().await?
        };
        assert!(
            answer.status().is_success(),
            "{reference}: {}",
            answer.status()
        );
    }
    let wanted: BTreeMap<&str, FindingKind> = [
        (picked[0].0.as_str(), FindingKind::LineQtyMismatch),
        (picked[1].0.as_str(), FindingKind::StatusMismatch),
        (picked[2].0.as_str(), FindingKind::OrderMissingInErp),
        (picked[3].0.as_str(), FindingKind::TaxMismatch),
        (picked[4].0.as_str(), FindingKind::CustomerMismatch),
        (picked[5].0.as_str(), FindingKind::RefundMismatch),
    ]
    .into_iter()
    .collect();
    flow.start_reconciler(&mapping, 1000, "[reconciler.stock]\nenabled = false")
        .await?;
    // Repaired: the quantity, the lost order, the tax. Left for a person: the cancellation
    // made in the ERP only, the other customer, the credit nobody refunded.
    let repaired = [&picked[0].0, &picked[2].0, &picked[3].0];
    let outcome = wait_until(
        "the repairable faults repaired",
        Duration::from_secs(120),
        || async {
            let all = findings(&flow).await.unwrap_or_default();
            let open = open_by_entity(&all);
            let seen: BTreeSet<&str> = all.iter().map(|f| f.entity_ref.as_str()).collect();
            wanted.keys().all(|r| seen.contains(r))
                && repaired.iter().all(|r| !open.contains_key(r.as_str()))
                && open.len() == 3
        },
    )
    .await;
    let all = findings(&flow).await?;
    if let Err(e) = outcome {
        let open: BTreeMap<String, Vec<String>> = open_by_entity(&all)
            .into_iter()
            .map(|(r, f)| (r, f.into_iter().map(|f| f.explanation).collect()))
            .collect();
        let log = flow.writer_log();
        let tail: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("resync") || l.contains("WARN") || l.contains("ERROR"))
            .rev()
            .take(12)
            .collect();
        return Err(format!("{e}: picked {picked:?}\nopen {open:#?}\nwriter log {tail:#?}").into());
    }
    for (reference, kind) in &wanted {
        assert!(
            all.iter()
                .any(|f| f.entity_ref == *reference && f.kind == *kind),
            "{reference}: no {kind:?} in {:#?}",
            all.iter()
                .filter(|f| f.entity_ref == *reference)
                .collect::<Vec<_>>()
        );
    }
    let named: BTreeSet<&str> = all.iter().map(|f| f.entity_ref.as_str()).collect();
    let expected_names: BTreeSet<&str> = wanted.keys().copied().collect();
    assert_eq!(named, expected_names, "findings for orders nobody touched");
    let open = open_by_entity(&all);
    assert_eq!(
        open.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        [&picked[1].0, &picked[4].0, &picked[5].0]
            .into_iter()
            .map(String::as_str)
            .collect()
    );
    // The credit no resync can take back is asked for at most three times.
    more_runs(&flow, 4.0).await?;
    let asked = flow
        .events(&flow.resync)
        .await?
        .into_iter()
        .filter(|e| matches!(e, Event::ResyncRequested(r) if r.entity_ref == picked[5].0))
        .count();
    assert_eq!(asked, 3);
    writer.stop()?;
    flow.stop().await
}
