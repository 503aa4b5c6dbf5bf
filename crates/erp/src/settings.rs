//! How to reach the ERP (`[writer.erp]`, `[reconciler.erp]`): which connector, where, the
//! credentials (a password or its file, never logged), and how hard to push it (timeout,
//! rate limit, burst, circuit breaker).

use std::path::PathBuf;

use bridge_runtime::config::{ConfigError, check_url};
use bridge_runtime::secret::Secret;
use serde::Deserialize;

/// Which ERP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorKind {
    /// `crates/erp-sim` over HTTP/JSON.
    #[default]
    ErpSim,
    /// Tryton 8.0 over JSON-RPC (`database`, `user`, `password`).
    Tryton,
}

/// `[writer.erp]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErpSettings {
    /// `erp-sim` or `tryton`.
    pub connector: ConnectorKind,
    /// Tryton: the database.
    pub database: String,
    /// Tryton: the login.
    pub user: String,
    /// Tryton: the password (never logged); or `password_file`.
    pub password: Secret,
    /// A file holding `password` (a mounted Kubernetes Secret).
    pub password_file: Option<PathBuf>,
    /// Where it is: https unless on loopback or `allow_http`.
    pub base_url: String,
    /// Accept a plain-http `base_url` off loopback (a private network you trust).
    pub allow_http: bool,
    /// One call gives up after this long (then it is retried; the ERP is asked by external
    /// reference first, so a call that timed out after creating the order creates nothing
    /// twice).
    pub timeout_ms: u64,
    /// Calls per second at most (0 = unlimited).
    pub rate_limit_per_second: f64,
    /// Calls that may go at once after a quiet time.
    pub burst: u32,
    /// Transient failures in a row that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long it stays open before a probe.
    pub breaker_open_ms: u64,
}

impl Default for ErpSettings {
    fn default() -> Self {
        Self {
            connector: ConnectorKind::ErpSim,
            database: "erp".into(),
            user: "admin".into(),
            password: Secret::default(),
            password_file: None,
            base_url: "http://127.0.0.1:8070".into(),
            allow_http: false,
            timeout_ms: 10_000,
            rate_limit_per_second: 50.0,
            burst: 10,
            breaker_failures: 5,
            breaker_open_ms: 10_000,
        }
    }
}

impl ErpSettings {
    /// Refuses a URL that is not http(s), http off loopback unless allowed, and a password
    /// given twice or whose file cannot be read; `section` names the keys.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        check_url(
            &format!("{section}.base_url"),
            &self.base_url,
            self.allow_http,
        )?;
        self.resolved_password(section).map(|_| ())
    }

    /// The password, from the value or its file (empty when neither is set).
    pub fn resolved_password(&self, section: &str) -> Result<Secret, ConfigError> {
        bridge_runtime::secret::of_section(
            section,
            "password",
            &self.password,
            self.password_file.as_deref(),
        )
    }
}

impl std::fmt::Debug for ErpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErpSettings")
            .field("connector", &self.connector)
            .field("base_url", &self.base_url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("password_file", &self.password_file)
            .field("allow_http", &self.allow_http)
            .field("timeout_ms", &self.timeout_ms)
            .field("rate_limit_per_second", &self.rate_limit_per_second)
            .field("burst", &self.burst)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_open_ms", &self.breaker_open_ms)
            .finish()
    }
}
