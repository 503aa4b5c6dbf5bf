//! The `reconciler` process: configuration and telemetry, then [`reconciler::run`].

#[global_allocator]
static ALLOCATOR: bridge_runtime::Allocator = bridge_runtime::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, shutdown, _telemetry) = bridge_runtime::service::bootstrap(reconciler::NAME)?;
    reconciler::run(config, shutdown).await?;
    Ok(())
}
