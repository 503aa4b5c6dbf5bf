//! What a webhook route reads before it trusts anything: the HMAC scheme's header and body
//! (`/webhooks/custom`) and RSA signatures of any shape over any body (`/webhooks/adobe-io`,
//! `/webhooks/commerce`). Input: a header line, a newline, then the body.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use bridge_runtime::secret::Secret;
use libfuzzer_sys::fuzz_target;
use magento::hmac_signature::{HEADER, HmacVerifier};
use rsa::pkcs8::DecodePublicKey;

/// A fixed 2048-bit public key (the shape Adobe's are).
const KEY: &str = include_str!("../seeds/public_key.pem");

fuzz_target!(|data: &[u8]| {
    static VERIFIER: OnceLock<HmacVerifier> = OnceLock::new();
    static RSA: OnceLock<Option<rsa::RsaPublicKey>> = OnceLock::new();
    let verifier = VERIFIER
        .get_or_init(|| HmacVerifier::new(Secret::new("fuzz-secret"), Duration::from_secs(300)));
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (line, body) = data.split_at(split);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(line) {
        headers.insert(HEADER, value.clone());
        let _ = verifier.verify(&headers, body, 1_700_000_000);
        if let (Some(Some(key)), Ok(text)) = (
            RSA.get_or_init(|| rsa::RsaPublicKey::from_public_key_pem(KEY).ok())
                .as_ref()
                .map(Some),
            value.to_str(),
        ) {
            let _ = magento::adobe_io_signature::verify_with(key, text, body);
        }
    }
});
