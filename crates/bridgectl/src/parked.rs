//! Parked records: list them with their reasons, and replay them — each record's original
//! key, payload and headers back onto the topic it came from (or another one) — once the
//! cause is fixed. A replayed record is handled again: a record parked by a service is
//! not remembered for dedupe, and one replayed twice after it succeeded is a duplicate by
//! event id and skipped.

use bridge_runtime::config::KafkaConfig;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bridge_runtime::parking::ParkedRecord;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// Every record on `topic` (read_committed), oldest first per partition.
pub fn read_all(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<Vec<OwnedMessage>> {
    let consumer: BaseConsumer = kafka
        .client()
        .set(
            "group.id",
            format!("bridgectl-read-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) =
            consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
        if high > low {
            ends.insert(partition.id(), high);
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = consumer.position()?.elements().iter().all(|e| {
            let end = ends.get(&e.partition()).copied().unwrap_or(0);
            e.offset().to_raw().is_some_and(|o| o >= end)
        });
        if done {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "reading {topic} timed out");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        records.push(message?.detach());
    }
    Ok(records)
}

/// Every parked record on `topic`, oldest first per partition.
pub fn read(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<Vec<ParkedRecord>> {
    let mut parked = Vec::new();
    for message in read_all(kafka, topic)? {
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        let record = ParkedRecord::from_parts(
            message.key().map(<[u8]>::to_vec),
            message.payload().map(<[u8]>::to_vec),
            headers,
        )
        .with_context(|| {
            format!(
                "{topic} partition {} offset {}",
                message.partition(),
                message.offset()
            )
        })?;
        parked.push(record);
    }
    Ok(parked)
}

/// Prints the parked records of `topic`.
pub fn list(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<()> {
    let parked = read(kafka, topic)?;
    for r in &parked {
        println!(
            "{}/{}@{}  {}  {}  (service {}, attempts {})",
            r.topic, r.partition, r.offset, r.error_class, r.message, r.service, r.attempts
        );
    }
    println!("{} parked record(s) on {topic}", parked.len());
    Ok(())
}

/// Replays the parked records of `topic` (only those of `class`, if given) onto their
/// original topics, or onto `to`.
pub async fn replay(
    kafka: &KafkaConfig,
    topic: &str,
    class: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<usize> {
    let producer: FutureProducer = kafka.client().set("enable.idempotence", "true").create()?;
    let mut replayed = 0;
    for record in read(kafka, topic)? {
        if class.is_some_and(|c| c != record.error_class) {
            continue;
        }
        let target = to.unwrap_or(&record.topic);
        let mut headers = OwnedHeaders::new();
        for (key, value) in &record.original_headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut out = FutureRecord::<[u8], [u8]>::to(target).headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            out = out.payload(payload.as_slice());
        }
        producer
            .send(out, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("replaying onto {target}: {e}"))?;
        println!(
            "replayed {}/{}@{} ({}) onto {target}",
            record.topic, record.partition, record.offset, record.error_class
        );
        replayed += 1;
    }
    println!("{replayed} record(s) replayed");
    Ok(replayed)
}
