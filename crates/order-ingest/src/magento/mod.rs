//! Magento payloads: reading them leniently and mapping them to bridge events.

pub mod creditmemo;
pub mod json;
pub mod order;
pub mod shipment;
pub mod source_item;

pub use creditmemo::map_creditmemo;
pub use json::{FieldError, Obj};
pub use order::{Mapped, map_order};
pub use shipment::map_shipment;
pub use source_item::map_source_item;
