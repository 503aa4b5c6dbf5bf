//! Making a partition's state ready when it is assigned: the local sled tree if it can be
//! trusted, otherwise rebuilt from the changelog up to the committed input offset.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::records::header;
use super::{Loop, ProcessorError, TIMEOUT, kafka};
use crate::changelog::{ChangelogRecord, SOURCE_OFFSET_HEADER, restore, trust_local_state};
use crate::config::Guarantee;
use crate::handler::{Handler, expiry_index};
use crate::metrics::PartitionLabels;
use crate::state::{Pending, SledStore, StateStore};

/// How long a restore waits for a changelog partition that does not exist yet.
const MISSING_CHANGELOG_WAIT: Duration = Duration::from_secs(60);

/// Whether `e` says the topic or partition is not (yet) known.
fn missing(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::UnknownPartition | RDKafkaErrorCode::UnknownTopicOrPartition)
    )
}

impl<H: Handler> Loop<'_, H> {
    pub(super) fn committed_offset(&self, partition: i32) -> Result<Option<i64>, ProcessorError> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.config.input_topic, partition);
        let committed = self
            .consumer
            .committed_offsets(list, TIMEOUT)
            .map_err(kafka("read committed offsets"))?;
        Ok(
            match committed
                .find_partition(&self.config.input_topic, partition)
                .map(|p| p.offset())
            {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            },
        )
    }

    pub(super) fn restore(&mut self, partition: i32) -> Result<(), ProcessorError> {
        self.restore_from(partition, true)
    }

    /// Readies `partition`'s state; `may_trust_local` false rebuilds it from the changelog
    /// whatever the local tree holds.
    pub(super) fn restore_from(
        &mut self,
        partition: i32,
        may_trust_local: bool,
    ) -> Result<(), ProcessorError> {
        let started = Instant::now();
        let committed = self.committed_offset(partition)?;
        let mut store = SledStore::open(
            &self.db,
            &format!("{}-{partition}", self.config.input_topic),
            &self.behind,
        )?;
        let trusted =
            may_trust_local && trust_local_state(store.offset(), self.clean_start, committed);
        let mut restored = 0;
        if !trusted {
            store.clear()?;
            let records = self.read_changelog(partition)?;
            restored = records.len();
            let (mut writes, _) = restore(records, committed);
            writes.extend(expiry_index(&writes));
            if let Some(committed) = committed {
                store.apply_owned(writes, committed - 1)?;
                // In sled before anything reads it: sled is never read and written at once.
                self.behind.drain()?;
            }
        }
        self.metrics
            .restore_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.restored_records.inc_by(restored as u64);
        tracing::info!(
            partition,
            ?committed,
            trusted,
            restored,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "partition state ready"
        );
        if let Some(c) = committed {
            self.committed.insert(partition, c);
        }
        let labels = PartitionLabels {
            topic: self.config.input_topic.clone(),
            partition,
        };
        let counter = self.metrics.records_in.get_or_create(&labels).clone();
        self.records_in.insert(partition, counter);
        let pending = match self.config.guarantee {
            Guarantee::ExactlyOnce => Pending::new(store)?,
            Guarantee::AtLeastOnce => Pending::new(store)?.keep_every_delete(),
        };
        self.partitions.insert(partition, pending);
        Ok(())
    }

    /// The changelog partition's watermarks. A changelog created just before (by
    /// `bridgectl create-topics`, racing this start) is waited for a while, the loop
    /// marked not ready meanwhile; one still missing then is a deployment error.
    fn changelog_watermarks(
        &self,
        reader: &BaseConsumer,
        partition: i32,
    ) -> Result<(i64, i64), ProcessorError> {
        let topic = &self.config.changelog_topic;
        let deadline = Instant::now() + MISSING_CHANGELOG_WAIT;
        loop {
            match reader.fetch_watermarks(topic, partition, TIMEOUT) {
                Ok(marks) => return Ok(marks),
                Err(e) if missing(&e) && Instant::now() < deadline => {
                    self.readiness.waiting(format!(
                        "changelog topic {topic} has no partition {partition} yet"
                    ));
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) if missing(&e) => {
                    return Err(ProcessorError::MissingChangelog {
                        topic: topic.clone(),
                        partition,
                    });
                }
                Err(e) => return Err(kafka("changelog watermarks")(e)),
            }
        }
    }

    fn read_changelog(&self, partition: i32) -> Result<Vec<ChangelogRecord>, ProcessorError> {
        let reader: BaseConsumer = self
            .kafka
            .client()
            .set("group.id", format!("{}-restore", self.config.group_id))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .map_err(kafka("create changelog reader"))?;
        let topic = &self.config.changelog_topic;
        let (low, high) = self.changelog_watermarks(&reader, partition)?;
        let mut records = Vec::new();
        if high <= low {
            return Ok(records);
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(kafka("assign changelog"))?;
        reader.assign(&list).map_err(kafka("assign changelog"))?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let position = reader.position().map_err(kafka("changelog position"))?;
            let at = match position
                .find_partition(topic, partition)
                .map(|p| p.offset())
            {
                Some(Offset::Offset(o)) => o,
                _ => low,
            };
            if at >= high {
                break;
            }
            if Instant::now() > deadline {
                return Err(ProcessorError::Handler(format!(
                    "changelog `{topic}` partition {partition} not read in 300 s"
                )));
            }
            let Some(message) = reader.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.map_err(kafka("read changelog"))?;
            let source = header(&message, SOURCE_OFFSET_HEADER);
            let Some(source_offset) = ChangelogRecord::parse_source_offset(source) else {
                continue;
            };
            records.push(ChangelogRecord {
                key: message.key().unwrap_or_default().to_vec(),
                value: message.payload().map(<[u8]>::to_vec),
                source_offset,
            });
        }
        Ok(records)
    }
}
