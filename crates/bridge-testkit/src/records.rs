//! Producing and reading back records, for assertions on what a topic holds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::{HarnessError, Result};

/// Which records a reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Only records of committed transactions (and non-transactional ones).
    ReadCommitted,
    /// Everything written, aborted transactions included.
    ReadUncommitted,
}

impl Isolation {
    fn as_config(self) -> &'static str {
        match self {
            Self::ReadCommitted => "read_committed",
            Self::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// A record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes, if any.
    pub key: Option<Vec<u8>>,
    /// Value bytes, if any.
    pub payload: Option<Vec<u8>>,
    /// Headers in order, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Produces keyed records with `acks=all` and waits for every delivery.
pub async fn produce(bootstrap: &str, topic: &str, records: &[(&str, &[u8])]) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()?;
    let sends = records.iter().map(|(key, value)| {
        producer.send(
            FutureRecord::to(topic).key(*key).payload(*value),
            Duration::from_secs(30),
        )
    });
    for delivery in futures_join(sends).await {
        delivery.map_err(|(e, _)| e)?;
    }
    Ok(())
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut outputs = Vec::new();
    for f in futures {
        outputs.push(f.await);
    }
    outputs
}

/// Reads every partition of `topic` from the beginning up to the end it has now, and
/// returns the records in partition, offset order. With `ReadCommitted` a reader stops
/// at the last stable offset, so this waits until no transaction is open on the topic.
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    isolation: Isolation,
    timeout: Duration,
) -> Result<Vec<Record>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", crate::unique_name("testkit-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation.as_config())
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *partition, Duration::from_secs(10))?;
        if high > low {
            ends.insert(*partition, high);
            assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + timeout;
    while !reached(&consumer, topic, &ends)? {
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: format!(
                    "reading `{topic}` to its end ({} records so far)",
                    records.len()
                ),
                seconds: timeout.as_secs_f64(),
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => records.push(Record {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

fn reached(consumer: &BaseConsumer, topic: &str, ends: &HashMap<i32, i64>) -> Result<bool> {
    let position = consumer.position()?;
    Ok(ends.iter().all(|(partition, end)| {
        matches!(
            position.find_partition(topic, *partition).map(|p| p.offset()),
            Some(Offset::Offset(at)) if at >= *end
        )
    }))
}
