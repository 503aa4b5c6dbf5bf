//! `bridgectl`: the operator command line: proves the local stack works (`demo`), lists
//! and creates topics, checks schemas, shows the status (lag, parked, breaker, last
//! reconciliation), lists, shows and replays parked records after a fix, and shows the
//! reconciler's findings. Read commands take `--output json`.
//!
//! Exit codes, for scripts: 0 done (for `status`: nothing needs attention); 1 the command
//! failed (Kafka or the registry unreachable, a bad configuration, a schema problem);
//! 2 wrong usage; 3 `status` found something that needs attention.

mod demo;
mod findings;
mod parked;
mod progress;
mod schemas;
mod status;
mod watch;

use bridge_events::topics;
use bridge_runtime::config::{KafkaConfig, RegistryConfig};
use clap::{Parser, Subcommand};

/// Operator command line for magento-erp-bridge.
#[derive(Parser)]
#[command(version = bridge_runtime::VERSION)]
struct Args {
    /// A service's TOML configuration: its `[kafka]` (TLS, SASL, `librdkafka_files`) and
    /// `[registry]` (credentials, CA) sections are used; other sections are ignored.
    #[arg(long, env = "BRIDGE_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    /// Kafka bootstrap servers (over the config file's; default 127.0.0.1:9092).
    #[arg(long, env = "BRIDGE_KAFKA_BOOTSTRAP", global = true)]
    bootstrap_servers: Option<String>,
    /// Schema registry URL, Confluent API (over the config file's; default
    /// http://127.0.0.1:8081).
    #[arg(long, env = "BRIDGE_REGISTRY_URL", global = true)]
    registry_url: Option<String>,
    /// How read commands print: `text` for people, `json` (one document on standard
    /// output) for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// The form of a read command's output.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Lines for people.
    Text,
    /// One JSON document.
    Json,
}

/// `status` found something that needs attention.
const EXIT_ATTENTION: i32 = 3;

/// The `[kafka]` and `[registry]` sections of a service configuration.
#[derive(serde::Deserialize, Default)]
struct Connections {
    #[serde(default)]
    kafka: Option<KafkaConfig>,
    #[serde(default)]
    registry: RegistryConfig,
}

impl Args {
    /// Kafka and registry settings: the config file's, with the flags over them.
    fn connections(&self) -> anyhow::Result<(KafkaConfig, RegistryConfig)> {
        let file: Connections = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let mut table: toml::Table = text
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                table.retain(|key, _| key == "kafka" || key == "registry");
                toml::Value::Table(table)
                    .try_into()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            None => Connections::default(),
        };
        let mut kafka = file.kafka.unwrap_or_else(|| KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            librdkafka: Default::default(),
            librdkafka_files: Default::default(),
        });
        if let Some(bootstrap) = &self.bootstrap_servers {
            kafka.bootstrap_servers = bootstrap.clone();
        }
        let mut registry = file.registry;
        if let Some(url) = &self.registry_url {
            registry.url = url.clone();
        }
        kafka.validate()?;
        registry.validate()?;
        Ok((kafka, registry))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Produce an Avro event through the schema registry and read it back.
    Demo {
        /// The topic to write the probe to.
        #[arg(long, default_value = "bridge.demo.v1")]
        topic: String,
    },
    /// List the topics with their partition counts.
    Topics,
    /// Each processing loop's lag per partition, the parked records, and from the
    /// services' metrics readiness, paused partitions, the ERP breaker and the last
    /// reconciliation. Exit code 3 when something needs attention.
    Status {
        /// A service's health address (its `[http] listen`; in a cluster a
        /// `kubectl port-forward`); repeat for each. Default: the local stack's.
        #[arg(long = "service")]
        services: Vec<String>,
        /// Kafka only: do not ask the services.
        #[arg(long)]
        no_services: bool,
        /// A loop's group and its input, `GROUP=TOPIC`, instead of the services' default
        /// groups (for `group_id`s set in a configuration); repeat for each.
        #[arg(long = "group", value_parser = group_and_topic)]
        groups: Vec<(String, String)>,
    },
    /// Create the event topics of the layout (and the services' parked topics) if missing.
    CreateTopics {
        /// Partitions of each event topic (and of each changelog and parked topic: they
        /// follow their input's partitions). The most replicas a stateful service can use.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Copies of each partition; the cluster's `default.replication.factor` when not
        /// given (3 in production).
        #[arg(long)]
        replication_factor: Option<i32>,
        /// `min.insync.replicas` of each topic (2 with 3 copies: a write is acknowledged by
        /// two brokers); the cluster's default when not given.
        #[arg(long)]
        min_insync_replicas: Option<u32>,
    },
    /// Check or release the event schemas (the evolution gate).
    Schemas {
        #[command(subcommand)]
        action: SchemasAction,
    },
    /// Print a running summary of the local flow (placed, in the ERP, rejected, parked)
    /// until Ctrl-C.
    Watch {
        /// magento-sim.
        #[arg(long, default_value = "http://127.0.0.1:8090")]
        sim: String,
        /// erp-sim.
        #[arg(long, default_value = "http://127.0.0.1:8070")]
        erp: String,
        /// erp-writer's health port.
        #[arg(long, default_value = "http://127.0.0.1:8093")]
        writer: String,
        /// order-ingest's health port.
        #[arg(long, default_value = "http://127.0.0.1:8091")]
        ingest: String,
        /// The reconciler's health port.
        #[arg(long, default_value = "http://127.0.0.1:8094")]
        reconciler: String,
        /// Seconds between lines.
        #[arg(long, default_value_t = 5)]
        every: u64,
    },
    /// The reconciler's findings: the open ones (or all), with their explanations.
    Findings {
        /// The findings topic.
        #[arg(long, default_value = bridge_events::topics::FINDINGS)]
        topic: String,
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
    },
    /// Ask the reconciler for a run now (its `[reconciler] control_listen` endpoint).
    Reconcile {
        /// The reconciler's control address.
        #[arg(long, default_value = "http://127.0.0.1:8096")]
        url: String,
        /// A file holding the reconciler's `control_token`.
        #[arg(long, env = "BRIDGE_RECONCILER_TOKEN_FILE")]
        token_file: Option<std::path::PathBuf>,
    },
    /// Parked records: list them, or replay them onto their original topic after a fix.
    Parked {
        #[command(subcommand)]
        action: ParkedAction,
    },
}

#[derive(Subcommand)]
enum ParkedAction {
    /// Print each parked record's position, error class, reason and origin.
    List {
        /// The parked topic, e.g. `erp-writer-parked`.
        topic: String,
        #[command(flatten)]
        selection: parked::Selection,
    },
    /// Print one parked record in full: reason, origin, headers, key, payload size and
    /// digest (the payload itself only into a file, with `--payload-to`).
    Show {
        /// The parked topic.
        topic: String,
        /// Its partition on the parked topic.
        partition: i32,
        /// Its offset on the parked topic.
        offset: i64,
        /// Write the original payload bytes to this file.
        #[arg(long)]
        payload_to: Option<std::path::PathBuf>,
    },
    /// Produce the selected parked records' original key, payload and headers again.
    Replay {
        /// The parked topic, e.g. `erp-writer-parked`.
        topic: String,
        #[command(flatten)]
        selection: parked::Selection,
        /// Onto this topic instead of the original one.
        #[arg(long)]
        to: Option<String>,
        /// Only say what would be replayed; produce nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum SchemasAction {
    /// Check every current schema is backward compatible with its released versions.
    Check,
    /// Record changed schemas as their next released version (refused when incompatible).
    Release,
}

/// The consumer groups of the services' processing loops (their default names) and the
/// input each reads.
const LOOP_GROUPS: &[(&str, &str)] = &[
    ("erp-writer", topics::ORDERS),
    ("erp-writer-stock", topics::STOCK_DELTAS),
    ("erp-writer-customers", topics::ORDERS),
    ("erp-writer-resync", topics::RESYNC_REQUESTS),
    ("inventory-aggregator", topics::INVENTORY_MOVEMENTS),
    ("magento-writer", topics::ERP_RESULTS),
    ("magento-writer-resync", topics::RESYNC_REQUESTS),
    ("reconciler", topics::ORDERS),
];

/// The local stack's health addresses (`make up`).
const LOCAL_SERVICES: &[&str] = &[
    "http://127.0.0.1:8091",
    "http://127.0.0.1:8092",
    "http://127.0.0.1:8093",
    "http://127.0.0.1:8094",
    "http://127.0.0.1:8095",
];

/// `GROUP=TOPIC` of `status --group`.
fn group_and_topic(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((g, t)) if !g.is_empty() && !t.is_empty() => Ok((g.to_owned(), t.to_owned())),
        _ => Err(format!("`{text}` is not GROUP=TOPIC")),
    }
}

/// Whether `groups` are the services' default ones.
fn args_groups_default(groups: &[(&str, &str)]) -> bool {
    groups == LOOP_GROUPS
}

/// Every parked topic: order-ingest's and each loop's.
fn parked_topics() -> Vec<String> {
    std::iter::once("order-ingest-parked".to_owned())
        .chain(LOOP_GROUPS.iter().map(|(g, _)| format!("{g}-parked")))
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (kafka, registry) = args.connections()?;
    match args.command {
        Command::Demo { topic } => demo::run(&kafka, &registry, &topic).await,
        Command::Topics => demo::list_topics(&kafka, args.output),
        Command::Status {
            services,
            no_services,
            groups,
        } => {
            let groups: Vec<(&str, &str)> = if groups.is_empty() {
                LOOP_GROUPS.to_vec()
            } else {
                groups
                    .iter()
                    .map(|(g, t)| (g.as_str(), t.as_str()))
                    .collect()
            };
            let parked: Vec<String> = if args_groups_default(&groups) {
                parked_topics()
            } else {
                groups.iter().map(|(g, _)| format!("{g}-parked")).collect()
            };
            let services: Vec<String> = match (no_services, services.is_empty()) {
                (true, _) => Vec::new(),
                (false, true) => LOCAL_SERVICES.iter().map(|s| (*s).to_owned()).collect(),
                (false, false) => services,
            };
            let output = args.output;
            if status::run(&kafka, &groups, &parked, &services, output).await? {
                std::process::exit(EXIT_ATTENTION);
            }
            Ok(())
        }
        Command::CreateTopics {
            partitions,
            replication_factor,
            min_insync_replicas,
        } => {
            let layout = demo::TopicLayout {
                partitions,
                replication_factor: replication_factor.unwrap_or(-1),
                min_insync_replicas: min_insync_replicas.map(|n| n.to_string()),
            };
            for topic in bridge_events::topics::LAYOUT
                .iter()
                .map(|(topic, _)| *topic)
                .chain(["order-ingest-parked"])
            {
                demo::ensure_topic(&kafka, topic, &layout, &[]).await?;
            }
            // Each processing loop's group: a parked topic, and its state changelog —
            // compacted, as many partitions as the input it follows.
            for (group, _) in LOOP_GROUPS {
                let parked = format!("{group}-parked");
                demo::ensure_topic(&kafka, &parked, &layout, &[]).await?;
                let changelog = format!("{group}-changelog");
                let compact = [("cleanup.policy", "compact")];
                demo::ensure_topic(&kafka, &changelog, &layout, &compact).await?;
            }
            Ok(())
        }
        Command::Watch {
            sim,
            erp,
            writer,
            ingest,
            reconciler,
            every,
        } => {
            let sources = watch::Sources {
                sim,
                erp,
                writer,
                ingest,
                reconciler,
            };
            watch::run(sources, std::time::Duration::from_secs(every.max(1))).await
        }
        Command::Reconcile { url, token_file } => {
            let url = format!("{}/reconcile", url.trim_end_matches('/'));
            let mut request = reqwest::Client::new().post(&url);
            if let Some(path) = token_file {
                let token = bridge_runtime::secret::resolve("reconcile token", None, Some(&path))?
                    .unwrap_or_default();
                request = request.bearer_auth(token.expose());
            }
            let response = request.send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{url} answered {}",
                response.status()
            );
            print!("{}", response.text().await?);
            Ok(())
        }
        Command::Findings { topic, all } => {
            findings::list(&kafka, &registry, &topic, all, args.output).await
        }
        Command::Parked {
            action: ParkedAction::List { topic, selection },
        } => parked::list(&kafka, &topic, &selection, args.output),
        Command::Parked {
            action:
                ParkedAction::Show {
                    topic,
                    partition,
                    offset,
                    payload_to,
                },
        } => parked::show(
            &kafka,
            &topic,
            partition,
            offset,
            payload_to.as_deref(),
            args.output,
        ),
        Command::Parked {
            action:
                ParkedAction::Replay {
                    topic,
                    selection,
                    to,
                    dry_run,
                },
        } => parked::replay(
            &kafka,
            &topic,
            &selection,
            to.as_deref(),
            dry_run,
            args.output,
        )
        .await
        .map(|_| ()),
        Command::Schemas {
            action: SchemasAction::Release,
        } => schemas::release(),
        Command::Schemas {
            action: SchemasAction::Check,
        } => {
            let problems = schemas::check()?;
            if args.output == Output::Json {
                println!("{}", serde_json::json!({ "problems": problems }));
            } else {
                for p in &problems {
                    println!("{p}");
                }
            }
            if !problems.is_empty() {
                anyhow::bail!("{} schema problem(s)", problems.len());
            }
            if args.output == Output::Text {
                println!("every schema is backward compatible with its releases");
            }
            Ok(())
        }
    }
}
