//! Every service binary starts against the real broker, reports ready on `/readyz`,
//! and stops cleanly on SIGTERM within a bound.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bridge_testkit::{free_port, stack, wait_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SERVICES: [&str; 5] = [
    "order-ingest",
    "inventory-aggregator",
    "erp-writer",
    "reconciler",
    "magento-writer",
];

/// The binaries `cargo build --bins` put beside this test's own target folder.
fn binary(name: &str) -> Result<PathBuf, String> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    match path.exists() {
        true => Ok(path),
        false => Err(format!(
            "{} is missing: run `cargo build --bins` first (make test does)",
            path.display()
        )),
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_becomes_ready_and_stops_on_sigterm() -> TestResult {
    let stack = stack()?;
    for service in SERVICES {
        let port = free_port()?;
        // Local state in a folder of its own, not under the source tree.
        let state = tempfile::tempdir()?;
        let mut command = Command::new(binary(service)?);
        command
            .env("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", &stack.bootstrap)
            .env("BRIDGE__REGISTRY__URL", &stack.registry_url)
            .env("BRIDGE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
            .env("BRIDGE__PROCESSOR__STATE_DIR", state.path())
            .stdout(Stdio::null());
        let mapping =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/mapping.toml");
        if service == "erp-writer" {
            command.env("BRIDGE__WRITER__MAPPING_FILE", &mapping);
        }
        if service == "reconciler" {
            command.env("BRIDGE__RECONCILER__MAPPING_FILE", &mapping);
        }
        if service == "order-ingest" {
            let webhook = format!("127.0.0.1:{}", free_port()?);
            command.env("BRIDGE__INGEST__WEBHOOK__LISTEN", webhook);
        }
        let mut running = Running(command.spawn()?);
        let ready_url = format!("http://127.0.0.1:{port}/readyz");
        let client = reqwest::Client::new();
        wait_until(
            &format!("{service} to answer 200 on /readyz"),
            Duration::from_secs(30),
            || {
                let request = client.get(&ready_url).send();
                async move { request.await.is_ok_and(|r| r.status().is_success()) }
            },
        )
        .await?;
        let metrics = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        assert!(
            metrics.contains(&format!("bridge_service_ready{{service=\"{service}\"}} 1")),
            "{metrics}"
        );

        let status = Command::new("kill")
            .arg("-TERM")
            .arg(running.0.id().to_string())
            .status()?;
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(exit) = running.0.try_wait()? {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "{service} did not stop within 10 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(exit.success(), "{service} exited with {exit}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misspelt_config_key_stops_the_service_naming_the_key() -> TestResult {
    let output = Command::new(binary("erp-writer")?)
        .env("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env("BRIDGE__KAFKA__BOOTSTRAP_SERVER", "typo:9092")
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bootstrap_server"), "{stderr}");
    Ok(())
}
