//! Verifying Adobe I/O Events digital signatures: the raw body is signed with RSA-SHA256
//! (PKCS#1 v1.5) by two keys, in `x-adobe-digital-signature-1/2`; the public keys are
//! fetched from a fixed base URL on an allow-listed host (Adobe: static.adobeioevents.com)
//! plus the relative paths in `x-adobe-public-key1-path` / `-2-path`, and cached. One valid
//! signature suffices (Adobe rotates the keys one at a time).
//!
//! The key paths come from the caller, so they are held tight: a plain `/….pem` path of at
//! most 200 characters, at most [`MAX_KEYS`] keys cached, a key body of at most
//! [`MAX_KEY_BYTES`], and a failed fetch remembered for [`FAILED_FETCH_TTL`] so a flood of
//! forged deliveries cannot make the receiver hammer the key host.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier as _;
use sha2::Sha256;

/// Keys cached at most (Adobe uses two at a time).
pub const MAX_KEYS: usize = 16;
/// Largest key file read from the key host.
pub const MAX_KEY_BYTES: usize = 16 * 1024;
/// How long a failed key fetch is answered from memory.
pub const FAILED_FETCH_TTL: Duration = Duration::from_secs(30);

/// Why a delivery is not accepted as Adobe's.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature headers.
    #[error("no x-adobe-digital-signature-1/2 header")]
    Unsigned,
    /// A key path that is not a plain relative `.pem` path on the key host.
    #[error("public key path is not a relative .pem path on the key host")]
    BadKeyPath,
    /// The key host says there is no such key: the delivery is not Adobe's.
    #[error("public key not found on the key host (HTTP {status})")]
    KeyNotFound {
        /// The key host's answer.
        status: u16,
    },
    /// The key could not be fetched or read (may be temporary).
    #[error("public key unavailable: {reason}")]
    KeyUnavailable {
        /// What failed.
        reason: String,
    },
    /// No signature matches the body.
    #[error("no signature matches the body")]
    Mismatch,
}

impl SignatureError {
    /// Whether the sender should retry (the key host could not be asked), rather than the
    /// delivery being refused as not Adobe's.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::KeyUnavailable { .. })
    }
}

/// Verifies deliveries, caching the public keys by path.
pub struct Verifier {
    base_url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, RsaPublicKey>>,
    failed: RwLock<HashMap<String, (Instant, SignatureError)>>,
}

impl Verifier {
    /// Keys come from `base_url` (whose host the configuration allow-listed) + the header's
    /// path.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(HashMap::new()),
            failed: RwLock::new(HashMap::new()),
        }
    }

    /// `Ok` if one of the signatures in `headers` is valid for `body`.
    pub async fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let pairs = [
            (
                header("x-adobe-digital-signature-1"),
                header("x-adobe-public-key1-path"),
            ),
            (
                header("x-adobe-digital-signature-2"),
                header("x-adobe-public-key2-path"),
            ),
        ];
        if pairs.iter().all(|(s, _)| s.is_none()) {
            return Err(SignatureError::Unsigned);
        }
        let mut last = SignatureError::Mismatch;
        for (signature, path) in pairs {
            let (Some(signature), Some(path)) = (signature, path) else {
                continue;
            };
            let key = match self.key(path).await {
                Ok(key) => key,
                Err(e) => {
                    // A retryable failure of one key must not hide a mismatch of the other.
                    if !matches!(last, SignatureError::KeyUnavailable { .. }) {
                        last = e;
                    }
                    continue;
                }
            };
            if verify_with(&key, signature, body) {
                return Ok(());
            }
        }
        Err(last)
    }

    async fn key(&self, path: &str) -> Result<RsaPublicKey, SignatureError> {
        if !is_key_path(path) {
            return Err(SignatureError::BadKeyPath);
        }
        if let Some(key) = self.keys.read().ok().and_then(|k| k.get(path).cloned()) {
            return Ok(key);
        }
        if let Some((at, error)) = self.failed.read().ok().and_then(|f| f.get(path).cloned())
            && at.elapsed() < FAILED_FETCH_TTL
        {
            return Err(error);
        }
        let fetched = self.fetch(path).await;
        match &fetched {
            Ok(key) => {
                if let Ok(mut keys) = self.keys.write() {
                    if keys.len() >= MAX_KEYS {
                        keys.clear();
                    }
                    keys.insert(path.to_owned(), key.clone());
                }
            }
            Err(error) => {
                if let Ok(mut failed) = self.failed.write() {
                    failed.retain(|_, (at, _)| at.elapsed() < FAILED_FETCH_TTL);
                    if failed.len() < 1_024 {
                        failed.insert(path.to_owned(), (Instant::now(), error.clone()));
                    }
                }
            }
        }
        fetched
    }

    async fn fetch(&self, path: &str) -> Result<RsaPublicKey, SignatureError> {
        let unavailable = |reason: String| SignatureError::KeyUnavailable { reason };
        let answer = self
            .http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = answer.status();
        if status.is_client_error() {
            return Err(SignatureError::KeyNotFound {
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {status}")));
        }
        let pem = bridge_runtime::http_body::read_capped(answer, MAX_KEY_BYTES)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let pem = String::from_utf8_lossy(&pem);
        RsaPublicKey::from_public_key_pem(pem.trim())
            .map_err(|e| unavailable(format!("not an RSA public key: {e}")))
    }
}

/// A key path as Adobe sends them (`/prod/keys/pub-key-voy5XEbWmT.pem`): absolute, plain
/// characters, no `..`, ending in `.pem`.
fn is_key_path(path: &str) -> bool {
    path.len() <= 200
        && path.starts_with('/')
        && path.ends_with(".pem")
        && !path.contains("..")
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
}

/// The RSA public key in the PEM file at `path`; the error says what is wrong.
pub fn read_public_key(path: &std::path::Path) -> Result<RsaPublicKey, String> {
    let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    RsaPublicKey::from_public_key_pem(pem.trim())
        .map_err(|e| format!("{}: not an RSA public key (PEM): {e}", path.display()))
}

/// `true` if `signature` (base64 RSA-SHA256, PKCS#1 v1.5) is `key`'s over `body`.
pub fn verify_with(key: &RsaPublicKey, signature: &str, body: &[u8]) -> bool {
    let Ok(bytes) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(body, &signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_pem_paths_are_key_paths() {
        for good in ["/prod/keys/pub-key-voy5XEbWmT.pem", "/keys/pub-key-1.pem"] {
            assert!(is_key_path(good), "{good}");
        }
        for bad in [
            "keys/a.pem",
            "/keys/../a.pem",
            "//evil.example/a.pem",
            "/keys/a.pem?x=1",
            "/keys/a",
            "/keys/a@b.pem",
            "/k%2e%2e/a.pem",
        ] {
            assert!(!is_key_path(bad), "{bad}");
        }
        assert!(!is_key_path(&format!("/{}.pem", "a".repeat(300))));
    }
}
