//! The `erp-writer` process: configuration and telemetry, then [`erp_writer::run`].

#[global_allocator]
static ALLOCATOR: bridge_runtime::Allocator = bridge_runtime::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (config, shutdown, _telemetry) =
        bridge_runtime::service::bootstrap::<erp_writer::Config>(erp_writer::NAME)?;
    erp_writer::run(config, shutdown).await?;
    Ok(())
}
