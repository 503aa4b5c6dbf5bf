//! The local schema registry, run in this process on a thread of its own so that it
//! outlives the runtime of any single test.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;

use crate::{HarnessError, Result};

/// A registry serving on its own thread; it lives as long as the process.
pub struct RegistryThread {
    /// Base URL.
    pub url: String,
}

impl RegistryThread {
    /// Starts a registry whose journal is a fresh topic on `bootstrap`.
    pub fn start(bootstrap: &str) -> Result<Self> {
        let config = schema_registry::Config {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            bootstrap_servers: Some(bootstrap.to_owned()),
            topic: crate::unique_name("_schemas"),
            replication_factor: 1,
            ..schema_registry::Config::default()
        };
        let (ready, started) = mpsc::channel();
        std::thread::Builder::new()
            .name("test-schema-registry".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match schema_registry::start(config).await {
                        Ok(registry) => {
                            let _ = ready.send(Ok(registry.url()));
                            // Serve until the process ends.
                            std::future::pending::<()>().await;
                            drop(registry);
                        }
                        Err(e) => {
                            let _ = ready
                                .send(Err(format!("{e}: {:?}", std::error::Error::source(&e))));
                        }
                    }
                });
            })
            .map_err(|source| HarnessError::Io {
                context: "spawn registry thread".into(),
                source,
            })?;
        let url = started
            .recv()
            .map_err(|_| HarnessError::Registry("registry thread ended before starting".into()))?
            .map_err(HarnessError::Registry)?;
        Ok(Self { url })
    }
}
