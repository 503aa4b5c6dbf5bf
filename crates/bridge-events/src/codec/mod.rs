//! The Confluent wire format through `schema_registry_converter`: magic byte 0, the 4-byte
//! big-endian schema id, then the Avro body. Subjects follow TopicRecordNameStrategy
//! (`<topic>-<record full name>`), so one topic carries several record types.
//!
//! Encoding registers (once per subject, cached by the converter) and frames. Decoding
//! reads the header itself, fetches the writer schema by id through the converter's
//! registry client into a cache, and resolves the body against this build's schema of the
//! same record, so data written with an older compatible schema reads into today's types.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use schema_registry_converter::async_impl::avro::AvroEncoder;
use schema_registry_converter::async_impl::schema_registry::{SrSettings, get_schema_by_id};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

pub mod registry_access;

use crate::event::{AvroEvent, Event};
use crate::schema::{self, RecordSchema, SchemaError};
use registry_access::{RegistryAccess, SchemaLookup};

/// Why an event could not be encoded or decoded. [`CodecError::is_retryable`] says how
/// to react: retry with backoff, or park the record with this error as its reason.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Fewer bytes than the 5-byte header.
    #[error("record of {len} bytes is shorter than the 5-byte confluent header")]
    Truncated {
        /// Byte count.
        len: usize,
    },
    /// Not the Confluent wire format.
    #[error("unknown magic byte `{found}`, expected 0 (confluent wire format)")]
    UnknownMagicByte {
        /// The first byte.
        found: u8,
    },
    /// The registry answered but does not know the id.
    #[error("schema id `{id}` is unknown to the registry: {reason}")]
    UnknownSchemaId {
        /// The id in the header.
        id: u32,
        /// The registry client's message.
        reason: String,
    },
    /// The registry could not be reached or failed; retry.
    #[error("schema registry unavailable: {reason}")]
    RegistryUnavailable {
        /// The registry client's message.
        reason: String,
    },
    /// The registry refused to register the schema (e.g. incompatible).
    #[error("schema registry refused `{record}` for topic `{topic}`: {reason}")]
    RegistryRefused {
        /// The topic.
        topic: String,
        /// The record.
        record: String,
        /// The registry's message.
        reason: String,
    },
    /// The writer schema is not a bridge event this build knows.
    #[error("schema id `{id}` is record `{name}`, which this build does not know")]
    UnknownRecordType {
        /// The id.
        id: u32,
        /// The record's full name.
        name: String,
    },
    /// The body does not decode with its schema.
    #[error("body does not match schema id `{id}` (`{record}`): {reason}")]
    BodyMismatch {
        /// The id.
        id: u32,
        /// The record.
        record: String,
        /// What failed.
        reason: String,
    },
    /// The event does not fit its own schema (a bug or an out-of-range value).
    #[error("event `{record}` cannot be encoded: {reason}")]
    Encode {
        /// The record.
        record: String,
        /// What failed.
        reason: String,
    },
    /// The compiled-in schemas are broken (a build problem, not an input one).
    #[error("event schemas")]
    Schema(#[from] SchemaError),
}

impl CodecError {
    /// Whether trying again later can succeed (registry down); otherwise park the record.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RegistryUnavailable { .. })
    }
}

fn describe(e: &SRCError) -> String {
    match &e.cause {
        Some(cause) => format!("{}: {cause}", e.error),
        None => e.error.clone(),
    }
}

/// A writer schema fetched by id, with its reader built once. Schemas are leaked to get
/// the `'static` borrow the reader needs: one per schema id this process ever sees, which
/// the converter's own caches keep for the process lifetime too.
pub struct Writer {
    name: String,
    reader: GenericDatumReader<'static>,
    /// Written with exactly this build's schema: no resolution step is needed.
    same_as_reader: bool,
}

/// A record already registered for a topic: the header its subject's schema id gives and a
/// writer that serializes events straight against the schema. The first event of a subject
/// goes through the converter (registration, resolution); every later one takes this path,
/// which writes the same bytes without building an Avro `Value` (pinned by a test).
struct Registered {
    header: [u8; 5],
    writer: GenericDatumWriter<'static>,
}

/// The largest string, bytes or array a decode allocates; a record claiming more is a
/// decode error (parked), not an allocation.
pub const MAX_DECODE_ALLOCATION: usize = 16 * 1024 * 1024;

/// Encodes and decodes bridge events in the Confluent wire format.
pub struct EventCodec {
    settings: SrSettings,
    encoder: AvroEncoder,
    strategies: RwLock<HashMap<(String, &'static str), Arc<SubjectNameStrategy>>>,
    writers: RwLock<HashMap<u32, Arc<Writer>>>,
    /// Per topic, per record.
    registered: RwLock<HashMap<String, HashMap<&'static str, Arc<Registered>>>>,
    /// Set when schemas are only looked up, never registered.
    lookup: Option<SchemaLookup>,
}

/// The 5-byte header: magic byte and schema id, and the body after it.
pub fn split_header(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    match bytes {
        [0, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        [magic, _, _, _, _, ..] => Err(CodecError::UnknownMagicByte { found: *magic }),
        _ => Err(CodecError::Truncated { len: bytes.len() }),
    }
}

impl EventCodec {
    /// A codec for the registry at `registry_url`.
    pub fn new(registry_url: &str) -> Self {
        Self::with_settings(SrSettings::new(registry_url.to_owned()))
    }

    /// A codec for the registry `access` describes (authentication, CA, registration).
    pub fn connect(access: &RegistryAccess) -> Result<Self, CodecError> {
        let mut codec = Self::with_settings(access.sr_settings()?);
        codec.lookup = access.lookup()?;
        Ok(codec)
    }

    /// A codec with full registry settings (authentication, timeouts).
    pub fn with_settings(settings: SrSettings) -> Self {
        // A length prefix in a hostile record cannot make a decode allocate more than this
        // (apache-avro's process-wide bound; its default is 512 MiB).
        apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION);
        Self {
            encoder: AvroEncoder::new(settings.clone()),
            settings,
            strategies: RwLock::new(HashMap::new()),
            writers: RwLock::new(HashMap::new()),
            registered: RwLock::new(HashMap::new()),
            lookup: None,
        }
    }

    /// The TopicRecordNameStrategy subject of a record on a topic.
    pub fn subject(topic: &str, record: &str) -> String {
        format!("{topic}-{record}")
    }

    fn strategy(
        &self,
        topic: &str,
        record: &'static str,
    ) -> Result<Arc<SubjectNameStrategy>, CodecError> {
        let key = (topic.to_owned(), record);
        if let Some(found) = self
            .strategies
            .read()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return Ok(found);
        }
        let schema = schema::record(record)?;
        let strategy = Arc::new(SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
            topic.to_owned(),
            SuppliedSchema::new(
                Some(record.to_owned()),
                SchemaType::Avro,
                schema.text.clone(),
            ),
        ));
        if let Ok(mut map) = self.strategies.write() {
            map.insert(key, Arc::clone(&strategy));
        }
        Ok(strategy)
    }

    /// Encodes one event for `topic`, registering its schema on first use.
    pub async fn encode<E: AvroEvent>(
        &self,
        topic: &str,
        event: &E,
    ) -> Result<Vec<u8>, CodecError> {
        if let Some(registered) = self.registered(topic, E::RECORD) {
            let mut bytes = registered.header.to_vec();
            return match registered.writer.write_ser(&mut bytes, event) {
                Ok(_) => Ok(bytes),
                Err(e) => Err(CodecError::Encode {
                    record: E::RECORD.to_owned(),
                    reason: e.to_string(),
                }),
            };
        }
        let value = apache_avro::to_value(event).map_err(|e| CodecError::Encode {
            record: E::RECORD.to_owned(),
            reason: e.to_string(),
        })?;
        self.encode_value(topic, E::RECORD, value).await
    }

    /// Encodes an [`Event`] of any type.
    pub async fn encode_event(&self, topic: &str, event: &Event) -> Result<Vec<u8>, CodecError> {
        if let Some(encoded) = self.encode_event_cached(topic, event) {
            return encoded;
        }
        let record = event.record_name();
        let value = event.to_value().map_err(|e| CodecError::Encode {
            record: record.to_owned(),
            reason: e.to_string(),
        })?;
        self.encode_value(topic, record, value).await
    }

    /// [`EventCodec::encode_event`] without waiting: `None` until the subject's schema is
    /// registered by this codec (call `encode_event`).
    pub fn encode_event_cached(
        &self,
        topic: &str,
        event: &Event,
    ) -> Option<Result<Vec<u8>, CodecError>> {
        let record = event.record_name();
        let registered = self.registered(topic, record)?;
        let mut bytes = registered.header.to_vec();
        Some(match event.write_body(&registered.writer, &mut bytes) {
            Ok(_) => Ok(bytes),
            Err(e) => Err(CodecError::Encode {
                record: record.to_owned(),
                reason: e.to_string(),
            }),
        })
    }

    async fn encode_value(
        &self,
        topic: &str,
        record: &'static str,
        value: apache_avro::types::Value,
    ) -> Result<Vec<u8>, CodecError> {
        let schema = schema::record(record)?;
        let resolved = value
            .resolve(&schema.schema)
            .map_err(|e| CodecError::Encode {
                record: record.to_owned(),
                reason: e.to_string(),
            })?;
        if let Some(lookup) = &self.lookup {
            let bytes = lookup.encode(topic, record, &schema, resolved).await?;
            self.remember(topic, record, &schema, &bytes);
            return Ok(bytes);
        }
        let strategy = self.strategy(topic, record)?;
        let bytes = self
            .encoder
            .encode_value(resolved, &strategy)
            .await
            .map_err(|e| match e.retriable {
                true => CodecError::RegistryUnavailable {
                    reason: describe(&e),
                },
                false => CodecError::RegistryRefused {
                    topic: topic.to_owned(),
                    record: record.to_owned(),
                    reason: describe(&e),
                },
            })?;
        self.remember(topic, record, &schema, &bytes);
        Ok(bytes)
    }

    fn registered(&self, topic: &str, record: &str) -> Option<Arc<Registered>> {
        self.registered
            .read()
            .ok()?
            .get(topic)?
            .get(record)
            .cloned()
    }

    /// Keeps the header of the first encoded event of a subject for the direct path. The
    /// schema is leaked for the writer's `'static` borrow: one per topic and record type.
    fn remember(&self, topic: &str, record: &'static str, schema: &RecordSchema, bytes: &[u8]) {
        let Some(header) = bytes.get(..5).and_then(|h| <[u8; 5]>::try_from(h).ok()) else {
            return;
        };
        let Ok(mut map) = self.registered.write() else {
            return;
        };
        let for_topic = map.entry(topic.to_owned()).or_default();
        if for_topic.contains_key(record) {
            return;
        }
        let schema: &'static Schema = Box::leak(Box::new(schema.schema.clone()));
        if let Ok(writer) = GenericDatumWriter::builder(schema).build() {
            for_topic.insert(record, Arc::new(Registered { header, writer }));
        }
    }

    async fn writer(&self, id: u32) -> Result<Arc<Writer>, CodecError> {
        if let Some(found) = self.writers.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(found);
        }
        let registered =
            get_schema_by_id(id, &self.settings)
                .await
                .map_err(|e| match e.retriable {
                    true => CodecError::RegistryUnavailable {
                        reason: describe(&e),
                    },
                    false => CodecError::UnknownSchemaId {
                        id,
                        reason: describe(&e),
                    },
                })?;
        self.keep_writer(id, &registered.schema)
    }

    /// Caches the writer schema `text` of schema id `id` (as fetched from the registry), so
    /// records with that id decode without asking it — also how a decoder is tested or
    /// fuzzed without a registry.
    pub fn keep_writer(&self, id: u32, text: &str) -> Result<Arc<Writer>, CodecError> {
        let unknown = |reason: String| CodecError::UnknownSchemaId { id, reason };
        let schema = Schema::parse_str(text)
            .map_err(|e| unknown(format!("registered schema is not avro: {e}")))?;
        let name = schema.name().map(|n| n.fullname(None)).unwrap_or_default();
        let same_as_reader = schema::record(&name).is_ok_and(|ours| ours.schema == schema);
        let schema: &'static Schema = Box::leak(Box::new(schema));
        let reader = GenericDatumReader::builder(schema)
            .build()
            .map_err(|e| unknown(format!("registered schema does not resolve: {e}")))?;
        let writer = Arc::new(Writer {
            name,
            reader,
            same_as_reader,
        });
        if let Ok(mut map) = self.writers.write() {
            map.insert(id, Arc::clone(&writer));
        }
        Ok(writer)
    }

    /// Decodes a record value of any bridge event type.
    pub async fn decode(&self, bytes: &[u8]) -> Result<Event, CodecError> {
        let (id, body) = split_header(bytes)?;
        let writer = self.writer(id).await?;
        decode_body(id, &writer, body)
    }

    /// [`EventCodec::decode`] without waiting: `None` when the writer schema is not cached
    /// yet (the registry must be asked; call `decode`). A loop decoding every record
    /// spares itself an async runtime round per record.
    pub fn decode_cached(&self, bytes: &[u8]) -> Option<Result<Event, CodecError>> {
        let (id, body) = match split_header(bytes) {
            Ok(split) => split,
            Err(e) => return Some(Err(e)),
        };
        let writer = self.writers.read().ok()?.get(&id).cloned()?;
        Some(decode_body(id, &writer, body))
    }

    /// Decodes a record value that must be of type `E`.
    pub async fn decode_as<E: AvroEvent>(&self, bytes: &[u8]) -> Result<E, CodecError> {
        let (id, _) = split_header(bytes)?;
        let event = self.decode(bytes).await?;
        let name = event.record_name();
        let value = event.to_value().map_err(|e| CodecError::BodyMismatch {
            id,
            record: name.to_owned(),
            reason: e.to_string(),
        })?;
        if name != E::RECORD {
            return Err(CodecError::UnknownRecordType {
                id,
                name: name.to_owned(),
            });
        }
        apache_avro::from_value::<E>(&value).map_err(|e| CodecError::BodyMismatch {
            id,
            record: name.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// An event from its body written with `writer` (registered under `id`).
fn decode_body(id: u32, writer: &Writer, body: &[u8]) -> Result<Event, CodecError> {
    let reader = schema::record(&writer.name).map_err(|_| CodecError::UnknownRecordType {
        id,
        name: writer.name.clone(),
    })?;
    let mismatch = |reason: String| CodecError::BodyMismatch {
        id,
        record: writer.name.clone(),
        reason,
    };
    if writer.same_as_reader
        && let Ok(event) = read_direct(&writer.name, &writer.reader, body)
    {
        return Ok(event);
    }
    let value = read_guarded(&writer.reader, body).map_err(&mismatch)?;
    let value = match writer.same_as_reader {
        true => value,
        false => widen_decimals(value)
            .resolve(&reader.schema)
            .map_err(|e| mismatch(e.to_string()))?,
    };
    Event::from_value(&writer.name, &value).map_err(mismatch)
}

/// Reads an Avro body written with `writer` and resolves it to `reader` (schema evolution:
/// defaults fill fields the writer did not have). Decimals written with fewer bytes than
/// apache-avro accepts (minimal two's complement, as Java and Python write) are widened first.
///
/// apache-avro 0.22 reads an end of input where a union index or a string should be as
/// `null`, so a record cut short before an optional field would decode with that field
/// missing. The body is therefore read with one sentinel byte after it: `0x7F` is zig-zag
/// −64, never a valid union index, and a complete record never reads past its own end, so
/// exactly the sentinel must be left over, or the body was truncated or padded.
pub fn read_body(writer: &Schema, reader: &Schema, body: &[u8]) -> Result<Value, String> {
    let datum_reader = GenericDatumReader::builder(writer)
        .build()
        .map_err(|e| e.to_string())?;
    let value = read_guarded(&datum_reader, body)?;
    widen_decimals(value)
        .resolve(reader)
        .map_err(|e| e.to_string())
}

/// Reads one datum followed by the sentinel; see [`read_body`].
fn read_guarded(datum_reader: &GenericDatumReader<'_>, body: &[u8]) -> Result<Value, String> {
    let mut guarded = Vec::with_capacity(body.len() + 1);
    guarded.extend_from_slice(body);
    guarded.push(SENTINEL);
    let mut cursor = Cursor::new(guarded.as_slice());
    let value = datum_reader
        .read_value(&mut cursor)
        .map_err(|e| e.to_string())?;
    match guarded.len() as u64 - cursor.position() {
        1 => Ok(value),
        0 => Err("the record ends before its schema does (truncated)".to_owned()),
        n => Err(format!("{} bytes left after the record", n - 1)),
    }
}

const SENTINEL: u8 = 0x7F;

/// Reads a body of this build's exact schema straight into its event type, guarded like
/// [`read_guarded`]. Any failure falls back to the `Value` path, which names the problem.
fn read_direct(
    name: &str,
    datum_reader: &GenericDatumReader<'_>,
    body: &[u8],
) -> Result<Event, String> {
    let mut guarded = Vec::with_capacity(body.len() + 1);
    guarded.extend_from_slice(body);
    guarded.push(SENTINEL);
    let mut cursor = Cursor::new(guarded.as_slice());
    let event = Event::read_body(name, datum_reader, &mut cursor)?;
    match guarded.len() as u64 - cursor.position() {
        1 => Ok(event),
        _ => Err("not exactly one record".to_owned()),
    }
}

fn widen_decimals(value: Value) -> Value {
    match value {
        Value::Decimal(d) => match <Vec<u8>>::try_from(&d) {
            Ok(bytes) => Value::Decimal(apache_avro::Decimal::from(crate::decimal::widen(&bytes))),
            Err(_) => Value::Decimal(d),
        },
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .map(|(n, v)| (n, widen_decimals(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(widen_decimals).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k, widen_decimals(v)))
                .collect(),
        ),
        Value::Union(i, inner) => Value::Union(i, Box::new(widen_decimals(*inner))),
        other => other,
    }
}

#[cfg(test)]
mod tests;
