//! The comparison itself, pure: one order as Magento has it, as the bridge expects it and
//! as the ERP booked it → the differences, each with a sentence a finance person can read.
//! The ERP is the financial authority: amounts are reported as "ERP has X, Magento Y" and
//! a difference is ERP minus Magento. Differences up to the tolerance are rounding.

use std::collections::BTreeMap;

use bridge_events::reconciliation::{FindingKind, ResyncTarget, Severity};
use erp::connector::{ErpOrder, SalesOrderDoc};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::expected::ExpectedOrder;

/// An order as Magento's REST API shows it now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MagentoOrder {
    /// `increment_id`.
    pub increment_id: String,
    /// `status` (`canceled`, `processing`, ...).
    pub status: String,
    /// `order_currency_code`.
    pub currency: String,
    /// `subtotal`.
    pub subtotal: Decimal,
    /// `discount_amount`, as a positive amount.
    pub discount: Decimal,
    /// `shipping_amount`.
    pub shipping: Decimal,
    /// `tax_amount`.
    pub tax: Decimal,
    /// `grand_total`.
    pub grand_total: Decimal,
}

/// A Magento number — amount or quantity — from a JSON number or string; absent is zero.
pub fn money(value: &Value) -> Decimal {
    match value {
        Value::String(s) => s.trim().parse().unwrap_or_default(),
        Value::Number(n) => n.to_string().parse().unwrap_or_default(),
        _ => Decimal::ZERO,
    }
}

impl MagentoOrder {
    /// From a `GET /V1/orders` row; `None` without an increment id.
    pub fn from_json(row: &Value) -> Option<Self> {
        Some(Self {
            increment_id: row.get("increment_id")?.as_str()?.to_owned(),
            status: row
                .get("status")
                .or_else(|| row.get("state"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            currency: row
                .get("order_currency_code")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            subtotal: money(&row["subtotal"]),
            discount: money(&row["discount_amount"]).abs(),
            shipping: money(&row["shipping_amount"]),
            tax: money(&row["tax_amount"]),
            grand_total: money(&row["grand_total"]),
        })
    }

    /// Cancelled in Magento.
    pub fn cancelled(&self) -> bool {
        self.status == "canceled" || self.status == "cancelled"
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What differs.
    pub kind: FindingKind,
    /// How urgent.
    pub severity: Severity,
    /// Which part (a SKU, `grand_total`, ...), so one order can have several findings.
    pub detail: String,
    /// Magento's value.
    pub magento_value: Option<String>,
    /// The ERP's value.
    pub erp_value: Option<String>,
    /// ERP minus Magento.
    pub difference: Option<Decimal>,
    /// The sentence.
    pub explanation: String,
    /// Which side a resync would repair, if any can.
    pub repair: Option<ResyncTarget>,
}

/// The differences of one order, and the rounding tolerated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderComparison {
    /// What differs.
    pub differences: Vec<Difference>,
    /// Σ |ERP − Magento| of amounts within the tolerance.
    pub rounding: Decimal,
}

/// What is compared for one order.
pub struct OrderSides<'a> {
    /// The increment id.
    pub order_ref: &'a str,
    /// What the bridge knows from the order events.
    pub expected: &'a ExpectedOrder,
    /// The ERP document the mapping makes of the placed order.
    pub doc: &'a SalesOrderDoc,
    /// Magento now (`None`: Magento does not have it).
    pub magento: Option<&'a MagentoOrder>,
    /// The ERP now (`None`: the ERP does not have it).
    pub erp: Option<&'a ErpOrder>,
}

fn severity_of(amount: Decimal) -> Severity {
    if amount.abs() >= Decimal::ONE {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

fn qty(q: Decimal) -> String {
    q.normalize().to_string()
}

/// An amount as people write it: at least two decimals, no trailing zeros beyond.
pub fn amount(a: Decimal) -> String {
    let n = a.normalize();
    if n.scale() < 2 {
        format!("{n:.2}")
    } else {
        n.to_string()
    }
}

/// Compares one order; amounts differing by at most `tolerance` are rounding.
pub fn compare_order(sides: &OrderSides<'_>, tolerance: Decimal) -> OrderComparison {
    let mut out = OrderComparison::default();
    let r = sides.order_ref;
    let Some(magento) = sides.magento else {
        // An order Magento does not have is the ERP-side scan's finding (one owner for
        // every ERP order); if the ERP lacks it too, the two systems agree.
        return out;
    };
    let cancelled = magento.cancelled() || sides.expected.cancelled;
    let Some(erp) = sides.erp else {
        if sides.expected.belongs_in_erp() && !magento.cancelled() {
            out.differences.push(Difference {
                kind: FindingKind::OrderMissingInErp,
                severity: Severity::Critical,
                detail: String::new(),
                magento_value: Some(format!(
                    "{} {} ({})",
                    amount(magento.grand_total),
                    magento.currency,
                    magento.status
                )),
                erp_value: None,
                difference: None,
                explanation: format!(
                    "The ERP has no sales order for Magento order #{r} ({}, grand total {} {}); \
                     if erp-writer rejected it, its parked record says why",
                    magento.status,
                    amount(magento.grand_total),
                    magento.currency
                ),
                repair: Some(ResyncTarget::Erp),
            });
        }
        return out;
    };
    let erp_cancelled = erp.status == "cancelled" || erp.status == "canceled";
    if cancelled && !erp_cancelled {
        out.differences.push(Difference {
            kind: FindingKind::CancellationMismatch,
            severity: Severity::Critical,
            detail: String::new(),
            magento_value: Some("canceled".into()),
            erp_value: Some(erp.status.clone()),
            difference: None,
            explanation: format!(
                "Magento order #{r} is cancelled but ERP order {} is still {}",
                erp.id, erp.status
            ),
            repair: Some(ResyncTarget::Erp),
        });
    }
    if erp_cancelled && !cancelled {
        out.differences.push(Difference {
            kind: FindingKind::StatusMismatch,
            severity: Severity::Critical,
            detail: String::new(),
            magento_value: Some(magento.status.clone()),
            erp_value: Some(erp.status.clone()),
            difference: None,
            explanation: format!(
                "ERP order {} is cancelled but Magento order #{r} is {}: someone cancelled it in the ERP only",
                erp.id, magento.status
            ),
            repair: None,
        });
    }
    if erp_cancelled || cancelled {
        // A cancelled order's lines and amounts are history on both sides.
        return out;
    }
    compare_lines(sides.doc, erp, r, &mut out);
    compare_amounts(magento, erp, r, tolerance, &mut out);
    if erp.credited != sides.expected.refunded {
        let d = erp.credited - sides.expected.refunded;
        out.differences.push(Difference {
            kind: FindingKind::RefundMismatch,
            severity: severity_of(d),
            detail: String::new(),
            magento_value: Some(amount(sides.expected.refunded)),
            erp_value: Some(amount(erp.credited)),
            difference: Some(d),
            explanation: format!(
                "ERP order {} has {} {} credited but Magento order #{r} refunded {} {} in {} credit memo(s)",
                erp.id,
                amount(erp.credited),
                erp.currency,
                amount(sides.expected.refunded),
                magento.currency,
                sides.expected.credit_memos.len()
            ),
            repair: Some(ResyncTarget::Erp),
        });
    }
    if let Some(customer) = &erp.customer_ref
        && customer != &sides.doc.customer.external_ref
    {
        out.differences.push(Difference {
            kind: FindingKind::CustomerMismatch,
            severity: Severity::Warning,
            detail: String::new(),
            magento_value: Some(sides.doc.customer.external_ref.clone()),
            erp_value: Some(customer.clone()),
            difference: None,
            explanation: format!(
                "ERP order {} is booked to customer {customer} but Magento order #{r} belongs to {}",
                erp.id, sides.doc.customer.external_ref
            ),
            repair: None,
        });
    }
    out
}

/// ERP numbers come unbounded from its API: sums and differences saturate instead of
/// panicking, and a saturated value still differs, so it is still a finding.
fn compare_lines(doc: &SalesOrderDoc, erp: &ErpOrder, r: &str, out: &mut OrderComparison) {
    // Quantities per item code on both sides (an item may be on several lines).
    let mut wanted: BTreeMap<&str, (Decimal, Vec<&str>)> = BTreeMap::new();
    for line in &doc.lines {
        let entry = wanted.entry(&line.item_code).or_default();
        entry.0 = entry.0.saturating_add(line.quantity);
        if !entry.1.contains(&line.sku.as_str()) {
            entry.1.push(&line.sku);
        }
    }
    let mut booked: BTreeMap<&str, Decimal> = BTreeMap::new();
    for line in &erp.lines {
        let booked_qty = booked.entry(&line.item_code).or_default();
        *booked_qty = booked_qty.saturating_add(line.quantity);
    }
    for (item, (quantity, skus)) in &wanted {
        let sku = skus.join("/");
        match booked.get(item) {
            None => out.differences.push(Difference {
                kind: FindingKind::LineMissing,
                severity: Severity::Critical,
                detail: (*item).to_owned(),
                magento_value: Some(format!("{sku} ×{}", qty(*quantity))),
                erp_value: None,
                difference: Some(-*quantity),
                explanation: format!(
                    "ERP order {} is missing line {sku} ×{} (item {item}) of Magento order #{r}",
                    erp.id,
                    qty(*quantity)
                ),
                repair: Some(ResyncTarget::Erp),
            }),
            Some(got) if got != quantity => out.differences.push(Difference {
                kind: FindingKind::LineQtyMismatch,
                severity: Severity::Critical,
                detail: (*item).to_owned(),
                magento_value: Some(qty(*quantity)),
                erp_value: Some(qty(*got)),
                difference: Some(got.saturating_sub(*quantity)),
                explanation: format!(
                    "ERP order {} has {sku} (item {item}) ×{} but Magento order #{r} has ×{}",
                    erp.id,
                    qty(*got),
                    qty(*quantity)
                ),
                repair: Some(ResyncTarget::Erp),
            }),
            Some(_) => {}
        }
    }
    for (item, got) in &booked {
        if !wanted.contains_key(item) {
            out.differences.push(Difference {
                kind: FindingKind::Other,
                severity: Severity::Critical,
                detail: format!("extra:{item}"),
                magento_value: None,
                erp_value: Some(format!("{item} ×{}", qty(*got))),
                difference: Some(*got),
                explanation: format!(
                    "ERP order {} has a line {item} ×{} that Magento order #{r} does not have",
                    erp.id,
                    qty(*got)
                ),
                repair: Some(ResyncTarget::Erp),
            });
        }
    }
}

fn compare_amounts(
    magento: &MagentoOrder,
    erp: &ErpOrder,
    r: &str,
    tolerance: Decimal,
    out: &mut OrderComparison,
) {
    if erp.currency != magento.currency {
        out.differences.push(Difference {
            kind: FindingKind::Other,
            severity: Severity::Critical,
            detail: "currency".into(),
            magento_value: Some(magento.currency.clone()),
            erp_value: Some(erp.currency.clone()),
            difference: None,
            explanation: format!(
                "ERP order {} is in {} but Magento order #{r} is in {}",
                erp.id, erp.currency, magento.currency
            ),
            repair: Some(ResyncTarget::Erp),
        });
        return;
    }
    let t = &erp.totals;
    let amounts = [
        (FindingKind::TaxMismatch, "tax", t.tax_amount, magento.tax),
        (
            FindingKind::DiscountMismatch,
            "discount",
            t.discount_amount,
            magento.discount,
        ),
        (
            FindingKind::TotalMismatch,
            "subtotal",
            t.subtotal,
            magento.subtotal,
        ),
        (
            FindingKind::TotalMismatch,
            "shipping",
            t.shipping_amount,
            magento.shipping,
        ),
        (
            FindingKind::TotalMismatch,
            "grand_total",
            t.grand_total,
            magento.grand_total,
        ),
    ];
    for (kind, name, erp_amount, magento_amount) in amounts {
        let d = erp_amount.saturating_sub(magento_amount);
        if d.is_zero() {
            continue;
        }
        if d.abs() <= tolerance {
            out.rounding = out.rounding.saturating_add(d.abs());
            continue;
        }
        let label = name.replace('_', " ");
        out.differences.push(Difference {
            kind,
            severity: severity_of(d),
            detail: name.to_owned(),
            magento_value: Some(amount(magento_amount)),
            erp_value: Some(amount(erp_amount)),
            difference: Some(d),
            explanation: format!(
                "ERP order {} has {label} {} {cur} (authoritative) but Magento order #{r} has {} {cur}: \
                 {more} by {} {cur}",
                erp.id,
                amount(erp_amount),
                amount(magento_amount),
                amount(d.abs()),
                cur = erp.currency,
                more = if d.is_sign_positive() { "ERP higher" } else { "ERP lower" },
            ),
            repair: Some(ResyncTarget::Erp),
        });
    }
}

/// An ERP order whose reference Magento does not know.
pub fn erp_order_without_magento(order_ref: &str, erp_id: Option<&str>) -> Difference {
    Difference {
        kind: FindingKind::OrderMissingInMagento,
        severity: Severity::Critical,
        detail: String::new(),
        magento_value: None,
        erp_value: erp_id.map(str::to_owned),
        difference: None,
        explanation: format!(
            "ERP order {} has the shop reference #{order_ref}, but Magento has no such order",
            erp_id.unwrap_or("(id unknown)")
        ),
        repair: None,
    }
}

/// A stock difference, or none.
pub fn compare_stock(
    sku: &str,
    source: &str,
    item: &str,
    warehouse: &str,
    magento: Decimal,
    erp: Decimal,
) -> Option<Difference> {
    let d = erp - magento;
    if d.is_zero() {
        return None;
    }
    Some(Difference {
        kind: FindingKind::StockMismatch,
        severity: if d.abs() >= Decimal::TEN {
            Severity::Critical
        } else {
            Severity::Warning
        },
        detail: String::new(),
        magento_value: Some(qty(magento)),
        erp_value: Some(qty(erp)),
        difference: Some(d),
        explanation: format!(
            "Stock of {sku} at {source}: the ERP (authoritative) has {} in {warehouse} (item {item}), Magento has {}; \
             Magento is set to the ERP's quantity",
            qty(erp),
            qty(magento)
        ),
        repair: Some(ResyncTarget::Magento),
    })
}
