//! The Adobe Commerce (synchronous) webhook scheme: the raw body signed with RSA-SHA256
//! (PKCS#1 v1.5) by the store's key, base64 in `x-adobe-commerce-webhook-signature`; the
//! public key is the merchant's, read from a file at start.

use axum::http::HeaderMap;
use rsa::RsaPublicKey;

use crate::adobe_io_signature::verify_with;

/// The header that carries the signature.
pub const SIGNATURE: &str = "x-adobe-commerce-webhook-signature";

/// Whether `body` carries a valid signature by `key` in its headers (a missing header is
/// not signed).
pub fn signed_by(key: &RsaPublicKey, headers: &HeaderMap, body: &[u8]) -> bool {
    headers
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|signature| verify_with(key, signature, body))
}
