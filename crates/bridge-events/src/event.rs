//! The [`AvroEvent`] trait every event type implements, and [`Event`], the sum of them all
//! for topics that carry several record types.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::Envelope;
use crate::erp::{ErpOrderResult, OrderShipped, StockAdjustmentPosted};
use crate::inventory::{InventoryMovement, StockDeltaAggregated};
use crate::order::{CreditMemoCreated, OrderCancelled, OrderPlaced, OrderUpdated};
use crate::reconciliation::{ReconciliationFinding, ResyncRequested};

/// An event type with its Avro record name and released schema version.
pub trait AvroEvent:
    Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// Full Avro record name, e.g. `bridge.events.OrderPlaced`.
    const RECORD: &'static str;
    /// Released schema version (the newest file in `schemas/history/<Record>/`).
    const VERSION: i32;
    /// The event's envelope.
    fn envelope(&self) -> &Envelope;
}

macro_rules! events {
    ($($ty:ident = $version:literal),* $(,)?) => {
        $(
            impl AvroEvent for $ty {
                const RECORD: &'static str = concat!("bridge.events.", stringify!($ty));
                const VERSION: i32 = $version;
                fn envelope(&self) -> &Envelope {
                    &self.envelope
                }
            }

            impl From<$ty> for Event {
                fn from(event: $ty) -> Self {
                    Self::$ty(event)
                }
            }
        )*

        /// Any bridge event.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Event {
            $($ty($ty)),*
        }

        /// Every record name with its released version.
        pub const RECORDS: &[(&str, i32)] = &[$((concat!("bridge.events.", stringify!($ty)), $version)),*];

        impl Event {
            /// The envelope.
            pub fn envelope(&self) -> &Envelope {
                match self {
                    $(Self::$ty(e) => &e.envelope),*
                }
            }

            /// The full record name.
            pub fn record_name(&self) -> &'static str {
                match self {
                    $(Self::$ty(_) => <$ty as AvroEvent>::RECORD),*
                }
            }

            /// Converts a value decoded against `record`'s schema into its type.
            pub fn from_value(record: &str, value: &Value) -> Result<Self, String> {
                $(
                    if record == <$ty as AvroEvent>::RECORD {
                        return apache_avro::from_value::<$ty>(value).map(Self::$ty).map_err(|e| e.to_string());
                    }
                )*
                Err(format!("`{record}` is not a bridge event"))
            }

            /// The event as an unresolved Avro value.
            pub fn to_value(&self) -> Result<Value, apache_avro::Error> {
                match self {
                    $(Self::$ty(e) => apache_avro::to_value(e)),*
                }
            }

            /// Appends the event's Avro body, serialized straight against its schema.
            pub(crate) fn write_body(
                &self,
                writer: &GenericDatumWriter<'_>,
                out: &mut Vec<u8>,
            ) -> Result<usize, apache_avro::Error> {
                match self {
                    $(Self::$ty(e) => writer.write_ser(out, e)),*
                }
            }

            /// Reads a body written with exactly this build's schema of `record` straight
            /// into its type (no intermediate value, no resolution).
            pub(crate) fn read_body(
                record: &str,
                reader: &GenericDatumReader<'_>,
                body: &mut impl std::io::Read,
            ) -> Result<Self, String> {
                $(
                    if record == <$ty as AvroEvent>::RECORD {
                        return reader.read_deser::<$ty>(body).map(Self::$ty).map_err(|e| e.to_string());
                    }
                )*
                Err(format!("`{record}` is not a bridge event"))
            }
        }
    };
}

events![
    OrderPlaced = 1,
    OrderUpdated = 1,
    OrderCancelled = 1,
    CreditMemoCreated = 1,
    InventoryMovement = 1,
    StockDeltaAggregated = 3,
    ErpOrderResult = 1,
    StockAdjustmentPosted = 1,
    OrderShipped = 1,
    ReconciliationFinding = 1,
    ResyncRequested = 1,
];
