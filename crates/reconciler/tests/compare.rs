//! The comparison, without a broker: one order as the events tell it, as Magento shows it
//! and as the ERP booked it, each way it can go wrong.

use bridge_events::Event;
use bridge_events::order::OrderPlaced;
use bridge_events::reconciliation::{FindingKind, ResyncTarget, Severity};
use bridge_events::samples;
use erp::connector::{ErpLine, ErpOrder, ErpTotals, SalesOrderDoc};
use erp::mapping::Mapping;
use reconciler::compare::{
    Difference, MagentoOrder, OrderComparison, OrderSides, compare_order, compare_stock,
    erp_order_without_magento,
};
use reconciler::expected::ExpectedOrder;
use rust_decimal::Decimal;

const MAPPING: &str = include_str!("../../../deploy/config/mapping.toml");

struct Case {
    expected: ExpectedOrder,
    doc: SalesOrderDoc,
    magento: MagentoOrder,
    erp: ErpOrder,
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap_or_default()
}

fn case(lines: usize) -> Result<Case, Box<dyn std::error::Error>> {
    let mapping = Mapping::parse(MAPPING)?;
    let placed: OrderPlaced = samples::order_placed("000000042", lines);
    let mut expected = ExpectedOrder::default();
    expected.apply(&Event::OrderPlaced(placed.clone()), |s| {
        mapping.creates_on(s)
    });
    let doc = mapping.sales_order(&placed)?;
    let t = &placed.totals;
    let magento = MagentoOrder {
        increment_id: placed.order_ref.clone(),
        status: placed.status.clone(),
        currency: placed.order_currency.clone(),
        subtotal: t.subtotal,
        discount: t.discount_amount,
        shipping: t.shipping_amount,
        tax: t.tax_amount,
        grand_total: t.grand_total,
    };
    let erp = ErpOrder {
        id: "SO-000007".into(),
        external_ref: placed.order_ref.clone(),
        status: "confirmed".into(),
        currency: placed.order_currency.clone(),
        totals: ErpTotals {
            subtotal: t.subtotal,
            discount_amount: t.discount_amount,
            shipping_amount: t.shipping_amount,
            tax_amount: t.tax_amount,
            grand_total: t.grand_total,
        },
        lines: doc
            .lines
            .iter()
            .map(|l| ErpLine {
                item_code: l.item_code.clone(),
                quantity: l.quantity,
            })
            .collect(),
        credited: Decimal::ZERO,
        customer_ref: Some(doc.customer.external_ref.clone()),
        booked_at: None,
    };
    Ok(Case {
        expected,
        doc,
        magento,
        erp,
    })
}

fn run(
    c: &Case,
    erp: Option<&ErpOrder>,
    magento: Option<&MagentoOrder>,
    tolerance: &str,
) -> OrderComparison {
    compare_order(
        &OrderSides {
            order_ref: "000000042",
            expected: &c.expected,
            doc: &c.doc,
            magento,
            erp,
        },
        dec(tolerance),
    )
}

fn kinds(d: &[Difference]) -> Vec<FindingKind> {
    d.iter().map(|d| d.kind).collect()
}

type R = Result<(), Box<dyn std::error::Error>>;

#[test]
fn an_order_booked_as_placed_has_no_difference() -> R {
    let c = case(3)?;
    let out = run(&c, Some(&c.erp), Some(&c.magento), "0");
    assert_eq!(out, OrderComparison::default());
    Ok(())
}

#[test]
fn a_dropped_line_is_named_with_its_sku_quantity_and_both_orders() -> R {
    let mut c = case(3)?;
    let dropped = c.erp.lines.pop().ok_or("line")?;
    c.erp.totals.subtotal -= dec("39.98");
    c.erp.totals.grand_total -= dec("39.98");
    let out = run(&c, Some(&c.erp), Some(&c.magento), "0.01");
    let missing = out
        .differences
        .iter()
        .find(|d| d.kind == FindingKind::LineMissing)
        .ok_or("no LINE_MISSING")?;
    assert_eq!(missing.detail, dropped.item_code);
    assert_eq!(
        missing.explanation,
        format!(
            "ERP order SO-000007 is missing line SKU-0002 ×2 (item {}) of Magento order #000000042",
            dropped.item_code
        )
    );
    assert_eq!(missing.repair, Some(ResyncTarget::Erp));
    assert!(kinds(&out.differences).contains(&FindingKind::TotalMismatch));
    Ok(())
}

#[test]
fn a_quantity_booked_differently_is_a_quantity_mismatch() -> R {
    let mut c = case(2)?;
    c.erp.lines[0].quantity = dec("1");
    let out = run(&c, Some(&c.erp), Some(&c.magento), "0");
    let d = &out.differences[0];
    assert_eq!(d.kind, FindingKind::LineQtyMismatch);
    assert_eq!(d.difference, Some(dec("-1")));
    assert_eq!(
        (d.magento_value.as_deref(), d.erp_value.as_deref()),
        (Some("2"), Some("1"))
    );
    Ok(())
}

#[test]
fn a_cent_of_tax_is_rounding_within_the_tolerance_and_a_finding_without() -> R {
    let mut c = case(1)?;
    c.erp.totals.tax_amount -= dec("0.01");
    c.erp.totals.grand_total -= dec("0.01");
    let tolerated = run(&c, Some(&c.erp), Some(&c.magento), "0.01");
    assert!(tolerated.differences.is_empty());
    assert_eq!(tolerated.rounding, dec("0.02"));
    let strict = run(&c, Some(&c.erp), Some(&c.magento), "0");
    assert_eq!(
        kinds(&strict.differences),
        vec![FindingKind::TaxMismatch, FindingKind::TotalMismatch]
    );
    let tax = &strict.differences[0];
    assert_eq!(tax.difference, Some(dec("-0.01")));
    assert_eq!(tax.severity, Severity::Warning);
    assert!(
        tax.explanation.contains("(authoritative)"),
        "{}",
        tax.explanation
    );
    assert!(
        tax.explanation.contains("ERP lower by 0.01 EUR"),
        "{}",
        tax.explanation
    );
    Ok(())
}

#[test]
fn a_discount_difference_is_its_own_kind() -> R {
    let mut c = case(1)?;
    c.erp.totals.discount_amount = Decimal::ZERO;
    let out = run(&c, Some(&c.erp), Some(&c.magento), "0.01");
    assert_eq!(kinds(&out.differences), vec![FindingKind::DiscountMismatch]);
    Ok(())
}

#[test]
fn an_order_the_erp_lacks_is_missing_unless_it_never_belonged_there() -> R {
    let c = case(1)?;
    let out = run(&c, None, Some(&c.magento), "0");
    assert_eq!(
        kinds(&out.differences),
        vec![FindingKind::OrderMissingInErp]
    );
    assert_eq!(out.differences[0].severity, Severity::Critical);

    // Cancelled before it reached a creating status: erp-writer never creates it.
    let mut never = case(1)?;
    let mut placed = never.expected.placed.clone().ok_or("placed")?;
    placed.status = "pending_payment".into();
    never.expected = ExpectedOrder::default();
    let mapping = Mapping::parse(MAPPING)?;
    never
        .expected
        .apply(&Event::OrderPlaced(placed.clone()), |s| {
            mapping.creates_on(s)
        });
    assert!(!never.expected.belongs_in_erp());
    let out = run(&never, None, Some(&never.magento), "0");
    assert!(out.differences.is_empty(), "{:?}", out.differences);
    Ok(())
}

#[test]
fn cancellations_must_agree_both_ways() -> R {
    let mut c = case(1)?;
    c.magento.status = "canceled".into();
    let out = run(&c, Some(&c.erp), Some(&c.magento), "0");
    assert_eq!(
        kinds(&out.differences),
        vec![FindingKind::CancellationMismatch]
    );
    assert_eq!(out.differences[0].repair, Some(ResyncTarget::Erp));

    let mut c = case(1)?;
    c.erp.status = "cancelled".into();
    let out = run(&c, Some(&c.erp), Some(&c.magento), "0");
    assert_eq!(kinds(&out.differences), vec![FindingKind::StatusMismatch]);
    assert_eq!(out.differences[0].repair, None, "a person decides");

    // Both cancelled: the lines and amounts no longer matter.
    let mut c = case(2)?;
    c.magento.status = "canceled".into();
    c.erp.status = "cancelled".into();
    c.erp.lines.pop();
    assert!(
        run(&c, Some(&c.erp), Some(&c.magento), "0")
            .differences
            .is_empty()
    );
    Ok(())
}

#[test]
fn an_order_magento_lost_is_left_to_the_erp_side_scan() -> R {
    let c = case(1)?;
    // The order comparison says nothing; the scan over the ERP's orders reports it once.
    assert!(run(&c, Some(&c.erp), None, "0").differences.is_empty());
    assert!(run(&c, None, None, "0").differences.is_empty());
    let d = erp_order_without_magento("000000042", Some("SO-000007"));
    assert_eq!(d.kind, FindingKind::OrderMissingInMagento);
    assert_eq!(
        d.explanation,
        "ERP order SO-000007 has the shop reference #000000042, but Magento has no such order"
    );
    assert_eq!(d.repair, None);
    Ok(())
}

#[test]
fn refunds_extra_lines_and_customers_are_compared() -> R {
    let mut c = case(1)?;
    c.expected.refunded = dec("10.00");
    c.erp.lines.push(ErpLine {
        item_code: "GIFT".into(),
        quantity: dec("1"),
    });
    c.erp.customer_ref = Some("customer:99".into());
    let out = run(&c, Some(&c.erp), Some(&c.magento), "0");
    let found = kinds(&out.differences);
    assert!(found.contains(&FindingKind::RefundMismatch), "{found:?}");
    assert!(found.contains(&FindingKind::Other), "{found:?}");
    assert!(found.contains(&FindingKind::CustomerMismatch), "{found:?}");
    let refund = out
        .differences
        .iter()
        .find(|d| d.kind == FindingKind::RefundMismatch)
        .ok_or("refund")?;
    assert_eq!(refund.difference, Some(dec("-10.00")));
    Ok(())
}

#[test]
fn stock_differences_name_both_sides_and_repair_magento() -> R {
    assert_eq!(
        compare_stock("S", "default", "S", "WH-MAIN", dec("5"), dec("5")),
        None
    );
    let d = compare_stock("S", "default", "S", "WH-MAIN", dec("5"), dec("20"))
        .ok_or("no difference")?;
    assert_eq!(d.kind, FindingKind::StockMismatch);
    assert_eq!(d.difference, Some(dec("15")));
    assert_eq!(d.severity, Severity::Critical);
    assert_eq!(d.repair, Some(ResyncTarget::Magento));
    assert!(
        d.explanation
            .contains("the ERP (authoritative) has 20 in WH-MAIN")
    );
    Ok(())
}

#[test]
fn expected_state_follows_the_order_events() -> R {
    let mapping = Mapping::parse(MAPPING)?;
    let creates = |s: &str| mapping.creates_on(s);
    let mut e = ExpectedOrder::default();
    for event in samples::one_of_each() {
        e.apply(&event, creates);
    }
    assert!(e.placed.is_some());
    // A credit memo delivered twice counts once.
    let memo = samples::one_of_each()
        .into_iter()
        .find(|e| matches!(e, Event::CreditMemoCreated(_)))
        .ok_or("memo")?;
    let once = e.refunded;
    e.apply(&memo, creates);
    assert_eq!(e.refunded, once);
    Ok(())
}
