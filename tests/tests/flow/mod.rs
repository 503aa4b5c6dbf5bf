//! The order flow on a real broker and registry: magento-sim → order-ingest (in process,
//! polling) → orders topic → erp-writer (its real binary, so it can be SIGKILLed) →
//! erp-sim, whose books the tests read. Every name is unique per test.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bridge_events::{Event, EventCodec};
use bridge_runtime::parking::ParkedRecord;
use bridge_runtime::shutdown::Trigger;
use bridge_testkit::{Isolation, consume_all, create_topic, free_port, unique_name};
use erp_sim::{ErpSim, ErpSimConfig};
use magento_sim::{Sim, SimConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use rust_decimal::Decimal;
use serde_json::Value;

mod expected;
mod observe;
pub mod reconciliation;

#[allow(unused_imports)] // each test binary uses some of them
pub use expected::{Expected, differences, expected, generate_with_lifecycles, money};

pub type AnyError = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult = Result<(), AnyError>;

/// The shipped mapping.
pub const MAPPING: &str = include_str!("../../../deploy/config/mapping.toml");

/// The parked and changelog topics of the loop whose consumer group is `group`.
pub async fn create_loop_topics(bootstrap: &str, group: &str) -> TestResult {
    create_topic(bootstrap, &format!("{group}-parked"), 1, &[]).await?;
    let compact = [("cleanup.policy", "compact")];
    create_topic(bootstrap, &format!("{group}-changelog"), 3, &compact).await?;
    Ok(())
}

/// The topics of erp-writer's loops under `group` as the harness configures them: orders,
/// resync (`<group>-resync`) and customers (`<group>-customers`).
pub async fn create_writer_topics(bootstrap: &str, group: &str) -> TestResult {
    for group in [
        group.to_owned(),
        format!("{group}-resync"),
        format!("{group}-customers"),
    ] {
        create_loop_topics(bootstrap, &group).await?;
    }
    Ok(())
}

/// One flow.
pub struct Flow {
    pub bootstrap: String,
    pub registry: String,
    pub orders: String,
    pub results: String,
    /// Reconciliation findings.
    pub findings: String,
    /// Resync requests (erp-writer and magento-writer act on them).
    pub resync: String,
    pub group: String,
    pub sim: Sim,
    pub erp: ErpSim,
    pub dir: tempfile::TempDir,
    /// erp-writer's own rate limit (calls per second; 0 = none).
    pub writer_rate: f64,
    /// `[writer] order_workers` of the writers started after it is set.
    pub order_workers: usize,
    /// The `[writer.erp]` table instead of erp-sim's.
    pub writer_erp: Option<String>,
    ingest: Option<InProcess>,
    magento_writer: Option<InProcess>,
    reconciler: Option<InProcess>,
    reconciler_port: Option<u16>,
}

/// A service running in this process, and how to stop it.
type InProcess = (
    Trigger,
    tokio::task::JoinHandle<Result<(), bridge_runtime::service::ServiceError>>,
);

/// A service running as its own process (erp-writer; the reconciler where its memory is
/// measured).
pub struct ServiceProcess {
    pub child: Child,
    pub http_port: u16,
}

impl ServiceProcess {
    /// A figure of its `/proc/<pid>/status` in bytes (`VmHWM`: its peak resident set).
    pub fn memory(&self, field: &str) -> u64 {
        bridge_runtime::process_metrics::memory(&self.child.id().to_string(), field)
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) -> TestResult {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM and wait for a clean stop.
    pub fn stop(&mut self) -> TestResult {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(format!("the service stopped with {status}").into());
        }
        Ok(())
    }

    /// Its Prometheus text.
    pub async fn metrics(&self) -> Result<String, AnyError> {
        Ok(http()
            .get(format!("http://127.0.0.1:{}/metrics", self.http_port))
            .send()
            .await?
            .text()
            .await?)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Flow {
    /// Topics, magento-sim, erp-sim (booking duplicate references, so a double create
    /// would show), and order-ingest polling the sim.
    pub async fn start(bootstrap: &str, registry: &str) -> Result<Self, AnyError> {
        let name = unique_name("erpflow");
        let orders = format!("{name}-orders");
        let movements = format!("{name}-movements");
        let results = format!("{name}-results");
        let findings = format!("{name}-findings");
        let resync = format!("{name}-resync");
        let group = format!("{name}-writer");
        let back_group = format!("{name}-magento-writer");
        for topic in [&orders, &movements, &results, &findings, &resync] {
            create_topic(bootstrap, topic, 3, &[]).await?;
        }
        create_writer_topics(bootstrap, &group).await?;
        // magento-writer's loops and the reconciler.
        let others = [
            back_group.clone(),
            format!("{back_group}-resync"),
            format!("{group}-reconciler"),
        ];
        for other in &others {
            create_loop_topics(bootstrap, other).await?;
        }
        create_topic(bootstrap, &format!("{name}-ingest-parked"), 1, &[]).await?;
        let sim = Sim::start(SimConfig::default()).await?;
        let erp = ErpSim::start(ErpSimConfig {
            rules: erp_sim::Rules {
                allow_duplicate_refs: true,
                ..Default::default()
            },
            ..Default::default()
        })
        .await?;
        let dir = tempfile::tempdir()?;
        let mut flow = Self {
            bootstrap: bootstrap.to_owned(),
            registry: registry.to_owned(),
            orders,
            results,
            findings,
            resync,
            group,
            sim,
            erp,
            dir,
            writer_rate: 0.0,
            order_workers: 1,
            writer_erp: None,
            ingest: None,
            magento_writer: None,
            reconciler: None,
            reconciler_port: None,
        };
        flow.start_ingest(&name, &movements).await?;
        flow.start_magento_writer(&back_group).await?;
        Ok(flow)
    }

    /// magento-writer, in process: verdicts back to the sim as order comments.
    async fn start_magento_writer(&mut self, group: &str) -> TestResult {
        let toml = format!(
            r#"
commit_interval_ms = 200
[writer]
group_id = "{group}"
results_topic = "{results}"
rate_limit_per_second = 0
[writer.magento]
base_url = "{sim}"
[writer.resync]
enabled = true
group_id = "{group}-resync"
topic = "{resync}"
"#,
            results = self.results,
            resync = self.resync,
            sim = self.sim.url(),
        );
        let (service, _) = self
            .in_process("magento-writer", "mw", &toml, magento_writer::run)
            .await?;
        self.magento_writer = Some(service);
        Ok(())
    }

    /// The runtime's sections of a service's configuration for this flow: Kafka, registry,
    /// health on `port`, state in `<dir>/<state>`, `instance_id`; lines appended before a new
    /// table still belong to `[processor]`.
    fn runtime_sections(&self, state: &str, port: u16, instance_id: &str) -> String {
        bridge_testkit::runtime_sections(
            &self.bootstrap,
            &self.registry,
            port,
            &self.dir.path().join(state),
            instance_id,
        )
    }

    /// Runs a service's `run` in this process and waits until its `/readyz` answers. Its
    /// configuration is the runtime's sections for this flow (Kafka, registry, a free
    /// health port, state in `<dir>/<name>`, `instance_id`) followed by `toml`, whose first
    /// lines, before its own tables, still belong to `[processor]`. Returns the service and
    /// its health port.
    async fn in_process<C, F, Fut>(
        &self,
        name: &str,
        instance_id: &str,
        toml: &str,
        run: F,
    ) -> Result<(InProcess, u16), AnyError>
    where
        C: serde::de::DeserializeOwned,
        F: FnOnce(C, bridge_runtime::shutdown::Shutdown) -> Fut,
        Fut: std::future::Future<Output = Result<(), bridge_runtime::service::ServiceError>>
            + Send
            + 'static,
    {
        let port = free_port()?;
        let sections = self.runtime_sections(name, port, instance_id);
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, format!("{sections}{}", toml.trim_start()))?;
        let config: C = bridge_runtime::config::load(Some(&path), std::iter::empty())?;
        let (trigger, shutdown) = bridge_runtime::shutdown::channel();
        let task = tokio::spawn(run(config, shutdown));
        ready(port, &format!("{name} ready")).await?;
        Ok(((trigger, task), port))
    }

    /// Order comments magento-writer wrote, per order reference.
    pub fn comments(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for w in self.sim.shared.store().writebacks() {
            if w.kind == "order_comment" {
                let text = w.body["statusHistory"]["comment"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                out.entry(w.target.clone()).or_default().push(text);
            }
        }
        out
    }

    async fn start_ingest(&mut self, name: &str, movements: &str) -> TestResult {
        let toml = format!(
            r#"
[ingest]
orders_topic = "{orders}"
movements_topic = "{movements}"
parked_topic = "{name}-ingest-parked"
[ingest.magento]
base_url = "{sim}"
[ingest.webhook]
enabled = false
[ingest.poll]
interval_ms = 300
page_size = 100
overlap_seconds = 5
initial_lookback_hours = 100000
source_items_interval_ms = 0
"#,
            orders = self.orders,
            sim = self.sim.url(),
        );
        let (service, _) = self
            .in_process("ingest", "ingest", &toml, order_ingest::run)
            .await?;
        self.ingest = Some(service);
        Ok(())
    }

    /// The reconciler's configuration for this flow (stabilization profile, no rounding
    /// tolerated, orders compared as soon as they are in) with `interval_ms` between runs
    /// and these extra `[reconciler]` lines.
    fn reconciler_toml(&self, mapping: &Path, interval_ms: u64, extra: &str) -> String {
        format!(
            r#"
commit_interval_ms = 200
[reconciler]
group_id = "{group}-reconciler"
orders_topic = "{orders}"
findings_topic = "{findings}"
resync_topic = "{resync}"
profile = "stabilization"
interval_ms = {interval_ms}
settle_ms = 0
mapping_file = "{mapping}"
{extra}
[reconciler.erp]
base_url = "{erp}"
timeout_ms = 2000
[reconciler.magento]
base_url = "{sim}"
"#,
            group = self.group,
            orders = self.orders,
            findings = self.findings,
            resync = self.resync,
            mapping = mapping.display(),
            erp = self.erp.url(),
            sim = self.sim.url(),
        )
    }

    /// Starts the reconciler in this process (see [`Flow::reconciler_toml`]) and waits
    /// until it is ready.
    pub async fn start_reconciler(
        &mut self,
        mapping: &Path,
        interval_ms: u64,
        extra: &str,
    ) -> TestResult {
        let toml = self.reconciler_toml(mapping, interval_ms, extra);
        let (service, port) = self
            .in_process("reconciler", "rec", &toml, reconciler::run)
            .await?;
        self.reconciler = Some(service);
        self.reconciler_port = Some(port);
        Ok(())
    }

    /// Starts the reconciler as its own process, so that its memory is its own, when its
    /// binary was built (`cargo build --workspace --bins`, as `make test` does); `None` when it was not.
    pub async fn start_reconciler_process(
        &mut self,
        mapping: &Path,
        interval_ms: u64,
        extra: &str,
    ) -> Result<ServiceProcess, AnyError> {
        let binary = bridge_e2e::binary("reconciler")?;
        let port = free_port()?;
        let config = self.dir.path().join("reconciler-process.toml");
        std::fs::write(
            &config,
            format!(
                "{}{}",
                self.runtime_sections("reconciler", port, "rec"),
                self.reconciler_toml(mapping, interval_ms, extra)
                    .trim_start()
            ),
        )?;
        let process = self.spawn(&binary, &config, "reconciler", port).await?;
        self.reconciler_port = Some(port);
        Ok(process)
    }

    /// Runs `binary --config config` with its output appended to `<log>.log` of the flow
    /// (`RUST_LOG` from `<LOG>_LOG`, `info` without it) and waits until it is ready on
    /// `port`.
    async fn spawn(
        &self,
        binary: &Path,
        config: &Path,
        log: &str,
        port: u16,
    ) -> Result<ServiceProcess, AnyError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{log}.log")))?;
        let level = std::env::var(format!("{}_LOG", log.to_uppercase()));
        let child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", level.unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()?;
        let process = ServiceProcess {
            child,
            http_port: port,
        };
        ready(port, &format!("{log} ready")).await?;
        Ok(process)
    }

    /// The reconciler's Prometheus text.
    pub async fn reconciler_metrics(&self) -> Result<String, AnyError> {
        let port = self
            .reconciler_port
            .ok_or("the reconciler is not running")?;
        Ok(http()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await?
            .text()
            .await?)
    }

    /// Writes `mapping` to a file of the flow and returns its path.
    pub fn mapping_file(&self, name: &str, mapping: &str) -> Result<PathBuf, AnyError> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, mapping)?;
        Ok(path)
    }

    /// Sets erp-sim's faults.
    pub fn faults(&self, faults: erp_sim::Faults) {
        self.erp.shared.faults().set(faults);
    }

    /// Starts erp-writer with `mapping` (a path) and waits until it is ready.
    pub async fn start_writer(&self, mapping: &Path) -> Result<ServiceProcess, AnyError> {
        let port = free_port()?;
        let config = self.dir.path().join(format!("writer-{port}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"{sections}commit_interval_ms = 200
[processor.retry]
initial_ms = 100
max_delay_ms = 1000
give_up_after_ms = 3000
[kafka.librdkafka]
"session.timeout.ms" = "10000"
[writer]
group_id = "{group}"
orders_topic = "{orders}"
results_topic = "{results}"
mapping_file = "{mapping}"
order_workers = {workers}
[writer.stock]
enabled = false
[writer.customers]
group_id = "{group}-customers"
[writer.resync]
enabled = true
group_id = "{group}-resync"
topic = "{resync}"
[writer.resync.magento]
base_url = "{sim}"
[writer.shipments]
poll_interval_ms = 300
{erp}
"#,
                sections = self.runtime_sections(&self.group, port, "0"),
                group = self.group,
                orders = self.orders,
                results = self.results,
                mapping = mapping.display(),
                workers = self.order_workers,
                resync = self.resync,
                sim = self.sim.url(),
                erp = self.writer_erp.clone().unwrap_or_else(|| format!(
                    "[writer.erp]\nbase_url = \"{}\"\ntimeout_ms = 2000\nrate_limit_per_second = {}\nbreaker_failures = 5\nbreaker_open_ms = 1000",
                    self.erp.url(),
                    self.writer_rate
                )),
            ),
        )?;
        self.spawn(&bridge_e2e::binary("erp-writer")?, &config, "writer", port)
            .await
    }

    /// The writer's log so far (for failure messages).
    pub fn writer_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("writer.log")).unwrap_or_default()
    }

    /// Stops the ingest.
    pub async fn stop(mut self) -> TestResult {
        for (trigger, task) in [
            self.ingest.take(),
            self.magento_writer.take(),
            self.reconciler.take(),
        ]
        .into_iter()
        .flatten()
        {
            trigger.fire();
            task.await??;
        }
        Ok(())
    }
}

impl Drop for Flow {
    /// A failed test still stops the in-process services, so their loops do not keep the
    /// test process alive.
    fn drop(&mut self) {
        for (trigger, _) in [
            self.ingest.take(),
            self.magento_writer.take(),
            self.reconciler.take(),
        ]
        .into_iter()
        .flatten()
        {
            trigger.fire();
        }
    }
}

/// One HTTP client for the tests' polling: a client per request loaded the system's CA
/// certificates each time, a fifth of the CPU while a large run was watched.
pub fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(reqwest::Client::new)
}

/// Waits until the service on `port` answers `/readyz`.
async fn ready(port: u16, what: &str) -> TestResult {
    let url = format!("http://127.0.0.1:{port}/readyz");
    bridge_testkit::wait_until(what, Duration::from_secs(60), || async {
        http()
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await?;
    Ok(())
}
