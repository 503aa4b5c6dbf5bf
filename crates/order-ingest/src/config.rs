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
use bridge_runtime::config::{require_https, url_host};
use bridge_runtime::listener::ListenerSettings;
use bridge_runtime::secret::Secret;
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
pub use magento::rest::MagentoSettings;

/// `[ingest.webhook]`: the public receiver. Every route it serves verifies a signature;
/// a route without its verification configured stops the start, unless `allow_unsigned`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Serve the receiver.
    pub enabled: bool,
    /// Where (the public side; health and metrics stay on `http.listen`).
    pub listen: SocketAddr,
    /// The routes served: `adobe-io` (`/webhooks/adobe-io`), `commerce`
    /// (`/webhooks/commerce`), `custom` (`/webhooks/custom`, HMAC-signed).
    pub routes: Vec<Route>,
    /// Serve routes that have no verification configured, accepting unsigned deliveries.
    /// For a local test only: anyone who reaches the port can then announce orders. Logged
    /// at start and exported as `bridge_ingest_webhook_unsigned_allowed`.
    pub allow_unsigned: bool,
    /// Adobe I/O Events: the project's client id (Adobe Developer Console). Deliveries must
    /// carry it as `recipient_client_id`; required for the `adobe-io` route.
    pub client_id: Option<String>,
    /// Adobe I/O Events: public keys are fetched from here plus the
    /// `x-adobe-public-keyN-path` header. Adobe: `https://static.adobeioevents.com`.
    pub key_base_url: String,
    /// Hosts `key_base_url` may name; keys are fetched from no other.
    pub key_hosts: Vec<String>,
    /// Adobe I/O Events: a delivery whose CloudEvents `time` is older than this (or further
    /// ahead than 5 minutes) is a replay and refused. Adobe retries for 24 hours.
    pub max_event_age_seconds: u64,
    /// PEM file of the public key Adobe Commerce webhooks are signed with (Admin → Adobe
    /// Services → Webhooks); required for the `commerce` route.
    pub commerce_public_key_file: Option<PathBuf>,
    /// Shared secret of the `custom` route (HMAC-SHA256); or `hmac_secret_file`.
    pub hmac_secret: Option<Secret>,
    /// A file holding `hmac_secret` (a mounted Kubernetes Secret).
    pub hmac_secret_file: Option<PathBuf>,
    /// `custom` route: the signed timestamp may be this far from now; a signature seen
    /// within this window is a replay.
    pub hmac_max_skew_seconds: u64,
    /// Commerce webhook doorbells waiting for a worker at most; when full one is dropped
    /// (counted; the poller reads the order) — checkout is never held.
    pub doorbell_queue: usize,
    /// Connection and request limits, TLS.
    pub server: ListenerSettings,
}

/// A webhook route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// `POST /webhooks/adobe-io`: Adobe I/O Events (RSA-SHA256, recipient client id).
    AdobeIo,
    /// `POST /webhooks/commerce`: Adobe Commerce webhooks (RSA-SHA256).
    Commerce,
    /// `POST /webhooks/custom`: a custom module's doorbell, HMAC-SHA256 with a timestamp.
    Custom,
}

impl Route {
    /// The name in settings and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::AdobeIo => "adobe-io",
            Self::Commerce => "commerce",
            Self::Custom => "custom",
        }
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8089)),
            routes: vec![Route::AdobeIo],
            allow_unsigned: false,
            client_id: None,
            key_base_url: "https://static.adobeioevents.com".into(),
            key_hosts: vec!["static.adobeioevents.com".into()],
            max_event_age_seconds: 25 * 3600,
            commerce_public_key_file: None,
            hmac_secret: None,
            hmac_secret_file: None,
            hmac_max_skew_seconds: 300,
            doorbell_queue: 1_000,
            server: ListenerSettings::default(),
        }
    }
}

impl WebhookSettings {
    /// The `custom` route's secret, from the value or its file.
    pub fn hmac_secret(&self) -> Result<Option<Secret>, ConfigError> {
        bridge_runtime::secret::resolve(
            "ingest.webhook.hmac_secret",
            self.hmac_secret.as_ref(),
            self.hmac_secret_file.as_deref(),
        )
    }

    /// Whether `route` has its verification configured.
    pub fn verifies(&self, route: Route) -> bool {
        match route {
            Route::AdobeIo => self
                .client_id
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty()),
            Route::Commerce => self.commerce_public_key_file.is_some(),
            Route::Custom => {
                self.hmac_secret.as_ref().is_some_and(|s| !s.is_empty())
                    || self.hmac_secret_file.is_some()
            }
        }
    }

    /// Refuses a receiver that would take unverified deliveries without `allow_unsigned`,
    /// and key hosts that are not allow-listed or not reached over https.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        if !self.enabled {
            return Ok(());
        }
        self.server.validate("ingest.webhook.server")?;
        if self.routes.is_empty() {
            return invalid(
                "ingest.webhook.routes is empty while ingest.webhook.enabled = true".into(),
            );
        }
        for route in &self.routes {
            if !self.verifies(*route) && !self.allow_unsigned {
                let needs = match route {
                    Route::AdobeIo => {
                        "ingest.webhook.client_id (the Adobe Developer Console project's client id)"
                    }
                    Route::Commerce => {
                        "ingest.webhook.commerce_public_key_file (Admin → Adobe Services → Webhooks)"
                    }
                    Route::Custom => "ingest.webhook.hmac_secret or hmac_secret_file",
                };
                return invalid(format!(
                    "ingest.webhook route `{}` has no signature verification: set {needs}, \
                     or allow_unsigned = true to accept unsigned deliveries (local tests only)",
                    route.name()
                ));
            }
        }
        self.hmac_secret()?;
        if self.routes.contains(&Route::AdobeIo) && self.verifies(Route::AdobeIo) {
            let host = url_host(&self.key_base_url).unwrap_or_default();
            if !self.key_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
                return invalid(format!(
                    "ingest.webhook.key_base_url host `{host}` is not in ingest.webhook.key_hosts"
                ));
            }
            require_https("ingest.webhook.key_base_url", &self.key_base_url)?;
        }
        if !(60..=7 * 24 * 3600).contains(&self.max_event_age_seconds) {
            return invalid(format!(
                "ingest.webhook.max_event_age_seconds = {} is outside 60 – 604800",
                self.max_event_age_seconds
            ));
        }
        if !(10..=3600).contains(&self.hmac_max_skew_seconds) {
            return invalid(format!(
                "ingest.webhook.hmac_max_skew_seconds = {} is outside 10 – 3600",
                self.hmac_max_skew_seconds
            ));
        }
        if !(1..=100_000).contains(&self.doorbell_queue) {
            return invalid(format!(
                "ingest.webhook.doorbell_queue = {} is outside 1 – 100000",
                self.doorbell_queue
            ));
        }
        Ok(())
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
        ingest.magento.validate("ingest.magento")?;
        for (key, url) in [("ingest.webhook.key_base_url", &ingest.webhook.key_base_url)] {
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
        ingest.webhook.validate()?;
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
            &[
                ("BRIDGE__INGEST__MAGENTO__TOKEN", "secret-token"),
                ("BRIDGE__INGEST__WEBHOOK__CLIENT_ID", "project-client-id"),
            ],
        )?;
        assert_eq!(config.ingest.magento.token.expose(), "secret-token");
        assert!(!format!("{config:?}").contains("secret-token"));
        assert_eq!(config.ingest.poll.page_size, 100);
        Ok(())
    }

    #[test]
    fn a_webhook_route_without_verification_is_refused_unless_allowed() -> Result<(), ConfigError> {
        let base = "[kafka]\nbootstrap_servers = \"k:9092\"\n";
        let refused = load(base, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("`adobe-io`")
                && refused.contains("client_id")
                && refused.contains("allow_unsigned"),
            "{refused}"
        );
        let commerce = load(
            &format!(
                "{base}[ingest.webhook]\nclient_id = \"c\"\nroutes = [\"adobe-io\", \"commerce\"]\n"
            ),
            &[],
        );
        let text = commerce.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("commerce_public_key_file"), "{text}");
        let allowed = load(
            &format!("{base}[ingest.webhook]\nallow_unsigned = true\n"),
            &[],
        )?;
        assert!(!allowed.ingest.webhook.verifies(Route::AdobeIo));
        // Polling only needs no webhook verification.
        load(&format!("{base}[ingest.webhook]\nenabled = false\n"), &[])?;
        Ok(())
    }

    #[test]
    fn keys_come_only_from_an_allow_listed_host_over_https() {
        let base = "[kafka]\nbootstrap_servers = \"k:9092\"\n[ingest.webhook]\nclient_id = \"c\"\n";
        for (extra, expected) in [
            (
                "key_base_url = \"https://keys.attacker.example\"\n",
                "is not in ingest.webhook.key_hosts",
            ),
            (
                "key_base_url = \"http://static.adobeioevents.com\"\n",
                "must be an https URL",
            ),
        ] {
            let text = load(&format!("{base}{extra}"), &[])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(text.contains(expected), "{extra}: {text}");
        }
    }

    #[test]
    fn the_hmac_secret_comes_from_a_file_and_is_never_printed() -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let file = dir.path().join("hmac");
        std::fs::write(&file, "shared-hmac-secret\n").map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let config = load(
            &format!(
                "[kafka]\nbootstrap_servers = \"k:9092\"\n[ingest.webhook]\nroutes = [\"custom\"]\nhmac_secret_file = {:?}\n",
                file.display().to_string()
            ),
            &[],
        )?;
        let secret = config.ingest.webhook.hmac_secret()?;
        assert_eq!(
            secret.as_ref().map(|s| s.expose()),
            Some("shared-hmac-secret")
        );
        let inline = load(
            "[kafka]\nbootstrap_servers = \"k:9092\"\n[ingest.webhook]\nroutes = [\"custom\"]\n",
            &[("BRIDGE__INGEST__WEBHOOK__HMAC_SECRET", "inline-hmac-secret")],
        )?;
        assert!(!format!("{inline:?}").contains("inline-hmac-secret"));
        Ok(())
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let base = "[kafka]\nbootstrap_servers = \"k:9092\"\n";
        for (extra, key) in [
            ("[ingest]\nsource = \"shop\"\n", "ingest.source"),
            ("[ingest.poll]\npage_size = 0\n", "ingest.poll.page_size"),
            (
                "[ingest.webhook.server]\nmax_body_bytes = 0\n",
                "ingest.webhook.server.max_body_bytes",
            ),
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
            let error = load(
                &format!("{base}{extra}"),
                &[("BRIDGE__INGEST__WEBHOOK__CLIENT_ID", "c")],
            )
            .map(|_| ())
            .err();
            let text = error.map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains(key), "{extra}: {text}");
        }
    }
}
