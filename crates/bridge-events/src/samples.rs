//! Realistic example events of every type, for tests, benchmarks and demos. Money has
//! four decimal places where Magento has them; customers are pseudonymous references.

use rust_decimal::Decimal;

use crate::envelope::Envelope;
use crate::erp::{
    ErpOrderResult, ErpOutcome, OrderShipped, StockAdjustmentLine, StockAdjustmentPosted,
};
use crate::event::{AvroEvent, Event};
use crate::ids::FactIdentity;
use crate::inventory::{InventoryMovement, MovementKind, StockDeltaAggregated};
use crate::order::{
    CreditMemoCreated, CreditMemoLine, LineQuantity, OrderCancelled, OrderLine, OrderPlaced,
    OrderTotals, OrderTransition, OrderUpdated,
};
use crate::reconciliation::{
    FindingKind, FindingState, ReconciliationFinding, ResyncRequested, ResyncTarget, Severity,
};

const T0: i64 = 1_710_165_771_000; // 2024-03-11 14:02:51 UTC

fn money(unscaled: i64) -> Decimal {
    Decimal::new(unscaled, 4)
}

/// An envelope for a fact of type `E` about `entity`.
pub fn envelope<E: AvroEvent>(entity: &str, occurred_at: i64) -> Envelope {
    let fact = E::RECORD.rsplit('.').next().unwrap_or(E::RECORD);
    Envelope {
        event_id: FactIdentity {
            source: "magento:default",
            entity,
            fact,
            version: Some(occurred_at),
        }
        .event_id(),
        event_type: E::RECORD.to_owned(),
        schema_version: E::VERSION,
        occurred_at,
        produced_at: occurred_at + 250,
        source: "magento:default".to_owned(),
        correlation_id: entity.to_owned(),
        causation_id: None,
    }
}

/// An order with `lines` simple lines at 19.9900 each, 21 % tax, a discount and shipping.
pub fn order_placed(order_ref: &str, lines: usize) -> OrderPlaced {
    let lines: Vec<OrderLine> = (0..lines)
        .map(|i| OrderLine {
            line_id: format!("{}", 1000 + i),
            parent_line_id: None,
            sku: format!("SKU-{i:04}"),
            name: format!("Product {i}"),
            product_type: "simple".to_owned(),
            qty_ordered: money(20_000),
            unit_price: money(199_900),
            discount_amount: money(20_000),
            tax_amount: money(79_758),
            tax_percent: money(210_000),
            tax_class: Some("Taxable Goods".to_owned()),
            row_total: money(399_800),
            base_row_total: money(399_800),
        })
        .collect();
    let n = lines.len() as i64;
    let totals = OrderTotals {
        subtotal: money(399_800 * n),
        discount_amount: money(20_000 * n),
        shipping_amount: money(50_000),
        tax_amount: money(79_758 * n),
        grand_total: money(399_800 * n - 20_000 * n + 50_000 + 79_758 * n),
    };
    OrderPlaced {
        envelope: envelope::<OrderPlaced>(order_ref, T0),
        order_ref: order_ref.to_owned(),
        order_id: "42".to_owned(),
        store_id: 1,
        state: "new".to_owned(),
        status: "pending".to_owned(),
        created_at: T0,
        updated_at: T0,
        order_currency: "EUR".to_owned(),
        base_currency: "EUR".to_owned(),
        base_totals: totals.clone(),
        totals,
        shipping_method: Some("flatrate_flatrate".to_owned()),
        payment_method: "checkmo".to_owned(),
        customer_ref: "customer:17".to_owned(),
        customer_is_guest: false,
        customer_group_id: Some(1),
        ship_to_country: Some("NL".to_owned()),
        lines,
    }
}

/// A reservation of `qty` units of `sku` at `source`.
pub fn inventory_movement(sku: &str, source: &str, qty: i64) -> InventoryMovement {
    let key = format!("{sku}|{source}");
    InventoryMovement {
        envelope: envelope::<InventoryMovement>(&key, T0),
        sku: sku.to_owned(),
        source_code: source.to_owned(),
        kind: MovementKind::Reservation,
        quantity: Decimal::from(-qty),
        order_ref: Some("000000042".to_owned()),
    }
}

/// One event of every type.
pub fn one_of_each() -> Vec<Event> {
    let line = LineQuantity {
        line_id: "1000".into(),
        sku: "SKU-0000".into(),
        qty: money(10_000),
    };
    let totals = order_placed("000000042", 2).totals;
    vec![
        order_placed("000000042", 3).into(),
        OrderUpdated {
            envelope: envelope::<OrderUpdated>("000000042", T0 + 60_000),
            order_ref: "000000042".into(),
            order_id: "42".into(),
            store_id: 1,
            transition: OrderTransition::Shipped,
            previous_state: Some("processing".into()),
            previous_status: Some("processing".into()),
            state: "complete".into(),
            status: "complete".into(),
            updated_at: T0 + 60_000,
            total_invoiced: Some(totals.grand_total),
            total_refunded: None,
            shipped: vec![line.clone()],
        }
        .into(),
        OrderCancelled {
            envelope: envelope::<OrderCancelled>("000000043", T0),
            order_ref: "000000043".into(),
            order_id: "43".into(),
            store_id: 1,
            cancelled_at: T0,
            reason: None,
            released: vec![line.clone()],
        }
        .into(),
        CreditMemoCreated {
            envelope: envelope::<CreditMemoCreated>("000000042", T0 + 120_000),
            order_ref: "000000042".into(),
            order_id: "42".into(),
            store_id: 1,
            credit_memo_id: "7".into(),
            credit_memo_ref: "000000007".into(),
            created_at: T0 + 120_000,
            currency: "EUR".into(),
            subtotal: money(199_900),
            shipping_amount: money(0),
            tax_amount: money(41_979),
            adjustment_positive: money(0),
            adjustment_negative: money(5_000),
            grand_total: money(236_879),
            lines: vec![CreditMemoLine {
                line_id: "1000".into(),
                sku: "SKU-0000".into(),
                qty: money(10_000),
                row_total: money(199_900),
                tax_amount: money(41_979),
                discount_amount: money(0),
                back_to_stock: true,
            }],
        }
        .into(),
        inventory_movement("SKU-0000", "ams", 2).into(),
        StockDeltaAggregated {
            envelope: envelope::<StockDeltaAggregated>("SKU-0000|ams", T0),
            sku: "SKU-0000".into(),
            source_code: "ams".into(),
            window_start: T0 - 300_000,
            window_end: T0,
            net_delta: Decimal::from(-7),
            absolute_level: Some(Decimal::from(120)),
            total_delta: Some(Decimal::from(-11)),
            movement_count: 9,
            first_event_at: T0 - 290_000,
            last_event_at: T0 - 1_000,
            late_correction: false,
        }
        .into(),
        ErpOrderResult {
            envelope: envelope::<ErpOrderResult>("000000042", T0 + 5_000),
            order_ref: "000000042".into(),
            outcome: ErpOutcome::Rejected,
            erp_system: "erp-sim".into(),
            erp_order_id: None,
            reason_code: Some("credit_limit".into()),
            reason: Some("customer credit limit of 1000.00 EUR exceeded".into()),
            currency: Some("EUR".into()),
            erp_totals: Some(totals),
        }
        .into(),
        StockAdjustmentPosted {
            envelope: envelope::<StockAdjustmentPosted>("ams", T0),
            window_key: format!("ams|{}|{}|0", T0 - 300_000, T0),
            source_code: "ams".into(),
            warehouse: "WH-AMS".into(),
            erp_system: "erp-sim".into(),
            erp_document_id: Some("ADJ-1".into()),
            window_start: T0 - 300_000,
            window_end: T0,
            lines: vec![StockAdjustmentLine {
                sku: "SKU-0000".into(),
                item_code: "ITEM-0000".into(),
                quantity: Decimal::from(-7),
            }],
        }
        .into(),
        OrderShipped {
            envelope: envelope::<OrderShipped>("000000042", T0 + 86_400_000),
            order_ref: "000000042".into(),
            erp_system: "erp-sim".into(),
            erp_order_id: "SO-000042".into(),
            shipment_id: "SH-000007".into(),
            carrier: Some("ups".into()),
            tracking_number: Some("1Z0000000007".into()),
            shipped_at: T0 + 86_000_000,
        }
        .into(),
        ReconciliationFinding {
            envelope: envelope::<ReconciliationFinding>("000000042", T0),
            finding_id: "f-1".into(),
            kind: FindingKind::LineMissing,
            severity: Severity::Critical,
            state: FindingState::Open,
            entity_type: "order".into(),
            entity_ref: "000000042".into(),
            magento_value: Some("SKU-0001 × 2".into()),
            erp_value: None,
            difference: Some(money(-399_800)),
            first_seen_at: T0,
            explanation: "ERP order SO-1 is missing line SKU-0001 ×2 (Magento #000000042)".into(),
        }
        .into(),
        ResyncRequested {
            envelope: envelope::<ResyncRequested>("SKU-0000|ams", T0),
            target: ResyncTarget::Magento,
            entity_type: "stock".into(),
            entity_ref: "SKU-0000|ams".into(),
            reason: "ERP holds 113, Magento 120".into(),
            finding_id: Some("f-2".into()),
            attempt: 1,
            quantity: Some(Decimal::from(113)),
        }
        .into(),
    ]
}
