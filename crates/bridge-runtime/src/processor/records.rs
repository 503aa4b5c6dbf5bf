//! The records the loop writes — outputs, changelog, parked — and reading input headers.

use std::time::Duration;

use bridge_events::CodecError;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::{Loop, ProcessorError, kafka};
use crate::changelog::SOURCE_OFFSET_HEADER;
use crate::handler::{Handler, Output, is_expiry_index};
use crate::metrics::ErrorLabels;
use crate::parking::ParkedRecord;
use crate::trace;

impl<H: Handler> Loop<'_, H> {
    pub(super) fn send_output(
        &self,
        output: &Output,
        trace: Option<&opentelemetry::Context>,
    ) -> Result<(), ProcessorError> {
        let bytes = match self.codec.encode_event_cached(&output.topic, &output.event) {
            Some(encoded) => encoded,
            None => self
                .runtime
                .block_on(self.codec.encode_event(&output.topic, &output.event)),
        }
        .map_err(|e| {
            ProcessorError::Handler(format!("cannot encode output for `{}`: {e}", output.topic))
        })?;
        // Caused by an input: a `send` span under its `process` span. Caused by a timer: a
        // trace of its own.
        let send = trace::send_span(&output.topic, &output.event.envelope().event_id);
        let none = opentelemetry::Context::new();
        let context = trace::outgoing(&send, trace.unwrap_or(&none));
        let mut carried = Vec::with_capacity(2);
        trace::inject(&context, |key, value| carried.push((key, value)));
        let mut headers = OwnedHeaders::new_with_capacity(1 + carried.len()).insert(Header {
            key: "event_type",
            value: Some(output.event.record_name()),
        });
        for (key, value) in &carried {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        self.send(
            BaseRecord::to(&output.topic)
                .key(&output.key)
                .payload(&bytes)
                .headers(headers),
        )
    }

    /// One changelog record per key written in the open batch (its last value), to the
    /// input's partition, tagged with the offset of the last input the batch holds for it.
    pub(super) fn send_changelogs(&self) -> Result<(), ProcessorError> {
        for (partition, store) in &self.partitions {
            if !store.has_pending() {
                continue;
            }
            let source = self.last_input_offset(*partition).to_string();
            for (key, value) in store.pending().filter(|(key, _)| !is_expiry_index(key)) {
                let headers = OwnedHeaders::new().insert(Header {
                    key: SOURCE_OFFSET_HEADER,
                    value: Some(&source),
                });
                let mut record = BaseRecord::<[u8], [u8]>::to(&self.config.changelog_topic)
                    .key(key)
                    .partition(*partition)
                    .headers(headers);
                if let Some(value) = value {
                    record = record.payload(value);
                }
                self.send(record)?;
            }
        }
        Ok(())
    }

    pub(super) fn send<
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    >(
        &self,
        mut record: BaseRecord<'_, K, P>,
    ) -> Result<(), ProcessorError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(kafka("produce")(e)),
            }
        }
    }

    /// Parks `message` as it came (key, value, headers) with the reason in headers.
    pub(super) fn park(
        &self,
        message: &impl Message,
        class: &str,
        reason: &str,
        attempts: u32,
    ) -> Result<(), ProcessorError> {
        tracing::warn!(partition = message.partition(), offset = message.offset(), class, error = %reason, "record parked");
        trace::parked(class, reason);
        let labels = ErrorLabels {
            error_code: class.to_owned(),
        };
        self.metrics.errors.get_or_create(&labels).inc();
        self.metrics.parked.get_or_create(&labels).inc();
        let parked = ParkedRecord {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            original_headers: header_pairs(message),
            error_class: class.to_owned(),
            message: reason.to_owned(),
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            attempts,
            parked_at: bridge_events::now_millis(),
            service: self.config.service.to_owned(),
        };
        let mut headers = OwnedHeaders::new();
        for (key, value) in parked.headers() {
            headers = headers.insert(Header {
                key: &key,
                value: Some(&value),
            });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.config.parked_topic).headers(headers);
        if let Some(key) = &parked.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &parked.payload {
            record = record.payload(payload.as_slice());
        }
        self.send(record)
    }
}

/// The value of the first header named `key`.
pub(super) fn header<'m>(message: &'m impl Message, key: &str) -> Option<&'m [u8]> {
    message.headers()?.iter().find(|h| h.key == key)?.value
}

/// Every header as an owned (name, value) pair, in order.
fn header_pairs(message: &impl Message) -> Vec<(String, Vec<u8>)> {
    message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The parked error class of an undecodable input.
pub(super) fn codec_class(e: &CodecError) -> &'static str {
    match e {
        CodecError::Truncated { .. } => "truncated",
        CodecError::UnknownMagicByte { .. } => "unknown_magic_byte",
        CodecError::UnknownSchemaId { .. } => "unknown_schema_id",
        CodecError::UnknownRecordType { .. } => "unknown_record_type",
        CodecError::BodyMismatch { .. } => "body_mismatch",
        _ => "codec",
    }
}
