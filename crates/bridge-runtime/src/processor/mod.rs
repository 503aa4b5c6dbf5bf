//! The processing loop: a `read_committed` consumer and a producer that is transactional
//! exactly once (EOS v2: one producer per instance, fenced through the consumer group
//! metadata) or idempotent at least once. Many records share one batch; at each commit
//! interval the outputs, the changelog (the last value of every key the batch wrote) and
//! any parked records commit together with the input offsets, and only then do the state
//! writes reach sled.
//!
//! Rebalances: cooperative-sticky by default. When partitions are revoked and the open batch
//! holds records of theirs, it is aborted and the partitions kept are rewound; partitions
//! that arrive are restored before their first record — from the local sled tree when the
//! last stop was clean and it matches the committed offset, otherwise rebuilt from the
//! changelog, ignoring entries past the committed offset. A record that keeps failing
//! retryably pauses its partition (Kafka keeps it) while the others go on.

mod callbacks;
mod delivery;
mod inbound;
mod readiness;
mod records;
mod restore;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_events::{EventCodec, now_millis};
use prometheus_client::metrics::counter::Counter;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, Producer};

use self::callbacks::{ConsumerCallbacks, ProducerCallbacks, RebalanceEvent};
use self::readiness::Readiness;
use self::records::{codec_class, header};
use crate::config::{Guarantee, KafkaConfig, ProcessorSettings};
use crate::handler::{Handler, HandlerError, Inbound};
use crate::health::Health;
use crate::metrics::{ErrorLabels, Metrics, TopicLabels};
use crate::retry::{Retries, RetryPolicy};
use crate::shutdown::Shutdown;
use crate::state::{Pending, SledStore, StateError, WriteBehind};
use crate::step::{self, Step, StepConfig};

/// What the loop needs to know.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Service name, in parked headers and logs.
    pub service: &'static str,
    /// Consumer group.
    pub group_id: String,
    /// The input topic.
    pub input_topic: String,
    /// Compacted changelog topic, same partition count as the input.
    pub changelog_topic: String,
    /// Where unprocessable records go.
    pub parked_topic: String,
    /// Folder of the sled database.
    pub state_dir: PathBuf,
    /// sled's page cache in bytes.
    pub state_cache_bytes: u64,
    /// Committed batches reach sled on a thread of their own (`state::WriteBehind`) while
    /// the loop goes on; off (the default), sled applies a batch while Kafka commits it
    /// and the loop waits for both before it reads state again.
    pub write_behind: bool,
    /// Unique and stable per running instance: `transactional.id` = `<group>-<instance>`,
    /// and the static `group.instance.id` unless the Kafka settings name one.
    pub instance_id: String,
    /// Exactly once (default) or at least once.
    pub guarantee: Guarantee,
    /// How often a batch commits.
    pub commit_interval: Duration,
    /// Dedupe TTL and sweep bound.
    pub step: StepConfig,
    /// Retries of retryable handler errors; `max_delay` is also how long a partition pauses
    /// after they give up.
    pub retry: RetryPolicy,
    /// `/healthz` fails once the loop has made no progress for this long (restores aside).
    pub stall_after: Duration,
    /// Which of several loops of the same group in one process this is
    /// ([`crate::service::LoopSpec::worker`]); `None`: the only one.
    pub worker: Option<usize>,
}

impl ProcessorConfig {
    /// The name of this loop's part of `/readyz`: the group, and the worker if several
    /// loops share it.
    pub fn readiness_part(&self) -> String {
        match self.worker {
            Some(worker) => format!("{} worker {worker}", self.group_id),
            None => self.group_id.clone(),
        }
    }

    /// The loop of `service` reading `input_topic` in `group_id`, from the `[processor]`
    /// settings. Changelog `<group>-changelog`, parked `<group>-parked`.
    pub fn from_settings(
        service: &'static str,
        group_id: &str,
        input_topic: &str,
        settings: &ProcessorSettings,
    ) -> Self {
        Self {
            service,
            group_id: group_id.to_owned(),
            input_topic: input_topic.to_owned(),
            changelog_topic: format!("{group_id}-changelog"),
            parked_topic: format!("{group_id}-parked"),
            state_dir: settings
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!(".data/{service}/state"))),
            state_cache_bytes: settings.state_cache_mb * 1024 * 1024,
            write_behind: settings.write_behind,
            instance_id: settings.instance(),
            guarantee: settings.guarantee,
            commit_interval: Duration::from_millis(settings.commit_interval_ms),
            step: StepConfig {
                dedupe_ttl: Duration::from_secs(settings.dedupe_ttl_hours * 3600),
                max_event_time_ahead: Duration::from_millis(settings.max_event_time_ahead_ms),
                ..StepConfig::default()
            },
            retry: settings.retry.policy(),
            stall_after: settings.stall_after(),
            worker: None,
        }
    }
}

/// Why the loop stopped with an error (fatal: the process should exit and restart).
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// Kafka failed in a way the loop cannot recover from.
    #[error("kafka: {context}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: KafkaError,
    },
    /// The state changelog partition of an assigned input partition does not exist.
    #[error(
        "changelog topic {topic} has no partition {partition}: create it compacted, with as \
         many partitions as the input topic (bridgectl create-topics does)"
    )]
    MissingChangelog {
        /// The changelog topic.
        topic: String,
        /// The partition missing.
        partition: i32,
    },
    /// State could not be read or written.
    #[error("state")]
    State(#[from] StateError),
    /// The handler said the process cannot go on.
    #[error("handler: {0}")]
    Handler(String),
    /// The state folder could not be used.
    #[error("state folder `{path}`")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn kafka(context: &str) -> impl FnOnce(KafkaError) -> ProcessorError + '_ {
    move |source| ProcessorError::Kafka {
        context: context.to_owned(),
        source,
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);
const CLEAN_MARKER: &str = "CLEAN";

/// The loop consumer's `fetch.queue.backoff.ms` unless the Kafka settings name one:
/// librdkafka postpones a partition's next fetch by this much once its prefetch queue is
/// past `queued.min.messages`, and its 1000 ms default left a loop catching up on one
/// partition idle between fetches (pass-through EOS on 1 partition, 400,000 records:
/// 88k/93k records/s with it, 106k/103k with 20 ms; runtime.md).
pub const FETCH_QUEUE_BACKOFF_MS: &str = "20";

/// The attempt a parked record was on: one more than the retries it had.
fn attempt(retries: &Option<Retries>) -> u32 {
    retries.as_ref().map_or(0, Retries::attempts) + 1
}

struct Loop<'a, H: Handler> {
    readiness: Readiness,
    metrics: Arc<Metrics>,
    config: &'a ProcessorConfig,
    kafka: &'a KafkaConfig,
    handler: H,
    /// Borrowed, so a polled message borrows it and not the loop: records are handled in
    /// place (copying each into an `OwnedMessage` was 6 % of the loop's time).
    consumer: &'a BaseConsumer<ConsumerCallbacks>,
    /// Polled by the loop itself (not a background thread), so a flush before a commit
    /// serves its own delivery reports instead of waiting for another thread's poll.
    producer: BaseProducer<ProducerCallbacks>,
    codec: Arc<EventCodec>,
    runtime: tokio::runtime::Handle,
    db: sled::Db,
    /// Applies committed batches to `db` (on a thread of its own with `write_behind`).
    behind: WriteBehind,
    clean_start: bool,
    partitions: BTreeMap<i32, Pending<SledStore>>,
    records_in: HashMap<i32, Counter>,
    /// Next offset to consume per partition, as committed.
    committed: HashMap<i32, i64>,
    /// Next offset per partition after the records in the open batch.
    next: HashMap<i32, i64>,
    /// Partitions whose consumer has read to their end (librdkafka's partition EOF) and
    /// not received a record since.
    at_end: HashSet<i32>,
    /// Partitions paused after retries gave up, and when they resume.
    paused: HashMap<i32, Instant>,
    batch_open: bool,
    batch_started: Instant,
    /// Delivery failures already answered by a rewind (at least once).
    delivery_failures: u64,
    /// The name of every record's span: `process <input topic>`.
    process_name: String,
}

/// Runs the loop on the current (blocking) thread until `shutdown`; call it through
/// `tokio::task::spawn_blocking`. `runtime` runs the codec's registry calls.
pub fn run<H: Handler>(
    kafka_config: &KafkaConfig,
    config: &ProcessorConfig,
    codec: Arc<EventCodec>,
    handler: H,
    runtime: tokio::runtime::Handle,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> Result<(), ProcessorError> {
    let metrics = health.metrics();
    let readiness = Readiness::new(
        Arc::clone(&health),
        &config.readiness_part(),
        &config.input_topic,
        config.stall_after,
    );
    std::fs::create_dir_all(&config.state_dir).map_err(|source| ProcessorError::Io {
        path: config.state_dir.clone(),
        source,
    })?;
    let marker = config.state_dir.join(CLEAN_MARKER);
    let clean_start = marker.exists();
    // From here until a clean stop the local state is not to be trusted.
    let _ = std::fs::remove_file(&marker);
    let db = sled::Config::new()
        .path(config.state_dir.join("sled"))
        .cache_capacity(config.state_cache_bytes)
        // No periodic fsync: the changelog is what is durable; an unclean stop rebuilds
        // from it, and a clean one flushes before writing its checkpoint.
        .flush_every_ms(None)
        .open()
        .map_err(|source| {
            ProcessorError::State(StateError::Sled {
                tree: "db".into(),
                source,
            })
        })?;

    let member = format!("{}-{}", config.group_id, config.instance_id);
    let mut consumer_config = kafka_config.client();
    consumer_config
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("statistics.interval.ms", "5000");
    for (key, default) in [
        ("partition.assignment.strategy", "cooperative-sticky"),
        ("group.instance.id", member.as_str()),
        ("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS),
    ] {
        if !kafka_config.librdkafka.contains_key(key) {
            consumer_config.set(key, default);
        }
    }
    let consumer: BaseConsumer<ConsumerCallbacks> = consumer_config
        .create_with_context(ConsumerCallbacks::new(Arc::clone(&metrics)))
        .map_err(kafka("create consumer"))?;
    let mut producer_config = kafka_config.client();
    producer_config.set("linger.ms", "5");
    // Only failures are reported (all the callbacks count): a report per record made the
    // commit's drain free every output on this thread, a sixth of the loop's time in the
    // benchmark; librdkafka's own threads free the delivered ones now.
    producer_config.set("delivery.report.only.error", "true");
    match config.guarantee {
        Guarantee::ExactlyOnce => producer_config
            .set("transactional.id", &member)
            .set("transaction.timeout.ms", "60000"),
        Guarantee::AtLeastOnce => producer_config.set("enable.idempotence", "true"),
    };
    let producer: BaseProducer<ProducerCallbacks> = producer_config
        .create_with_context(ProducerCallbacks::default())
        .map_err(kafka("create producer"))?;
    if config.guarantee == Guarantee::ExactlyOnce {
        producer
            .init_transactions(TIMEOUT)
            .map_err(kafka("init transactions"))?;
    }
    consumer
        .subscribe(&[&config.input_topic])
        .map_err(kafka("subscribe"))?;
    tracing::info!(
        group = %config.group_id,
        topic = %config.input_topic,
        guarantee = ?config.guarantee,
        commit_interval_ms = config.commit_interval.as_millis() as u64,
        "processing loop started"
    );
    readiness.report();

    let mut lp = Loop {
        process_name: format!("process {}", config.input_topic),
        readiness,
        metrics,
        config,
        kafka: kafka_config,
        handler,
        consumer: &consumer,
        producer,
        codec,
        runtime,
        db,
        behind: WriteBehind::start()?,
        clean_start,
        partitions: BTreeMap::new(),
        records_in: HashMap::new(),
        committed: HashMap::new(),
        next: HashMap::new(),
        at_end: HashSet::new(),
        paused: HashMap::new(),
        batch_open: false,
        batch_started: Instant::now(),
        delivery_failures: 0,
    };
    let result = lp.run(&shutdown);
    if result.is_ok() {
        lp.flush()?;
        std::fs::write(&marker, b"clean stop\n").map_err(|source| ProcessorError::Io {
            path: marker.clone(),
            source,
        })?;
    }
    result
}

impl<H: Handler> Loop<'_, H> {
    fn run(&mut self, shutdown: &Shutdown) -> Result<(), ProcessorError> {
        let mut last_punctuation = Instant::now();
        while !shutdown.is_requested() {
            let consumer = self.consumer;
            let message = match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    self.at_end.remove(&message.partition());
                    Some(message)
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    self.at_end.insert(partition);
                    None
                }
                // Nothing fetched for any partition for a whole poll: librdkafka prefetches,
                // so none has a backlog waiting here (this also covers an EOF librdkafka
                // reported outside the poll).
                None => {
                    let paused = &self.paused;
                    let idle = self.partitions.keys().filter(|p| !paused.contains_key(p));
                    self.at_end.extend(idle.copied());
                    // Delivery reports wait for the drain before each commit; an idle
                    // loop serves them (and producer errors) here, off the record path.
                    self.producer.poll(Duration::ZERO);
                    None
                }
                Some(Err(e)) => {
                    self.on_consumer_error(e)?;
                    None
                }
            };
            self.after_rebalance()?;
            if let Some(message) = message {
                self.on_message(&message)?;
            }
            // One clock read per round for both intervals.
            let round = Instant::now();
            self.readiness.beat(round);
            if round.duration_since(last_punctuation) >= self.config.commit_interval {
                last_punctuation = round;
                // A punctuation starts a fresh batch, so the state it reads is committed
                // (bar its own writes): a timer can then act outside Kafka on what an
                // earlier punctuation sealed, and a replay sees the same sealed data.
                if self.batch_open {
                    self.commit()?;
                }
                self.punctuate()?;
                self.resume_due()?;
            }
            if self.batch_open
                && round.saturating_duration_since(self.batch_started)
                    >= self.config.commit_interval
            {
                self.commit()?;
            }
        }
        if self.batch_open {
            self.commit()?;
        }
        self.consumer.unsubscribe();
        Ok(())
    }

    fn after_rebalance(&mut self) -> Result<(), ProcessorError> {
        for event in self.consumer.context().take_events() {
            match event {
                RebalanceEvent::Revoked(partitions) => self.on_revoked(&partitions)?,
                RebalanceEvent::Assigned(partitions) => {
                    for &partition in &partitions {
                        self.readiness.restoring(partition);
                        self.restore(partition)?;
                    }
                    self.readiness.assigned(partitions.len());
                }
            }
        }
        Ok(())
    }

    /// librdkafka reports most consumer errors for information and recovers by itself
    /// (a broker restarting, a topic not created yet); only a fatal one (this member
    /// fenced by another with the same `group.instance.id`) stops the loop. A missing
    /// input topic marks the loop not ready until partitions of it are assigned (unless the
    /// loop holds some of them).
    fn on_consumer_error(&mut self, e: KafkaError) -> Result<(), ProcessorError> {
        let code = e.rdkafka_error_code();
        self.metrics
            .consumer_errors
            .get_or_create(&ErrorLabels {
                error_code: code.map_or_else(|| "other".to_owned(), |c| format!("{c:?}")),
            })
            .inc();
        if let KafkaError::MessageConsumptionFatal(_) = e {
            return Err(kafka("consume")(e));
        }
        if code == Some(RDKafkaErrorCode::UnknownTopicOrPartition) {
            let topic = &self.config.input_topic;
            // Partitions of the input held now prove the topic is there: librdkafka
            // reports a topic unknown on a stale metadata answer too (just after the topic
            // was created). A topic deleted is revoked first, and then counts.
            if self.partitions.is_empty() {
                self.readiness.input_missing();
                tracing::warn!(%topic, error = %e, "input topic missing; waiting for it");
            } else {
                tracing::warn!(%topic, error = %e, "input topic reported unknown while assigned");
            }
        } else {
            tracing::warn!(error = %e, "consumer error; librdkafka retries");
        }
        Ok(())
    }

    /// Forgets revoked partitions. If the open batch holds records or state of theirs it
    /// cannot commit any more: it is aborted and the partitions kept are rewound.
    fn on_revoked(&mut self, revoked: &[i32]) -> Result<(), ProcessorError> {
        let touched = revoked.iter().any(|p| {
            self.next.contains_key(p) || self.partitions.get(p).is_some_and(Pending::has_pending)
        });
        for partition in revoked {
            self.at_end.remove(partition);
            self.partitions.remove(partition);
            self.committed.remove(partition);
            self.records_in.remove(partition);
            if self.paused.remove(partition).is_some() {
                self.metrics.paused_partitions.dec();
            }
        }
        if touched && self.batch_open {
            tracing::info!(
                ?revoked,
                "rebalance: aborting the open batch, which holds records of revoked partitions"
            );
            self.abort_and_rewind()?;
        }
        self.flush()
    }

    /// Puts every committed batch in sled and sled on disk.
    fn flush(&self) -> Result<(), ProcessorError> {
        self.behind.drain()?;
        self.db.flush().map_err(|source| StateError::Sled {
            tree: "db".into(),
            source,
        })?;
        Ok(())
    }

    fn emit(
        &mut self,
        partition: i32,
        offset: i64,
        step: Step,
        trace: Option<&opentelemetry::Context>,
    ) -> Result<(), ProcessorError> {
        let outputs = match self.partitions.get_mut(&partition) {
            Some(store) => step.apply_to(store, offset)?,
            None => step.outputs,
        };
        for output in &outputs {
            self.send_output(output, trace)?;
            self.metrics
                .records_out
                .get_or_create(&TopicLabels {
                    topic: output.topic.clone(),
                })
                .inc();
        }
        Ok(())
    }

    fn punctuate(&mut self) -> Result<(), ProcessorError> {
        let now = now_millis();
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        for partition in partitions {
            let Some(store) = self.partitions.get(&partition) else {
                continue;
            };
            let at = step::Partition {
                id: partition,
                caught_up: self.at_end.contains(&partition),
            };
            let step = match step::punctuate(&mut self.handler, store, now, at, &self.config.step) {
                Ok(step) => step,
                // Nothing of it is kept; the next punctuation runs it again (a scheduled
                // call to a system that is down waits for the next interval).
                Err(HandlerError::Retryable { reason, .. }) => {
                    self.metrics
                        .errors
                        .get_or_create(&ErrorLabels {
                            error_code: "punctuation_retryable".into(),
                        })
                        .inc();
                    tracing::warn!(partition, error = %reason, "punctuation failed; runs again next interval");
                    continue;
                }
                Err(e) => return Err(ProcessorError::Handler(e.to_string())),
            };
            if step.outputs.is_empty() && step.writes.is_empty() {
                continue;
            }
            self.begin()?;
            let source = self.last_input_offset(partition);
            self.emit(partition, source, step, None)?;
        }
        Ok(())
    }
}
