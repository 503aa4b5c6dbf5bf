//! How a codec reaches a schema registry in production: basic authentication, a private
//! CA, and — with automatic registration off — schema ids looked up, never registered
//! (schemas are registered by a release step with its own credential:
//! `bridgectl schemas release`).

use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::SrSettings;
use serde_json::json;

use apache_avro::writer::datum::GenericDatumWriter;

use super::CodecError;
use crate::schema::RecordSchema;

/// Where and how to reach the registry.
#[derive(Clone, Default)]
pub struct RegistryAccess {
    /// Base URL, e.g. `https://registry.internal:8081`.
    pub url: String,
    /// Basic authentication: user and password.
    pub basic: Option<(String, String)>,
    /// PEM of a CA to trust beside the system's (a private registry's certificate).
    pub ca_pem: Option<Vec<u8>>,
    /// Register a subject's schema on first use (`true`), or only look its id up.
    pub auto_register: bool,
}

impl std::fmt::Debug for RegistryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAccess")
            .field("url", &self.url)
            .field("user", &self.basic.as_ref().map(|(user, _)| user))
            .field("ca_pem", &self.ca_pem.is_some())
            .field("auto_register", &self.auto_register)
            .finish()
    }
}

/// The registry answered nothing usable for a lookup.
fn unavailable(reason: String) -> CodecError {
    CodecError::RegistryUnavailable { reason }
}

/// An HTTP client trusting `ca_pem` too (the converter's own reqwest version).
fn client_builder(ca_pem: Option<&[u8]>) -> Result<reqwest::ClientBuilder, CodecError> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(pem) = ca_pem {
        let certificate =
            reqwest::Certificate::from_pem(pem).map_err(|e| CodecError::RegistryRefused {
                topic: String::new(),
                record: String::new(),
                reason: format!("the registry CA is not a PEM certificate: {e}"),
            })?;
        builder = builder.add_root_certificate(certificate);
    }
    Ok(builder)
}

impl RegistryAccess {
    /// The converter's settings for this access (for callers using the converter directly).
    pub fn sr_settings(&self) -> Result<SrSettings, CodecError> {
        let mut settings = SrSettings::new_builder(self.url.clone());
        if let Some((user, password)) = &self.basic {
            settings.set_basic_authorization(user, Some(password));
        }
        settings
            .build_with(client_builder(self.ca_pem.as_deref())?)
            .map_err(|e| unavailable(format!("registry client: {}", e.error)))
    }

    /// A looker-up of schema ids, when registration is off.
    pub(crate) fn lookup(&self) -> Result<Option<SchemaLookup>, CodecError> {
        if self.auto_register {
            return Ok(None);
        }
        let client = client_builder(self.ca_pem.as_deref())?
            .build()
            .map_err(|e| unavailable(format!("registry client: {e}")))?;
        Ok(Some(SchemaLookup {
            client,
            url: self.url.trim_end_matches('/').to_owned(),
            basic: self.basic.clone(),
        }))
    }
}

/// Looks a subject's schema up (`POST /subjects/{subject}`) for its id.
pub(crate) struct SchemaLookup {
    client: reqwest::Client,
    url: String,
    basic: Option<(String, String)>,
}

impl SchemaLookup {
    /// `value` (resolved against `schema`) framed with the id looked up for its subject.
    pub(crate) async fn encode(
        &self,
        topic: &str,
        record: &str,
        schema: &RecordSchema,
        value: apache_avro::types::Value,
    ) -> Result<Vec<u8>, CodecError> {
        let subject = crate::EventCodec::subject(topic, record);
        let id = self.id(topic, record, &subject, &schema.text).await?;
        let mut bytes = vec![0];
        bytes.extend_from_slice(&id.to_be_bytes());
        GenericDatumWriter::builder(&schema.schema)
            .build()
            .and_then(|writer| writer.write_value(&mut bytes, value))
            .map_err(|e| CodecError::Encode {
                record: record.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(bytes)
    }

    /// The id under which `subject` holds `schema`; a subject without it is refused (a
    /// release step must register it first).
    async fn id(
        &self,
        topic: &str,
        record: &str,
        subject: &str,
        schema: &str,
    ) -> Result<u32, CodecError> {
        let mut request = self
            .client
            .post(format!("{}/subjects/{subject}", self.url))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(json!({ "schema": schema }).to_string());
        if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, Some(password));
        }
        let answer = request
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = answer.status();
        let body = answer
            .text()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(unavailable(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(CodecError::RegistryRefused {
                topic: topic.to_owned(),
                record: record.to_owned(),
                reason: format!(
                    "HTTP {status}: schema not registered under `{subject}` and \
                     automatic registration is off (register it with `bridgectl schemas release`)"
                ),
            });
        }
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| unavailable(format!("lookup of `{subject}` answered without an id")))
    }
}
