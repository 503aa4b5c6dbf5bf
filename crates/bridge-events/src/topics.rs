//! Topic names and which records each carries (see `schemas/README.md`).

/// Order facts from Magento (OrderPlaced, OrderUpdated, OrderCancelled, CreditMemoCreated); key: order_ref.
pub const ORDERS: &str = "bridge.orders.v1";
/// InventoryMovement; key: `sku|source_code`.
pub const INVENTORY_MOVEMENTS: &str = "bridge.inventory-movements.v1";
/// StockDeltaAggregated; key: `source_code` (erp-writer batches one warehouse per partition).
pub const STOCK_DELTAS: &str = "bridge.stock-deltas.v1";
/// ErpOrderResult and OrderShipped (key: order_ref), StockAdjustmentPosted (key: source_code).
pub const ERP_RESULTS: &str = "bridge.erp-results.v1";
/// ReconciliationFinding; key: entity_ref.
pub const FINDINGS: &str = "bridge.findings.v1";
/// ResyncRequested; key: entity_ref.
pub const RESYNC_REQUESTS: &str = "bridge.resync-requests.v1";

/// Every topic with the records it may carry.
pub const LAYOUT: &[(&str, &[&str])] = &[
    (
        ORDERS,
        &[
            "bridge.events.OrderPlaced",
            "bridge.events.OrderUpdated",
            "bridge.events.OrderCancelled",
            "bridge.events.CreditMemoCreated",
        ],
    ),
    (INVENTORY_MOVEMENTS, &["bridge.events.InventoryMovement"]),
    (STOCK_DELTAS, &["bridge.events.StockDeltaAggregated"]),
    (
        ERP_RESULTS,
        &[
            "bridge.events.ErpOrderResult",
            "bridge.events.StockAdjustmentPosted",
            "bridge.events.OrderShipped",
        ],
    ),
    (FINDINGS, &["bridge.events.ReconciliationFinding"]),
    (RESYNC_REQUESTS, &["bridge.events.ResyncRequested"]),
];
