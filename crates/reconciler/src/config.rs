//! `reconciler` settings: the runtime's sections plus `[reconciler]` (how often, how
//! strict), `[reconciler.erp]` (the ERP, as erp-writer reaches it), `[reconciler.magento]`
//! (the store) and `[reconciler.stock]`. Every key can be set from the environment, e.g.
//! `BRIDGE__RECONCILER__INTERVAL_MS`.

use std::path::PathBuf;
use std::time::Duration;

use bridge_runtime::config::{
    ConfigError, HttpConfig, KafkaConfig, ProcessorSettings, RegistryConfig, ServiceConfig,
    Validate,
};
use bridge_runtime::secret::Secret;
use erp::settings::ErpSettings;
use magento::rest::MagentoSettings;
use rust_decimal::Decimal;
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
    /// What to compare, how often.
    #[serde(default)]
    pub reconciler: ReconcilerSettings,
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

/// A preset of how often and how strictly to compare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Every 15 minutes; orders settled for 10 minutes, stock differences for 15.
    #[default]
    Standard,
    /// For the weeks after go-live or a change: every minute; orders settled for two
    /// minutes, stock differences for five.
    Stabilization,
}

/// `[reconciler]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconcilerSettings {
    /// Consumer group (and the changelog/parked topic prefix).
    pub group_id: String,
    /// Order facts come from here: they say which orders exist and what was placed.
    pub orders_topic: String,
    /// Findings go here.
    pub findings_topic: String,
    /// Repair requests go here.
    pub resync_topic: String,
    /// The preset for the three settings below; each set explicitly wins.
    pub profile: Profile,
    /// A run starts this long after the previous one finished.
    pub interval_ms: Option<u64>,
    /// Orders changed more recently than this are still on their way and not compared.
    pub settle_ms: Option<u64>,
    /// Amount differences up to this (order currency) are rounding: not a finding, but
    /// added up in `bridge_reconciler_rounding_difference`. A decimal string; default
    /// `"0"` (to the cent). Set `"0.01"` for an ERP that rounds tax per document while
    /// Magento rounds per line.
    pub tolerance: Option<String>,
    /// Orders compared per slice (one Magento search and one ERP read each; a slice runs
    /// per punctuation, so memory stays bounded however large the store).
    pub page_size: usize,
    /// Resync requests per entity before the reconciler stops asking (the finding stays open
    /// and says so).
    pub max_resync_attempts: u32,
    /// Resync requests per partition per run at most (no resync storms).
    pub max_resyncs_per_run: u32,
    /// erp-writer's mapping file: SKU → item, source → warehouse, lifecycle.
    pub mapping_file: PathBuf,
    /// The ERP.
    pub erp: ErpSettings,
    /// The store.
    pub magento: MagentoSettings,
    /// Stock comparison.
    pub stock: StockCheckSettings,
    /// Walk every ERP sales order for references Magento does not have (run by the
    /// instance with partition 0; one Magento search per `page_size` ERP orders).
    pub erp_scan: bool,
    /// Where `POST /reconcile` (a run now, on every partition of this instance) is served;
    /// empty: nowhere.
    pub control_listen: String,
    /// The bearer token `POST /reconcile` and `GET /summary` require; or
    /// `control_token_file`. Required with `control_listen` unless
    /// `control_allow_unauthenticated`.
    pub control_token: Option<Secret>,
    /// A file holding `control_token` (a mounted Kubernetes Secret).
    pub control_token_file: Option<std::path::PathBuf>,
    /// Serve the control endpoint without a token (a loopback-only local stack).
    pub control_allow_unauthenticated: bool,
}

impl ReconcilerSettings {
    /// The control endpoint's token, from the value or its file.
    pub fn control_token(&self) -> Result<Option<Secret>, ConfigError> {
        bridge_runtime::secret::resolve(
            "reconciler.control_token",
            self.control_token.as_ref(),
            self.control_token_file.as_deref(),
        )
    }
}

impl Default for ReconcilerSettings {
    fn default() -> Self {
        Self {
            group_id: "reconciler".into(),
            orders_topic: bridge_events::topics::ORDERS.into(),
            findings_topic: bridge_events::topics::FINDINGS.into(),
            resync_topic: bridge_events::topics::RESYNC_REQUESTS.into(),
            profile: Profile::Standard,
            interval_ms: None,
            settle_ms: None,
            tolerance: None,
            page_size: 100,
            max_resync_attempts: 3,
            max_resyncs_per_run: 100,
            mapping_file: PathBuf::from("deploy/config/mapping.toml"),
            erp: ErpSettings::default(),
            magento: MagentoSettings::default(),
            stock: StockCheckSettings::default(),
            erp_scan: true,
            control_listen: String::new(),
            control_token: None,
            control_token_file: None,
            control_allow_unauthenticated: false,
        }
    }
}

/// `[reconciler.stock]`: MSI source-item quantities against the ERP's stock (the ERP owns
/// stock). Run by the instance that has partition 0 of the orders topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StockCheckSettings {
    /// Compare stock at all.
    pub enabled: bool,
    /// Source items per slice.
    pub page_size: usize,
    /// A difference must stay the same for this long before it is drift (movements on
    /// their way to the ERP — a window, its grace, the batch wait — are not drift).
    /// Default from the profile.
    pub settle_ms: Option<u64>,
}

impl Default for StockCheckSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            page_size: 200,
            settle_ms: None,
        }
    }
}

/// The settings a run uses, the profile applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    /// Between runs.
    pub interval: Duration,
    /// Orders younger than this wait.
    pub settle: Duration,
    /// Rounding tolerance.
    pub tolerance: Decimal,
    /// How long a stock difference must stay the same.
    pub stock_settle: Duration,
}

impl ReconcilerSettings {
    /// The profile with the explicit settings over it.
    pub fn effective(&self) -> Result<Effective, ConfigError> {
        let (interval, settle, stock_settle) = match self.profile {
            Profile::Standard => (15 * 60_000, 10 * 60_000, 15 * 60_000),
            Profile::Stabilization => (60_000, 2 * 60_000, 5 * 60_000),
        };
        let tolerance = Decimal::ZERO;
        let tolerance = match &self.tolerance {
            Some(text) => text
                .trim()
                .parse::<Decimal>()
                .ok()
                .filter(|t| !t.is_sign_negative())
                .ok_or_else(|| ConfigError::Invalid {
                    message: format!(
                        "reconciler.tolerance = `{text}` is not a decimal amount of 0 or more (e.g. \"0.01\")"
                    ),
                })?,
            None => tolerance,
        };
        Ok(Effective {
            interval: Duration::from_millis(self.interval_ms.unwrap_or(interval)),
            settle: Duration::from_millis(self.settle_ms.unwrap_or(settle)),
            tolerance,
            stock_settle: Duration::from_millis(self.stock.settle_ms.unwrap_or(stock_settle)),
        })
    }
}

impl Validate for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        self.service().validate()?;
        let r = &self.reconciler;
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        let effective = r.effective()?;
        if effective.interval < Duration::from_secs(1) {
            return invalid(format!(
                "reconciler.interval_ms = {} is under 1000",
                effective.interval.as_millis()
            ));
        }
        if !(1..=1000).contains(&r.page_size) {
            return invalid(format!(
                "reconciler.page_size = {} is outside 1 – 1000",
                r.page_size
            ));
        }
        if !(1..=5000).contains(&r.stock.page_size) {
            return invalid(format!(
                "reconciler.stock.page_size = {} is outside 1 – 5000",
                r.stock.page_size
            ));
        }
        if !r.control_listen.is_empty()
            && r.control_token()?.is_none()
            && !r.control_allow_unauthenticated
        {
            return invalid(
                "reconciler.control_listen is set without reconciler.control_token (or \
                 control_token_file): set one, or control_allow_unauthenticated = true"
                    .into(),
            );
        }
        if !r.control_listen.is_empty() && r.control_listen.parse::<std::net::SocketAddr>().is_err()
        {
            return invalid(format!(
                "reconciler.control_listen = `{}` is not an address like 127.0.0.1:8096",
                r.control_listen
            ));
        }
        r.erp.validate("reconciler.erp")?;
        r.magento.validate("reconciler.magento")?;
        for (key, value) in [
            ("reconciler.group_id", &r.group_id),
            ("reconciler.orders_topic", &r.orders_topic),
            ("reconciler.findings_topic", &r.findings_topic),
            ("reconciler.resync_topic", &r.resync_topic),
        ] {
            if value.trim().is_empty() {
                return invalid(format!("{key} is empty"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_token_comes_from_a_file_and_is_never_printed() -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let file = dir.path().join("control-token");
        std::fs::write(&file, "control-token-from-file\n").map_err(|e| ConfigError::Invalid {
            message: e.to_string(),
        })?;
        let from_file = ReconcilerSettings {
            control_token_file: Some(file),
            ..ReconcilerSettings::default()
        };
        let token = from_file.control_token()?;
        assert_eq!(
            token.as_ref().map(|t| t.expose()),
            Some("control-token-from-file")
        );
        let inline = ReconcilerSettings {
            control_token: Some(Secret::new("inline-control-token")),
            ..ReconcilerSettings::default()
        };
        assert!(!format!("{inline:?}").contains("inline-control-token"));
        Ok(())
    }

    #[test]
    fn profiles_preset_what_is_not_set_and_a_bad_tolerance_is_named() {
        let mut r = ReconcilerSettings::default();
        let standard = r.effective().ok();
        assert_eq!(
            standard.map(|e| (e.interval.as_secs(), e.settle.as_secs(), e.tolerance)),
            Some((900, 600, Decimal::ZERO))
        );
        r.profile = Profile::Stabilization;
        r.settle_ms = Some(5_000);
        r.tolerance = Some("0.01".into());
        let stabilization = r.effective().ok();
        assert_eq!(
            stabilization.map(|e| (
                e.interval.as_secs(),
                e.settle.as_millis(),
                e.tolerance,
                e.stock_settle.as_secs()
            )),
            Some((60, 5_000, Decimal::new(1, 2), 300))
        );
        for bad in ["-0.01", "a cent"] {
            r.tolerance = Some(bad.into());
            let message = r
                .effective()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(message.contains("reconciler.tolerance"), "{message}");
        }
    }
}
