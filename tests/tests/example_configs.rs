//! Every `deploy/config/<service>.example.toml` loads with the service's own loader and
//! passes its own validation — so the examples cannot drift from the settings. The files
//! they name (`/var/run/secrets/bridge/…`, `/etc/bridge/…`) are redirected to a temporary
//! folder holding stand-ins; the shipped mapping stands in for `/etc/bridge/mapping.toml`.

use std::path::Path;

use bridge_e2e::workspace_root;
use bridge_runtime::config::{Validate, load};
use serde::de::DeserializeOwned;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PREFIXES: [&str; 2] = ["/var/run/secrets/bridge/", "/etc/bridge/"];

/// The example of `service`, its files redirected into `dir` and created there, loaded
/// and validated as `C`.
fn load_example<C: DeserializeOwned + Validate>(
    service: &str,
    dir: &Path,
) -> Result<C, Box<dyn std::error::Error>> {
    let path = workspace_root().join(format!("deploy/config/{service}.example.toml"));
    let mut text = std::fs::read_to_string(&path)?;
    for prefix in PREFIXES {
        let mut rest = text.as_str();
        let mut named = Vec::new();
        while let Some(at) = rest.find(prefix) {
            let tail = &rest[at + prefix.len()..];
            let end = tail.find('"').ok_or("an unterminated path")?;
            named.push(tail[..end].to_string());
            rest = &tail[end..];
        }
        for name in named {
            let file = dir.join(&name);
            let content = match name.as_str() {
                "mapping.toml" => {
                    std::fs::read_to_string(workspace_root().join("deploy/config/mapping.toml"))?
                }
                _ => "stand-in\n".to_string(),
            };
            std::fs::write(file, content)?;
        }
        text = text.replace(prefix, &format!("{}/", dir.display()));
    }
    let redirected = dir.join(format!("{service}.toml"));
    std::fs::write(&redirected, text)?;
    let config: C = load(Some(&redirected), Vec::<(String, String)>::new())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    config
        .validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(config)
}

#[test]
fn order_ingest_example_loads() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config: order_ingest::Config = load_example("order-ingest", dir.path())?;
    assert_eq!(config.kafka.librdkafka_files.len(), 1);
    assert!(config.ingest.webhook.client_id.is_some());
    assert!(
        !config.ingest.webhook.allow_unsigned,
        "the example verifies signatures"
    );
    Ok(())
}

#[test]
fn inventory_aggregator_example_loads() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config: inventory_aggregator::Config = load_example("inventory-aggregator", dir.path())?;
    assert_eq!(config.aggregator.window_ms, 300_000);
    Ok(())
}

#[test]
fn erp_writer_example_loads() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config: erp_writer::Config = load_example("erp-writer", dir.path())?;
    assert_eq!(
        config.writer.erp.connector,
        erp::settings::ConnectorKind::Tryton
    );
    assert!(config.writer.erp.password_file.is_some());
    erp::mapping::Mapping::load(&config.writer.mapping_file)?;
    Ok(())
}

#[test]
fn magento_writer_example_loads() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config: magento_writer::Config = load_example("magento-writer", dir.path())?;
    assert_eq!(config.writer.rejected_status, "holded");
    Ok(())
}

#[test]
fn reconciler_example_loads() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config: reconciler::Config = load_example("reconciler", dir.path())?;
    assert!(config.reconciler.control_token_file.is_some());
    Ok(())
}

#[test]
fn every_service_has_an_example() -> TestResult {
    for service in [
        "order-ingest",
        "inventory-aggregator",
        "erp-writer",
        "magento-writer",
        "reconciler",
    ] {
        let path = workspace_root().join(format!("deploy/config/{service}.example.toml"));
        assert!(path.exists(), "{} is missing", path.display());
    }
    Ok(())
}
