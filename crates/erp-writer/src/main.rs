//! The `erp-writer` process: configuration and telemetry, then [`erp_writer::run`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, shutdown, _telemetry) =
        bridge_runtime::service::bootstrap::<erp_writer::Config>(erp_writer::NAME)?;
    erp_writer::run(config, shutdown).await?;
    Ok(())
}
