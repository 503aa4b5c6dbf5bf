//! Magento payloads: reading them leniently and mapping them to bridge events.

pub mod creditmemo;
pub mod json;
pub mod order;

pub use creditmemo::map_creditmemo;
pub use json::{FieldError, Obj};
pub use order::{Mapped, map_order};
