//! The whole order flow with every connection secured as in production: a broker whose
//! clients' listener is `SASL_SSL` (SCRAM-SHA-512, a CA the test makes), the schema
//! registry on https with basic authentication and its journal on that listener, and the
//! five service binaries and `bridgectl` configured by one file — passwords read from
//! files, the registry's CA trusted, automatic schema registration on (a first run).
//! magento-sim places orders; they must reach erp-sim and the verdicts come back.
//!
//! On the same stack, an order with recognisable personal data (name, email, street,
//! phone) goes through, and one with an impossible quantity is parked: none of that data
//! may appear in any service's log, metrics or parked-record headers, while the parked
//! payload keeps the original bytes (replayable).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bridge_e2e::binary;
use bridge_e2e::processes::{Sims, flow_services, spawn, tail};
use bridge_testkit::{KafkaBroker, free_port, wait_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn ready(port: u16) -> bool {
    reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_order_flow_runs_over_sasl_ssl_and_leaks_no_personal_data() -> TestResult {
    let broker = KafkaBroker::start_secured()?;
    let secured = broker.secured().ok_or("no SASL_SSL listener")?.clone();
    let dir = tempfile::tempdir()?;
    let logs = dir.path();
    let kafka_password = logs.join("kafka-password");
    std::fs::write(&kafka_password, format!("{}\n", secured.password))?;
    let registry_credentials = logs.join("registry-credentials");
    std::fs::write(&registry_credentials, "bridge-sr:sr-secret-from-file\n")?;
    let registry_password = logs.join("registry-password");
    std::fs::write(&registry_password, "sr-secret-from-file\n")?;
    let ca = secured.tls.ca_file.display().to_string();

    // The registry: https, basic auth, its journal over SASL_SSL.
    let registry_port = free_port()?;
    let registry_url = format!("https://127.0.0.1:{registry_port}");
    let _registry = spawn(
        "schema-registry",
        &[
            format!("--listen=127.0.0.1:{registry_port}"),
            format!("--bootstrap-servers={}", secured.bootstrap()),
            "-Xsecurity.protocol=SASL_SSL".into(),
            "-Xsasl.mechanisms=SCRAM-SHA-512".into(),
            format!("-Xsasl.username={}", secured.user),
            format!("-Xssl.ca.location={ca}"),
            format!("--kafka-file=sasl.password={}", kafka_password.display()),
            format!("--basic-auth-file={}", registry_credentials.display()),
            format!("--tls-cert={}", secured.tls.cert_file.display()),
            format!("--tls-key={}", secured.tls.key_file.display()),
        ],
        &[],
        logs,
    )?;
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca)?)?)
        .build()?;
    wait_until("the registry on https", Duration::from_secs(60), || async {
        trusting
            .get(format!("{registry_url}/subjects"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 401)
    })
    .await?;

    // One configuration file for every service and bridgectl.
    let config = logs.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"[kafka]
bootstrap_servers = "{bootstrap}"
[kafka.librdkafka]
"security.protocol" = "SASL_SSL"
"sasl.mechanisms" = "SCRAM-SHA-512"
"sasl.username" = "{user}"
"ssl.ca.location" = "{ca}"
[kafka.librdkafka_files]
"sasl.password" = "{kafka_password}"
[registry]
url = "{registry_url}"
username = "bridge-sr"
password_file = "{registry_password}"
ca_file = "{ca}"
"#,
            bootstrap = secured.bootstrap(),
            user = secured.user,
            kafka_password = kafka_password.display(),
            registry_password = registry_password.display(),
        ),
    )?;
    let bridgectl = |args: &[&str]| {
        Command::new(binary("bridgectl")?)
            .arg(format!("--config={}", config.display()))
            .args(args)
            .output()
            .map_err(|e| e.to_string())
    };
    let created = bridgectl(&["create-topics"])?;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let sim_port = free_port()?;
    let erp_port = free_port()?;
    let webhook_port = free_port()?;
    let sim = format!("http://127.0.0.1:{sim_port}");
    let erp = format!("http://127.0.0.1:{erp_port}");
    let _erp_sim = spawn(
        "erp-sim",
        &[format!("--listen=127.0.0.1:{erp_port}")],
        &[],
        logs,
    )?;
    let mut services = flow_services(&Sims {
        magento: &sim,
        erp: &erp,
        webhook_port,
    });
    services[0]
        .1
        .push(("BRIDGE__INGEST__POLL__INTERVAL_MS", "2000".into()));
    let mut running = Vec::new();
    let mut ports = Vec::new();
    for (name, extra) in services {
        let port = free_port()?;
        let mut env = extra;
        env.push(("BRIDGE__HTTP__LISTEN", format!("127.0.0.1:{port}")));
        env.push((
            "BRIDGE__PROCESSOR__STATE_DIR",
            logs.join(format!("{name}-state")).display().to_string(),
        ));
        running.push(spawn(
            name,
            &[format!("--config={}", config.display())],
            &env,
            logs,
        )?);
        ports.push((name, port));
    }
    for (name, port) in &ports {
        let port = *port;
        let waited = wait_until(
            &format!("{name} ready over SASL_SSL"),
            Duration::from_secs(90),
            || ready(port),
        )
        .await;
        if waited.is_err() {
            let log = std::fs::read_to_string(logs.join(format!("{name}.log")))?;
            return Err(format!("{name} not ready: {}", tail(&log)).into());
        }
    }
    let _magento_sim = spawn(
        "magento-sim",
        &[
            format!("--listen=127.0.0.1:{sim_port}"),
            format!("--webhook-url=http://127.0.0.1:{webhook_port}/webhooks/adobe-io"),
            "--orders-per-second=2".into(),
            "--retry-first-seconds=1".into(),
        ],
        &[],
        logs,
    )?;

    let http = reqwest::Client::new();
    let stat = |url: String, key: &'static str| {
        let http = http.clone();
        async move {
            let Ok(answer) = http.get(url).send().await else {
                return 0;
            };
            let value: serde_json::Value = answer.json().await.unwrap_or_default();
            match key {
                "" => value.as_array().map_or(0, Vec::len) as u64,
                key => value[key].as_u64().unwrap_or(0),
            }
        }
    };
    let booked = wait_until(
        "orders booked in the ERP and verdicts written back to Magento",
        Duration::from_secs(180),
        || async {
            stat(format!("{erp}/admin/stats"), "sales_orders").await >= 3
                && stat(format!("{sim}/sim/writebacks"), "").await >= 1
        },
    )
    .await;
    if booked.is_err() {
        let mut report = String::new();
        for name in ["order-ingest", "erp-writer", "magento-writer"] {
            let log = std::fs::read_to_string(logs.join(format!("{name}.log")))?;
            report.push_str(&format!("\n--- {name}\n{}", tail(&log)));
        }
        return Err(format!("the flow did not complete over SASL_SSL:{report}").into());
    }

    // The registry holds the services' subjects and refuses anyone without credentials.
    let subjects: Vec<String> = trusting
        .get(format!("{registry_url}/subjects"))
        .basic_auth("bridge-sr", Some("sr-secret-from-file"))
        .send()
        .await?
        .json()
        .await?;
    assert!(
        subjects.iter().any(|s| s.starts_with("bridge.orders.v1-")),
        "{subjects:?}"
    );
    let anonymous = trusting
        .get(format!("{registry_url}/subjects"))
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    // bridgectl reads through the same listener and registry.
    for args in [
        &["findings", "--all"][..],
        &["parked", "list", "erp-writer-parked"][..],
    ] {
        let output = bridgectl(args)?;
        assert!(
            output.status.success(),
            "bridgectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    personal_data_stays_in_payloads(&PiiCheck {
        sim: &sim,
        erp: &erp,
        logs,
        ports: &ports,
        secured: &secured,
    })
    .await?;
    // A wrong password is refused by the broker.
    std::fs::write(&kafka_password, "not-the-password\n")?;
    let refused = Command::new(binary("bridgectl")?)
        .arg(format!("--config={}", config.display()))
        .arg("topics")
        .output()?;
    assert!(
        !refused.status.success(),
        "a wrong SCRAM password was let in"
    );
    Ok(())
}

/// Markers no service has any reason to print.
const PERSONAL: [&str; 5] = [
    "Zebulonpii",
    "Quixoticpii",
    "zebulon.pii@example.invalid",
    "77 Sentinelpii Lane",
    "+1 555 0199 4242",
];

struct PiiCheck<'a> {
    sim: &'a str,
    erp: &'a str,
    logs: &'a Path,
    ports: &'a [(&'a str, u16)],
    secured: &'a bridge_testkit::broker::Secured,
}

async fn personal_data_stays_in_payloads(c: &PiiCheck<'_>) -> TestResult {
    let fixture = include_str!(
        "../../crates/magento/tests/fixtures/magento/orders/order_discount_tax_invoiced_processing.json"
    )
    .replace("roni@example.com", PERSONAL[2])
    .replace("Roni", PERSONAL[0])
    .replace("Cost", PERSONAL[1])
    .replace("(555) 229-3326", PERSONAL[4]);
    let mut good: serde_json::Value = serde_json::from_str(&fixture)?;
    good["entity_id"] = "990001".into();
    good["increment_id"] = "WEB-PII-1".into();
    good["updated_at"] = magento_sim::store::magento_now().into();
    good["billing_address"]["street"] = serde_json::json!([PERSONAL[3]]);
    let mut parked = good.clone();
    parked["entity_id"] = "990002".into();
    parked["increment_id"] = "WEB-PII-2".into();
    parked["items"][0]["qty_ordered"] = "1e27".into();
    let http = reqwest::Client::new();
    let imported = http
        .post(format!("{}/sim/import/orders", c.sim))
        .json(&serde_json::json!([good, parked]))
        .send()
        .await?;
    assert!(imported.status().is_success());
    wait_until(
        "the order with personal data booked in the ERP",
        Duration::from_secs(120),
        || async {
            let Ok(answer) = http
                .get(format!("{}/api/sales-orders?external_ref=WEB-PII-1", c.erp))
                .send()
                .await
            else {
                return false;
            };
            let found: serde_json::Value = answer.json().await.unwrap_or_default();
            found["total"].as_u64().unwrap_or(0) >= 1
        },
    )
    .await?;
    let parked_records = wait_for_parked(c.secured, "order-ingest-parked", "WEB-PII-2").await?;
    let mut leaks = Vec::new();
    for record in &parked_records {
        let payload = String::from_utf8_lossy(&record.1);
        assert!(
            payload.contains(PERSONAL[2]),
            "the parked payload keeps the original bytes"
        );
        for (name, value) in &record.0 {
            let value = String::from_utf8_lossy(value);
            leaks.extend(
                PERSONAL
                    .iter()
                    .filter(|m| value.contains(*m))
                    .map(|m| format!("parked header {name}: {m}")),
            );
        }
    }
    for (name, port) in c.ports {
        let log = std::fs::read_to_string(c.logs.join(format!("{name}.log")))?;
        leaks.extend(
            PERSONAL
                .iter()
                .filter(|m| log.contains(*m))
                .map(|m| format!("{name} log: {m}")),
        );
        let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .text()
            .await?;
        leaks.extend(
            PERSONAL
                .iter()
                .filter(|m| metrics.contains(*m))
                .map(|m| format!("{name} metrics: {m}")),
        );
    }
    assert!(leaks.is_empty(), "personal data leaked: {leaks:?}");
    Ok(())
}

type Headers = Vec<(String, Vec<u8>)>;

/// The parked records keyed `key` on `topic` (over SASL_SSL), waiting for at least one.
async fn wait_for_parked(
    secured: &bridge_testkit::broker::Secured,
    topic: &str,
    key: &str,
) -> Result<Vec<(Headers, Vec<u8>)>, Box<dyn std::error::Error>> {
    use rdkafka::Message as _;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::Headers as _;
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", secured.bootstrap())
        .set("group.id", bridge_testkit::unique_name("pii"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    for (k, v) in secured.client_settings() {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create()?;
    consumer.subscribe(&[topic])?;
    let mut found = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) if message.key() == Some(key.as_bytes()) => {
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                found.push((headers, message.payload().unwrap_or_default().to_vec()));
            }
            Some(_) => {}
            None if !found.is_empty() => break,
            None => {}
        }
    }
    if found.is_empty() {
        return Err(format!("no parked record keyed {key} on {topic}").into());
    }
    Ok(found)
}
