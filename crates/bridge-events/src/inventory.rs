//! Stock facts: single movements from Magento and their windowed aggregates.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, Millis};

/// What moved the stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MovementKind {
    /// An order reserved stock (negative delta).
    Reservation,
    /// A shipment took stock out (negative delta).
    Shipment,
    /// A cancellation released a reservation (positive delta).
    CancellationRelease,
    /// A return put stock back (positive delta).
    Return,
    /// An MSI source item was set to an absolute quantity.
    SourceItemSet,
}

/// One change of stock at one source (`bridge.events.InventoryMovement`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryMovement {
    /// Envelope.
    pub envelope: Envelope,
    /// SKU.
    pub sku: String,
    /// MSI source code.
    pub source_code: String,
    /// What moved it.
    pub kind: MovementKind,
    /// Signed delta, or the absolute level for `SourceItemSet`.
    #[serde(with = "crate::decimal")]
    pub quantity: Decimal,
    /// The order, if any.
    pub order_ref: Option<String>,
}

/// Net change of one SKU at one source over a closed window (`bridge.events.StockDeltaAggregated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockDeltaAggregated {
    /// Envelope.
    pub envelope: Envelope,
    /// SKU.
    pub sku: String,
    /// MSI source code.
    pub source_code: String,
    /// Window start, inclusive.
    pub window_start: Millis,
    /// Window end, exclusive.
    pub window_end: Millis,
    /// Sum of the deltas after the last absolute set, if any (the level at the window's
    /// end is `absolute_level + net_delta`); every delta is in `total_delta`.
    #[serde(with = "crate::decimal")]
    pub net_delta: Decimal,
    /// Last absolute level set in the window.
    #[serde(with = "crate::decimal::option")]
    pub absolute_level: Option<Decimal>,
    /// Sum of every delta in the window, before and after an absolute set: what a stock
    /// ledger (the ERP) is posted. `None` from producers before schema v3: use
    /// [`StockDeltaAggregated::moved`].
    #[serde(with = "crate::decimal::option")]
    pub total_delta: Option<Decimal>,
    /// Movements summed.
    pub movement_count: i64,
    /// Earliest occurred_at.
    pub first_event_at: Millis,
    /// Latest occurred_at.
    pub last_event_at: Millis,
    /// Carries movements that arrived after their window closed.
    pub late_correction: bool,
}

impl StockDeltaAggregated {
    /// What the movements of the window moved: `total_delta`, or `net_delta` from a
    /// producer before schema v3 (which summed only the deltas after a set).
    pub fn moved(&self) -> Decimal {
        self.total_delta.unwrap_or(self.net_delta)
    }
}
