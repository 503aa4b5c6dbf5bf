//! `inventory-aggregator` settings: the runtime's sections plus `[aggregator]` (topics and
//! windows). Every key can be set from the environment, e.g.
//! `BRIDGE__AGGREGATOR__WINDOW_MS=60000`.

use std::time::Duration;

use bridge_runtime::config::{
    ConfigError, HttpConfig, KafkaConfig, ProcessorSettings, RegistryConfig, ServiceConfig,
    Validate,
};
use serde::Deserialize;

use crate::window::Windows;

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
    /// Topics and windows.
    #[serde(default)]
    pub aggregator: AggregatorSettings,
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

/// `[aggregator]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorSettings {
    /// Consumer group (and the changelog/parked topic prefix).
    pub group_id: String,
    /// Movements come from here.
    pub input_topic: String,
    /// Aggregates go here, keyed by source code (so erp-writer batches per warehouse).
    pub output_topic: String,
    /// Window length (tumbling, on event time).
    pub window_ms: u64,
    /// How long after its end a window still takes movements.
    pub grace_ms: u64,
    /// How long a closed window is remembered (late movements for it become corrections);
    /// keep it longer than the dedupe TTL.
    pub closed_retention_hours: u64,
}

impl Default for AggregatorSettings {
    fn default() -> Self {
        Self {
            group_id: "inventory-aggregator".into(),
            input_topic: bridge_events::topics::INVENTORY_MOVEMENTS.into(),
            output_topic: bridge_events::topics::STOCK_DELTAS.into(),
            window_ms: 5 * 60_000,
            grace_ms: 60_000,
            closed_retention_hours: 8 * 24,
        }
    }
}

impl AggregatorSettings {
    /// The windows.
    pub fn windows(&self) -> Windows {
        Windows {
            size: self.window_ms as i64,
            grace: self.grace_ms as i64,
        }
    }

    /// How long closed windows are remembered.
    pub fn closed_retention(&self) -> Duration {
        Duration::from_secs(self.closed_retention_hours * 3600)
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.service().validate()?;
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        let a = &self.aggregator;
        if !(1_000..=24 * 3_600_000).contains(&a.window_ms) {
            return invalid(format!(
                "aggregator.window_ms = {} must be between 1000 (1 s) and 86400000 (1 day)",
                a.window_ms
            ));
        }
        if a.grace_ms > 24 * 3_600_000 {
            return invalid(format!(
                "aggregator.grace_ms = {} must be at most 86400000 (1 day)",
                a.grace_ms
            ));
        }
        let dedupe_hours = self.processor.dedupe_ttl_hours;
        if a.closed_retention_hours <= dedupe_hours {
            return invalid(format!(
                "aggregator.closed_retention_hours = {} must exceed processor.dedupe_ttl_hours = \
                 {dedupe_hours}: a reopened window would repeat an event id consumers forgot",
                a.closed_retention_hours
            ));
        }
        for (key, value) in [
            ("group_id", &a.group_id),
            ("input_topic", &a.input_topic),
            ("output_topic", &a.output_topic),
        ] {
            if value.trim().is_empty() {
                return invalid(format!("aggregator.{key} must be set"));
            }
        }
        Ok(())
    }
}
