//! The `order-ingest` process: configuration and telemetry, then [`order_ingest::run`].

#[global_allocator]
static ALLOCATOR: bridge_runtime::Allocator = bridge_runtime::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, shutdown, _telemetry) = bridge_runtime::service::bootstrap(order_ingest::NAME)?;
    order_ingest::run(config, shutdown).await?;
    Ok(())
}
