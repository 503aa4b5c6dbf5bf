//! Money and quantities as Avro `decimal` (bytes, precision 18, scale 4) ↔ `rust_decimal`.
//! Never a float: the unscaled integer travels as big-endian two's complement bytes.

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// The scale every amount and quantity is written with.
pub const SCALE: u32 = 4;
/// The most digits an amount may have.
pub const PRECISION: u32 = 18;

/// Why a decimal does not fit the Avro type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecimalError {
    /// More decimal places than the schema's scale; rounding money silently is not allowed.
    #[error("`{value}` has more than {SCALE} decimal places")]
    TooManyPlaces {
        /// The value.
        value: Decimal,
    },
    /// More digits than the schema's precision.
    #[error("`{value}` has more than {PRECISION} digits")]
    TooManyDigits {
        /// The value.
        value: Decimal,
    },
    /// A sum or difference that leaves what `decimal(18,4)` holds (±10^14).
    #[error("the result leaves ±10^14, the range of decimal({PRECISION},{SCALE})")]
    OutOfRange,
    /// The bytes are longer than any 18-digit number needs.
    #[error("decimal of {len} bytes is longer than {PRECISION} digits allow")]
    TooLong {
        /// Byte count.
        len: usize,
    },
}

/// Whether `value`'s integer part fits `decimal(18,4)`: |value| < 10^14.
pub fn fits(value: Decimal) -> bool {
    value.abs() < Decimal::from(100_000_000_000_000_i64)
}

/// `a + b` when the sum still fits `decimal(18,4)`; never panics, whatever the inputs.
pub fn checked_add(a: Decimal, b: Decimal) -> Result<Decimal, DecimalError> {
    a.checked_add(b)
        .filter(|sum| fits(*sum))
        .ok_or(DecimalError::OutOfRange)
}

/// Bytes every decimal is written with: the fewest that hold 18 digits. Sign-extended
/// two's complement is valid Avro for any reader, and apache-avro refuses shorter values
/// when it resolves a precision-18 decimal.
pub const WIDTH: usize = 8;

/// The unscaled value at scale 4 as 8-byte big-endian two's complement.
pub fn to_bytes(value: Decimal) -> Result<Vec<u8>, DecimalError> {
    let mut scaled = value;
    scaled.rescale(SCALE);
    if scaled != value {
        return Err(DecimalError::TooManyPlaces { value });
    }
    let unscaled = scaled.mantissa();
    if unscaled.unsigned_abs() >= 10u128.pow(PRECISION) {
        return Err(DecimalError::TooManyDigits { value });
    }
    // |unscaled| < 10^18 < 2^63, so it fits an i64 exactly.
    Ok((unscaled as i64).to_be_bytes().to_vec())
}

/// Sign-extends shorter two's complement bytes (as other Avro writers produce) to
/// [`WIDTH`]; longer ones are returned as they are.
pub fn widen(bytes: &[u8]) -> Vec<u8> {
    if bytes.len() >= WIDTH {
        return bytes.to_vec();
    }
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xFF
    } else {
        0x00
    };
    let mut out = vec![fill; WIDTH - bytes.len()];
    out.extend_from_slice(bytes);
    out
}

/// Reads big-endian two's complement bytes as a decimal at scale 4.
pub fn from_bytes(bytes: &[u8]) -> Result<Decimal, DecimalError> {
    if bytes.len() > 16 {
        return Err(DecimalError::TooLong { len: bytes.len() });
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut full = if negative { [0xFF; 16] } else { [0x00; 16] };
    full[16 - bytes.len()..].copy_from_slice(bytes);
    let unscaled = i128::from_be_bytes(full);
    if unscaled.unsigned_abs() >= 10u128.pow(PRECISION) {
        return Err(DecimalError::TooLong { len: bytes.len() });
    }
    Decimal::try_from_i128_with_scale(unscaled, SCALE)
        .map_err(|_| DecimalError::TooLong { len: bytes.len() })
}

/// `#[serde(with = "crate::decimal")]` for a `Decimal` field.
pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    let bytes = to_bytes(*value).map_err(serde::ser::Error::custom)?;
    serializer.serialize_bytes(&bytes)
}

/// See [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    deserializer.deserialize_bytes(DecimalVisitor)
}

struct DecimalVisitor;

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("Avro decimal bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Decimal, E> {
        from_bytes(v).map_err(E::custom)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Decimal, E> {
        from_bytes(&v).map_err(E::custom)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Decimal, A::Error> {
        let mut bytes = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        from_bytes(&bytes).map_err(de::Error::custom)
    }
}

/// `#[serde(with = "crate::decimal::option")]` for an `Option<Decimal>` field.
pub mod option {
    use super::*;

    /// Serializes as the bare decimal bytes (not a newtype), which the union's branch is.
    struct Wrapped(Decimal);

    impl Serialize for Wrapped {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            super::serialize(&self.0, serializer)
        }
    }

    /// Serializes `None` as null and `Some` as decimal bytes.
    pub fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.serialize_some(&Wrapped(*d)),
            None => serializer.serialize_none(),
        }
    }

    /// See [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Decimal>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Decimal>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("null or Avro decimal bytes")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_leaving_the_range_are_errors_not_panics() {
        let big = Decimal::from(99_999_999_999_999_i64);
        assert_eq!(
            checked_add(big, Decimal::ONE),
            Err(DecimalError::OutOfRange)
        );
        assert_eq!(
            checked_add(Decimal::MAX, Decimal::MAX),
            Err(DecimalError::OutOfRange)
        );
        assert_eq!(checked_add(big, -big), Ok(Decimal::ZERO));
        assert!(fits(big) && !fits(big + Decimal::ONE));
    }
    use proptest::prelude::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    #[test]
    fn known_values_encode_as_avro_expects() {
        // 12.34 at scale 4 is 123400 = 0x01E208.
        assert_eq!(
            to_bytes(dec("12.34")),
            Ok(vec![0, 0, 0, 0, 0, 0x01, 0xE2, 0x08])
        );
        assert_eq!(to_bytes(dec("0")), Ok(vec![0; 8]));
        // -0.0001 is unscaled -1.
        assert_eq!(to_bytes(dec("-0.0001")), Ok(vec![0xFF; 8]));
    }

    #[test]
    fn minimal_bytes_from_other_writers_read_the_same() {
        // Java and Python write the fewest bytes: 0x01E208 and 0xFF.
        assert_eq!(from_bytes(&[0x01, 0xE2, 0x08]), Ok(dec("12.34")));
        assert_eq!(from_bytes(&[0xFF]), Ok(dec("-0.0001")));
        assert_eq!(widen(&[0xFF]), vec![0xFF; 8]);
        assert_eq!(widen(&[0x00, 0x80]), vec![0, 0, 0, 0, 0, 0, 0, 0x80]);
    }

    #[test]
    fn a_fifth_decimal_place_is_refused_not_rounded() {
        assert!(matches!(
            to_bytes(dec("1.00005")),
            Err(DecimalError::TooManyPlaces { .. })
        ));
        assert_eq!(to_bytes(dec("1.50000")), to_bytes(dec("1.5")));
    }

    #[test]
    fn more_than_eighteen_digits_is_refused() {
        assert!(matches!(
            to_bytes(dec("100000000000000")),
            Err(DecimalError::TooManyDigits { .. })
        ));
        assert!(to_bytes(dec("99999999999999.9999")).is_ok());
    }

    proptest! {
        #[test]
        fn every_amount_in_range_round_trips(unscaled in -999_999_999_999_999_999i64..=999_999_999_999_999_999i64) {
            let value = Decimal::new(unscaled, SCALE);
            let bytes = to_bytes(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(from_bytes(&bytes), Ok(value));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = from_bytes(&bytes);
        }
    }
}
