//! **magento**: the Magento 2 / Adobe Commerce side of the bridge, once, for every service
//! that talks to the store.
//!
//! - [`json`]: reading Magento payloads leniently (numbers as strings, missing keys,
//!   `extension_attributes`), with bounded values and errors that name the field;
//! - [`order`], [`creditmemo`], [`shipment`], [`source_item`]: the mapping of a REST order,
//!   credit memo, shipment or MSI source item to the bridge's events;
//! - [`rest`]: the REST client (reads for ingest and reconciliation, write-backs for
//!   magento-writer), its settings and its classified errors;
//! - [`adobe_io_signature`], [`commerce_signature`], [`hmac_signature`]: the webhook
//!   signature schemes (Adobe I/O Events, Commerce webhooks, the shared-secret doorbell).

pub mod adobe_io_signature;
pub mod commerce_signature;
pub mod creditmemo;
pub mod hmac_signature;
pub mod json;
pub mod order;
pub mod rest;
pub mod shipment;
pub mod source_item;

pub use creditmemo::map_creditmemo;
pub use json::{FieldError, Obj};
pub use order::{Mapped, map_order};
pub use shipment::map_shipment;
pub use source_item::map_source_item;
