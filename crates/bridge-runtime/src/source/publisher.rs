//! The publisher thread: group commit of waiting batches in one Kafka transaction, with
//! dedupe by event id before producing and bookkeeping after committing.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tokio::sync::oneshot;

use super::{Batch, PublishError, Published, PublisherStats, Record, Seen, SourceConfig, Stats};
use crate::config::KafkaConfig;

struct Job {
    batch: Batch,
    deadline: Instant,
    reply: oneshot::Sender<Result<Published, PublishError>>,
}

enum Message {
    Publish(Job),
    Close,
}

/// Publishes batches exactly once (see the module documentation).
pub struct SourcePublisher {
    jobs: mpsc::Sender<Message>,
    /// `None` once closed (sled is released when the thread's copy goes too).
    seen: std::sync::Mutex<Option<Seen>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    timeout: Duration,
    /// Commit and failure counts.
    pub stats: Stats,
}

const SWEEP_EVERY: Duration = Duration::from_secs(600);

impl SourcePublisher {
    /// Opens the state and starts the thread. Kafka need not be reachable yet.
    pub fn start(kafka: &KafkaConfig, config: SourceConfig) -> Result<Self, super::SeenError> {
        std::fs::create_dir_all(&config.state_dir).map_err(sled::Error::Io)?;
        let seen = Seen::open(&config.state_dir)?;
        let (jobs, rx) = mpsc::channel::<Message>();
        let stats: Stats = Arc::default();
        let timeout = config.publish_timeout;
        let mut worker = Worker {
            kafka: kafka.clone(),
            producer: None,
            down_until: None,
            seen: seen.clone(),
            stats: Arc::clone(&stats),
            timeout: config.publish_timeout,
            config,
        };
        let thread = std::thread::Builder::new()
            .name("source-publisher".into())
            .spawn(move || worker.run(&rx))
            .map_err(sled::Error::Io)?;
        Ok(Self {
            jobs,
            seen: std::sync::Mutex::new(Some(seen)),
            thread: std::sync::Mutex::new(Some(thread)),
            timeout,
            stats,
        })
    }

    /// Finishes the batch in progress, stops the thread and releases the local state, so
    /// a new publisher can open it (a restart in the same process, or a test). Later
    /// batches get [`PublishError::Stopped`].
    pub async fn close(&self) {
        let _ = self.jobs.send(Message::Close);
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Publishes `batch`: `Ok` once it is committed (or every record was a duplicate).
    pub async fn publish(&self, batch: Batch) -> Result<Published, PublishError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            batch,
            deadline: Instant::now() + self.timeout,
            reply,
        };
        self.jobs
            .send(Message::Publish(job))
            .map_err(|_| PublishError::Stopped)?;
        // The thread answers every job; the extra time covers a commit that started just
        // before the deadline.
        match tokio::time::timeout(self.timeout + Duration::from_secs(5), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PublishError::Stopped),
            Err(_) => Err(PublishError::Unavailable(
                "no answer from kafka in time".into(),
            )),
        }
    }

    /// A cursor saved by an earlier batch.
    pub fn cursor(&self, name: &str) -> Result<Option<String>, super::SeenError> {
        match self.seen.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(seen) => seen.cursor(name),
            None => Ok(None),
        }
    }
}

struct Worker {
    kafka: KafkaConfig,
    config: SourceConfig,
    producer: Option<ThreadedProducer<DefaultProducerContext>>,
    /// After a failure, batches are refused at once until then (one probe per second
    /// instead of every waiting webhook blocking for the whole timeout).
    down_until: Option<Instant>,
    seen: Seen,
    stats: Arc<PublisherStats>,
    timeout: Duration,
}

impl Worker {
    fn run(&mut self, rx: &mpsc::Receiver<Message>) {
        let mut last_sweep = Instant::now();
        loop {
            let first = match rx.recv_timeout(SWEEP_EVERY) {
                Ok(Message::Publish(job)) => Some(job),
                Ok(Message::Close) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => None,
            };
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = Instant::now();
                match self
                    .seen
                    .sweep(self.config.dedupe_ttl, bridge_events::now_millis())
                {
                    Ok(removed) => {
                        tracing::debug!(removed, "published ids past their ttl forgotten")
                    }
                    Err(error) => tracing::warn!(%error, "sweeping published ids failed"),
                }
            }
            let Some(first) = first else { continue };
            let mut jobs = vec![first];
            let mut closing = false;
            while jobs.len() < self.config.max_group {
                match rx.try_recv() {
                    Ok(Message::Publish(job)) => jobs.push(job),
                    Ok(Message::Close) => {
                        closing = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.publish(jobs);
            if closing {
                break;
            }
        }
        if let Some(producer) = &self.producer {
            let _ = producer.flush(Duration::from_secs(5));
        }
    }

    fn publish(&mut self, jobs: Vec<Job>) {
        let now = Instant::now();
        let (jobs, late): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.deadline > now);
        for job in late {
            let _ = job.reply.send(Err(PublishError::Unavailable(
                "waited past the publish timeout".into(),
            )));
        }
        if jobs.is_empty() {
            return;
        }
        if let Some(until) = self.down_until
            && now < until
        {
            return fail_all(jobs, "kafka was unreachable a moment ago; retry later");
        }
        // Which records go out: not published before, not earlier in this transaction.
        let mut in_transaction: HashSet<String> = HashSet::new();
        let mut plans = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let mut keep = Vec::new();
            let mut duplicates = 0;
            for (n, record) in job.batch.records.iter().enumerate() {
                match &record.event_id {
                    Some(id) => {
                        let before = match self.seen.contains(id) {
                            Ok(found) => found,
                            Err(error) => {
                                return fail_all(jobs, &format!("dedupe store: {error}"));
                            }
                        };
                        if before || !in_transaction.insert(id.clone()) {
                            duplicates += 1;
                        } else {
                            keep.push(n);
                        }
                    }
                    None => keep.push(n),
                }
            }
            plans.push((keep, duplicates));
        }
        let any_cursor = jobs.iter().any(|j| !j.batch.cursors.is_empty());
        let to_send: usize = plans.iter().map(|(keep, _)| keep.len()).sum();
        if to_send > 0 {
            let records = jobs
                .iter()
                .zip(&plans)
                .flat_map(|(job, (keep, _))| keep.iter().map(|n| &job.batch.records[*n]));
            if let Err(reason) = self.transaction(records) {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %reason, batches = jobs.len(), "publishing failed; the senders are told to retry");
                self.producer = None;
                self.down_until = Some(Instant::now() + Duration::from_secs(1));
                return fail_all(jobs, &reason);
            }
            self.down_until = None;
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
        } else if !any_cursor {
            for (job, (_, duplicates)) in jobs.into_iter().zip(plans) {
                let _ = job.reply.send(Ok(Published {
                    duplicates,
                    ..Published::default()
                }));
            }
            return;
        }
        let cursors: Vec<(String, String)> = jobs
            .iter()
            .flat_map(|j| j.batch.cursors.iter().cloned())
            .collect();
        if let Err(error) = self.seen.record(
            in_transaction.iter().map(String::as_str),
            &cursors,
            bridge_events::now_millis(),
        ) {
            // Committed, but not remembered: a later duplicate would be published again
            // (and dropped by every consumer's dedupe). Say so; the batch itself is in.
            tracing::error!(%error, "published, but the dedupe store could not record it");
        }
        for (job, (keep, duplicates)) in jobs.into_iter().zip(plans) {
            let mut topics = std::collections::BTreeMap::new();
            for n in &keep {
                *topics
                    .entry(job.batch.records[*n].topic.clone())
                    .or_insert(0) += 1;
            }
            let _ = job.reply.send(Ok(Published {
                produced: keep.len(),
                duplicates,
                topics,
            }));
        }
    }

    fn producer(&mut self) -> Result<&ThreadedProducer<DefaultProducerContext>, String> {
        if self.producer.is_none() {
            let mut config = self.kafka.client();
            config
                .set("transactional.id", &self.config.transactional_id)
                .set("transaction.timeout.ms", "60000")
                .set("linger.ms", "2");
            let producer: ThreadedProducer<DefaultProducerContext> = config
                .create()
                .map_err(|e| format!("create producer: {e}"))?;
            producer
                .init_transactions(self.timeout)
                .map_err(|e| format!("init transactions: {e}"))?;
            self.producer = Some(producer);
        }
        self.producer
            .as_ref()
            .ok_or_else(|| "no producer".to_owned())
    }

    fn transaction<'a>(&mut self, records: impl Iterator<Item = &'a Record>) -> Result<(), String> {
        let timeout = self.timeout;
        let producer = self.producer()?;
        producer
            .begin_transaction()
            .map_err(|e| format!("begin transaction: {e}"))?;
        for record in records {
            let mut headers = OwnedHeaders::new();
            for (name, value) in &record.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_slice()),
                });
            }
            let mut out = BaseRecord::<[u8], [u8]>::to(&record.topic)
                .payload(record.payload.as_slice())
                .headers(headers);
            if let Some(key) = &record.key {
                out = out.key(key.as_slice());
            }
            let started = Instant::now();
            loop {
                match producer.send(out) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if started.elapsed() < timeout =>
                    {
                        out = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        let _ = producer.abort_transaction(timeout);
                        return Err(format!("produce to `{}`: {e}", record.topic));
                    }
                }
            }
        }
        if let Err(e) = producer.commit_transaction(timeout) {
            let _ = producer.abort_transaction(timeout);
            return Err(format!("commit: {e}"));
        }
        Ok(())
    }
}

fn fail_all(jobs: Vec<Job>, reason: &str) {
    for job in jobs {
        let _ = job
            .reply
            .send(Err(PublishError::Unavailable(reason.to_owned())));
    }
}
