//! The order shapes the sim generates from: the dev fixtures (real Magento REST shapes,
//! see `crates/magento/tests/fixtures/magento/SOURCES.md`), compiled in.

use std::sync::OnceLock;

use serde_json::Value;

/// An order to copy, and whether it is a refunded one (it then gets a credit memo).
#[derive(Debug, Clone)]
pub struct Template {
    /// The REST order.
    pub order: Value,
    /// Closed after a full refund.
    pub refunded: bool,
}

const ORDERS: &[(&str, bool)] = &[
    (
        include_str!(
            "../../magento/tests/fixtures/magento/orders/order_simple_bundle_configurable_pending.json"
        ),
        false,
    ),
    (
        include_str!(
            "../../magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
        ),
        false,
    ),
    (
        include_str!(
            "../../magento/tests/fixtures/magento/orders/order_closed_refunded_configurable.json"
        ),
        true,
    ),
];

const CREDITMEMO: &str =
    include_str!("../../magento/tests/fixtures/magento/orders/creditmemo_get.json");

/// The order templates (simple + bundle + configurable pending; discount + tax invoiced;
/// configurable refunded and closed). A fixture that does not parse is left out.
pub fn orders() -> &'static [Template] {
    static PARSED: OnceLock<Vec<Template>> = OnceLock::new();
    PARSED.get_or_init(|| {
        ORDERS
            .iter()
            .filter_map(|(text, refunded)| {
                serde_json::from_str(text).ok().map(|order| Template {
                    order,
                    refunded: *refunded,
                })
            })
            .collect()
    })
}

/// The credit memo fixture.
pub fn creditmemo() -> Value {
    serde_json::from_str(CREDITMEMO).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_fixture_parses() {
        assert_eq!(super::orders().len(), 3);
        assert!(super::creditmemo().is_object());
    }
}
