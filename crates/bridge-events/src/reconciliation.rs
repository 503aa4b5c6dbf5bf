//! Differences found between Magento and the ERP, and the repairs they ask for.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, Millis};

/// What differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum FindingKind {
    OrderMissingInErp,
    OrderMissingInMagento,
    StatusMismatch,
    LineMissing,
    LineQtyMismatch,
    TotalMismatch,
    TaxMismatch,
    DiscountMismatch,
    RefundMismatch,
    CancellationMismatch,
    StockMismatch,
    CustomerMismatch,
    Other,
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Open, or resolved by a later run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum FindingState {
    Open,
    Resolved,
}

/// A difference, or its resolution (`bridge.events.ReconciliationFinding`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationFinding {
    /// Envelope.
    pub envelope: Envelope,
    /// Stable id per kind and entity.
    pub finding_id: String,
    /// What differs.
    pub kind: FindingKind,
    /// How urgent.
    pub severity: Severity,
    /// Open or resolved.
    pub state: FindingState,
    /// `order` or `stock`.
    pub entity_type: String,
    /// Order increment id or `sku|source_code`.
    pub entity_ref: String,
    /// Magento's value, as text.
    pub magento_value: Option<String>,
    /// The ERP's value, as text.
    pub erp_value: Option<String>,
    /// ERP minus Magento.
    #[serde(with = "crate::decimal::option")]
    pub difference: Option<Decimal>,
    /// First seen.
    pub first_seen_at: Millis,
    /// Readable explanation.
    pub explanation: String,
}

/// Which side a resync repairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResyncTarget {
    /// Post again to the ERP.
    Erp,
    /// Write to Magento.
    Magento,
}

/// A repair request (`bridge.events.ResyncRequested`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncRequested {
    /// Envelope.
    pub envelope: Envelope,
    /// Which side.
    pub target: ResyncTarget,
    /// `order` or `stock`.
    pub entity_type: String,
    /// Order increment id or `sku|source_code`.
    pub entity_ref: String,
    /// Why.
    pub reason: String,
    /// The finding that asked.
    pub finding_id: Option<String>,
    /// Attempt number, from 1.
    pub attempt: i32,
    /// Quantity to set in Magento for stock repairs.
    #[serde(with = "crate::decimal::option")]
    pub quantity: Option<Decimal>,
}
