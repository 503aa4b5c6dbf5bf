//! Parked records: list them with their reasons, show one in full, and replay them — each
//! record's original key, payload and headers back onto the topic it came from (or another
//! one) — once the cause is fixed; `--dry-run` shows what a replay would produce. A replayed record is handled again: a record parked by a service is
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
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Output;

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

/// A parked record and where it sits on the parked topic.
pub struct Parked {
    /// Its partition on the parked topic.
    pub partition: i32,
    /// Its offset on the parked topic.
    pub offset: i64,
    /// The record, its reason and its origin.
    pub record: ParkedRecord,
}

/// Which parked records a command takes: all, or those of one error class, one partition
/// of the parked topic, an offset range of it.
#[derive(Default, clap::Args)]
pub struct Selection {
    /// Only records of this error class, e.g. `unmappable`.
    #[arg(long)]
    pub class: Option<String>,
    /// Only records on this partition of the parked topic.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Only records at this offset of the parked topic or later.
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Only records at this offset of the parked topic or earlier.
    #[arg(long)]
    pub to_offset: Option<i64>,
}

impl Selection {
    fn takes(&self, p: &Parked) -> bool {
        self.class
            .as_deref()
            .is_none_or(|c| c == p.record.error_class)
            && self.partition.is_none_or(|n| n == p.partition)
            && self.from_offset.is_none_or(|o| p.offset >= o)
            && self.to_offset.is_none_or(|o| p.offset <= o)
    }
}

/// Every parked record on `topic`, oldest first per partition.
pub fn read(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<Vec<Parked>> {
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
        parked.push(Parked {
            partition: message.partition(),
            offset: message.offset(),
            record,
        });
    }
    Ok(parked)
}

/// What a listing says of one record: where it is parked, where it came from and why —
/// never its payload (it may hold customer data), only its size and digest.
fn summary(p: &Parked) -> Value {
    let r = &p.record;
    json!({
        "partition": p.partition,
        "offset": p.offset,
        "error_class": r.error_class,
        "reason": r.message,
        "service": r.service,
        "attempts": r.attempts,
        "parked_at": r.parked_at,
        "origin": { "topic": r.topic, "partition": r.partition, "offset": r.offset },
        "payload_bytes": r.payload.as_ref().map_or(0, Vec::len),
        "payload_sha256": r.payload.as_ref().map(|b| hex(&Sha256::digest(b))),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn line(p: &Parked) -> String {
    let r = &p.record;
    format!(
        "{}@{}  {}  {}  (from {}/{}@{}, service {}, attempts {})",
        p.partition,
        p.offset,
        r.error_class,
        r.message,
        r.topic,
        r.partition,
        r.offset,
        r.service,
        r.attempts
    )
}

/// Prints the selected parked records of `topic`.
pub fn list(
    kafka: &KafkaConfig,
    topic: &str,
    selection: &Selection,
    output: Output,
) -> anyhow::Result<()> {
    let parked: Vec<Parked> = read(kafka, topic)?
        .into_iter()
        .filter(|p| selection.takes(p))
        .collect();
    match output {
        Output::Json => {
            let records: Vec<Value> = parked.iter().map(summary).collect();
            println!(
                "{}",
                json!({ "topic": topic, "count": records.len(), "records": records })
            );
        }
        Output::Text => {
            for p in &parked {
                println!("{}", line(p));
            }
            println!("{} parked record(s) on {topic}", parked.len());
        }
    }
    Ok(())
}

/// Prints one parked record in full (its original headers by name and size); with
/// `payload_to`, writes its original payload bytes to that file.
pub fn show(
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    offset: i64,
    payload_to: Option<&std::path::Path>,
    output: Output,
) -> anyhow::Result<()> {
    let parked = read(kafka, topic)?
        .into_iter()
        .find(|p| p.partition == partition && p.offset == offset)
        .ok_or_else(|| anyhow::anyhow!("no parked record at {topic} {partition}@{offset}"))?;
    let mut details = summary(&parked);
    let headers: Vec<Value> = parked
        .record
        .original_headers
        .iter()
        .map(|(k, v)| json!({ "name": k, "bytes": v.len() }))
        .collect();
    details["original_headers"] = Value::Array(headers);
    details["key"] = json!(parked.record.key.as_deref().map(String::from_utf8_lossy));
    if let Some(path) = payload_to {
        let bytes = parked.record.payload.as_deref().unwrap_or_default();
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        details["payload_written_to"] = json!(path.display().to_string());
    }
    match output {
        Output::Json => println!("{details}"),
        Output::Text => println!("{}", serde_json::to_string_pretty(&details)?),
    }
    Ok(())
}

/// Replays the selected parked records of `topic` onto their original topics, or onto
/// `to`; with `dry_run`, only says which it would. The number replayed (or that would be).
pub async fn replay(
    kafka: &KafkaConfig,
    topic: &str,
    selection: &Selection,
    to: Option<&str>,
    dry_run: bool,
    output: Output,
) -> anyhow::Result<usize> {
    let selected: Vec<Parked> = read(kafka, topic)?
        .into_iter()
        .filter(|p| selection.takes(p))
        .collect();
    let target = |p: &Parked| to.unwrap_or(&p.record.topic).to_owned();
    if dry_run {
        match output {
            Output::Json => {
                let records: Vec<Value> = selected
                    .iter()
                    .map(|p| {
                        let mut s = summary(p);
                        s["replay_to"] = json!(target(p));
                        s
                    })
                    .collect();
                println!(
                    "{}",
                    json!({ "dry_run": true, "count": records.len(), "records": records })
                );
            }
            Output::Text => {
                for p in &selected {
                    println!("would replay {} onto {}", line(p), target(p));
                }
                println!(
                    "{} record(s) would be replayed (dry run: nothing produced)",
                    selected.len()
                );
            }
        }
        return Ok(selected.len());
    }
    let producer: FutureProducer = kafka.client().set("enable.idempotence", "true").create()?;
    let progress = crate::progress::bar(selected.len() as u64, "replaying", output);
    let mut replayed = Vec::new();
    for p in &selected {
        let record = &p.record;
        let target = target(p);
        let mut headers = OwnedHeaders::new();
        for (key, value) in &record.original_headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut out = FutureRecord::<[u8], [u8]>::to(&target).headers(headers);
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
        progress.inc(1);
        if output == Output::Text {
            progress.println(format!("replayed {} onto {target}", line(p)));
        }
        replayed.push(json!({ "partition": p.partition, "offset": p.offset, "to": target }));
    }
    progress.finish_and_clear();
    match output {
        Output::Json => println!(
            "{}",
            json!({ "replayed": replayed.len(), "records": replayed })
        ),
        Output::Text => println!("{} record(s) replayed", replayed.len()),
    }
    Ok(replayed.len())
}
