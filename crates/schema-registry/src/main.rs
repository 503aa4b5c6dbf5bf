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
    /// A librdkafka setting for the journal's clients, `key=value` (repeatable), e.g.
    /// `security.protocol=SASL_SSL`.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    kafka: Vec<String>,
    /// A librdkafka setting read from a file, `key=path` (repeatable), e.g.
    /// `sasl.password=/run/secrets/kafka-password`.
    #[arg(long = "kafka-file", value_name = "KEY=PATH")]
    kafka_files: Vec<String>,
    /// Require basic authentication with the `user:password` in this file.
    #[arg(long, env = "BRIDGE_REGISTRY_BASIC_AUTH_FILE")]
    basic_auth_file: Option<std::path::PathBuf>,
    /// Serve https with this PEM certificate (with `--tls-key`).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PKCS#8 PEM key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

/// `key=value` split at the first `=`.
fn pair(text: &str) -> anyhow::Result<(String, String)> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`{}` is not key=value",
                text.split('=').next().unwrap_or_default()
            )
        })
}

/// A secret file's content, one trailing newline trimmed.
fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned())
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
    let mut kafka_settings = std::collections::BTreeMap::new();
    for setting in &args.kafka {
        let (key, value) = pair(setting)?;
        kafka_settings.insert(key, value);
    }
    for setting in &args.kafka_files {
        let (key, path) = pair(setting)?;
        kafka_settings.insert(key, read_secret(std::path::Path::new(&path))?);
    }
    let basic_auth = match &args.basic_auth_file {
        Some(path) => {
            let text = read_secret(path)?;
            let (user, password) = text
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("{}: not `user:password`", path.display()))?;
            Some((user.to_owned(), password.to_owned()))
        }
        None => None,
    };
    let registry = schema_registry::start(schema_registry::Config {
        listen: args.listen,
        bootstrap_servers: (!args.in_memory).then_some(args.bootstrap_servers),
        kafka_settings,
        topic: args.topic,
        replication_factor: args.replication_factor,
        basic_auth,
        tls: args.tls_cert.zip(args.tls_key),
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
