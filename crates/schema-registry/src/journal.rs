//! The durable log of registry changes: a compacted, single-partition Kafka topic
//! (`_schemas` by default) whose keys and values follow the shape of Confluent's own
//! `_schemas` topic, so compaction keeps exactly the latest state of every key.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::compat::Compatibility;
use crate::registry::Entry;

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The broker refused or did not answer.
    #[error("kafka error on journal topic `{topic}`")]
    Kafka {
        /// The journal topic.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// A record in the journal is not one this registry wrote.
    #[error("journal record at offset {offset} is not readable: {reason}")]
    Corrupt {
        /// The record's offset.
        offset: i64,
        /// What is wrong with it.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "UPPERCASE")]
enum Key {
    Schema {
        subject: String,
        version: u32,
        #[serde(default)]
        magic: u8,
    },
    Config {
        subject: Option<String>,
        #[serde(default)]
        magic: u8,
    },
}

#[derive(Serialize, Deserialize)]
struct SchemaValue {
    subject: String,
    version: u32,
    id: u32,
    schema: String,
    #[serde(default)]
    deleted: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigValue {
    compatibility_level: Compatibility,
}

fn encode(entry: &Entry) -> (String, Option<String>) {
    match entry {
        Entry::Schema { subject, version, id, schema, deleted } => (
            json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}).to_string(),
            Some(
                json!({"subject": subject, "version": version, "id": id, "schema": schema, "deleted": deleted})
                    .to_string(),
            ),
        ),
        Entry::Purge { subject, version } => (
            json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}).to_string(),
            None,
        ),
        Entry::Config { subject, compatibility } => (
            json!({"keytype": "CONFIG", "subject": subject, "magic": 0}).to_string(),
            compatibility.map(|level| json!({"compatibilityLevel": level}).to_string()),
        ),
    }
}

fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Entry, String> {
    let key: Key = serde_json::from_slice(key).map_err(|e| format!("key: {e}"))?;
    Ok(match (key, value) {
        (
            Key::Schema {
                subject, version, ..
            },
            None,
        ) => Entry::Purge { subject, version },
        (Key::Schema { .. }, Some(value)) => {
            let v: SchemaValue =
                serde_json::from_slice(value).map_err(|e| format!("value: {e}"))?;
            Entry::Schema {
                subject: v.subject,
                version: v.version,
                id: v.id,
                schema: v.schema,
                deleted: v.deleted,
            }
        }
        (Key::Config { subject, .. }, value) => {
            let compatibility = match value {
                None => None,
                Some(value) => {
                    let v: ConfigValue =
                        serde_json::from_slice(value).map_err(|e| format!("value: {e}"))?;
                    Some(v.compatibility_level)
                }
            };
            Entry::Config {
                subject,
                compatibility,
            }
        }
    })
}

/// The journal on a Kafka topic.
pub struct KafkaJournal {
    topic: String,
    producer: FutureProducer,
    client: ClientConfig,
}

impl KafkaJournal {
    /// Connects, creating the compacted topic when it does not exist yet.
    pub async fn open(
        mut client: ClientConfig,
        topic: &str,
        replication_factor: i32,
    ) -> Result<Self, JournalError> {
        let kafka = |source| JournalError::Kafka {
            topic: topic.to_owned(),
            source,
        };
        let admin: AdminClient<DefaultClientContext> = client.create().map_err(kafka)?;
        let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(replication_factor))
            .set("cleanup.policy", "compact");
        let results = admin
            .create_topics(
                [&new_topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await
            .map_err(kafka)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(kafka(KafkaError::AdminOp(code))),
            }
        }
        let producer: FutureProducer = client
            .clone()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()
            .map_err(kafka)?;
        client
            .set("enable.auto.commit", "false")
            .set("group.id", "schema-registry-journal-reader");
        Ok(Self {
            topic: topic.to_owned(),
            producer,
            client,
        })
    }

    /// Reads every entry from the start of the topic up to its current end.
    pub async fn replay(&self) -> Result<Vec<Entry>, JournalError> {
        let client = self.client.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || read_all(&client, &topic))
            .await
            .map_err(|e| JournalError::Corrupt {
                offset: -1,
                reason: format!("reader task failed: {e}"),
            })?
    }

    /// Makes one entry durable (acknowledged by all in-sync replicas).
    pub async fn append(&self, entry: &Entry) -> Result<(), JournalError> {
        let (key, value) = encode(entry);
        let mut record = FutureRecord::<String, String>::to(&self.topic).key(&key);
        if let Some(value) = &value {
            record = record.payload(value);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(source, _)| JournalError::Kafka {
                topic: self.topic.clone(),
                source,
            })
    }
}

fn read_all(client: &ClientConfig, topic: &str) -> Result<Vec<Entry>, JournalError> {
    let kafka = |source| JournalError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let consumer: BaseConsumer = client.create().map_err(kafka)?;
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(30))
        .map_err(kafka)?;
    let mut entries = Vec::new();
    if high <= low {
        return Ok(entries);
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(kafka)?;
    consumer.assign(&assignment).map_err(kafka)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut next = low;
    while next < high {
        if std::time::Instant::now() > deadline {
            return Err(kafka(KafkaError::MessageConsumption(
                RDKafkaErrorCode::OperationTimedOut,
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.map_err(kafka)?;
        next = message.offset() + 1;
        let key = message.key().unwrap_or_default();
        let entry = decode(key, message.payload()).map_err(|reason| JournalError::Corrupt {
            offset: message.offset(),
            reason,
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_kind_survives_the_journal_encoding() {
        let entries = [
            Entry::Schema {
                subject: "t-value".into(),
                version: 2,
                id: 7,
                schema: "\"string\"".into(),
                deleted: true,
            },
            Entry::Purge {
                subject: "t-value".into(),
                version: 2,
            },
            Entry::Config {
                subject: None,
                compatibility: Some(Compatibility::Full),
            },
            Entry::Config {
                subject: Some("t-value".into()),
                compatibility: None,
            },
        ];
        for entry in entries {
            let (key, value) = encode(&entry);
            let back = decode(key.as_bytes(), value.as_deref().map(str::as_bytes));
            assert_eq!(back, Ok(entry));
        }
    }

    #[test]
    fn a_foreign_key_is_reported_not_swallowed() {
        assert!(decode(b"{\"keytype\":\"NOOP\"}", None).is_err());
    }
}
