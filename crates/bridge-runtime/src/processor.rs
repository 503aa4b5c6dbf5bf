//! The exactly-once loop: a `read_committed` consumer and a transactional producer
//! (EOS v2: one producer per instance, fenced through the consumer group metadata).
//! Many records share one transaction; at each commit interval the outputs, the changelog
//! records of every state write, any parked records and the input offsets commit together
//! (`send_offsets_to_transaction`), and only then do the state writes reach sled.
//!
//! Rebalances (eager protocol) abort the open transaction and drop its pending state;
//! partitions that arrive are restored before their first record: from the local sled tree
//! when the last stop was clean and it matches the committed offset, otherwise rebuilt
//! from the changelog, ignoring entries past the committed offset.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge_events::{CodecError, EventCodec, Millis};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

use crate::changelog::{ChangelogRecord, SOURCE_OFFSET_HEADER, restore, trust_local_state};
use crate::config::KafkaConfig;
use crate::handler::{Handler, HandlerError, Inbound, Output};
use crate::health::Health;
use crate::metrics::{ErrorLabels, Metrics, PartitionLabels, TopicLabels};
use crate::parking::ParkedRecord;
use crate::retry::RetryPolicy;
use crate::shutdown::Shutdown;
use crate::state::{Pending, SledStore, StateError, StateStore, Write};
use crate::step::{self, Step, StepConfig};
use crate::trace::{TRACEPARENT, TRACESTATE, TraceParent};

/// The trace context of the input being processed.
struct TraceContext {
    parent: TraceParent,
    tracestate: Option<Vec<u8>>,
}

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
    /// Unique per running instance (`transactional.id` = `<group>-<instance>`).
    pub instance_id: String,
    /// How often a transaction commits.
    pub commit_interval: Duration,
    /// Dedupe TTL and sweep bound.
    pub step: StepConfig,
    /// Retries of retryable handler errors.
    pub retry: RetryPolicy,
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

/// Rebalance events noted during `poll`, handled by the loop right after.
#[derive(Default)]
struct RebalanceLog {
    revoked: bool,
    assigned: Vec<i32>,
}

struct LoopContext {
    log: Mutex<RebalanceLog>,
    metrics: Arc<Metrics>,
}

impl ClientContext for LoopContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in statistics.topics {
            for (partition, p) in stats.partitions {
                if partition >= 0 && p.consumer_lag >= 0 {
                    let labels = PartitionLabels {
                        topic: topic.clone(),
                        partition,
                    };
                    self.metrics
                        .consumer_lag
                        .get_or_create(&labels)
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LoopContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Revoke(_), Ok(mut log)) = (rebalance, self.log.lock()) {
            log.revoked = true;
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(list), Ok(mut log)) = (rebalance, self.log.lock()) {
            log.assigned
                .extend(list.elements().iter().map(|e| e.partition()));
        }
    }
}

type Producer_ = ThreadedProducer<DefaultProducerContext>;

const TIMEOUT: Duration = Duration::from_secs(30);
const CLEAN_MARKER: &str = "CLEAN";

fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

struct Loop<'a, H: Handler> {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    config: &'a ProcessorConfig,
    kafka: &'a KafkaConfig,
    handler: H,
    consumer: BaseConsumer<LoopContext>,
    producer: Producer_,
    codec: Arc<EventCodec>,
    runtime: tokio::runtime::Handle,
    db: sled::Db,
    clean_start: bool,
    partitions: BTreeMap<i32, Pending<SledStore>>,
    /// Next offset to consume per partition, as committed.
    committed: HashMap<i32, i64>,
    /// Next offset per partition after the records in the open transaction.
    next: HashMap<i32, i64>,
    txn_open: bool,
    txn_started: Instant,
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
    std::fs::create_dir_all(&config.state_dir).map_err(|source| ProcessorError::Io {
        path: config.state_dir.clone(),
        source,
    })?;
    let marker = config.state_dir.join(CLEAN_MARKER);
    let clean_start = marker.exists();
    // From here until a clean stop the local state is not to be trusted.
    let _ = std::fs::remove_file(&marker);
    let db = sled::open(config.state_dir.join("sled")).map_err(|source| {
        ProcessorError::State(StateError::Sled {
            tree: "db".into(),
            source,
        })
    })?;

    let consumer: BaseConsumer<LoopContext> = kafka_config
        .client()
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", "range")
        .set("statistics.interval.ms", "5000")
        .create_with_context(LoopContext {
            log: Mutex::new(RebalanceLog::default()),
            metrics: Arc::clone(&metrics),
        })
        .map_err(kafka("create consumer"))?;
    let producer: Producer_ = kafka_config
        .client()
        .set(
            "transactional.id",
            format!("{}-{}", config.group_id, config.instance_id),
        )
        .set("transaction.timeout.ms", "60000")
        .set("linger.ms", "5")
        .create()
        .map_err(kafka("create producer"))?;
    producer
        .init_transactions(TIMEOUT)
        .map_err(kafka("init transactions"))?;
    consumer
        .subscribe(&[&config.input_topic])
        .map_err(kafka("subscribe"))?;

    let mut lp = Loop {
        health,
        metrics,
        config,
        kafka: kafka_config,
        handler,
        consumer,
        producer,
        codec,
        runtime,
        db,
        clean_start,
        partitions: BTreeMap::new(),
        committed: HashMap::new(),
        next: HashMap::new(),
        txn_open: false,
        txn_started: Instant::now(),
    };
    let result = lp.run(&shutdown);
    if result.is_ok() {
        lp.db.flush().map_err(|source| StateError::Sled {
            tree: "db".into(),
            source,
        })?;
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
            let message = match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => Some(message.detach()),
                Some(Err(e)) => return Err(kafka("consume")(e)),
                None => None,
            };
            self.after_rebalance()?;
            if let Some(message) = message {
                self.on_message(&message)?;
            }
            if last_punctuation.elapsed() >= self.config.commit_interval {
                last_punctuation = Instant::now();
                self.punctuate()?;
            }
            if self.txn_open && self.txn_started.elapsed() >= self.config.commit_interval {
                self.commit()?;
            }
        }
        if self.txn_open {
            self.commit()?;
        }
        self.consumer.unsubscribe();
        Ok(())
    }

    fn after_rebalance(&mut self) -> Result<(), ProcessorError> {
        let (revoked, assigned) = match self.consumer.context().log.lock() {
            Ok(mut log) => (
                std::mem::take(&mut log.revoked),
                std::mem::take(&mut log.assigned),
            ),
            Err(_) => return Err(ProcessorError::Handler("rebalance log poisoned".into())),
        };
        if revoked {
            if self.txn_open {
                tracing::info!("rebalance: aborting the open transaction");
                self.abort()?;
            }
            self.partitions.clear();
            self.committed.clear();
            self.next.clear();
        }
        if !assigned.is_empty() {
            self.health.set_ready(false);
            for partition in assigned {
                self.restore(partition)?;
            }
        }
        self.health.set_ready(true);
        Ok(())
    }

    fn committed_offset(&self, partition: i32) -> Result<Option<i64>, ProcessorError> {
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

    fn restore(&mut self, partition: i32) -> Result<(), ProcessorError> {
        let started = Instant::now();
        let committed = self.committed_offset(partition)?;
        let mut store = SledStore::open(
            &self.db,
            &format!("{}-{partition}", self.config.input_topic),
        )?;
        let trusted = trust_local_state(store.offset(), self.clean_start, committed);
        let mut restored = 0;
        if !trusted {
            store.clear()?;
            let records = self.read_changelog(partition)?;
            restored = records.len();
            let (writes, _) = restore(records, committed);
            if let Some(committed) = committed {
                store.apply(&writes, committed - 1)?;
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
        self.partitions.insert(partition, Pending::new(store));
        Ok(())
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
        let (low, high) = reader
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(kafka("changelog watermarks"))?;
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

    fn begin(&mut self) -> Result<(), ProcessorError> {
        if !self.txn_open {
            self.producer
                .begin_transaction()
                .map_err(kafka("begin transaction"))?;
            self.txn_open = true;
            self.txn_started = Instant::now();
        }
        Ok(())
    }

    fn on_message(&mut self, message: &OwnedMessage) -> Result<(), ProcessorError> {
        let partition = message.partition();
        let offset = message.offset();
        if !self.partitions.contains_key(&partition) {
            // Polled together with the revocation of its partition: its new owner reads it
            // again from the committed offset.
            return Ok(());
        }
        let labels = PartitionLabels {
            topic: self.config.input_topic.clone(),
            partition,
        };
        self.metrics.records_in.get_or_create(&labels).inc();
        self.begin()?;
        let payload = message.payload().unwrap_or_default();
        let event = match self.runtime.block_on(self.codec.decode(payload)) {
            Ok(event) => event,
            Err(e) if e.is_retryable() => {
                return self.retry_later(partition, offset, &e.to_string());
            }
            Err(e) => {
                let class = codec_class(&e);
                self.park(message, class, &e.to_string(), 1)?;
                self.next.insert(partition, offset + 1);
                return Ok(());
            }
        };
        let parent = header(message, TRACEPARENT)
            .and_then(TraceParent::parse)
            .unwrap_or_else(TraceParent::new_root);
        let tracestate = header(message, TRACESTATE).map(<[u8]>::to_vec);
        let trace = TraceContext { parent, tracestate };
        let span = tracing::debug_span!(
            "record",
            topic = %self.config.input_topic,
            partition,
            offset,
            event_id = %event.envelope().event_id,
            correlation_id = %event.envelope().correlation_id,
            trace_id = %parent.trace_id_hex(),
        );
        let _entered = span.enter();
        let input = Inbound {
            event: &event,
            topic: &self.config.input_topic,
            partition,
            offset,
        };
        let mut retries = self.config.retry.start();
        loop {
            let store = self
                .partitions
                .get(&partition)
                .ok_or_else(|| ProcessorError::Handler("partition not restored".into()))?;
            match step::process(
                &mut self.handler,
                store,
                &input,
                now_ms(),
                &self.config.step,
            ) {
                Ok(step) => {
                    if step.outcome == step::Outcome::Duplicate {
                        self.metrics.dedupe_hits.inc();
                    }
                    self.begin()?;
                    self.emit(partition, offset, step, Some(&trace))?;
                    self.next.insert(partition, offset + 1);
                    return Ok(());
                }
                Err(HandlerError::Terminal { class, reason }) => {
                    self.begin()?;
                    self.park(message, class, &reason, retries.attempts() + 1)?;
                    self.next.insert(partition, offset + 1);
                    return Ok(());
                }
                Err(HandlerError::Retryable {
                    reason,
                    retry_after,
                }) => {
                    let labels = ErrorLabels {
                        error_code: "retryable".into(),
                    };
                    self.metrics.errors.get_or_create(&labels).inc();
                    // Commit what is done, so the open transaction does not wait on the retry.
                    if self.txn_open {
                        self.commit()?;
                    }
                    match retries.next_delay(retry_after) {
                        Some(delay) => {
                            tracing::warn!(partition, offset, error = %reason, delay_ms = delay.as_millis() as u64, "retrying");
                            std::thread::sleep(delay);
                        }
                        None => return self.retry_later(partition, offset, &reason),
                    }
                }
                Err(HandlerError::Fatal { reason }) => {
                    self.abort()?;
                    return Err(ProcessorError::Handler(reason));
                }
                Err(HandlerError::State(e)) => {
                    self.abort()?;
                    return Err(e.into());
                }
            }
        }
    }

    /// Gives up on the record for now: abort, rewind to the committed offsets; Kafka keeps it.
    fn retry_later(
        &mut self,
        partition: i32,
        offset: i64,
        reason: &str,
    ) -> Result<(), ProcessorError> {
        tracing::warn!(partition, offset, error = %reason, "giving up for now; the record stays in kafka");
        let labels = ErrorLabels {
            error_code: "retry_exhausted".into(),
        };
        self.metrics.errors.get_or_create(&labels).inc();
        self.abort_and_rewind()?;
        std::thread::sleep(self.config.retry.max_delay);
        Ok(())
    }

    fn emit(
        &mut self,
        partition: i32,
        offset: i64,
        step: Step,
        trace: Option<&TraceContext>,
    ) -> Result<(), ProcessorError> {
        for output in &step.outputs {
            self.send_output(output, trace)?;
            self.metrics
                .records_out
                .get_or_create(&TopicLabels {
                    topic: output.topic.clone(),
                })
                .inc();
        }
        self.send_changelog(partition, offset, &step.writes)?;
        if let Some(store) = self.partitions.get_mut(&partition) {
            store.apply(&step.writes, offset)?;
        }
        Ok(())
    }

    fn send_output(
        &self,
        output: &Output,
        trace: Option<&TraceContext>,
    ) -> Result<(), ProcessorError> {
        let bytes = self
            .runtime
            .block_on(self.codec.encode_event(&output.topic, &output.event))
            .map_err(|e| {
                ProcessorError::Handler(format!("cannot encode output for `{}`: {e}", output.topic))
            })?;
        // Caused by an input: same trace, new span. Caused by a timer: a trace of its own.
        let traceparent = trace
            .map_or_else(TraceParent::new_root, |t| t.parent.child())
            .header();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "event_type",
                value: Some(output.event.record_name()),
            })
            .insert(Header {
                key: TRACEPARENT,
                value: Some(&traceparent),
            });
        if let Some(state) = trace.and_then(|t| t.tracestate.as_deref()) {
            headers = headers.insert(Header {
                key: TRACESTATE,
                value: Some(state),
            });
        }
        self.send(
            BaseRecord::to(&output.topic)
                .key(&output.key)
                .payload(&bytes)
                .headers(headers),
        )
    }

    fn send_changelog(
        &self,
        partition: i32,
        source_offset: i64,
        writes: &[Write],
    ) -> Result<(), ProcessorError> {
        let source = source_offset.to_string();
        for write in writes {
            let headers = OwnedHeaders::new().insert(Header {
                key: SOURCE_OFFSET_HEADER,
                value: Some(&source),
            });
            let mut record = BaseRecord::<[u8], [u8]>::to(&self.config.changelog_topic)
                .key(write.key.as_slice())
                .partition(partition)
                .headers(headers);
            if let Some(value) = &write.value {
                record = record.payload(value.as_slice());
            }
            self.send(record)?;
        }
        Ok(())
    }

    fn send<K: rdkafka::message::ToBytes + ?Sized, P: rdkafka::message::ToBytes + ?Sized>(
        &self,
        mut record: BaseRecord<'_, K, P>,
    ) -> Result<(), ProcessorError> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(kafka("produce")(e)),
            }
        }
    }

    fn park(
        &self,
        message: &OwnedMessage,
        class: &str,
        reason: &str,
        attempts: u32,
    ) -> Result<(), ProcessorError> {
        tracing::warn!(partition = message.partition(), offset = message.offset(), class, error = %reason, "record parked");
        let labels = ErrorLabels {
            error_code: class.to_owned(),
        };
        self.metrics.errors.get_or_create(&labels).inc();
        self.metrics.parked.get_or_create(&labels).inc();
        let parked = ParkedRecord {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            original_headers: header_pairs(message),
            error_class: class.to_owned(),
            message: reason.to_owned(),
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            attempts,
            parked_at: now_ms(),
            service: self.config.service.to_owned(),
        };
        let mut headers = OwnedHeaders::new();
        for (key, value) in parked.headers() {
            headers = headers.insert(Header {
                key: &key,
                value: Some(&value),
            });
        }
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.config.parked_topic).headers(headers);
        if let Some(key) = &parked.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &parked.payload {
            record = record.payload(payload.as_slice());
        }
        self.send(record)
    }

    fn punctuate(&mut self) -> Result<(), ProcessorError> {
        let now = now_ms();
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        for partition in partitions {
            let Some(store) = self.partitions.get(&partition) else {
                continue;
            };
            let step = step::punctuate(&mut self.handler, store, now, partition, &self.config.step)
                .map_err(|e| ProcessorError::Handler(e.to_string()))?;
            if step.outputs.is_empty() && step.writes.is_empty() {
                continue;
            }
            self.begin()?;
            let source = self
                .next
                .get(&partition)
                .or(self.committed.get(&partition))
                .map_or(0, |n| n - 1);
            self.emit(partition, source, step, None)?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), ProcessorError> {
        let started = Instant::now();
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &self.next {
            offsets
                .add_partition_offset(&self.config.input_topic, *partition, Offset::Offset(*next))
                .map_err(kafka("offsets"))?;
        }
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| ProcessorError::Handler("consumer has no group metadata".into()))?;
        let committed = retrying("sending offsets", || {
            self.producer
                .send_offsets_to_transaction(&offsets, &metadata, TIMEOUT)
        })
        .and_then(|()| retrying("committing", || self.producer.commit_transaction(TIMEOUT)));
        match committed {
            Ok(()) => {
                self.txn_open = false;
                for (partition, next) in std::mem::take(&mut self.next) {
                    self.committed.insert(partition, next);
                }
                for (partition, store) in self.partitions.iter_mut() {
                    let at = self.committed.get(partition).map_or(-1, |n| n - 1);
                    store.commit(at)?;
                }
                self.metrics.commits.inc();
                self.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "transaction committed"
                );
                Ok(())
            }
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                tracing::warn!(error = %e, "transaction must abort");
                self.abort_and_rewind()
            }
            Err(e) => Err(kafka("commit transaction")(e)),
        }
    }

    /// Aborts the open transaction and drops its pending state. Used alone when the
    /// partitions are gone (revoked) or the loop stops; see [`Loop::abort_and_rewind`].
    fn abort(&mut self) -> Result<(), ProcessorError> {
        if self.txn_open {
            retrying("aborting", || self.producer.abort_transaction(TIMEOUT))
                .map_err(kafka("abort transaction"))?;
            self.txn_open = false;
            self.metrics.aborts.inc();
        }
        self.next.clear();
        for store in self.partitions.values_mut() {
            store.abort();
        }
        Ok(())
    }

    /// Aborts and moves every owned partition back to its committed offset, so the aborted
    /// records are read again. A failed rewind stops the loop: going on from the current
    /// position would skip them, and a restart resumes from the committed offsets.
    fn abort_and_rewind(&mut self) -> Result<(), ProcessorError> {
        self.abort()?;
        for partition in self.partitions.keys() {
            let offset = self
                .committed
                .get(partition)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            self.consumer
                .seek(&self.config.input_topic, *partition, offset, TIMEOUT)
                .map_err(kafka("rewind to the committed offset"))?;
        }
        Ok(())
    }
}

/// The value of the first header named `key`.
fn header<'m>(message: &'m impl Message, key: &str) -> Option<&'m [u8]> {
    message.headers()?.iter().find(|h| h.key == key)?.value
}

/// Every header as an owned (name, value) pair, in order.
fn header_pairs(message: &impl Message) -> Vec<(String, Vec<u8>)> {
    message
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
        .unwrap_or_default()
}

/// Runs a transaction call again while librdkafka says its failure is retriable (a
/// coordinator timeout under load, for example), as its API contract allows; at most 5 times.
fn retrying(
    what: &str,
    mut call: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    let mut attempt = 1;
    loop {
        match call() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempt < 5 => {
                tracing::warn!(error = %e, attempt, "{what} failed, retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn codec_class(e: &CodecError) -> &'static str {
    match e {
        CodecError::Truncated { .. } => "truncated",
        CodecError::UnknownMagicByte { .. } => "unknown_magic_byte",
        CodecError::UnknownSchemaId { .. } => "unknown_schema_id",
        CodecError::UnknownRecordType { .. } => "unknown_record_type",
        CodecError::BodyMismatch { .. } => "body_mismatch",
        _ => "codec",
    }
}
