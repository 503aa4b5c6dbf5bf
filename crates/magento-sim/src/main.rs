//! The `magento-sim` process: `magento-sim --listen 127.0.0.1:8090 --orders-per-second 2
//! --webhook-url http://127.0.0.1:8081/webhooks/adobe-io`.

use std::time::Duration;

use clap::Parser;
use magento_sim::{RetrySchedule, Sim, SimConfig};

/// A Magento 2 REST look-alike with generated orders and signed I/O Events deliveries.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "MAGENTO_SIM_LISTEN", default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// Integration token REST calls must carry (`Authorization: Bearer ...`).
    #[arg(long, env = "MAGENTO_SIM_TOKEN")]
    token: Option<String>,
    /// Webhook URL for Adobe I/O Events deliveries.
    #[arg(long, env = "MAGENTO_SIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// recipient_client_id of the deliveries.
    #[arg(long, default_value = "magento-erp-bridge")]
    client_id: String,
    /// Orders generated per second.
    #[arg(long, default_value_t = 1.0)]
    orders_per_second: f64,
    /// Share of orders later invoiced+shipped, cancelled or refunded.
    #[arg(long, default_value_t = 0.5)]
    lifecycle_share: f64,
    /// Seconds before the first delivery retry (Adobe: 60).
    #[arg(long, default_value_t = 60.0)]
    retry_first_seconds: f64,
    /// Longest wait between delivery retries in seconds (Adobe: 900).
    #[arg(long, default_value_t = 900.0)]
    retry_cap_seconds: f64,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The first generated order number; by default one derived from the start time, so
    /// each run's orders are new to a Kafka that kept an earlier run's.
    #[arg(long)]
    first_id: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let sim = Sim::start(SimConfig {
        listen: args.listen,
        token: args.token,
        webhook_url: args.webhook_url,
        client_id: args.client_id,
        retry: RetrySchedule {
            first: Duration::from_secs_f64(args.retry_first_seconds),
            cap: Duration::from_secs_f64(args.retry_cap_seconds),
            ..RetrySchedule::default()
        },
        orders_per_second: args.orders_per_second,
        lifecycle_share: args.lifecycle_share,
        seed: args.seed,
        first_id: args.first_id.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            now.saturating_sub(1_700_000_000).saturating_mul(100)
        }),
    })
    .await?;
    tracing::info!(url = %sim.url(), "magento-sim listening");
    tokio::signal::ctrl_c().await?;
    sim.stop();
    Ok(())
}
