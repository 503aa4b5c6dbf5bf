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

pub mod api;
pub mod compat;
pub mod journal;
pub mod registry;

use std::net::SocketAddr;
use std::sync::Arc;

use rdkafka::ClientConfig;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

use crate::api::Shared;
use crate::journal::{JournalError, KafkaJournal};
use crate::registry::Registry;

/// How to run the registry.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Kafka bootstrap servers for the journal; `None` keeps schemas in memory only.
    pub bootstrap_servers: Option<String>,
    /// The compacted journal topic.
    pub topic: String,
    /// Replication factor for the journal topic when it is created.
    pub replication_factor: i32,
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
}

/// A registry running on a tokio runtime; stops when [`RunningRegistry::stop`] is called
/// or it is dropped.
pub struct RunningRegistry {
    /// The bound address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningRegistry {
    /// The base URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for open requests to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
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
            let journal =
                KafkaJournal::open(client, &config.topic, config.replication_factor).await?;
            let entries = journal.replay().await?;
            tracing::info!(entries = entries.len(), topic = %config.topic, "schema journal replayed");
            entries.into_iter().for_each(|e| registry.apply(e));
            Some(journal)
        }
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let shared = Arc::new(Shared {
        registry: Mutex::new(registry),
        journal,
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let app = api::router(shared);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningRegistry {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}
