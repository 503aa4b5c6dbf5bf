//! The `inventory-aggregator` process: configuration and telemetry, then [`inventory_aggregator::run`].

#[global_allocator]
static ALLOCATOR: bridge_runtime::Allocator = bridge_runtime::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, shutdown, _telemetry) = bridge_runtime::service::bootstrap::<
        inventory_aggregator::Config,
    >(inventory_aggregator::NAME)?;
    inventory_aggregator::run(config, shutdown).await?;
    Ok(())
}
