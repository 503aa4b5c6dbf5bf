//! A reference processor for the crash tests: counts inventory movements per SKU in state
//! and emits the running count for every input, on the runtime's exactly-once loop.
//! Configured by environment: BRIDGE_TEST_BOOTSTRAP, BRIDGE_TEST_REGISTRY, COUNT_INPUT,
//! COUNT_OUTPUT, COUNT_GROUP, COUNT_STATE_DIR, and optionally COUNT_INSTANCE (default `0`)
//! COUNT_HTTP (address for `/healthz`, `/readyz`, `/metrics`) and COUNT_GUARANTEE
//! (`at_least_once`; default exactly once). With COUNT_FLAKY_FAILURES=N
//! the SKU `SKU-FLAKY` fails as retryable N times before it succeeds, under a fast retry policy
//! (50 ms first delay, 200 ms cap, giving up after 500 ms), to exercise retries and give-ups.

use std::sync::Arc;
use std::time::Duration;

use bridge_e2e::CountPerSku;
use bridge_events::EventCodec;
use bridge_runtime::config::{Guarantee, KafkaConfig};
use bridge_runtime::processor::{ProcessorConfig, run};

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = bridge_runtime::telemetry::init("count-processor");
    let group = env("COUNT_GROUP")?;
    let instance = std::env::var("COUNT_INSTANCE").unwrap_or_else(|_| "0".into());
    let kafka = KafkaConfig {
        bootstrap_servers: env("BRIDGE_TEST_BOOTSTRAP")?,
        librdkafka: [("session.timeout.ms".to_owned(), "10000".to_owned())].into(),
        librdkafka_files: Default::default(),
    };
    let config = ProcessorConfig {
        service: "count-processor",
        group_id: group.clone(),
        input_topic: env("COUNT_INPUT")?,
        changelog_topic: format!("{group}-changelog"),
        parked_topic: format!("{group}-parked"),
        state_dir: env("COUNT_STATE_DIR")?.into(),
        state_cache_bytes: 64 << 20,
        write_behind: false,
        instance_id: instance,
        guarantee: match std::env::var("COUNT_GUARANTEE").as_deref() {
            Ok("at_least_once") => Guarantee::AtLeastOnce,
            _ => Guarantee::ExactlyOnce,
        },
        commit_interval: Duration::from_millis(100),
        step: Default::default(),
        retry: Default::default(),
        stall_after: Duration::from_secs(300),
        worker: None,
    };
    let flaky_failures_left: u32 = std::env::var("COUNT_FLAKY_FAILURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let config = match flaky_failures_left {
        0 => config,
        _ => ProcessorConfig {
            retry: bridge_runtime::retry::RetryPolicy {
                initial: Duration::from_millis(50),
                max_delay: Duration::from_millis(200),
                give_up_after: Duration::from_millis(500),
                ..Default::default()
            },
            ..config
        },
    };
    let codec = Arc::new(EventCodec::new(&env("BRIDGE_TEST_REGISTRY")?));
    let handler = CountPerSku {
        output: env("COUNT_OUTPUT")?,
        flaky_failures_left,
    };
    let shutdown = bridge_runtime::shutdown::on_signals();
    let health = bridge_runtime::health::Health::new("count-processor");
    if let Ok(listen) = std::env::var("COUNT_HTTP") {
        bridge_runtime::health::serve(listen.parse()?, Arc::clone(&health), shutdown.clone())
            .await?;
    }
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        run(&kafka, &config, codec, handler, runtime, health, shutdown)
    })
    .await??;
    Ok(())
}
