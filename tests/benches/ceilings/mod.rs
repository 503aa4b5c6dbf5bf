//! The contenders that are not the runtime: the ceilings (a raw rdkafka consume, and a raw
//! copy that consumes, produces the same bytes and commits) and the peers run as their
//! own processes (Quix Streams, Kafka Streams).

use super::*;

/// A ceiling's consumer in `group`, reading the input from the start. It waits for fetches
/// as the runtime's loop does once a partition's prefetch queue is full
/// ([`FETCH_QUEUE_BACKOFF_MS`]): librdkafka's default (1000 ms) left the raw copy waiting
/// ~0.5 s per 200,000 records, and a ceiling is the best a loop can do.
fn ceiling_consumer(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    config
}

/// The clients of `Bench::raw_copy`.
struct RawCopy {
    consumer: BaseConsumer,
    producer: BaseProducer,
    transactional: bool,
}

impl RawCopy {
    const TIMEOUT: Duration = Duration::from_secs(30);

    fn new(bootstrap: &str, group: &str, transactional: bool) -> anyhow::Result<Self> {
        let mut consumer = ceiling_consumer(bootstrap, group);
        let mut producer = ClientConfig::new();
        producer
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5");
        if transactional {
            consumer.set("isolation.level", "read_committed");
            producer.set("transactional.id", group);
        } else {
            producer.set("enable.idempotence", "true");
        }
        let copy = RawCopy {
            consumer: consumer.create()?,
            producer: producer.create()?,
            transactional,
        };
        if transactional {
            copy.producer.init_transactions(Self::TIMEOUT)?;
            copy.producer.begin_transaction()?;
        }
        Ok(copy)
    }

    /// Commits the outputs so far with the next input offsets of `topic` (per partition);
    /// `more`: outputs follow.
    fn commit(&self, topic: &str, next: &BTreeMap<i32, i64>, more: bool) -> anyhow::Result<()> {
        let mut offsets = TopicPartitionList::new();
        for (&partition, &offset) in next {
            offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        if self.transactional {
            let metadata = self
                .consumer
                .group_metadata()
                .context("the consumer has no group metadata")?;
            self.producer
                .send_offsets_to_transaction(&offsets, &metadata, Self::TIMEOUT)?;
            self.producer.commit_transaction(Self::TIMEOUT)?;
            if more {
                self.producer.begin_transaction()?;
            }
        } else {
            self.producer.flush(Self::TIMEOUT)?;
            if !next.is_empty() {
                self.consumer.commit(&offsets, CommitMode::Sync)?;
            }
        }
        Ok(())
    }
}

impl Bench {
    /// Records per second of a plain consumer reading the whole topic.
    pub(super) fn raw_consume(&self) -> anyhow::Result<f64> {
        let consumer: BaseConsumer =
            ceiling_consumer(&self.bootstrap, &unique_name("bench-raw")).create()?;
        consumer.subscribe(&[&self.input])?;
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut seen = 0;
        let mut first = None;
        while seen < self.records {
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "raw consume read {seen} of {} records",
                    self.records
                ));
            }
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                message?;
                first.get_or_insert_with(Instant::now);
                seen += 1;
            }
        }
        let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
        Ok(self.records as f64 / elapsed.as_secs_f64())
    }

    /// Records per second of the least any loop with one output per input can do: consume,
    /// produce the same bytes to another topic, nothing decoded, no state, no dedupe.
    /// Exactly once: a `read_committed` consumer and a transactional producer, the offsets
    /// sent to each transaction every commit interval; at least once: a flush, then a
    /// synchronous offset commit. Timed like the loops, from the first record to the last
    /// commit.
    pub(super) fn raw_copy(&self, name: &str, transactional: bool) -> anyhow::Result<f64> {
        if !selected(name) {
            return Ok(f64::NAN);
        }
        let group = unique_name(&format!("bench-{name}"));
        let output = format!("{group}-out");
        self.runtime
            .block_on(create_topic(&self.bootstrap, &output, self.partitions, &[]))?;
        let copy = RawCopy::new(&self.bootstrap, &group, transactional)?;
        copy.consumer.subscribe(&[&self.input])?;
        let deadline = Instant::now() + Duration::from_secs(300);
        // Next offset per partition, made into a list at each commit.
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        let (mut seen, mut first, mut last_commit) = (0, None, Instant::now());
        while seen < self.records {
            let now = Instant::now();
            if now - last_commit >= self.commit {
                copy.commit(&self.input, &next, true)?;
                last_commit = now;
            }
            if now > deadline {
                return Err(anyhow!("raw copy read {seen} of {} records", self.records));
            }
            let Some(message) = copy.consumer.poll(Duration::from_millis(10)) else {
                continue;
            };
            let message = message?;
            first.get_or_insert_with(Instant::now);
            let mut record = BaseRecord::to(&output).payload(message.payload().unwrap_or(&[]));
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            send_when_queued(&copy.producer, record)?;
            next.insert(message.partition(), message.offset() + 1);
            seen += 1;
        }
        copy.commit(&self.input, &next, false)?;
        let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
        Ok(self.records as f64 / elapsed.as_secs_f64())
    }

    /// Records per second of `bench/quix_aggregate.py` (Quix Streams, exactly once) on the
    /// same input, run by `python`.
    pub(super) fn quix(&self, python: &str) -> anyhow::Result<f64> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/quix_aggregate.py");
        let mut command = self.peer(python, &[script]);
        command.args(["--commit-interval", &self.commit.as_secs_f64().to_string()]);
        records_per_s(script, command)
    }

    /// Records per second of `bench/kstreams` (the stateful count in Kafka Streams, RocksDB
    /// store, `guarantee` = `exactly_once_v2` or `at_least_once`) on the same input and
    /// commit interval; its JVM runs the count once unmeasured first.
    pub(super) fn kstreams(&self, classpath: &str, guarantee: &str) -> anyhow::Result<f64> {
        let mut command = self.peer("java", &["-Xmx1g", "-cp", classpath, "bench.KStreamsCount"]);
        command
            .args(["--commit-ms", &self.commit.as_millis().to_string()])
            .args(["--partitions", &self.partitions.to_string()])
            .args(["--guarantee", guarantee]);
        records_per_s("bench.KStreamsCount", command)
    }

    /// `program` with `args`, then what every peer benchmark is told: broker, registry,
    /// input topic and record count.
    pub(super) fn peer(&self, program: &str, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .args(["--broker", &self.bootstrap, "--registry", &self.registry])
            .args(["--topic", &self.input])
            .args(["--records", &self.records.to_string()]);
        command
    }
}
