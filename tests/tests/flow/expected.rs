//! What the ERP must hold for the orders magento-sim generated, and where it differs;
//! generating orders with their lifecycles.

use super::*;

/// A decimal of a Magento JSON number or string.
pub fn money(value: &Value) -> Decimal {
    match value {
        Value::String(s) => s.parse().unwrap_or_default(),
        Value::Number(n) => n.to_string().parse().unwrap_or_default(),
        _ => Decimal::ZERO,
    }
}

/// What the ERP should hold for one Magento order, from the sim's final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub cancelled: bool,
    pub currency: String,
    pub subtotal: Decimal,
    pub discount: Decimal,
    pub shipping: Decimal,
    pub tax: Decimal,
    pub grand_total: Decimal,
    pub credited: Decimal,
}

/// The expectation per order reference.
pub fn expected(sim: &Sim) -> BTreeMap<String, Expected> {
    let store = sim.shared.store();
    let mut credited: BTreeMap<u64, Decimal> = BTreeMap::new();
    for memo in store.creditmemos() {
        if let Some(order) = memo["order_id"].as_u64() {
            *credited.entry(order).or_default() += money(&memo["grand_total"]);
        }
    }
    store
        .orders()
        .filter_map(|o| {
            let reference = o["increment_id"].as_str()?.to_owned();
            let id = o["entity_id"].as_u64().unwrap_or_default();
            Some((
                reference,
                Expected {
                    cancelled: o["status"] == "canceled",
                    currency: o["order_currency_code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    subtotal: money(&o["subtotal"]),
                    discount: money(&o["discount_amount"]).abs(),
                    shipping: money(&o["shipping_amount"]),
                    tax: money(&o["tax_amount"]),
                    grand_total: money(&o["grand_total"]),
                    credited: credited.get(&id).copied().unwrap_or_default(),
                },
            ))
        })
        .collect()
}

/// How the ERP's books differ from `expected`; empty when they agree. Cancelled orders
/// may be absent (first seen cancelled) or present and cancelled.
pub fn differences(erp: &ErpSim, expected: &BTreeMap<String, Expected>) -> Vec<String> {
    let books = erp.shared.books();
    let mut by_ref: BTreeMap<&str, Vec<&erp_sim::model::SalesOrder>> = BTreeMap::new();
    for order in books.orders.values() {
        by_ref
            .entry(order.external_ref.as_str())
            .or_default()
            .push(order);
    }
    let mut out = Vec::new();
    for (reference, want) in expected {
        let found = by_ref.get(reference.as_str()).cloned().unwrap_or_default();
        match found.as_slice() {
            [] if want.cancelled => {}
            [] => out.push(format!("{reference}: not in the ERP")),
            [order] => {
                if want.cancelled && order.status != "cancelled" {
                    out.push(format!(
                        "{reference}: cancelled in Magento, {} in the ERP",
                        order.status
                    ));
                }
                let t = &order.totals;
                let got = (
                    t.subtotal,
                    t.discount_amount,
                    t.shipping_amount,
                    t.tax_amount,
                    t.grand_total,
                );
                let wanted = (
                    want.subtotal,
                    want.discount,
                    want.shipping,
                    want.tax,
                    want.grand_total,
                );
                if got != wanted || order.currency != want.currency {
                    out.push(format!(
                        "{reference}: ERP totals {got:?} {} vs Magento {wanted:?} {}",
                        order.currency, want.currency
                    ));
                }
                if order.credited != want.credited {
                    out.push(format!(
                        "{reference}: ERP credited {} vs Magento credit memos {}",
                        order.credited, want.credited
                    ));
                }
            }
            many => out.push(format!("{reference}: {} ERP orders", many.len())),
        }
    }
    out
}

/// Generates `count` orders and walks some through their lives: every fifth is cancelled,
/// every fifth invoiced and shipped, every fifth invoiced and refunded.
pub fn generate_with_lifecycles(flow: &Flow, count: usize) {
    let ids: Vec<u64> = flow
        .sim
        .shared
        .generate(count)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut store = flow.sim.shared.store();
    for (n, id) in ids.iter().enumerate() {
        let steps: &[magento_sim::Action] = match n % 5 {
            0 => &[magento_sim::Action::Cancel],
            1 => &[magento_sim::Action::Invoice, magento_sim::Action::Ship],
            2 => &[magento_sim::Action::Invoice, magento_sim::Action::Refund],
            _ => &[],
        };
        for step in steps {
            // Some templates are past these steps already; the sim refuses those.
            let _ = store.act(*id, *step);
        }
    }
}
