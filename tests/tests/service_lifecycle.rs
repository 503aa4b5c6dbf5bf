//! Every service binary starts against the real broker, reports ready on `/readyz`,
//! and stops cleanly on SIGTERM within a bound.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bridge_e2e::binary;
use bridge_e2e::processes::Running;
use bridge_testkit::{create_topic, free_port, stack, unique_name, wait_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SERVICES: [&str; 5] = [
    "order-ingest",
    "inventory-aggregator",
    "erp-writer",
    "reconciler",
    "magento-writer",
];

/// Starts `service` against the test stack with its own state folder and HTTP port, and
/// `extra` environment; returns it with its HTTP port.
fn start(
    service: &str,
    extra: &[(&str, String)],
) -> Result<(Running, u16, tempfile::TempDir), Box<dyn std::error::Error>> {
    let stack = stack()?;
    let port = free_port()?;
    // Local state in a folder of its own, not under the source tree.
    let state = tempfile::tempdir()?;
    let mut command = Command::new(binary(service)?);
    command
        .env("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", &stack.bootstrap)
        .env("BRIDGE__REGISTRY__URL", &stack.registry_url)
        .env("BRIDGE__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("BRIDGE__PROCESSOR__STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(state.path().join(STDERR))?);
    let mapping = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/mapping.toml");
    match service {
        "erp-writer" => {
            command.env("BRIDGE__WRITER__MAPPING_FILE", &mapping);
        }
        "reconciler" => {
            command.env("BRIDGE__RECONCILER__MAPPING_FILE", &mapping);
        }
        "order-ingest" => {
            let webhook = format!("127.0.0.1:{}", free_port()?);
            command.env("BRIDGE__INGEST__WEBHOOK__LISTEN", webhook);
            command.env("BRIDGE__INGEST__WEBHOOK__CLIENT_ID", "test-client");
        }
        _ => {}
    }
    command.envs(extra.iter().map(|(k, v)| (k, v)));
    Ok((Running(command.spawn()?), port, state))
}

/// `/readyz` of the service on `port`: its status and body.
async fn readyz(port: u16) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Where a service's stderr goes, in its state folder.
const STDERR: &str = "stderr.txt";

/// Sends SIGTERM and waits (at most 10 s) for a clean exit: status 0, no panic.
async fn stop(service: &str, mut running: Running, state: &tempfile::TempDir) -> TestResult {
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
    let stderr = std::fs::read_to_string(state.path().join(STDERR))?;
    assert!(exit.success(), "{service} exited with {exit}: {stderr}");
    assert!(!stderr.contains("panicked"), "{service} panicked: {stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_becomes_ready_and_stops_on_sigterm() -> TestResult {
    let stack = stack()?;
    // As a deployment does first: every topic of the layout.
    let created = Command::new(binary("bridgectl")?)
        .args(["--bootstrap-servers", &stack.bootstrap])
        .args(["--registry-url", &stack.registry_url])
        .arg("create-topics")
        .stdout(Stdio::null())
        .status()?;
    assert!(created.success(), "bridgectl create-topics: {created}");
    for service in SERVICES {
        let (running, port, state) = start(service, &[])?;
        wait_until(
            &format!("{service} to answer 200 on /readyz"),
            Duration::from_secs(30),
            || async move { readyz(port).await.is_some_and(|(status, _)| status == 200) },
        )
        .await?;
        let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .text()
            .await?;
        assert!(
            metrics.contains(&format!(
                "bridge_service_ready{{bridge_service=\"{service}\"}} 1"
            )),
            "{metrics}"
        );
        stop(service, running, &state).await?;
    }
    Ok(())
}

/// Secure by default: order-ingest with its webhook receiver on and no signature
/// verification configured does not start, and says what to set; with `allow_unsigned` it
/// starts and exports the gauge (and logs a warning).
#[tokio::test(flavor = "multi_thread")]
async fn order_ingest_refuses_an_unverified_webhook_route_unless_told() -> TestResult {
    let (mut running, _, state) = start(
        "order-ingest",
        &[("BRIDGE__INGEST__WEBHOOK__CLIENT_ID", String::new())],
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = running.0.try_wait()? {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "order-ingest started without verification"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = std::fs::read_to_string(state.path().join(STDERR))?;
    assert!(!exit.success());
    assert!(
        stderr.contains("adobe-io")
            && stderr.contains("client_id")
            && stderr.contains("allow_unsigned"),
        "{stderr}"
    );

    let (running, port, state) = start(
        "order-ingest",
        &[
            ("BRIDGE__INGEST__WEBHOOK__CLIENT_ID", String::new()),
            ("BRIDGE__INGEST__WEBHOOK__ALLOW_UNSIGNED", "true".into()),
        ],
    )?;
    wait_until(
        "order-ingest with allow_unsigned to answer 200 on /readyz",
        Duration::from_secs(30),
        || async move { readyz(port).await.is_some_and(|(status, _)| status == 200) },
    )
    .await?;
    wait_until(
        "bridge_ingest_webhook_unsigned_allowed 1 on /metrics",
        Duration::from_secs(30),
        || async move {
            let Ok(answer) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
                return false;
            };
            answer.text().await.is_ok_and(|m| {
                m.contains(
                    "bridge_ingest_webhook_unsigned_allowed{bridge_service=\"order-ingest\"} 1",
                )
            })
        },
    )
    .await?;
    stop("order-ingest", running, &state).await
}

/// A service started before its topics exist keeps running, not ready, and says which
/// topic it waits for; once the topics are there it becomes ready.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_waits_not_ready_for_missing_topics_and_says_which() -> TestResult {
    let stack = stack()?;
    let input = unique_name("movements");
    let group = unique_name("aggregator");
    let (running, port, state) = start(
        "inventory-aggregator",
        &[
            ("BRIDGE__AGGREGATOR__INPUT_TOPIC", input.clone()),
            ("BRIDGE__AGGREGATOR__GROUP_ID", group.clone()),
        ],
    )?;
    let waits_for = |port: u16, topic: String| async move {
        readyz(port)
            .await
            .is_some_and(|(status, body)| status == 503 && body.contains(&topic))
    };
    wait_until(
        "/readyz to answer 503 naming the missing input topic",
        Duration::from_secs(30),
        || waits_for(port, format!("input topic {input} does not exist")),
    )
    .await?;

    // The input topic first, as `bridgectl create-topics` may: the loop is assigned its
    // partitions and then waits for their state changelog.
    create_topic(&stack.bootstrap, &input, 2, &[]).await?;
    let changelog = format!("{group}-changelog");
    wait_until(
        "/readyz to answer 503 naming the missing changelog",
        Duration::from_secs(30),
        || {
            waits_for(
                port,
                format!("changelog topic {changelog} has no partition"),
            )
        },
    )
    .await?;
    create_topic(
        &stack.bootstrap,
        &changelog,
        2,
        &[("cleanup.policy", "compact")],
    )
    .await?;
    wait_until(
        "/readyz to answer 200 once the topics exist",
        Duration::from_secs(30),
        || async move { readyz(port).await.is_some_and(|(status, _)| status == 200) },
    )
    .await?;
    stop("inventory-aggregator", running, &state).await
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
