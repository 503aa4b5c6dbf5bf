//! The codec's unit tests: the header check, the error classes, and the direct path
//! writing and reading the bytes the generic path does.

use super::*;

#[test]
fn the_header_is_checked_before_anything_is_sliced() {
    assert!(matches!(
        split_header(&[]),
        Err(CodecError::Truncated { len: 0 })
    ));
    assert!(matches!(
        split_header(&[0, 0, 0]),
        Err(CodecError::Truncated { len: 3 })
    ));
    assert!(matches!(
        split_header(&[1, 0, 0, 0, 7]),
        Err(CodecError::UnknownMagicByte { found: 1 })
    ));
    assert!(matches!(split_header(&[0, 0, 0, 1, 2, 9]), Ok((258, [9]))));
}

#[test]
fn only_an_unreachable_registry_is_retryable() {
    assert!(
        CodecError::RegistryUnavailable {
            reason: String::new()
        }
        .is_retryable()
    );
    assert!(
        !CodecError::UnknownSchemaId {
            id: 1,
            reason: String::new()
        }
        .is_retryable()
    );
    assert!(!CodecError::UnknownMagicByte { found: 9 }.is_retryable());
}

/// The direct paths agree with the `Value` paths byte for byte, both ways, and a cut
/// body is refused by the direct reader too (the caller then reports it).
#[test]
fn direct_writing_and_reading_agree_with_the_value_path() -> Result<(), String> {
    for event in crate::samples::one_of_each() {
        let name = event.record_name();
        let ours = schema::record(name).map_err(|e| e.to_string())?;
        let value = event
            .to_value()
            .and_then(|v| v.resolve(&ours.schema))
            .map_err(|e| e.to_string())?;
        let writer = GenericDatumWriter::builder(&ours.schema)
            .build()
            .map_err(|e| e.to_string())?;
        let through_value = writer
            .write_value_to_vec(value)
            .map_err(|e| e.to_string())?;
        let mut direct = Vec::new();
        event
            .write_body(&writer, &mut direct)
            .map_err(|e| e.to_string())?;
        assert_eq!(direct, through_value, "{name}");
        let reader = GenericDatumReader::builder(&ours.schema)
            .build()
            .map_err(|e| e.to_string())?;
        assert_eq!(read_direct(name, &reader, &direct)?, event, "{name}");
        assert!(read_direct(name, &reader, &direct[..direct.len() - 1]).is_err());
    }
    Ok(())
}
