//! The shared-secret scheme of `POST /webhooks/custom`, for a custom Magento module that
//! announces changes itself: header
//! `x-bridge-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
//!
//! The timestamp is signed with the body, so a captured delivery cannot be moved in time: one
//! whose `t` is more than the allowed skew from now is refused, and so is a signature already
//! accepted within that window (a replay). Several `v1=` entries are allowed, so a secret can
//! be rotated by signing with both for a while. Comparison is constant-time.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use bridge_runtime::secret::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header.
pub const HEADER: &str = "x-bridge-signature";
/// Signatures remembered at most for replay detection; beyond, deliveries wait (`503`).
pub const MAX_REMEMBERED: usize = 200_000;

/// Why a delivery is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HmacError {
    /// No signature header.
    #[error("no `x-bridge-signature` header")]
    Unsigned,
    /// The header is not `t=…,v1=…`.
    #[error("`x-bridge-signature` is not `t=<unix seconds>,v1=<hex>`")]
    Malformed,
    /// The signed time is too far from now.
    #[error("signed timestamp is more than {skew_seconds} s from now")]
    Stale {
        /// The allowed distance.
        skew_seconds: u64,
    },
    /// No signature matches.
    #[error("no signature matches the body")]
    Mismatch,
    /// This signature was accepted before.
    #[error("delivery replayed: its signature was accepted before")]
    Replayed,
    /// Too many signatures to remember: retry later.
    #[error("too many deliveries to check for replays; retry later")]
    Busy,
}

/// Verifies `x-bridge-signature`, remembering accepted signatures for the skew window.
pub struct HmacVerifier {
    secret: Secret,
    skew: Duration,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    order: VecDeque<(i64, [u8; 32])>,
    set: HashSet<[u8; 32]>,
}

impl HmacVerifier {
    /// A verifier for `secret` allowing `skew` between the signed time and now.
    pub fn new(secret: Secret, skew: Duration) -> Self {
        Self {
            secret,
            skew,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// `Ok` if the delivery is signed with the secret, fresh and not seen before, at
    /// `now_seconds` (unix).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_seconds: i64,
    ) -> Result<(), HmacError> {
        let header = headers
            .get(HEADER)
            .ok_or(HmacError::Unsigned)?
            .to_str()
            .map_err(|_| HmacError::Malformed)?;
        let (timestamp, signatures) = parse(header)?;
        let skew = i64::try_from(self.skew.as_secs()).unwrap_or(i64::MAX);
        if timestamp.abs_diff(now_seconds) > self.skew.as_secs() {
            return Err(HmacError::Stale {
                skew_seconds: self.skew.as_secs(),
            });
        }
        let matched = signatures
            .iter()
            .find(|given| {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
                else {
                    return false;
                };
                mac.update(timestamp.to_string().as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.verify_slice(given.as_slice()).is_ok()
            })
            .ok_or(HmacError::Mismatch)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(matched);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((expires, old)) = seen.order.front().copied() {
            if expires > now_seconds {
                break;
            }
            seen.order.pop_front();
            seen.set.remove(&old);
        }
        if seen.set.contains(&key) {
            return Err(HmacError::Replayed);
        }
        if seen.set.len() >= MAX_REMEMBERED {
            return Err(HmacError::Busy);
        }
        seen.set.insert(key);
        // Past this moment the timestamp alone refuses the delivery.
        seen.order
            .push_back((timestamp.saturating_add(skew).saturating_add(1), key));
        Ok(())
    }
}

/// The header value for `body` signed with `secret` at `timestamp` (for senders and tests).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

fn parse(header: &str) -> Result<(i64, Vec<[u8; 32]>), HmacError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',').take(8) {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t.parse::<i64>().map_err(|_| HmacError::Malformed)?),
            Some(("v1", hex)) => signatures.push(decode_hex(hex).ok_or(HmacError::Malformed)?),
            _ => {}
        }
    }
    match (timestamp, signatures.is_empty()) {
        (Some(t), false) => Ok((t, signatures)),
        _ => Err(HmacError::Malformed),
    }
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HEADER, value);
        }
        headers
    }

    fn verifier() -> HmacVerifier {
        HmacVerifier::new(Secret::new("s3cret"), Duration::from_secs(300))
    }

    #[test]
    fn a_signed_fresh_delivery_passes_once_then_is_a_replay() {
        let v = verifier();
        let body = br#"{"type":"sales_order_save","data":{"value":{"entity_id":"1"}}}"#;
        let signed = headers(&sign("s3cret", 1_000_000, body));
        assert_eq!(v.verify(&signed, body, 1_000_010), Ok(()));
        assert_eq!(v.verify(&signed, body, 1_000_020), Err(HmacError::Replayed));
        // Past the window the timestamp refuses it, and the memory is freed.
        assert_eq!(
            v.verify(&signed, body, 1_000_400),
            Err(HmacError::Stale { skew_seconds: 300 })
        );
    }

    #[test]
    fn forged_unsigned_malformed_and_stale_deliveries_are_refused() {
        let v = verifier();
        let body = b"{}";
        let now = 2_000_000;
        assert_eq!(
            v.verify(&HeaderMap::new(), body, now),
            Err(HmacError::Unsigned)
        );
        assert_eq!(
            v.verify(&headers("t=abc,v1=00"), body, now),
            Err(HmacError::Malformed)
        );
        assert_eq!(
            v.verify(&headers(&sign("other", now, body)), body, now),
            Err(HmacError::Mismatch)
        );
        assert_eq!(
            v.verify(&headers(&sign("s3cret", now, b"{ }")), body, now),
            Err(HmacError::Mismatch),
            "a changed body"
        );
        assert_eq!(
            v.verify(&headers(&sign("s3cret", now - 301, body)), body, now),
            Err(HmacError::Stale { skew_seconds: 300 })
        );
    }

    #[test]
    fn a_rotated_secret_passes_with_either_signature() {
        let v = verifier();
        let body = b"{}";
        let now = 3_000_000;
        let old = sign("old-secret", now, body);
        let new = sign("s3cret", now, body);
        let both = format!("{old},{}", new.split(',').nth(1).unwrap_or_default());
        assert_eq!(v.verify(&headers(&both), body, now), Ok(()));
    }
}
