//! A magento-sim and an order-ingest in this process, against the test broker and
//! registry, with topics of their own; helpers to read what ingest published.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bridge_events::{Event, EventCodec};
use bridge_runtime::shutdown::{Shutdown, Trigger};
use bridge_testkit::{Isolation, consume_all, create_topic, free_port, unique_name};
use magento_sim::{RetrySchedule, Sim, SimConfig};
use order_ingest::Config;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Topics and addresses of one test.
pub struct Harness {
    pub bootstrap: String,
    pub registry: String,
    pub orders: String,
    pub movements: String,
    pub parked: String,
    pub webhook_port: u16,
    pub http_port: u16,
    pub sim: Sim,
}

/// Which paths an ingest runs.
#[derive(Clone, Copy)]
pub struct Paths {
    pub webhook: bool,
    pub poll: bool,
    /// The source-item sync (every second) besides the poller.
    pub source_items: bool,
}

impl Paths {
    pub const WEBHOOK: Self = Self {
        webhook: true,
        poll: false,
        source_items: false,
    };
    pub const POLL: Self = Self {
        webhook: false,
        poll: true,
        source_items: false,
    };
    pub const BOTH: Self = Self {
        webhook: true,
        poll: true,
        source_items: false,
    };
}

impl Harness {
    /// Topics, a sim delivering to a webhook port chosen now, no ingest yet.
    pub async fn new(bootstrap: &str, registry: &str, sim: SimConfig) -> Result<Self, AnyError> {
        // Logs for a failing run: RUST_LOG=order_ingest=debug cargo test ... -- --nocapture
        if let Ok(filter) = std::env::var("RUST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let name = unique_name("ingest");
        let orders = format!("{name}-orders");
        let movements = format!("{name}-movements");
        let parked = format!("{name}-parked");
        for topic in [&orders, &movements, &parked] {
            create_topic(bootstrap, topic, 3, &[]).await?;
        }
        let webhook_port = free_port()?;
        let sim = Sim::start(SimConfig {
            webhook_url: Some(format!("http://127.0.0.1:{webhook_port}/webhooks/adobe-io")),
            retry: RetrySchedule {
                first: Duration::from_millis(300),
                cap: Duration::from_secs(2),
                give_up_after: Duration::from_secs(600),
            },
            ..sim
        })
        .await?;
        Ok(Self {
            bootstrap: bootstrap.to_owned(),
            registry: registry.to_owned(),
            orders,
            movements,
            parked,
            webhook_port,
            http_port: free_port()?,
            sim,
        })
    }

    /// The ingest configuration of this harness.
    pub fn config(&self, state: &Path, paths: Paths) -> Result<Config, AnyError> {
        let sections = bridge_testkit::runtime_sections(
            &self.bootstrap,
            &self.registry,
            self.http_port,
            state,
            &unique_name("i"),
        );
        let toml = format!(
            r#"{sections}[ingest]
orders_topic = "{orders}"
movements_topic = "{movements}"
parked_topic = "{parked}"
[ingest.magento]
base_url = "{sim}"
[ingest.webhook]
enabled = {webhook}
listen = "127.0.0.1:{webhook_port}"
key_base_url = "{sim}/sim"
key_hosts = ["127.0.0.1"]
client_id = "magento-erp-bridge"
[ingest.poll]
enabled = {poll}
interval_ms = 300
page_size = 100
overlap_seconds = 5
initial_lookback_hours = 100000
source_items_interval_ms = {source_items}
"#,
            orders = self.orders,
            movements = self.movements,
            parked = self.parked,
            sim = self.sim.url(),
            webhook = paths.webhook,
            webhook_port = self.webhook_port,
            poll = paths.poll,
            source_items = if paths.source_items { 1_000 } else { 0 },
        );
        toml_config(&toml)
    }

    /// Starts an ingest; stop it with the returned trigger.
    pub async fn ingest(&self, state: &Path, paths: Paths) -> Result<Running, AnyError> {
        self.ingest_with(self.config(state, paths)?, paths).await
    }

    /// Starts an ingest with `config` (from [`Harness::config`], changed).
    pub async fn ingest_with(&self, config: Config, paths: Paths) -> Result<Running, AnyError> {
        let (trigger, shutdown): (Trigger, Shutdown) = bridge_runtime::shutdown::channel();
        let task = tokio::spawn(order_ingest::run(config, shutdown));
        let ready = format!("http://127.0.0.1:{}/readyz", self.http_port);
        bridge_testkit::wait_until("ingest ready", Duration::from_secs(60), || async {
            reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await?;
        if paths.webhook {
            let port = self.webhook_port;
            bridge_testkit::wait_until(
                "webhook listening",
                Duration::from_secs(30),
                || async move {
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .is_ok()
                },
            )
            .await?;
        }
        Ok(Running { trigger, task })
    }

    /// Every event on `topic` (read_committed), decoded, with its key.
    pub async fn events(&self, topic: &str) -> Result<Vec<Event>, AnyError> {
        let codec = EventCodec::new(&self.registry);
        let records = consume_all(
            &self.bootstrap,
            topic,
            Isolation::ReadCommitted,
            Duration::from_secs(60),
        )?;
        let mut events = Vec::new();
        for record in records {
            events.push(codec.decode(&record.payload.unwrap_or_default()).await?);
        }
        Ok(events)
    }

    /// Order and movement events by event id; fails on an id seen twice.
    pub async fn published_once(&self) -> Result<BTreeMap<String, Event>, AnyError> {
        let mut all = BTreeMap::new();
        for topic in [&self.orders, &self.movements] {
            for event in self.events(topic).await? {
                let id = event.envelope().event_id.clone();
                if let Some(first) = all.insert(id.clone(), event) {
                    return Err(format!("event {id} is on the topics twice: {first:?}").into());
                }
            }
        }
        Ok(all)
    }

    /// The parked records.
    pub fn parked(&self) -> Result<Vec<bridge_testkit::Record>, AnyError> {
        Ok(consume_all(
            &self.bootstrap,
            &self.parked,
            Isolation::ReadCommitted,
            Duration::from_secs(30),
        )?)
    }

    /// The sim's delivery counters.
    pub async fn deliveries(&self) -> Result<serde_json::Value, AnyError> {
        let stats: serde_json::Value = reqwest::get(format!("{}/sim/stats", self.sim.url()))
            .await?
            .json()
            .await?;
        Ok(stats["deliveries"].clone())
    }

    /// The ingest's Prometheus text.
    pub async fn metrics(&self) -> Result<String, AnyError> {
        Ok(
            reqwest::get(format!("http://127.0.0.1:{}/metrics", self.http_port))
                .await?
                .text()
                .await?,
        )
    }

    /// The value of the first series line starting with `prefix`.
    pub async fn metric(&self, prefix: &str) -> f64 {
        self.metrics()
            .await
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with(prefix))
                    .and_then(|l| l.rsplit(' ').next())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0.0)
    }
}

fn toml_config(text: &str) -> Result<Config, AnyError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ingest.toml");
    std::fs::write(&path, text)?;
    Ok(bridge_runtime::config::load(
        Some(&path),
        std::iter::empty(),
    )?)
}

/// A running ingest.
pub struct Running {
    trigger: Trigger,
    task: tokio::task::JoinHandle<Result<(), bridge_runtime::service::ServiceError>>,
}

impl Running {
    /// Stops it and waits for the end.
    pub async fn stop(self) -> TestResult {
        self.trigger.fire();
        self.task.await??;
        Ok(())
    }
}

/// Events with the time they were produced blanked (it differs by design).
pub fn without_produced_at(mut event: Event) -> Event {
    match &mut event {
        Event::OrderPlaced(e) => e.envelope.produced_at = 0,
        Event::OrderUpdated(e) => e.envelope.produced_at = 0,
        Event::OrderCancelled(e) => e.envelope.produced_at = 0,
        Event::CreditMemoCreated(e) => e.envelope.produced_at = 0,
        Event::InventoryMovement(e) => e.envelope.produced_at = 0,
        _ => {}
    }
    event
}
