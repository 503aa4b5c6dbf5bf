//! Exactly-once under crashes: a stateful count over the input, on the runtime's
//! transactional loop, with the processor killed by SIGKILL ten times at random moments
//! while input keeps arriving. At the end the output topic (read_committed) holds every
//! (SKU, count) exactly once, with no gap, and the last count per SKU equals its inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bridge_events::{Event, EventCodec, samples};
use bridge_testkit::{create_topic, stack, unique_name, wait_until};
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KILLS: usize = 10;
const PER_ROUND: usize = 300;
const SKUS: usize = 20;

struct Processor(Child);

impl Drop for Processor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(env: &[(&str, String)]) -> std::io::Result<Processor> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_count-processor"));
    command.stdout(Stdio::null()).env("RUST_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().map(Processor)
}

/// Reads the output topic as a read_committed consumer, keeping what it has seen.
struct Collector {
    consumer: BaseConsumer,
    seen: Vec<(String, i64, String)>,
}

impl Collector {
    fn new(bootstrap: &str, topic: &str) -> Result<Self, rdkafka::error::KafkaError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", unique_name("collector"))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .create()?;
        let mut list = TopicPartitionList::new();
        for p in 0..3 {
            list.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&list)?;
        Ok(Self {
            consumer,
            seen: Vec::new(),
        })
    }

    fn drain(&mut self, codec: &EventCodec, runtime: &tokio::runtime::Handle) {
        while let Some(Ok(message)) = self.consumer.poll(Duration::from_millis(20)) {
            let payload = message.payload().unwrap_or_default().to_vec();
            let decoded = tokio::task::block_in_place(|| runtime.block_on(codec.decode(&payload)));
            if let Ok(Event::InventoryMovement(m)) = decoded {
                let count = m.quantity.mantissa() / 10_000;
                self.seen.push((m.sku, count as i64, m.envelope.event_id));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stateful_count_survives_ten_sigkills_exactly_once() -> TestResult {
    let stack = stack()?;
    let group = unique_name("eos-crash");
    let input = format!("{group}-in");
    let output = format!("{group}-out");
    create_topic(&stack.bootstrap, &input, 3, &[]).await?;
    create_topic(&stack.bootstrap, &output, 3, &[]).await?;
    create_topic(
        &stack.bootstrap,
        &format!("{group}-changelog"),
        3,
        &[("cleanup.policy", "compact")],
    )
    .await?;
    create_topic(&stack.bootstrap, &format!("{group}-parked"), 1, &[]).await?;
    let state_dir = std::env::temp_dir().join(&group);
    let env = [
        ("BRIDGE_TEST_BOOTSTRAP", stack.bootstrap.clone()),
        ("BRIDGE_TEST_REGISTRY", stack.registry_url.clone()),
        ("COUNT_INPUT", input.clone()),
        ("COUNT_OUTPUT", output.clone()),
        ("COUNT_GROUP", group.clone()),
        ("COUNT_STATE_DIR", state_dir.display().to_string()),
    ];

    let codec = EventCodec::new(&stack.registry_url);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap)
        .set("enable.idempotence", "true")
        .create()?;
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    let mut produce_round = |round: usize| {
        let mut batch = Vec::new();
        for i in round * PER_ROUND..(round + 1) * PER_ROUND {
            let sku = format!("SKU-{:02}", i % SKUS);
            *expected.entry(sku.clone()).or_default() += 1;
            let mut movement = samples::inventory_movement(&sku, "ams", 1);
            movement.envelope.event_id = format!("input-{i}");
            batch.push((sku, movement));
        }
        batch
    };

    let mut processor = start(&env)?;
    let mut rng = rand::rng();
    for round in 0..=KILLS {
        for (sku, movement) in produce_round(round) {
            let bytes = codec.encode(&input, &movement).await?;
            producer
                .send(
                    FutureRecord::to(&input).key(&sku).payload(&bytes),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)?;
        }
        if round == KILLS {
            break;
        }
        // A random moment while it works through the round's input, then an unclean stop.
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        let status = Command::new("kill")
            .arg("-9")
            .arg(processor.0.id().to_string())
            .status()?;
        assert!(status.success());
        processor.0.wait()?;
        processor = start(&env)?;
    }

    let total = (KILLS + 1) * PER_ROUND;
    let runtime = tokio::runtime::Handle::current();
    let mut collector = Collector::new(&stack.bootstrap, &output)?;
    wait_until(
        &format!("{total} committed outputs"),
        Duration::from_secs(240),
        || {
            collector.drain(&codec, &runtime);
            let done = collector.seen.len() >= total;
            async move { done }
        },
    )
    .await?;
    // Anything beyond the expected count would be a duplicate; give it a moment to show.
    collector.drain(&codec, &runtime);

    let seen = &collector.seen;
    let unique: BTreeSet<&String> = seen.iter().map(|(_, _, id)| id).collect();
    assert_eq!(unique.len(), seen.len(), "duplicate outputs");
    assert_eq!(seen.len(), total);
    for (sku, inputs) in &expected {
        let counts: BTreeSet<i64> = seen
            .iter()
            .filter(|(s, _, _)| s == sku)
            .map(|(_, c, _)| *c)
            .collect();
        let wanted: BTreeSet<i64> = (1..=*inputs).collect();
        assert_eq!(counts, wanted, "{sku}: counts are not exactly 1..={inputs}");
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(processor.0.id().to_string())
        .status();
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}
