//! Parked records: input that can never succeed as it is (undecodable, invalid, unmappable)
//! is written to a parked topic with its original key, value and headers untouched, plus
//! headers saying why, from where, how often it was tried and by whom — so an operator can
//! read it, fix the cause and replay it. Nothing is dropped.

/// Header names on parked records.
pub mod headers {
    /// Short fixed error class, e.g. `unknown_sku`, `body_mismatch`.
    pub const ERROR_CLASS: &str = "bridge.error.class";
    /// Readable error message.
    pub const ERROR_MESSAGE: &str = "bridge.error.message";
    /// Topic the record was read from.
    pub const ORIGINAL_TOPIC: &str = "bridge.original.topic";
    /// Its partition.
    pub const ORIGINAL_PARTITION: &str = "bridge.original.partition";
    /// Its offset.
    pub const ORIGINAL_OFFSET: &str = "bridge.original.offset";
    /// How many times it was tried.
    pub const ATTEMPTS: &str = "bridge.attempts";
    /// When it was parked (epoch ms).
    pub const PARKED_AT: &str = "bridge.parked.at";
    /// Which service parked it.
    pub const SERVICE: &str = "bridge.service";
}

/// Longest error message kept in a header; longer ones are cut at a character boundary.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// A record to park, or one read back from the parked topic for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedRecord {
    /// Original key bytes.
    pub key: Option<Vec<u8>>,
    /// Original value bytes, exactly as consumed.
    pub payload: Option<Vec<u8>>,
    /// Original headers (without the parking ones).
    pub original_headers: Vec<(String, Vec<u8>)>,
    /// Error class.
    pub error_class: String,
    /// Error message.
    pub message: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Attempts made.
    pub attempts: u32,
    /// Parked at (epoch ms).
    pub parked_at: i64,
    /// Parking service.
    pub service: String,
}

/// Why a parked record could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("parked record lacks a readable `{header}` header")]
pub struct MissingHeader {
    /// The header.
    pub header: &'static str,
}

fn cut(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

impl ParkedRecord {
    /// The headers of the parked record: the original ones, then the parking ones.
    pub fn headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut all = self.original_headers.clone();
        let text = |name: &str, value: String| (name.to_owned(), value.into_bytes());
        all.extend([
            text(headers::ERROR_CLASS, self.error_class.clone()),
            text(headers::ERROR_MESSAGE, cut(&self.message).to_owned()),
            text(headers::ORIGINAL_TOPIC, self.topic.clone()),
            text(headers::ORIGINAL_PARTITION, self.partition.to_string()),
            text(headers::ORIGINAL_OFFSET, self.offset.to_string()),
            text(headers::ATTEMPTS, self.attempts.to_string()),
            text(headers::PARKED_AT, self.parked_at.to_string()),
            text(headers::SERVICE, self.service.clone()),
        ]);
        all
    }

    /// Reads a record back from the parked topic (for `bridgectl` list/show/replay).
    pub fn from_parts(
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
        headers: Vec<(String, Vec<u8>)>,
    ) -> Result<Self, MissingHeader> {
        let find = |name: &'static str| -> Result<String, MissingHeader> {
            headers
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| String::from_utf8(v.clone()).ok())
                .ok_or(MissingHeader { header: name })
        };
        let number = |name: &'static str| -> Result<i64, MissingHeader> {
            find(name)?
                .parse()
                .map_err(|_| MissingHeader { header: name })
        };
        let parking: [&str; 8] = [
            headers::ERROR_CLASS,
            headers::ERROR_MESSAGE,
            headers::ORIGINAL_TOPIC,
            headers::ORIGINAL_PARTITION,
            headers::ORIGINAL_OFFSET,
            headers::ATTEMPTS,
            headers::PARKED_AT,
            headers::SERVICE,
        ];
        Ok(Self {
            error_class: find(headers::ERROR_CLASS)?,
            message: find(headers::ERROR_MESSAGE)?,
            topic: find(headers::ORIGINAL_TOPIC)?,
            partition: i32::try_from(number(headers::ORIGINAL_PARTITION)?).map_err(|_| {
                MissingHeader {
                    header: headers::ORIGINAL_PARTITION,
                }
            })?,
            offset: number(headers::ORIGINAL_OFFSET)?,
            attempts: u32::try_from(number(headers::ATTEMPTS)?).map_err(|_| MissingHeader {
                header: headers::ATTEMPTS,
            })?,
            parked_at: number(headers::PARKED_AT)?,
            service: find(headers::SERVICE)?,
            original_headers: headers
                .into_iter()
                .filter(|(k, _)| !parking.contains(&k.as_str()))
                .collect(),
            key,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ParkedRecord {
        ParkedRecord {
            key: Some(b"000000042".to_vec()),
            payload: Some(vec![0, 0, 0, 0, 9, 0xFF, 0x00]),
            original_headers: vec![("traceparent".into(), b"00-abc-def-01".to_vec())],
            error_class: "unknown_sku".into(),
            message: "no item code for SKU `SKU-RED-XL` in mapping.toml".into(),
            topic: "bridge.orders.v1".into(),
            partition: 2,
            offset: 1234,
            attempts: 1,
            parked_at: 1_700_000_000_000,
            service: "erp-writer".into(),
        }
    }

    #[test]
    fn a_parked_record_reads_back_with_its_original_bytes_and_headers() {
        let parked = sample();
        let back =
            ParkedRecord::from_parts(parked.key.clone(), parked.payload.clone(), parked.headers());
        assert_eq!(back, Ok(parked));
    }

    #[test]
    fn a_record_without_parking_headers_is_refused_naming_the_header() {
        let result = ParkedRecord::from_parts(None, None, vec![]);
        assert_eq!(
            result,
            Err(MissingHeader {
                header: headers::ERROR_CLASS
            })
        );
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let mut parked = sample();
        parked.message = "é".repeat(MAX_MESSAGE_BYTES);
        let headers = parked.headers();
        let message = headers
            .iter()
            .find(|(k, _)| k == headers::ERROR_MESSAGE)
            .map(|(_, v)| v.clone());
        let message = message.map(String::from_utf8);
        assert!(
            matches!(message, Some(Ok(m)) if m.len() <= MAX_MESSAGE_BYTES && m.len() >= MAX_MESSAGE_BYTES - 1)
        );
    }
}
