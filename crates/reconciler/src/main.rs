//! The `reconciler` process: configuration and telemetry, then [`reconciler::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, shutdown, _telemetry) = bridge_runtime::service::bootstrap(reconciler::NAME)?;
    reconciler::run(config, shutdown).await?;
    Ok(())
}
