//! The `magento-writer` process: configuration and telemetry, then [`magento_writer::run`].

#[global_allocator]
static ALLOCATOR: bridge_runtime::Allocator = bridge_runtime::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, shutdown, _telemetry) =
        bridge_runtime::service::bootstrap::<magento_writer::Config>(magento_writer::NAME)?;
    magento_writer::run(config, shutdown).await?;
    Ok(())
}
