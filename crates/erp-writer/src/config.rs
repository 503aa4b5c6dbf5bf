//! `erp-writer` settings: the runtime's sections plus `[writer]` (topics, the mapping file)
//! and `[writer.erp]` (which ERP, how hard to push it). Every key can be set from the
//! environment, e.g. `BRIDGE__WRITER__ERP__BASE_URL`.

use std::path::PathBuf;

use bridge_runtime::config::{
    ConfigError, HttpConfig, KafkaConfig, ProcessorSettings, RegistryConfig, ServiceConfig,
    Validate,
};
use erp::settings::ErpSettings;
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
    /// What to write where.
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
    /// Order facts come from here.
    pub orders_topic: String,
    /// ERP verdicts go here.
    pub results_topic: String,
    /// The mapping file.
    pub mapping_file: PathBuf,
    /// Orders in the works at once in this instance: that many processing loops share the
    /// orders topic's partitions (one ERP call in flight each), under one rate limit and
    /// circuit breaker. More than the topic's partitions leaves some idle. Default 1.
    pub order_workers: usize,
    /// The ERP.
    pub erp: ErpSettings,
    /// Stock adjustments.
    pub stock: StockSettings,
    /// Customers ensured in the ERP ahead of their orders.
    pub customers: CustomerSettings,
    /// Repairs the reconciler asks for.
    pub resync: ResyncSettings,
    /// Shipments read back from the ERP.
    pub shipments: ShipmentSettings,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            group_id: "erp-writer".into(),
            orders_topic: bridge_events::topics::ORDERS.into(),
            results_topic: bridge_events::topics::ERP_RESULTS.into(),
            mapping_file: PathBuf::from("deploy/config/mapping.toml"),
            order_workers: 1,
            erp: ErpSettings::default(),
            stock: StockSettings::default(),
            customers: CustomerSettings::default(),
            resync: ResyncSettings::default(),
            shipments: ShipmentSettings::default(),
        }
    }
}

/// `[writer.shipments]`: the ERP's shipment journal read back as `OrderShipped` events on
/// the results topic (magento-writer ships the order in Magento). Read by the instance
/// that owns partition 0 of the orders topic, the journal position kept in its state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShipmentSettings {
    /// Read shipments at all.
    pub enabled: bool,
    /// Time between reads when the last one was not a full page.
    pub poll_interval_ms: u64,
    /// Most shipments per read.
    pub page_size: usize,
}

impl Default for ShipmentSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval_ms: 10_000,
            page_size: 100,
        }
    }
}

/// `[writer.resync]`: the reconciler's order repairs (`ResyncRequested`, target `ERP`).
/// The order is read again from Magento, so this needs `[writer.resync.magento]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResyncSettings {
    /// Act on resync requests at all (a third processing loop in the process).
    pub enabled: bool,
    /// Its consumer group (and changelog/parked topic prefix).
    pub group_id: String,
    /// Resync requests come from here.
    pub topic: String,
    /// The store the orders are read from.
    pub magento: magento::rest::MagentoSettings,
}

impl Default for ResyncSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            group_id: "erp-writer-resync".into(),
            topic: bridge_events::topics::RESYNC_REQUESTS.into(),
            magento: magento::rest::MagentoSettings::default(),
        }
    }
}

/// `[writer.stock]`: window aggregates into batched stock adjustments.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StockSettings {
    /// Post stock adjustments at all (a second processing loop in the process).
    pub enabled: bool,
    /// Its consumer group (and changelog/parked topic prefix).
    pub group_id: String,
    /// Window aggregates come from here (keyed by source code).
    pub topic: String,
    /// How long a window's lines for one warehouse are collected before they are sealed
    /// into one adjustment (the aggregator's partitions close a window within moments).
    pub batch_wait_ms: u64,
    /// Most lines per adjustment request (the ERP's batch limit); more are chunked.
    pub batch_limit: usize,
}

impl Default for StockSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            group_id: "erp-writer-stock".into(),
            topic: bridge_events::topics::STOCK_DELTAS.into(),
            batch_wait_ms: 5_000,
            batch_limit: 500,
        }
    }
}

/// `[writer.customers]`: customers found or created in the ERP ahead of their orders, in
/// batches, by a loop of their own over the orders topic (the order loop ensures a customer
/// itself only when the ERP does not know it yet).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CustomerSettings {
    /// Batch customers at all (a processing loop of its own in the process).
    pub enabled: bool,
    /// Its consumer group (and changelog/parked topic prefix).
    pub group_id: String,
    /// How long new customers are collected before a batch is sent.
    pub batch_wait_ms: u64,
    /// Most customers per request (the ERP's batch limit; erp-sim takes 200).
    pub batch_limit: usize,
    /// How long an ensured customer is not ensured again.
    pub remember_hours: u64,
}

impl Default for CustomerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            group_id: "erp-writer-customers".into(),
            batch_wait_ms: 500,
            batch_limit: 200,
            remember_hours: 24,
        }
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.service().validate()?;
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        let erp = &self.writer.erp;
        erp.validate("writer.erp")?;
        if !(100..=300_000).contains(&erp.timeout_ms) {
            return invalid(format!(
                "writer.erp.timeout_ms = {} is outside 100 – 300000",
                erp.timeout_ms
            ));
        }
        if !(erp.rate_limit_per_second >= 0.0 && erp.rate_limit_per_second.is_finite()) {
            return invalid(format!(
                "writer.erp.rate_limit_per_second = {} must be 0 (unlimited) or more",
                erp.rate_limit_per_second
            ));
        }
        if erp.breaker_failures == 0 {
            return invalid("writer.erp.breaker_failures must be at least 1".into());
        }
        if !(1..=64).contains(&self.writer.order_workers) {
            return invalid(format!(
                "writer.order_workers = {} is not within 1..=64",
                self.writer.order_workers
            ));
        }
        let stock = &self.writer.stock;
        if stock.batch_limit == 0 {
            return invalid("writer.stock.batch_limit must be at least 1".into());
        }
        if stock.batch_wait_ms > 600_000 {
            return invalid(format!(
                "writer.stock.batch_wait_ms = {} is over 600000 (10 min)",
                stock.batch_wait_ms
            ));
        }
        if stock.enabled && stock.group_id == self.writer.group_id {
            return invalid(format!(
                "writer.stock.group_id = `{}` must differ from writer.group_id",
                stock.group_id
            ));
        }
        let customers = &self.writer.customers;
        if !(1..=1000).contains(&customers.batch_limit) {
            return invalid(format!(
                "writer.customers.batch_limit = {} is not within 1..=1000",
                customers.batch_limit
            ));
        }
        if customers.batch_wait_ms > 600_000 {
            return invalid(format!(
                "writer.customers.batch_wait_ms = {} is over 600000 (10 min)",
                customers.batch_wait_ms
            ));
        }
        if customers.remember_hours == 0 {
            return invalid("writer.customers.remember_hours must be at least 1".into());
        }
        let shipments = &self.writer.shipments;
        if shipments.enabled && !(1..=1000).contains(&shipments.page_size) {
            return invalid(format!(
                "writer.shipments.page_size = {} is not within 1..=1000",
                shipments.page_size
            ));
        }
        let resync = &self.writer.resync;
        if resync.enabled
            && (resync.group_id == self.writer.group_id || resync.group_id == stock.group_id)
        {
            return invalid(format!(
                "writer.resync.group_id = `{}` must differ from writer.group_id and writer.stock.group_id",
                resync.group_id
            ));
        }
        if customers.enabled
            && [&self.writer.group_id, &stock.group_id, &resync.group_id]
                .contains(&&customers.group_id)
        {
            return invalid(format!(
                "writer.customers.group_id = `{}` must differ from the other loops' groups",
                customers.group_id
            ));
        }
        if resync.enabled {
            resync.magento.validate("writer.resync.magento")?;
        }
        for (key, topic) in [
            ("writer.orders_topic", &self.writer.orders_topic),
            ("writer.results_topic", &self.writer.results_topic),
            ("writer.group_id", &self.writer.group_id),
            ("writer.stock.topic", &stock.topic),
            ("writer.stock.group_id", &stock.group_id),
            ("writer.resync.topic", &resync.topic),
            ("writer.resync.group_id", &resync.group_id),
            ("writer.customers.group_id", &customers.group_id),
        ] {
            if topic.trim().is_empty() {
                return invalid(format!("{key} is empty"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erp(toml: &str) -> Result<ErpSettings, ConfigError> {
        let settings: ErpSettings = toml::from_str(toml).map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        settings.validate("writer.erp")?;
        Ok(settings)
    }

    #[test]
    fn the_erp_password_comes_from_a_file_is_never_printed_and_http_stays_on_loopback()
    -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let file = dir.path().join("erp-password");
        std::fs::write(&file, "erp-pass-from-file\n").map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let settings = erp(&format!(
            "connector = \"tryton\"\npassword_file = {:?}",
            file.display().to_string()
        ))?;
        assert_eq!(
            settings.resolved_password("writer.erp")?.expose(),
            "erp-pass-from-file"
        );
        let inline = erp("password = \"inline-erp-pass\"")?;
        assert!(!format!("{inline:?}").contains("inline-erp-pass"));
        let remote = erp("base_url = \"http://erp.example.com\"").err();
        assert!(remote.is_some_and(|e| e.to_string().contains("must be an https URL")));
        erp("base_url = \"http://erp.internal\"\nallow_http = true")?;
        erp("base_url = \"https://erp.example.com\"")?;
        Ok(())
    }

    #[test]
    fn the_magento_token_comes_from_a_file_is_never_printed_and_http_stays_on_loopback()
    -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let file = dir.path().join("token");
        std::fs::write(&file, "magento-token-from-file\n").map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let magento = |toml: &str| -> Result<magento::rest::MagentoSettings, ConfigError> {
            let settings: magento::rest::MagentoSettings =
                toml::from_str(toml).map_err(|e| ConfigError::Invalid {
                    message: e.to_string(),
                })?;
            settings.validate("writer.resync.magento")?;
            Ok(settings)
        };
        let from_file = magento(&format!("token_file = {:?}", file.display().to_string()))?;
        assert_eq!(
            from_file.resolved_token("m")?.expose(),
            "magento-token-from-file"
        );
        let inline = magento("token = \"inline-magento-token\"")?;
        assert!(!format!("{inline:?}").contains("inline-magento-token"));
        let remote = magento("base_url = \"http://shop.example.com\"").err();
        assert!(remote.is_some_and(|e| e.to_string().contains("must be an https URL")));
        Ok(())
    }
}
