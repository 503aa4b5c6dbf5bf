//! The periodic MSI source-item sync: source items have no `updated_at` (EVENTS.md), so
//! they are read in full, page by page, and each quantity that differs from the last one
//! published for that SKU and source becomes a `SOURCE_ITEM_SET` movement.
//!
//! The last quantity per `sku|source` is a cursor of the source publisher, committed in
//! the same transaction as the movement, so a crash mid-sync neither loses nor repeats a
//! change. Pages are by number (source items cannot be read by key); the sync stops at
//! `page × size ≥ total_count`, never asking past the end (where Magento would answer the
//! last page again). An item added or removed while paging shifts the rest by one; what
//! a sync misses, the next one reads.

use std::sync::Arc;

use serde_json::Value;

use crate::pipeline::{IngestError, Pipeline, id_text};

/// A sync stops after this many pages and goes on at the next interval.
const MAX_PAGES: usize = 100_000;
const ORIGIN: &str = "magento:rest:/V1/inventory/source-items";

/// What one sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Pages read.
    pub pages: usize,
    /// Source items read.
    pub items: usize,
    /// Quantities that changed (records published, parkings included).
    pub changed: usize,
}

/// Reads every source item once and publishes the changes.
pub async fn sync(
    pipeline: &Arc<Pipeline>,
    page_size: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<SyncStats, IngestError> {
    let observed_at = bridge_events::now_millis();
    let mut stats = SyncStats::default();
    let page_size = page_size.max(1);
    while stats.pages < MAX_PAGES {
        let page = pipeline
            .magento
            .source_items(stats.pages + 1, page_size)
            .await?;
        stats.pages += 1;
        stats.items += page.items.len();
        progress();
        let mut outcomes = Vec::new();
        let mut cursors = Vec::new();
        for item in &page.items {
            let (name, seen) = last_seen(item);
            let last = pipeline
                .publisher
                .cursor(&name)
                .map_err(|e| magento::rest::RestError::Unavailable(format!("cursor store: {e}")))?;
            if last.as_deref() == Some(seen.as_str()) {
                continue;
            }
            outcomes.push(pipeline.source_item(item, observed_at, ORIGIN).await?);
            cursors.push((name, seen));
        }
        if !outcomes.is_empty() {
            stats.changed += outcomes.len();
            pipeline.publish(outcomes, cursors).await?;
        }
        if page.items.is_empty() || stats.pages * page_size >= page.total_count {
            break;
        }
    }
    Ok(stats)
}

/// The cursor name of `item` and what was seen: its quantity, or the whole item when it has
/// no readable quantity (parked once, not at every sync).
fn last_seen(item: &Value) -> (String, String) {
    let part = |key: &str| item.get(key).map(id_text).unwrap_or_default();
    let name = format!("source-item:{}|{}", part("sku"), part("source_code"));
    let quantity = item.get("quantity").and_then(|q| match q {
        Value::Number(n) => n.to_string().parse::<rust_decimal::Decimal>().ok(),
        Value::String(s) => s.trim().parse::<rust_decimal::Decimal>().ok(),
        _ => None,
    });
    let seen = match quantity {
        Some(q) => q.normalize().to_string(),
        None => format!("unreadable:{item}"),
    };
    (name, seen)
}
