//! `bridgectl`: the operator command line: proves the local stack works (`demo`), lists
//! and creates topics, checks schemas, lists parked records and replays them after a fix,
//! and shows the reconciler's findings.

mod demo;
mod findings;
mod parked;
mod schemas;
mod watch;

use clap::{Parser, Subcommand};

/// Operator command line for magento-erp-bridge.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "BRIDGE_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    bootstrap_servers: String,
    /// Schema registry URL (Confluent API).
    #[arg(
        long,
        env = "BRIDGE_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    registry_url: String,
    #[command(subcommand)]
    command: Command,
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
    /// Create the event topics of the layout (and the services' parked topics) if missing.
    CreateTopics {
        /// Partitions of each event topic.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
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
    },
    /// Parked records: list them, or replay them onto their original topic after a fix.
    Parked {
        #[command(subcommand)]
        action: ParkedAction,
    },
}

#[derive(Subcommand)]
enum ParkedAction {
    /// Print each parked record's origin, error class and reason.
    List {
        /// The parked topic, e.g. `erp-writer-parked`.
        topic: String,
    },
    /// Produce each parked record's original key, payload and headers again.
    Replay {
        /// The parked topic, e.g. `erp-writer-parked`.
        topic: String,
        /// Only records of this error class, e.g. `unmappable`.
        #[arg(long)]
        class: Option<String>,
        /// Onto this topic instead of the original one.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Subcommand)]
enum SchemasAction {
    /// Check every current schema is backward compatible with its released versions.
    Check,
    /// Record changed schemas as their next released version (refused when incompatible).
    Release,
}

/// The consumer groups of the services' processing loops (their default names).
const LOOP_GROUPS: &[&str] = &[
    "erp-writer",
    "erp-writer-stock",
    "erp-writer-customers",
    "erp-writer-resync",
    "inventory-aggregator",
    "magento-writer",
    "magento-writer-resync",
    "reconciler",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Demo { topic } => {
            demo::run(&args.bootstrap_servers, &args.registry_url, &topic).await
        }
        Command::Topics => demo::list_topics(&args.bootstrap_servers),
        Command::CreateTopics { partitions } => {
            for topic in bridge_events::topics::LAYOUT
                .iter()
                .map(|(topic, _)| *topic)
                .chain(["order-ingest-parked"])
            {
                demo::ensure_topic(&args.bootstrap_servers, topic, partitions, &[]).await?;
            }
            // Each processing loop's group: a parked topic, and its state changelog —
            // compacted, as many partitions as the input it follows.
            for group in LOOP_GROUPS {
                let parked = format!("{group}-parked");
                demo::ensure_topic(&args.bootstrap_servers, &parked, partitions, &[]).await?;
                let changelog = format!("{group}-changelog");
                let compact = [("cleanup.policy", "compact")];
                demo::ensure_topic(&args.bootstrap_servers, &changelog, partitions, &compact)
                    .await?;
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
        Command::Reconcile { url } => {
            let url = format!("{}/reconcile", url.trim_end_matches('/'));
            let response = reqwest::Client::new().post(&url).send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{url} answered {}",
                response.status()
            );
            print!("{}", response.text().await?);
            Ok(())
        }
        Command::Findings { topic, all } => {
            findings::list(&args.bootstrap_servers, &args.registry_url, &topic, all).await
        }
        Command::Parked {
            action: ParkedAction::List { topic },
        } => parked::list(&args.bootstrap_servers, &topic),
        Command::Parked {
            action: ParkedAction::Replay { topic, class, to },
        } => parked::replay(
            &args.bootstrap_servers,
            &topic,
            class.as_deref(),
            to.as_deref(),
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
            for p in &problems {
                println!("{p}");
            }
            if !problems.is_empty() {
                anyhow::bail!("{} schema problem(s)", problems.len());
            }
            println!("every schema is backward compatible with its releases");
            Ok(())
        }
    }
}
