//! The real processes end-to-end tests start: a child killed when the test ends, each
//! writing its log to a file, and the settings that wire the services of the order flow
//! to magento-sim and erp-sim.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::binary;

/// A child process, killed (and reaped) when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary `name` with `args` and `env`, its stdout and stderr in
/// `logs/<name>.log`.
pub fn spawn(
    name: &str,
    args: &[String],
    env: &[(&str, String)],
    logs: &Path,
) -> Result<Running, Box<dyn std::error::Error>> {
    let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
    let child = Command::new(binary(name)?)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()?;
    Ok(Running(child))
}

/// The last 15 lines of a log.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Where the simulators of a flow listen.
pub struct Sims<'a> {
    /// magento-sim's base URL.
    pub magento: &'a str,
    /// erp-sim's base URL.
    pub erp: &'a str,
    /// The port order-ingest's webhook receiver listens on (magento-sim delivers there).
    pub webhook_port: u16,
}

/// Each service of the order flow with the settings that point it at `sims` (the
/// mapping from `deploy/config/mapping.toml`), in start order.
pub fn flow_services(sims: &Sims<'_>) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let mapping = crate::workspace_root()
        .join("deploy/config/mapping.toml")
        .display()
        .to_string();
    let (sim, erp) = (sims.magento.to_owned(), sims.erp.to_owned());
    vec![
        (
            "order-ingest",
            vec![
                ("BRIDGE__INGEST__MAGENTO__BASE_URL", sim.clone()),
                (
                    "BRIDGE__INGEST__WEBHOOK__LISTEN",
                    format!("127.0.0.1:{}", sims.webhook_port),
                ),
                (
                    "BRIDGE__INGEST__WEBHOOK__KEY_BASE_URL",
                    format!("{sim}/sim"),
                ),
                (
                    "BRIDGE__INGEST__WEBHOOK__KEY_HOSTS",
                    r#"["127.0.0.1"]"#.into(),
                ),
                (
                    "BRIDGE__INGEST__WEBHOOK__CLIENT_ID",
                    "magento-erp-bridge".into(),
                ),
            ],
        ),
        ("inventory-aggregator", vec![]),
        (
            "erp-writer",
            vec![
                ("BRIDGE__WRITER__ERP__BASE_URL", erp.clone()),
                ("BRIDGE__WRITER__MAPPING_FILE", mapping.clone()),
            ],
        ),
        (
            "reconciler",
            vec![
                ("BRIDGE__RECONCILER__MAPPING_FILE", mapping),
                ("BRIDGE__RECONCILER__ERP__BASE_URL", erp),
                ("BRIDGE__RECONCILER__MAGENTO__BASE_URL", sim.clone()),
                ("BRIDGE__RECONCILER__STOCK__ENABLED", "false".into()),
            ],
        ),
        (
            "magento-writer",
            vec![("BRIDGE__WRITER__MAGENTO__BASE_URL", sim)],
        ),
    ]
}
