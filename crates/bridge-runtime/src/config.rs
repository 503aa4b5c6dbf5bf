//! Layered configuration: defaults (in the serde structs) → TOML file → environment
//! variables `BRIDGE__SECTION__KEY=value` (keys lowercased; values read as TOML scalars
//! when they parse as one — `42`, `true` — and as strings otherwise, so quote a numeric
//! string: `BRIDGE__KAFKA__GROUP_ID='"123"'`). Unknown keys are refused by name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

mod registry;
pub mod secret;
pub use registry::RegistryConfig;

/// The environment prefix; sections and keys are separated by a double underscore.
pub const ENV_PREFIX: &str = "BRIDGE__";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML, or a value does not fit its key.
    #[error("invalid configuration: {message}")]
    Invalid {
        /// What is wrong, naming the key.
        message: String,
    },
}

/// Loads `T` from an optional TOML file overlaid with `BRIDGE__…` variables from `env`.
pub fn load<T: DeserializeOwned>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Invalid {
                    message: format!("{}: {e}", path.display()),
                })?
        }
        None => toml::Table::new(),
    };
    for (name, raw) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        overlay(&mut table, &keys, scalar(&raw)).map_err(|message| ConfigError::Invalid {
            message: format!("environment variable `{name}`: {message}"),
        })?;
    }
    T::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid {
        message: e.to_string(),
    })
}

fn scalar(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn overlay(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    match keys {
        [] => Err("no key after the prefix".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [section, rest @ ..] => match table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(inner) => overlay(inner, rest, value),
            _ => Err(format!("`{section}` is a value, not a section")),
        },
    }
}

/// How to reach Kafka.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers.
    pub bootstrap_servers: String,
    /// Raw librdkafka settings passed through unchanged (TLS, SASL, tuning), e.g.
    /// `security.protocol = "SASL_SSL"`. Values of keys naming secrets are redacted in logs.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
    /// librdkafka settings whose value is read from a file (a mounted Kubernetes Secret),
    /// e.g. `"sasl.password" = "/var/run/secrets/kafka/password"`; one trailing newline is
    /// trimmed. Read when a client is made, so a rotated file is picked up on restart.
    #[serde(default)]
    pub librdkafka_files: BTreeMap<String, PathBuf>,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted: BTreeMap<&str, &str> = self
            .librdkafka
            .iter()
            .map(|(k, v)| {
                let secret = ["password", "secret", "key", "token"]
                    .iter()
                    .any(|s| k.contains(s));
                (k.as_str(), if secret { "**REDACTED**" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("librdkafka", &redacted)
            .field("librdkafka_files", &self.librdkafka_files)
            .finish()
    }
}

impl KafkaConfig {
    /// An rdkafka client configuration with the bootstrap servers and passthrough settings
    /// (those from files too; [`KafkaConfig::validate`] checked they can be read).
    pub fn client(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.librdkafka {
            config.set(key, value);
        }
        for (key, path) in &self.librdkafka_files {
            if let Ok(Some(value)) = secret::resolve(key, None, Some(path)) {
                config.set(key, value.expose());
            }
        }
        config
    }

    /// Refuses an empty bootstrap list and a setting given both inline and as a file, or
    /// whose file cannot be read; errors name the key, never a value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::Invalid {
                message: "kafka.bootstrap_servers is empty".into(),
            });
        }
        for (key, path) in &self.librdkafka_files {
            let name = format!("kafka.librdkafka.\"{key}\"");
            let inline = self
                .librdkafka
                .get(key)
                .map(|v| secret::Secret::new(v.clone()));
            secret::resolve(&name, inline.as_ref(), Some(path))?;
        }
        Ok(())
    }
}

/// The sections every service has; a service with settings of its own defines its own
/// struct with these fields beside its sections (unknown keys stay refused).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// Where the schema registry is.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Health, readiness and metrics endpoints.
    #[serde(default)]
    pub http: HttpConfig,
    /// How the processing loop runs.
    #[serde(default)]
    pub processor: ProcessorSettings,
}

/// The operations HTTP server (health, readiness, metrics).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free one.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

/// The host of an http(s) URL, lowercased.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    Some(host.to_ascii_lowercase())
}

/// `url` (setting `key`) must be an http(s) URL, and https unless it names this machine or
/// `allow_http` (a private network the operator trusts).
pub fn check_url(key: &str, url: &str, allow_http: bool) -> Result<(), ConfigError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::Invalid {
            message: format!("{key} = `{url}` is not an http(s) URL"),
        });
    }
    match allow_http {
        true => Ok(()),
        false => require_https(key, url),
    }
}

/// `url` must be https unless it names this machine (loopback).
pub fn require_https(key: &str, url: &str) -> Result<(), ConfigError> {
    let loopback = url_host(url).is_some_and(|h| {
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if url.starts_with("https://") || (loopback && url.starts_with("http://")) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            message: format!("{key} = `{url}` must be an https URL (http only on loopback)"),
        })
    }
}

/// A configuration checked after loading, with errors that name the key.
pub trait Validate {
    /// Refuses values the service cannot run with.
    fn validate(&self) -> Result<(), ConfigError>;
}

impl Validate for ServiceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate()?;
        self.registry.validate()?;
        self.processor.validate()
    }
}

/// The delivery guarantee of a processing loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Outputs, changelog and input offsets commit in one Kafka transaction.
    #[default]
    ExactlyOnce,
    /// Outputs are flushed, then input offsets committed: after a crash some outputs
    /// repeat. For sinks outside Kafka and as the benchmark baseline.
    AtLeastOnce,
}

/// `[processor]`: how a service runs its processing loop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorSettings {
    /// `exactly_once` (default) or `at_least_once`.
    pub guarantee: Guarantee,
    /// How often a transaction (at least once: an offset commit) closes; 10 ms – 30 s.
    pub commit_interval_ms: u64,
    /// Folder of the local state; default `.data/<service>/state`.
    pub state_dir: Option<PathBuf>,
    /// Stable name of this replica (a StatefulSet pod name); `transactional.id` and
    /// `group.instance.id` derive from it. Default: `$HOSTNAME`, else `0`.
    pub instance_id: Option<String>,
    /// How long event ids are remembered for dedupe.
    pub dedupe_ttl_hours: u64,
    /// How far ahead of the wall clock an input's `occurred_at` may be; a later one counts
    /// as now plus this (see `step::StepConfig::max_event_time_ahead`). Default 60 s.
    pub max_event_time_ahead_ms: u64,
    /// sled's page cache, in MiB (sled's own default is 1 GiB): the state's share of memory.
    pub state_cache_mb: u64,
    /// Apply committed state to sled on a thread of its own instead of the loop's
    /// (`state::WriteBehind`): headroom on machines with spare cores. Off by default.
    pub write_behind: bool,
    /// Retries of retryable handler errors.
    pub retry: RetrySettings,
    /// `/healthz` fails once a processing loop has made no progress for this long (not
    /// counting state restores). It must be above the longest a step may rightly take —
    /// retrying in place (`retry.give_up_after_ms` + `retry.max_delay_ms`) plus a
    /// transaction's 30 s timeout. Unset: 300 s, or that longest step plus a minute when it
    /// is longer ([`ProcessorSettings::stall_after`]).
    pub stall_after_seconds: Option<u64>,
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        Self {
            guarantee: Guarantee::ExactlyOnce,
            commit_interval_ms: 200,
            state_dir: None,
            instance_id: None,
            dedupe_ttl_hours: 7 * 24,
            max_event_time_ahead_ms: 60_000,
            state_cache_mb: 128,
            write_behind: false,
            retry: RetrySettings::default(),
            stall_after_seconds: None,
        }
    }
}

/// `[processor.retry]`: exponential backoff with jitter, then the partition pauses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// First delay.
    pub initial_ms: u64,
    /// Largest delay, and how long a partition pauses after giving up.
    pub max_delay_ms: u64,
    /// Retrying in place stops after this long; the partition pauses, Kafka keeps the record.
    pub give_up_after_ms: u64,
}

impl RetrySettings {
    /// The policy these settings describe (the rest at [`crate::retry::RetryPolicy`]'s
    /// defaults).
    pub fn policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            initial: std::time::Duration::from_millis(self.initial_ms),
            max_delay: std::time::Duration::from_millis(self.max_delay_ms),
            give_up_after: std::time::Duration::from_millis(self.give_up_after_ms),
            ..crate::retry::RetryPolicy::default()
        }
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            initial_ms: 200,
            max_delay_ms: 30_000,
            give_up_after_ms: 120_000,
        }
    }
}

impl ProcessorSettings {
    /// The longest a step may rightly take: retrying in place, then a transaction's 30 s.
    fn longest_step_ms(&self) -> u64 {
        self.retry
            .give_up_after_ms
            .saturating_add(self.retry.max_delay_ms)
            .saturating_add(30_000)
    }

    /// How long a loop may go without progress before `/healthz` fails: the setting, or
    /// 300 s, or the longest step plus a minute when that is longer.
    pub fn stall_after(&self) -> std::time::Duration {
        let derived = (self.longest_step_ms().div_ceil(1000) + 60).max(300);
        std::time::Duration::from_secs(self.stall_after_seconds.unwrap_or(derived))
    }

    /// Refuses values the loop cannot work with, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        if !(10..=30_000).contains(&self.commit_interval_ms) {
            return invalid(format!(
                "processor.commit_interval_ms = {} is outside 10 – 30000 \
                 (a transaction must close well within transaction.timeout.ms = 60000)",
                self.commit_interval_ms
            ));
        }
        if !(8..=65_536).contains(&self.state_cache_mb) {
            return invalid(format!(
                "processor.state_cache_mb = {} is outside 8 – 65536",
                self.state_cache_mb
            ));
        }
        if self.dedupe_ttl_hours == 0 {
            return invalid("processor.dedupe_ttl_hours must be at least 1".into());
        }
        let r = &self.retry;
        if r.initial_ms == 0 || r.initial_ms > r.max_delay_ms {
            return invalid(format!(
                "processor.retry.initial_ms = {} must be between 1 and processor.retry.max_delay_ms = {}",
                r.initial_ms, r.max_delay_ms
            ));
        }
        if let Some(stall) = self.stall_after_seconds
            && stall.saturating_mul(1000) <= self.longest_step_ms()
        {
            return invalid(format!(
                "processor.stall_after_seconds = {stall} must exceed the longest a step may take \
                 (retry.give_up_after_ms + retry.max_delay_ms + 30 s = {} s), or liveness \
                 restarts a service that is only retrying",
                self.longest_step_ms().div_ceil(1000)
            ));
        }
        if let Some(id) = &self.instance_id
            && (id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return invalid(format!(
                "processor.instance_id = `{id}` must be letters, digits, `-`, `_` or `.`"
            ));
        }
        Ok(())
    }

    /// The instance id: the configured one, else `$HOSTNAME`, else `0`.
    pub fn instance(&self) -> String {
        self.instance_id
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| "0".into())
    }
}

#[cfg(test)]
mod tests;
