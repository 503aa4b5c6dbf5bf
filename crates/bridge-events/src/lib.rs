//! The bridge's event contracts. Every service talks only through these events.
//!
//! - [`schema`]: the `.avsc` files of `schemas/`, compiled in and bundled into one
//!   self-contained schema per record.
//! - [`envelope`], [`order`], [`inventory`], [`erp`], [`reconciliation`]: one Rust type per
//!   record, field for field (tests prove they round-trip against the schemas).
//! - [`event`]: the [`AvroEvent`] trait and the [`Event`] sum type.
//! - [`codec`]: the Confluent wire format on `schema_registry_converter`, with typed,
//!   classified errors.
//! - [`ids`]: deterministic UUIDv5 event ids; [`decimal`]: money as Avro decimal, never float;
//!   [`topics`]: topic names and what they carry.

pub mod codec;
pub mod decimal;
pub mod envelope;
pub mod erp;
pub mod event;
pub mod evolution;
pub mod ids;
pub mod inventory;
pub mod order;
pub mod reconciliation;
pub use codec::registry_access;
pub mod samples;
pub mod schema;
pub mod topics;

pub use codec::{CodecError, EventCodec};
pub use envelope::{Envelope, Millis, now_millis};
pub use event::{AvroEvent, Event};
pub use registry_access::RegistryAccess;
