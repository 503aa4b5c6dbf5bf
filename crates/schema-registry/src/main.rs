//! `schema-registry`: the local-only Confluent-compatible registry as a process.

use std::net::SocketAddr;

use clap::Parser;

/// Local-only Confluent-compatible schema registry (Avro), state in a compacted Kafka topic.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "BRIDGE_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Kafka bootstrap servers for the schema journal.
    #[arg(long, env = "BRIDGE_KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    /// Keep schemas in memory only (no Kafka); they are gone when the process stops.
    #[arg(long)]
    in_memory: bool,
    /// The compacted journal topic.
    #[arg(long, default_value = "_schemas")]
    topic: String,
    /// Replication factor of the journal topic when it is created.
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .init();
    let args = Args::parse();
    let registry = schema_registry::start(schema_registry::Config {
        listen: args.listen,
        bootstrap_servers: (!args.in_memory).then_some(args.bootstrap_servers),
        topic: args.topic,
        replication_factor: args.replication_factor,
    })
    .await?;
    tracing::info!(url = %registry.url(), "schema registry listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("stopping schema registry");
    registry.stop().await;
    Ok(())
}
