//! An MSI source item (`GET /V1/inventory/source-items`) to a `SOURCE_ITEM_SET` movement:
//! the absolute quantity the source holds now.
//!
//! Source items have no `updated_at`, so they are read in full, periodically; the observation
//! time is the fact's version, so the same quantity seen again after a change is a new
//! event, while one sync read twice (a retried page) is one.

use bridge_events::ids::FactIdentity;
use bridge_events::inventory::{InventoryMovement, MovementKind};
use bridge_events::{AvroEvent, Millis};

use crate::json::{FieldError, Obj};
use crate::order::{envelope, sku};

/// Maps `item`, observed at `observed_at`, from `source`.
pub fn map_source_item(
    item: &Obj<'_>,
    source: &str,
    observed_at: Millis,
    produced_at: Millis,
) -> Result<InventoryMovement, FieldError> {
    let sku = sku(item)?;
    let source_code = item.str("source_code")?;
    let quantity = item.decimal("quantity")?;
    let entity = format!("{sku}|{source_code}");
    let identity = FactIdentity {
        source,
        entity: &entity,
        fact: "InventoryMovement:SOURCE_ITEM_SET",
        version: Some(observed_at),
    };
    Ok(InventoryMovement {
        envelope: envelope(
            identity,
            InventoryMovement::RECORD,
            observed_at,
            produced_at,
            &entity,
        ),
        sku,
        source_code,
        kind: MovementKind::SourceItemSet,
        quantity,
        order_ref: None,
    })
}
