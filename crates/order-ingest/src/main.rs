//! The `order-ingest` process: configuration and telemetry, then [`order_ingest::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, shutdown, _telemetry) = bridge_runtime::service::bootstrap(order_ingest::NAME)?;
    order_ingest::run(config, shutdown).await?;
    Ok(())
}
