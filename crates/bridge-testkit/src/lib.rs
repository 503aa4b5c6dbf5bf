//! The test harness: real parts only. It starts a real Apache Kafka broker (KRaft, from
//! the jars `deploy/local/kafka.sh install` fetches) and the local schema registry once
//! per test process, on free ports in temporary folders, or reuses a running stack when
//! `BRIDGE_TEST_BOOTSTRAP` (and optionally `BRIDGE_TEST_REGISTRY`) is set.
//!
//! Main types: [`Stack`] (the shared broker + registry, see [`stack`]), [`KafkaBroker`]
//! (a broker a test owns, for kill and restart), and the helpers in [`topics`],
//! [`records`], [`wait`] and [`metrics`]; [`jaeger`] is the tracing backend trace tests
//! query. Nothing here fakes Kafka.

pub mod broker;
pub mod config;
pub mod jaeger;
pub mod metrics;
pub mod records;
pub mod registry;
pub mod tls;
pub mod topics;
pub mod wait;

use std::sync::OnceLock;

pub use broker::KafkaBroker;
pub use config::runtime_sections;
pub use jaeger::{Jaeger, jaeger};
pub use metrics::metric_sum;
pub use records::{Isolation, Record, consume_all, produce};
pub use tls::TestCa;
pub use topics::{create_topic, free_port, unique_name};
pub use wait::{wait_until, wait_until_blocking};

/// Why the harness could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The broker did not start or stop as asked.
    #[error("kafka broker: {0}")]
    Broker(String),
    /// The schema registry did not start.
    #[error("schema registry: {0}")]
    Registry(String),
    /// A Kafka client call failed.
    #[error("kafka client")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A condition was not met in time.
    #[error("timed out after {seconds:.1} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        seconds: f64,
    },
    /// A file or process operation failed.
    #[error("io: {context}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for harness calls.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// The broker and registry that the tests of one process share.
pub struct Stack {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Schema registry base URL.
    pub registry_url: String,
    _broker: Option<KafkaBroker>,
    _registry: Option<registry::RegistryThread>,
}

static STACK: OnceLock<std::result::Result<Stack, String>> = OnceLock::new();

/// The shared stack, started on first use (blocking, a few seconds).
pub fn stack() -> Result<&'static Stack> {
    STACK
        .get_or_init(|| start_stack().map_err(|e| format!("{e}: {}", source_chain(&e))))
        .as_ref()
        .map_err(|e| HarnessError::Broker(format!("shared stack did not start: {e}")))
}

fn start_stack() -> Result<Stack> {
    let (bootstrap, broker) = match std::env::var("BRIDGE_TEST_BOOTSTRAP") {
        Ok(bootstrap) if !bootstrap.is_empty() => (bootstrap, None),
        _ => {
            let broker = KafkaBroker::start()?;
            (broker.bootstrap(), Some(broker))
        }
    };
    let (registry_url, registry) = match std::env::var("BRIDGE_TEST_REGISTRY") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let registry = registry::RegistryThread::start(&bootstrap)?;
            (registry.url.clone(), Some(registry))
        }
    };
    Ok(Stack {
        bootstrap,
        registry_url,
        _broker: broker,
        _registry: registry,
    })
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}

impl Stack {
    /// A client configuration pointing at this stack's broker.
    pub fn client(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }
}
