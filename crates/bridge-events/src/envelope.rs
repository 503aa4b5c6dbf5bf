//! The envelope every event carries.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (Avro `timestamp-millis`).
pub type Millis = i64;

/// The wall clock in [`Millis`] (0 on a clock before 1970).
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Identity, type, version, times and lineage of an event (`bridge.events.Envelope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Deterministic UUIDv5 of the business fact; consumers dedupe by it.
    pub event_id: String,
    /// The record's full name.
    pub event_type: String,
    /// Schema version the event was written with.
    pub schema_version: i32,
    /// Business time in the source system.
    pub occurred_at: Millis,
    /// When the bridge wrote it.
    pub produced_at: Millis,
    /// Source system and scope, e.g. `magento:default`.
    pub source: String,
    /// What the event is about: order increment id or `sku|source_code`.
    pub correlation_id: String,
    /// The event that caused this one.
    pub causation_id: Option<String>,
}
