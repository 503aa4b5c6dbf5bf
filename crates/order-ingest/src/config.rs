//! `order-ingest` settings: the runtime's sections plus `[ingest]` with its Magento,
//! webhook and poll parts. Every key can be set from the environment, e.g.
//! `BRIDGE__INGEST__MAGENTO__TOKEN`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bridge_runtime::config::{
    ConfigError, HttpConfig, KafkaConfig, ProcessorSettings, RegistryConfig, ServiceConfig,
    Validate,
};
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// The schema registry.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Health, readiness and metrics endpoints.
    #[serde(default)]
    pub http: HttpConfig,
    /// `state_dir` and `instance_id` are used (the transactional id derives from it).
    #[serde(default)]
    pub processor: ProcessorSettings,
    /// What to ingest and how.
    #[serde(default)]
    pub ingest: IngestSettings,
}

/// `[ingest]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// The `source` of the events: `magento:<store code>`.
    pub source: String,
    /// Order facts go here.
    pub orders_topic: String,
    /// Stock movements go here.
    pub movements_topic: String,
    /// Inputs that cannot be mapped go here, with the reason.
    pub parked_topic: String,
    /// How long a webhook may wait for Kafka before it is answered 503.
    pub publish_timeout_ms: u64,
    /// The Magento REST API.
    pub magento: MagentoSettings,
    /// The Adobe I/O Events webhook receiver.
    pub webhook: WebhookSettings,
    /// The REST poller.
    pub poll: PollSettings,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            source: "magento:default".into(),
            orders_topic: bridge_events::topics::ORDERS.into(),
            movements_topic: bridge_events::topics::INVENTORY_MOVEMENTS.into(),
            parked_topic: "order-ingest-parked".into(),
            publish_timeout_ms: 8_000,
            magento: MagentoSettings::default(),
            webhook: WebhookSettings::default(),
            poll: PollSettings::default(),
        }
    }
}

/// `[ingest.magento]`: the store's REST API.
pub use magento_rest::MagentoSettings;

/// `[ingest.webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Serve the receiver.
    pub enabled: bool,
    /// Where (the public side; health and metrics stay on `http.listen`).
    pub listen: SocketAddr,
    /// Public keys are fetched from here plus the `x-adobe-public-keyN-path` header.
    /// Adobe: `https://static.adobeioevents.com`.
    pub key_base_url: String,
    /// When set, deliveries whose `recipient_client_id` differs are refused.
    pub client_id: Option<String>,
    /// `false` accepts unsigned deliveries (local testing only; logged loudly at start).
    pub verify_signatures: bool,
    /// PEM file of the public key Adobe Commerce webhooks are signed with (Admin → Adobe
    /// Services → Webhooks); when set, `/webhooks/commerce` requires the signature.
    pub commerce_public_key_file: Option<PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8089)),
            key_base_url: "https://static.adobeioevents.com".into(),
            client_id: None,
            verify_signatures: true,
            commerce_public_key_file: None,
        }
    }
}

/// `[ingest.poll]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollSettings {
    /// Run the poller (in one replica only).
    pub enabled: bool,
    /// Time between polls.
    pub interval_ms: u64,
    /// Rows per REST page.
    pub page_size: usize,
    /// Each poll starts this far before the saved cursor (Magento times have second
    /// resolution and saves can commit out of order).
    pub overlap_seconds: u64,
    /// With no saved cursor, the first poll reads this far back.
    pub initial_lookback_hours: u64,
    /// Poll credit memos too.
    pub creditmemos: bool,
    /// Poll shipments too (the MSI source stock leaves from).
    pub shipments: bool,
    /// Read every MSI source item this often and publish the quantities that changed as
    /// `SOURCE_ITEM_SET` (source items have no `updated_at`); 0 turns it off.
    pub source_items_interval_ms: u64,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 30_000,
            page_size: 100,
            overlap_seconds: 120,
            initial_lookback_hours: 24,
            creditmemos: true,
            shipments: true,
            source_items_interval_ms: 300_000,
        }
    }
}

impl Config {
    /// The runtime's view of the shared sections.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            kafka: self.kafka.clone(),
            registry: self.registry.clone(),
            http: self.http.clone(),
            processor: self.processor.clone(),
        }
    }

    /// Where published ids and cursors live.
    pub fn state_dir(&self) -> PathBuf {
        self.processor
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".data/order-ingest/state"))
    }

    /// How long a publish may take.
    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.ingest.publish_timeout_ms)
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.service().validate()?;
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        let ingest = &self.ingest;
        if !ingest.source.starts_with("magento:") || ingest.source.len() <= "magento:".len() {
            return invalid(format!(
                "ingest.source = `{}` must be `magento:<store code>`",
                ingest.source
            ));
        }
        if !(1_000..=60_000).contains(&ingest.publish_timeout_ms) {
            return invalid(format!(
                "ingest.publish_timeout_ms = {} is outside 1000 – 60000",
                ingest.publish_timeout_ms
            ));
        }
        for (key, url) in [
            ("ingest.magento.base_url", &ingest.magento.base_url),
            ("ingest.webhook.key_base_url", &ingest.webhook.key_base_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(format!("{key} = `{url}` is not an http(s) URL"));
            }
        }
        if ingest.poll.page_size == 0 || ingest.poll.page_size > 1000 {
            return invalid(format!(
                "ingest.poll.page_size = {} is outside 1 – 1000",
                ingest.poll.page_size
            ));
        }
        if ingest.poll.interval_ms < 100 {
            return invalid(format!(
                "ingest.poll.interval_ms = {} is below 100",
                ingest.poll.interval_ms
            ));
        }
        if !ingest.webhook.enabled && !ingest.poll.enabled {
            return invalid("ingest.webhook.enabled and ingest.poll.enabled are both false: nothing would be ingested".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let config: Config = bridge_runtime::config::load(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn defaults_load_and_the_environment_sets_the_token() -> Result<(), ConfigError> {
        let config = load(
            "[kafka]\nbootstrap_servers = \"k:9092\"\n",
            &[("BRIDGE__INGEST__MAGENTO__TOKEN", "secret-token")],
        )?;
        assert_eq!(config.ingest.magento.token, "secret-token");
        assert!(!format!("{config:?}").contains("secret-token"));
        assert_eq!(config.ingest.poll.page_size, 100);
        Ok(())
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let base = "[kafka]\nbootstrap_servers = \"k:9092\"\n";
        for (extra, key) in [
            ("[ingest]\nsource = \"shop\"\n", "ingest.source"),
            ("[ingest.poll]\npage_size = 0\n", "ingest.poll.page_size"),
            (
                "[ingest.magento]\nbase_url = \"shop.example.com\"\n",
                "ingest.magento.base_url",
            ),
            (
                "[ingest.webhook]\nenabled = false\n[ingest.poll]\nenabled = false\n",
                "ingest.webhook.enabled",
            ),
            ("[ingest.poll]\nintervall_ms = 5\n", "intervall_ms"),
        ] {
            let error = load(&format!("{base}{extra}"), &[]).map(|_| ()).err();
            let text = error.map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains(key), "{extra}: {text}");
        }
    }
}
