//! Deterministic event ids: UUIDv5 of a business fact's identity, so the same fact seen
//! twice — a webhook retry, a webhook and a poll, a replay — gets the same id and is
//! deduplicated by every consumer.

use chrono::{DateTime, NaiveDateTime};
use uuid::Uuid;

use crate::envelope::Millis;

/// The bridge's UUIDv5 namespace. Never change it: every id ever written depends on it.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_52d4_0c3e_4a8e_9d27_51c0_8e3a_f4b2);

/// The identity of a fact: where it comes from, what it is about, which fact, which version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactIdentity<'a> {
    /// Source system and scope, e.g. `magento:default` (store code).
    pub source: &'a str,
    /// The entity, e.g. the order increment id or `sku|source_code`.
    pub entity: &'a str,
    /// The fact type, e.g. `OrderPlaced` or `OrderUpdated:SHIPPED`.
    pub fact: &'a str,
    /// The source's version stamp of the fact (Magento `updated_at` in ms), or `None` for
    /// facts that happen once per entity (an order is placed once).
    pub version: Option<Millis>,
}

impl FactIdentity<'_> {
    /// The event id.
    pub fn event_id(&self) -> String {
        // Unit separators cannot appear in Magento codes or ids, so parts never run together.
        let version = self.version.map(|v| v.to_string()).unwrap_or_default();
        let name = [self.source, self.entity, self.fact, &version].join("\u{1f}");
        Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
    }
}

/// Why a timestamp could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is neither `YYYY-MM-DD HH:MM:SS` (UTC) nor RFC 3339")]
pub struct TimeError {
    /// The text.
    pub text: String,
}

/// Reads a Magento timestamp: REST and webhook payloads use `2024-03-11 14:02:51` (UTC),
/// Adobe I/O Events use RFC 3339 (`2024-03-11T14:02:51.811Z`).
pub fn parse_magento_time(text: &str) -> Result<Millis, TimeError> {
    let text = text.trim();
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Ok(t.and_utc().timestamp_millis());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| TimeError {
            text: text.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order_updated(stamp: &str) -> String {
        let version = parse_magento_time(stamp).ok();
        FactIdentity {
            source: "magento:default",
            entity: "000000042",
            fact: "OrderUpdated:SHIPPED",
            version,
        }
        .event_id()
    }

    #[test]
    fn the_same_fact_from_a_webhook_and_a_poll_has_one_id() {
        // REST poll and webhook payloads write `updated_at` one way, Adobe I/O Events another.
        let from_poll = order_updated("2024-03-11 14:02:51");
        let from_webhook = order_updated("2024-03-11 14:02:51");
        let from_io_event = order_updated("2024-03-11T14:02:51Z");
        assert_eq!(from_poll, from_webhook);
        assert_eq!(from_poll, from_io_event);
        assert_eq!(
            Uuid::parse_str(&from_poll).map(|u| u.get_version_num()),
            Ok(5)
        );
    }

    #[test]
    fn another_version_entity_fact_or_store_gives_another_id() {
        let base = FactIdentity {
            source: "magento:default",
            entity: "000000042",
            fact: "OrderPlaced",
            version: None,
        };
        let ids = [
            base.event_id(),
            FactIdentity {
                entity: "000000043",
                ..base
            }
            .event_id(),
            FactIdentity {
                fact: "OrderCancelled",
                ..base
            }
            .event_id(),
            FactIdentity {
                source: "magento:de",
                ..base
            }
            .event_id(),
            FactIdentity {
                version: Some(1),
                ..base
            }
            .event_id(),
        ];
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn parts_cannot_run_together() {
        let a = FactIdentity {
            source: "magento:a",
            entity: "b|c",
            fact: "F",
            version: None,
        };
        let b = FactIdentity {
            source: "magento:a",
            entity: "b",
            fact: "c|F",
            version: None,
        };
        assert_ne!(a.event_id(), b.event_id());
    }

    #[test]
    fn unreadable_timestamps_are_reported() {
        assert!(parse_magento_time("11/03/2024").is_err());
        assert_eq!(parse_magento_time("1970-01-01 00:00:01"), Ok(1000));
    }
}
