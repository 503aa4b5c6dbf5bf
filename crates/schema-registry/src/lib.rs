//! A small, **local-only** schema registry that speaks the Confluent Schema Registry REST
//! API (Avro only) and keeps its state in a compacted Kafka topic, as Confluent's does.
//!
//! It exists because neither Confluent's registry nor Karapace nor a runnable Apicurio 3
//! can be installed from the package registries this project may use (see
//! `docs/decisions/schema-registry.md`). In production the services point at the
//! company's Confluent / Apicurio / Karapace registry instead; nothing depends on this one.
//!
//! Layout: [`registry`] holds the state and rules with no I/O, [`compat`] the Avro
//! compatibility levels, [`journal`] the `_schemas` topic, [`api`] the HTTP routes.
//! [`start`] runs it inside a process (tests); the `schema-registry` binary runs it alone.
//! Like a production registry it can require basic authentication, serve https, and
//! reach Kafka over TLS with SASL (any librdkafka setting), so the services' secure paths
//! are tested against it.

pub mod api;
pub mod compat;
pub mod journal;
pub mod registry;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bridge_runtime::listener::{Listener, ListenerSettings};
use bridge_runtime::shutdown::Trigger;
use rdkafka::ClientConfig;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::api::Shared;
use crate::journal::{JournalError, KafkaJournal};
use crate::registry::Registry;

/// How to run the registry.
#[derive(Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Kafka bootstrap servers for the journal; `None` keeps schemas in memory only.
    pub bootstrap_servers: Option<String>,
    /// More librdkafka settings for the journal's clients (TLS, SASL).
    pub kafka_settings: BTreeMap<String, String>,
    /// The compacted journal topic.
    pub topic: String,
    /// Replication factor for the journal topic when it is created.
    pub replication_factor: i32,
    /// Require `Authorization: Basic` with this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Serve https with this PEM certificate and PKCS#8 key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for Config {
    /// In memory on a free loopback port, plain http, no authentication.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            bootstrap_servers: None,
            kafka_settings: BTreeMap::new(),
            topic: "_schemas".into(),
            replication_factor: 1,
            basic_auth: None,
            tls: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field(
                "kafka_settings",
                &self.kafka_settings.keys().collect::<Vec<_>>(),
            )
            .field("topic", &self.topic)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(user, _)| user),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The journal could not be opened or replayed.
    #[error("schema journal unavailable")]
    Journal(#[from] JournalError),
    /// The listen address could not be bound.
    #[error("cannot listen on `{addr}`")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The listener (TLS files) could not be set up.
    #[error("cannot serve")]
    Listener(#[from] bridge_runtime::listener::ListenerError),
}

/// A registry running on a tokio runtime; stops when [`RunningRegistry::stop`] is called
/// or it is dropped.
pub struct RunningRegistry {
    /// The bound address.
    pub addr: SocketAddr,
    tls: bool,
    stop: Option<Trigger>,
    task: Option<JoinHandle<()>>,
}

impl RunningRegistry {
    /// The base URL clients use.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops serving and waits for open requests to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.fire();
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningRegistry {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Opens the journal, replays it and starts serving in the background.
pub async fn start(config: Config) -> Result<RunningRegistry, StartError> {
    let mut registry = Registry::default();
    let journal = match &config.bootstrap_servers {
        None => None,
        Some(servers) => {
            let mut client = ClientConfig::new();
            client.set("bootstrap.servers", servers);
            for (key, value) in &config.kafka_settings {
                client.set(key, value);
            }
            let journal =
                KafkaJournal::open(client, &config.topic, config.replication_factor).await?;
            let entries = journal.replay().await?;
            tracing::info!(entries = entries.len(), topic = %config.topic, "schema journal replayed");
            entries.into_iter().for_each(|e| registry.apply(e));
            Some(journal)
        }
    };
    let settings = ListenerSettings {
        max_body_bytes: 16 * 1024 * 1024,
        tls_cert_file: config.tls.as_ref().map(|(cert, _)| cert.clone()),
        tls_key_file: config.tls.as_ref().map(|(_, key)| key.clone()),
        ..ListenerSettings::default()
    };
    let metrics = bridge_runtime::metrics::Metrics::new("schema-registry");
    let listener = Listener::bind(config.listen, &settings, &metrics).await?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let tls = listener.is_tls();
    let shared = Arc::new(Shared {
        registry: Mutex::new(registry),
        journal,
    });
    let app = api::router(shared, config.basic_auth.clone());
    let (stop, stopped) = bridge_runtime::shutdown::channel();
    let task = tokio::spawn(listener.serve(app, stopped));
    Ok(RunningRegistry {
        addr,
        tls,
        stop: Some(stop),
        task: Some(task),
    })
}
