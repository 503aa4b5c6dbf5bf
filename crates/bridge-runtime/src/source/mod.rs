//! Publishing facts from outside Kafka (webhooks, REST polling) exactly once into Kafka.
//!
//! A [`SourcePublisher`] owns one transactional producer on a thread of its own. Callers
//! hand it batches (records, each with its event id, plus cursor values to save) and await
//! the answer; the thread groups what is waiting into one transaction (group commit), so
//! many concurrent webhooks cost one commit. Before producing it drops records whose event
//! id was already published (kept in sled with a TTL) or appears earlier in the same
//! transaction — so a fact seen by a webhook and by the poller is one record. Only after
//! the transaction commits are the ids and cursors recorded, and only then does the
//! caller hear `Ok`: a webhook answers 2xx only for facts durably in Kafka, all of a
//! payload's records or none (read_committed consumers never see half of one).
//!
//! When Kafka cannot be reached within the publish timeout the caller gets
//! [`PublishError::Unavailable`] (answer 503 so the sender retries); the producer is
//! dropped and rebuilt on the next batch (`init_transactions` fences and aborts whatever
//! the old one left open).

mod publisher;
mod seen;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use publisher::SourcePublisher;
pub use seen::{Seen, SeenError};

use crate::parking::ParkedRecord;

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic.
    pub topic: String,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub payload: Vec<u8>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The event id it is deduplicated by; `None` is never deduplicated (parked records).
    pub event_id: Option<String>,
}

impl Record {
    /// A parked input: its original bytes, and why, in the runtime's parked format.
    pub fn parked(topic: &str, parked: &ParkedRecord) -> Self {
        Self {
            topic: topic.to_owned(),
            key: parked.key.clone(),
            payload: parked.payload.clone().unwrap_or_default(),
            headers: parked.headers(),
            event_id: None,
        }
    }
}

/// What to publish in one go: all of it or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The records.
    pub records: Vec<Record>,
    /// Named cursor values saved once the records are committed (e.g. a poller's
    /// `updated_at` watermark).
    pub cursors: Vec<(String, String)>,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Records produced and committed.
    pub produced: usize,
    /// Records skipped: their event id was published before.
    pub duplicates: usize,
    /// Records produced per topic.
    pub topics: std::collections::BTreeMap<String, usize>,
}

/// Why a batch was not published. Nothing of it is in Kafka (as far as the client knows).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    /// Kafka did not take the batch in time; try again later (HTTP 503).
    #[error("kafka unavailable: {0}")]
    Unavailable(String),
    /// The publisher has stopped.
    #[error("the publisher has stopped")]
    Stopped,
}

/// Settings of a [`SourcePublisher`].
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The service (metrics, parked headers).
    pub service: &'static str,
    /// `transactional.id`: unique per running instance, stable across its restarts.
    pub transactional_id: String,
    /// Where the published ids and cursors are kept.
    pub state_dir: PathBuf,
    /// How long a batch may wait for Kafka before it is refused.
    pub publish_timeout: Duration,
    /// How long a published event id is remembered.
    pub dedupe_ttl: Duration,
    /// At most this many batches share a transaction.
    pub max_group: usize,
}

impl SourceConfig {
    /// Defaults: 8 s publish timeout (under the 10 s Adobe gives a webhook), 7-day dedupe.
    pub fn new(service: &'static str, transactional_id: String, state_dir: PathBuf) -> Self {
        Self {
            service,
            transactional_id,
            state_dir,
            publish_timeout: Duration::from_secs(8),
            dedupe_ttl: Duration::from_secs(7 * 24 * 3600),
            max_group: 256,
        }
    }
}

/// Counters of a publisher, also exported as metrics.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Transactions committed.
    pub commits: std::sync::atomic::AtomicU64,
    /// Transactions that failed.
    pub failures: std::sync::atomic::AtomicU64,
}

/// Shared handle to the stats.
pub type Stats = Arc<PublisherStats>;
