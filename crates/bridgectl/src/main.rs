//! `bridgectl`: the operator command line. For now it proves the local stack works
//! (`demo`) and lists topics (`topics`); parked records, replays and resyncs follow.

mod demo;
mod schemas;

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
}

#[derive(Subcommand)]
enum SchemasAction {
    /// Check every current schema is backward compatible with its released versions.
    Check,
    /// Record changed schemas as their next released version (refused when incompatible).
    Release,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Demo { topic } => {
            demo::run(&args.bootstrap_servers, &args.registry_url, &topic).await
        }
        Command::Topics => demo::list_topics(&args.bootstrap_servers),
        Command::CreateTopics { partitions } => {
            let parked = ["order-ingest-parked"];
            for topic in bridge_events::topics::LAYOUT
                .iter()
                .map(|(topic, _)| *topic)
                .chain(parked)
            {
                demo::ensure_topic(&args.bootstrap_servers, topic, partitions).await?;
            }
            Ok(())
        }
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
