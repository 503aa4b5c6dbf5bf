//! What the exactly-once scenarios share: the `count-processor` child process, a fixture
//! of topics and inputs, a collector of the outputs, and the processor's metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bridge_events::{Event, EventCodec, samples};
use bridge_testkit::{create_topic, stack, unique_name, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// What a scenario returns.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const SKUS: usize = 20;

pub struct Processor(pub Child);

impl Processor {
    pub fn kill(&mut self) -> std::io::Result<()> {
        Command::new("kill")
            .arg("-9")
            .arg(self.0.id().to_string())
            .status()?;
        self.0.wait().map(|_| ())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::io::Result<bool> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status()?;
        self.0.wait().map(|s| s.success())
    }
}

impl Drop for Processor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Topics, a codec and an input producer for one scenario.
pub struct Fixture {
    pub bootstrap: String,
    pub registry: String,
    pub group: String,
    pub input: String,
    pub output: String,
    pub codec: EventCodec,
    pub producer: FutureProducer,
    pub produced: usize,
    pub expected: BTreeMap<String, i64>,
    /// The input partition of every SKU produced.
    pub partition_of: BTreeMap<String, i32>,
}

impl Fixture {
    pub async fn new(name: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let stack = stack()?;
        let group = unique_name(name);
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
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &stack.bootstrap)
            .set("enable.idempotence", "true")
            .create()?;
        Ok(Self {
            bootstrap: stack.bootstrap.clone(),
            registry: stack.registry_url.clone(),
            codec: EventCodec::new(&stack.registry_url),
            group,
            input,
            output,
            producer,
            produced: 0,
            expected: BTreeMap::new(),
            partition_of: BTreeMap::new(),
        })
    }

    pub fn state_dir(&self, instance: &str) -> PathBuf {
        std::env::temp_dir().join(format!("{}-{instance}", self.group))
    }

    pub fn start(&self, instance: &str) -> std::io::Result<Processor> {
        self.start_with(instance, &[])
    }

    pub fn start_with(
        &self,
        instance: &str,
        extra: &[(&str, String)],
    ) -> std::io::Result<Processor> {
        Command::new(env!("CARGO_BIN_EXE_count-processor"))
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .env("RUST_LOG", "warn")
            .env("BRIDGE_TEST_BOOTSTRAP", &self.bootstrap)
            .env("BRIDGE_TEST_REGISTRY", &self.registry)
            .env("COUNT_INPUT", &self.input)
            .env("COUNT_OUTPUT", &self.output)
            .env("COUNT_GROUP", &self.group)
            .env("COUNT_INSTANCE", instance)
            .env("COUNT_STATE_DIR", self.state_dir(instance))
            .spawn()
            .map(Processor)
    }

    /// Produces `n` more movements, spread over the SKUs.
    pub async fn produce(&mut self, n: usize) -> TestResult {
        self.produce_for(n, |i| format!("SKU-{:02}", i % SKUS))
            .await
    }

    /// Produces `n` more movements with the SKU `sku_of(i)` for the i-th input.
    pub async fn produce_for(&mut self, n: usize, sku_of: impl Fn(usize) -> String) -> TestResult {
        for i in self.produced..self.produced + n {
            let sku = sku_of(i);
            *self.expected.entry(sku.clone()).or_default() += 1;
            let partition = self.send(i, &sku).await?;
            self.partition_of.insert(sku, partition);
        }
        self.produced += n;
        Ok(())
    }

    /// Produces the inputs `ids` again, same event ids and SKUs: duplicates, which must count
    /// for nothing.
    pub async fn redeliver(&self, ids: std::ops::Range<usize>) -> TestResult {
        for i in ids {
            self.send(i, &format!("SKU-{:02}", i % SKUS)).await?;
        }
        Ok(())
    }

    /// Sends input `i` (event id `input-{i}`) for `sku`; returns its partition.
    pub async fn send(&self, i: usize, sku: &str) -> Result<i32, Box<dyn std::error::Error>> {
        let mut movement = samples::inventory_movement(sku, "ams", 1);
        movement.envelope.event_id = format!("input-{i}");
        let bytes = self.codec.encode(&self.input, &movement).await?;
        let delivered = self
            .producer
            .send(
                FutureRecord::to(&self.input).key(sku).payload(&bytes),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
        Ok(delivered.partition)
    }

    /// Waits until every input has its output, then checks each (SKU, count) is there once.
    pub async fn assert_exactly_once(&self) -> TestResult {
        let mut collector = Collector::new(&self.bootstrap, &self.output)?;
        let runtime = tokio::runtime::Handle::current();
        let total = self.produced;
        wait_until(
            &format!("{total} committed outputs"),
            Duration::from_secs(240),
            || {
                collector.drain(&self.codec, &runtime);
                let done = collector.seen.len() >= total;
                async move { done }
            },
        )
        .await?;
        collector.drain(&self.codec, &runtime);
        let seen = &collector.seen;
        let unique: BTreeSet<&String> = seen.iter().map(|(_, _, id)| id).collect();
        assert_eq!(unique.len(), seen.len(), "duplicate outputs");
        assert_eq!(seen.len(), total);
        for (sku, inputs) in &self.expected {
            let counts: BTreeSet<i64> = seen
                .iter()
                .filter(|(s, _, _)| s == sku)
                .map(|(_, c, _)| *c)
                .collect();
            let wanted: BTreeSet<i64> = (1..=*inputs).collect();
            assert_eq!(counts, wanted, "{sku}: counts are not exactly 1..={inputs}");
        }
        Ok(())
    }

    pub fn cleanup(&self, instances: &[&str]) {
        for instance in instances {
            let _ = std::fs::remove_dir_all(self.state_dir(instance));
        }
    }
}

/// Reads the output topic as a read_committed consumer, keeping what it has seen.
pub struct Collector {
    pub consumer: BaseConsumer,
    pub seen: Vec<(String, i64, String)>,
}

impl Collector {
    pub fn new(bootstrap: &str, topic: &str) -> Result<Self, rdkafka::error::KafkaError> {
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

    pub fn drain(&mut self, codec: &EventCodec, runtime: &tokio::runtime::Handle) {
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

/// The Prometheus text a processor serves on `port`.
pub async fn metrics(port: u16) -> Result<String, reqwest::Error> {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await
}

/// The value of the counter `name` a processor serves on `port` (0 before its first count).
pub async fn counter(port: u16, name: &str) -> Result<f64, reqwest::Error> {
    Ok(metrics(port)
        .await?
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Waits until the processor on `port` has counted exactly `hits` duplicates.
pub async fn wait_for_dedupe_hits(port: u16, hits: u32) -> TestResult {
    wait_until(
        &format!("{hits} dedupe hits"),
        Duration::from_secs(60),
        || async move {
            counter(port, "bridge_dedupe_hits_total").await.ok() == Some(f64::from(hits))
        },
    )
    .await?;
    Ok(())
}
