//! `magento-writer` settings: the runtime's sections plus `[writer]` (what to write back,
//! how fast) and `[writer.magento]` (the store). Every key can be set from the
//! environment, e.g. `BRIDGE__WRITER__MAGENTO__TOKEN`.

use bridge_runtime::config::{
    ConfigError, HttpConfig, KafkaConfig, ProcessorSettings, RegistryConfig, ServiceConfig,
    Validate,
};
use magento::rest::MagentoSettings;
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
    /// The processing loop.
    #[serde(default)]
    pub processor: ProcessorSettings,
    /// What to write back.
    #[serde(default)]
    pub writer: WriterSettings,
}

impl Config {
    /// The runtime's part.
    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            kafka: self.kafka.clone(),
            registry: self.registry.clone(),
            http: self.http.clone(),
            processor: self.processor.clone(),
        }
    }
}

/// `[writer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriterSettings {
    /// Consumer group (and the changelog/parked topic prefix).
    pub group_id: String,
    /// ERP verdicts come from here.
    pub results_topic: String,
    /// Order status to set when the ERP accepts an order; empty keeps the status.
    pub accepted_status: String,
    /// Order status to set when the ERP rejects an order (e.g. `holded`, or a custom
    /// status assigned to a state); empty keeps the status.
    pub rejected_status: String,
    /// Email the customer about the comment (normally not: it is for the back office).
    pub notify_customer: bool,
    /// REST calls per second at most (0 = unlimited).
    pub rate_limit_per_second: f64,
    /// Calls that may go at once after a quiet time.
    pub burst: u32,
    /// Transient failures in a row that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long it stays open.
    pub breaker_open_ms: u64,
    /// The store.
    pub magento: MagentoSettings,
    /// Stock repairs from the reconciler.
    pub resync: ResyncSettings,
}

/// `[writer.resync]`: the reconciler's stock repairs (`ResyncRequested`, target
/// `MAGENTO`): MSI source-item quantities set to the ERP's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResyncSettings {
    /// Act on them at all (a second processing loop in the process).
    pub enabled: bool,
    /// Its consumer group.
    pub group_id: String,
    /// Resync requests come from here.
    pub topic: String,
    /// Requests older than this are skipped (stock has moved since).
    pub max_age_ms: u64,
}

impl Default for ResyncSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            group_id: "magento-writer-resync".into(),
            topic: bridge_events::topics::RESYNC_REQUESTS.into(),
            max_age_ms: 3_600_000,
        }
    }
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            group_id: "magento-writer".into(),
            results_topic: bridge_events::topics::ERP_RESULTS.into(),
            accepted_status: String::new(),
            rejected_status: String::new(),
            notify_customer: false,
            rate_limit_per_second: 5.0,
            burst: 5,
            breaker_failures: 5,
            breaker_open_ms: 10_000,
            magento: MagentoSettings::default(),
            resync: ResyncSettings::default(),
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.service().validate()?;
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        let w = &self.writer;
        w.magento.validate("writer.magento")?;
        if !(w.rate_limit_per_second >= 0.0 && w.rate_limit_per_second.is_finite()) {
            return invalid(format!(
                "writer.rate_limit_per_second = {} must be 0 (unlimited) or more",
                w.rate_limit_per_second
            ));
        }
        if w.breaker_failures == 0 {
            return invalid("writer.breaker_failures must be at least 1".into());
        }
        if w.results_topic.trim().is_empty() || w.group_id.trim().is_empty() {
            return invalid("writer.results_topic and writer.group_id must be set".into());
        }
        if w.resync.enabled && w.resync.group_id == w.group_id {
            return invalid(format!(
                "writer.resync.group_id = `{}` must differ from writer.group_id",
                w.resync.group_id
            ));
        }
        Ok(())
    }
}
