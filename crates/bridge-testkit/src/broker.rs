//! A real Apache Kafka broker (KRaft, single node) owned by a test: started from the
//! pinned jars on free ports in a temporary folder, and stoppable, killable and
//! restartable with its data kept, for fault tests.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::{HarnessError, Result, wait_until_blocking};

/// A broker process and its data folder. Dropping it kills the process and removes the
/// folder; if the test process dies first, a watchdog kills the broker.
pub struct KafkaBroker {
    dir: tempfile::TempDir,
    kafka_home: PathBuf,
    port: u16,
    controller_port: u16,
    child: Mutex<Option<Child>>,
    secured: Option<Secured>,
}

/// A `SASL_SSL` listener (SCRAM-SHA-512 over TLS) beside the plaintext one.
#[derive(Debug, Clone)]
pub struct Secured {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The CA that signed the broker's certificate, and that certificate.
    pub tls: crate::TestCa,
    /// The SCRAM user.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl Secured {
    /// The listener's bootstrap address.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The librdkafka settings a client needs for this listener, the password included.
    pub fn client_settings(&self) -> Vec<(String, String)> {
        [
            ("security.protocol", "SASL_SSL".to_owned()),
            ("sasl.mechanisms", "SCRAM-SHA-512".to_owned()),
            ("sasl.username", self.user.clone()),
            ("sasl.password", self.password.clone()),
            ("ssl.ca.location", self.tls.ca_file.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The folder holding the broker jars, installing them on first use.
fn kafka_home() -> Result<PathBuf> {
    if let Ok(home) = std::env::var("BRIDGE_KAFKA_HOME") {
        return Ok(PathBuf::from(home));
    }
    let script = workspace_root().join("deploy/local/kafka.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg("home")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| HarnessError::Io {
            context: format!("run {}", script.display()),
            source,
        })?;
    if !output.status.success() {
        return Err(HarnessError::Broker(format!(
            "{} home failed",
            script.display()
        )));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// A free loopback port, as a harness error when there is none.
pub(crate) fn free_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| HarnessError::Io {
            context: "find a free port".into(),
            source,
        })
}

impl KafkaBroker {
    /// Installs (if needed), formats and starts a broker; returns once it answers.
    pub fn start() -> Result<Self> {
        Self::start_with(false)
    }

    /// [`KafkaBroker::start`] with a `SASL_SSL` listener too: a CA and certificate made
    /// for it (OpenSSL), SCRAM-SHA-512 with one user created at format time.
    pub fn start_secured() -> Result<Self> {
        Self::start_with(true)
    }

    fn start_with(secure: bool) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bridge-kafka-")
            .tempdir()
            .map_err(|source| HarnessError::Io {
                context: "create broker folder".into(),
                source,
            })?;
        let secured = match secure {
            true => Some(Secured {
                port: free_port()?,
                tls: crate::TestCa::make(&dir.path().join("tls"))?,
                user: "bridge".into(),
                password: format!("scram-{}", crate::unique_name("pw")),
            }),
            false => None,
        };
        let broker = Self {
            dir,
            kafka_home: kafka_home()?,
            port: free_port()?,
            controller_port: free_port()?,
            child: Mutex::new(None),
            secured,
        };
        broker.write_config()?;
        broker
            .java(&[
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                "bridge-test-cluster-01",
                "-c",
            ])
            .arg(broker.config_path())
            .args(broker.secured.iter().flat_map(|s| {
                [
                    "--add-scram".to_owned(),
                    format!("SCRAM-SHA-512=[name={},password={}]", s.user, s.password),
                ]
            }))
            .stdout(Stdio::null())
            .status()
            .map_err(|source| HarnessError::Io {
                context: "format broker storage".into(),
                source,
            })
            .and_then(|status| match status.success() {
                true => Ok(()),
                false => Err(HarnessError::Broker("storage format failed".into())),
            })?;
        broker.launch()?;
        Ok(broker)
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `SASL_SSL` listener, when started with [`KafkaBroker::start_secured`].
    pub fn secured(&self) -> Option<&Secured> {
        self.secured.as_ref()
    }

    /// Where the broker writes its log (`server.log`).
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("server.properties")
    }

    fn write_config(&self) -> Result<()> {
        let data = self.dir.path().join("data");
        let mut config = String::new();
        let lines = [
            "process.roles=broker,controller".to_owned(),
            "node.id=1".to_owned(),
            format!(
                "controller.quorum.voters=1@127.0.0.1:{}",
                self.controller_port
            ),
            format!(
                "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}{}",
                self.port,
                self.controller_port,
                self.secured
                    .as_ref()
                    .map(|s| format!(",SASL_SSL://127.0.0.1:{}", s.port))
                    .unwrap_or_default()
            ),
            format!(
                "advertised.listeners=PLAINTEXT://127.0.0.1:{}{}",
                self.port,
                self.secured
                    .as_ref()
                    .map(|s| format!(",SASL_SSL://127.0.0.1:{}", s.port))
                    .unwrap_or_default()
            ),
            "controller.listener.names=CONTROLLER".to_owned(),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL".to_owned(),
            "inter.broker.listener.name=PLAINTEXT".to_owned(),
            format!("log.dirs={}", data.display()),
            "num.partitions=3".to_owned(),
            "offsets.topic.replication.factor=1".to_owned(),
            "offsets.topic.num.partitions=5".to_owned(),
            "transaction.state.log.replication.factor=1".to_owned(),
            "transaction.state.log.min.isr=1".to_owned(),
            "transaction.state.log.num.partitions=5".to_owned(),
            "share.coordinator.state.topic.replication.factor=1".to_owned(),
            "share.coordinator.state.topic.min.isr=1".to_owned(),
            "group.initial.rebalance.delay.ms=0".to_owned(),
            "auto.create.topics.enable=false".to_owned(),
        ];
        for line in lines {
            let _ = writeln!(config, "{line}");
        }
        if let Some(secured) = &self.secured {
            for line in [
                "sasl.enabled.mechanisms=SCRAM-SHA-512".to_owned(),
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;".to_owned(),
                "ssl.keystore.type=PEM".to_owned(),
                format!("ssl.keystore.location={}", secured.tls.keystore_file.display()),
            ] {
                let _ = writeln!(config, "{line}");
            }
        }
        std::fs::write(self.config_path(), config).map_err(|source| HarnessError::Io {
            context: "write server.properties".into(),
            source,
        })
    }

    fn java(&self, args: &[&str]) -> Command {
        let mut command = Command::new("java");
        command
            .arg("-Xms128m")
            .arg("-Xmx512m")
            .arg(format!("-Dkafka.logs.dir={}", self.log_dir().display()))
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                workspace_root()
                    .join("deploy/local/kafka/log4j2.yaml")
                    .display()
            ))
            .arg("-cp")
            .arg(self.kafka_home.join("lib/*"))
            .args(args);
        command
    }

    fn launch(&self) -> Result<()> {
        let stdout =
            std::fs::File::create(self.dir.path().join("stdout.log")).map_err(|source| {
                HarnessError::Io {
                    context: "create broker stdout log".into(),
                    source,
                }
            })?;
        let child = self
            .java(&["kafka.Kafka"])
            .arg(self.config_path())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| HarnessError::Io {
                context: "start java".into(),
                source,
            })?;
        watchdog(child.id(), self.dir.path());
        *self
            .child
            .lock()
            .map_err(|_| HarnessError::Broker("broker lock poisoned".into()))? = Some(child);
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()?;
        let ready = wait_until_blocking(
            "kafka broker to answer metadata requests",
            Duration::from_secs(90),
            || {
                if self.exited() {
                    return true;
                }
                probe
                    .fetch_metadata(None, Duration::from_millis(500))
                    .map(|m| !m.brokers().is_empty())
                    .unwrap_or(false)
            },
        );
        if ready.is_err() || self.exited() {
            return Err(HarnessError::Broker(format!(
                "broker on {} did not start; logs in {} (kept)",
                self.bootstrap(),
                self.log_dir().display()
            )));
        }
        Ok(())
    }

    fn exited(&self) -> bool {
        match self.child.lock() {
            Ok(mut child) => child
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_)))),
            Err(_) => true,
        }
    }

    fn signal(&self, signal: i32) -> Result<Option<Child>> {
        let mut guard = self
            .child
            .lock()
            .map_err(|_| HarnessError::Broker("broker lock poisoned".into()))?;
        let Some(mut child) = guard.take() else {
            return Ok(None);
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .map_err(|source| HarnessError::Io {
                context: "signal broker".into(),
                source,
            })?;
        if !status.success() {
            let _ = child.kill();
        }
        Ok(Some(child))
    }

    /// Kills the broker with SIGKILL (no clean shutdown), keeping its data.
    pub fn kill(&self) -> Result<()> {
        if let Some(mut child) = self.signal(9)? {
            child.wait().map_err(|source| HarnessError::Io {
                context: "reap broker".into(),
                source,
            })?;
        }
        Ok(())
    }

    /// Stops the broker with SIGTERM and waits for the clean shutdown.
    pub fn stop(&self) -> Result<()> {
        if let Some(mut child) = self.signal(15)? {
            child.wait().map_err(|source| HarnessError::Io {
                context: "wait for broker".into(),
                source,
            })?;
        }
        Ok(())
    }

    /// Starts the broker again on the same ports and data.
    pub fn restart(&self) -> Result<()> {
        if !self.exited() {
            self.stop()?;
        }
        self.launch()
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Kills `pid` and removes `dir` once this test process is gone, so no broker outlives
/// its test run (the shared broker lives in a static that is never dropped).
pub(crate) fn watchdog(pid: u32, dir: &Path) {
    let parent = std::process::id();
    let script = format!(
        "while kill -0 {parent} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         kill -9 {pid} 2>/dev/null; kill -0 {parent} 2>/dev/null || rm -rf '{}'",
        dir.display()
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
