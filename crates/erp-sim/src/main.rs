//! The `erp-sim` process: `erp-sim --listen 127.0.0.1:8070 [--faults faults.toml]
//! [--rules rules.toml]`.

use clap::Parser;
use erp_sim::{ErpSim, ErpSimConfig, Faults, Rules};

/// An HTTP ERP with fault injection.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "ERP_SIM_LISTEN", default_value = "127.0.0.1:8070")]
    listen: std::net::SocketAddr,
    /// A TOML file of faults (see `erp_sim::faults::Faults`).
    #[arg(long, env = "ERP_SIM_FAULTS")]
    faults: Option<std::path::PathBuf>,
    /// A TOML file of business rules (closed_catalogue, closed_before, credit_limit,
    /// adjustment_batch_limit, allow_duplicate_refs, ship_after_ms).
    #[arg(long, env = "ERP_SIM_RULES")]
    rules: Option<std::path::PathBuf>,
}

fn read<T: serde::de::DeserializeOwned + Default>(
    path: Option<&std::path::Path>,
) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let faults: Faults = read(args.faults.as_deref())?;
    let rules: Rules = read(args.rules.as_deref())?;
    let sim = ErpSim::start(ErpSimConfig {
        listen: args.listen,
        faults,
        rules,
    })
    .await?;
    tracing::info!(url = %sim.url(), "erp-sim listening");
    tokio::signal::ctrl_c().await?;
    sim.stop();
    Ok(())
}
