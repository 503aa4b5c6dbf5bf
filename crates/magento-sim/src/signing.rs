//! Adobe I/O Events digital signatures: each delivery is signed with two RSA keys
//! (RSA-SHA256, PKCS#1 v1.5, base64) in `x-adobe-digital-signature-1/2`, and the relative
//! paths of the matching public keys travel in `x-adobe-public-key1-path` / `-2-path`
//! (Adobe serves them from static.adobeioevents.com; the sim serves them under `/sim`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// The relative paths of the two public keys (below the key base URL).
pub const KEY_PATHS: [&str; 2] = ["/keys/pub-key-1.pem", "/keys/pub-key-2.pem"];

/// Two signing keys, as Adobe uses.
pub struct Signer {
    keys: [SigningKey<Sha256>; 2],
    public: [String; 2],
}

/// Key generation failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the signing keys: {0}")]
pub struct KeyError(String);

impl Signer {
    /// Two fresh 2048-bit keys.
    pub fn generate() -> Result<Self, KeyError> {
        let mut rng = rsa::rand_core::OsRng;
        let mut make = || -> Result<(SigningKey<Sha256>, String), KeyError> {
            let private =
                RsaPrivateKey::new(&mut rng, 2048).map_err(|e| KeyError(e.to_string()))?;
            let pem = RsaPublicKey::from(&private)
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| KeyError(e.to_string()))?;
            Ok((SigningKey::<Sha256>::new(private), pem))
        };
        let (first, first_pem) = make()?;
        let (second, second_pem) = make()?;
        Ok(Self {
            keys: [first, second],
            public: [first_pem, second_pem],
        })
    }

    /// The PEM of public key `n` (0 or 1).
    pub fn public_pem(&self, n: usize) -> Option<&str> {
        self.public.get(n).map(String::as_str)
    }

    /// The two signature headers and the two key-path headers for `body`.
    pub fn headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        let sign = |key: &SigningKey<Sha256>| STANDARD.encode(key.sign(body).to_bytes());
        vec![
            ("x-adobe-digital-signature-1", sign(&self.keys[0])),
            ("x-adobe-digital-signature-2", sign(&self.keys[1])),
            ("x-adobe-public-key1-path", KEY_PATHS[0].to_owned()),
            ("x-adobe-public-key2-path", KEY_PATHS[1].to_owned()),
        ]
    }
}
