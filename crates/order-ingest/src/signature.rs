//! Verifying Adobe I/O Events digital signatures: the raw body is signed with RSA-SHA256
//! (PKCS#1 v1.5) by two keys, in `x-adobe-digital-signature-1/2`; the public keys are
//! fetched from a fixed base URL (Adobe: static.adobeioevents.com) plus the relative paths
//! in `x-adobe-public-key1-path` / `-2-path`, and cached. One valid signature suffices
//! (Adobe rotates the keys one at a time).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier as _;
use sha2::Sha256;

/// Why a delivery is not accepted as Adobe's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature headers.
    #[error("no x-adobe-digital-signature-1/2 header")]
    Unsigned,
    /// A key path that is not a plain relative path on the key host.
    #[error("public key path `{0}` is not a relative path on the key host")]
    BadKeyPath(String),
    /// The key could not be fetched or read (may be temporary).
    #[error("public key `{path}` unavailable: {reason}")]
    KeyUnavailable {
        /// The path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// No signature matches the body.
    #[error("no signature matches the body")]
    Mismatch,
}

/// Verifies deliveries, caching the public keys by path.
pub struct Verifier {
    base_url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, RsaPublicKey>>,
}

impl Verifier {
    /// Keys come from `base_url` + the header's path.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// `Ok` if one of the signatures in `headers` is valid for `body`.
    pub async fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
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
            let key = match self.key(&path).await {
                Ok(key) => key,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            if verify_with(&key, &signature, body) {
                return Ok(());
            }
        }
        Err(last)
    }

    async fn key(&self, path: &str) -> Result<RsaPublicKey, SignatureError> {
        if !path.starts_with('/')
            || path.contains("..")
            || path.contains("://")
            || path.contains('@')
        {
            return Err(SignatureError::BadKeyPath(path.to_owned()));
        }
        if let Some(key) = self.keys.read().ok().and_then(|k| k.get(path).cloned()) {
            return Ok(key);
        }
        let unavailable = |reason: String| SignatureError::KeyUnavailable {
            path: path.to_owned(),
            reason,
        };
        let answer = self
            .http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !answer.status().is_success() {
            return Err(unavailable(format!("HTTP {}", answer.status())));
        }
        let pem = answer
            .text()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let key = RsaPublicKey::from_public_key_pem(pem.trim())
            .map_err(|e| unavailable(format!("not an RSA public key: {e}")))?;
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(path.to_owned(), key.clone());
        }
        Ok(key)
    }
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
