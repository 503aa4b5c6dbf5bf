//! Handler state kept as JSON under string keys, for the loops that keep documents in
//! state (stock batches, pending customers); a value that does not read back stops the loop.

use bridge_runtime::handler::{Context, HandlerError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The fatal error of a state value under `key` that cannot be read or written.
pub(crate) fn corrupt(key: &str, e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Fatal {
        reason: format!("state `{key}` is unreadable: {e}"),
    }
}

/// The value under `key`.
pub(crate) fn read<T: DeserializeOwned>(
    ctx: &Context<'_>,
    key: &str,
) -> Result<Option<T>, HandlerError> {
    ctx.get(key.as_bytes())?
        .map(|raw| decode(key.as_bytes(), &raw))
        .transpose()
}

/// A value as read by a scan.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T, HandlerError> {
    serde_json::from_slice(raw).map_err(|e| corrupt(&String::from_utf8_lossy(key), e))
}

/// Puts `value` under `key` (no expiry).
pub(crate) fn write<T: Serialize>(
    ctx: &mut Context<'_>,
    key: &str,
    value: &T,
) -> Result<(), HandlerError> {
    let raw = serde_json::to_vec(value).map_err(|e| corrupt(key, e))?;
    ctx.put(key.as_bytes(), &raw, None);
    Ok(())
}
