//! Opening, committing and aborting a batch of records, exactly once (one Kafka
//! transaction with the input offsets) or at least once (flush, then commit offsets).

use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::{Loop, ProcessorError, TIMEOUT, kafka};
use crate::config::Guarantee;
use crate::handler::Handler;

/// How long [`Loop::drain`] sleeps between looks at the delivery reports.
const DRAIN_NAP: Duration = Duration::from_micros(200);

impl<H: Handler> Loop<'_, H> {
    /// Opens a batch (a transaction, exactly once) unless one is open.
    pub(super) fn begin(&mut self) -> Result<(), ProcessorError> {
        if !self.batch_open {
            if self.config.guarantee == Guarantee::ExactlyOnce {
                self.producer
                    .begin_transaction()
                    .map_err(kafka("begin transaction"))?;
            }
            self.batch_open = true;
            self.batch_started = Instant::now();
        }
        Ok(())
    }

    /// Commits the batch: the changelog of its state writes (the last value per key), its
    /// outputs and the input offsets. Its state writes go to the state writer first, so
    /// sled applies them while Kafka commits (the loop reads no state meanwhile); without
    /// write-behind the loop then waits until they are in sled. A batch Kafka refuses is
    /// aborted and its records read again; its writes may be in sled by then, so the state
    /// of every partition is rebuilt from the changelog.
    pub(super) fn commit(&mut self) -> Result<(), ProcessorError> {
        let started = Instant::now();
        for store in self.partitions.values_mut() {
            store.seal();
        }
        self.send_changelogs()?;
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in &self.next {
            offsets
                .add_partition_offset(&self.config.input_topic, *partition, Offset::Offset(*next))
                .map_err(kafka("offsets"))?;
        }
        for (partition, store) in self.partitions.iter_mut() {
            let next = self.next.get(partition).or(self.committed.get(partition));
            store.commit(next.map_or(-1, |n| n - 1))?;
        }
        let committed = match self.config.guarantee {
            Guarantee::ExactlyOnce => self.commit_transaction(&offsets)?,
            Guarantee::AtLeastOnce => self.commit_flushed(&offsets),
        };
        if !committed {
            self.abort_and_rewind()?;
            return self.rebuild_state();
        }
        self.batch_open = false;
        for (partition, next) in std::mem::take(&mut self.next) {
            self.committed.insert(partition, next);
        }
        if !self.config.write_behind {
            self.behind.drain()?;
        }
        self.metrics.commits.inc();
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "batch committed"
        );
        Ok(())
    }

    /// After a refused commit whose writes went to sled: every partition's state again from
    /// its changelog, up to the committed offsets (rare: a broker refusing a transaction).
    fn rebuild_state(&mut self) -> Result<(), ProcessorError> {
        self.behind.drain()?;
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        tracing::warn!(
            ?partitions,
            "the commit was refused after its state writes went to sled: rebuilding the state from the changelog"
        );
        for partition in partitions {
            self.restore_from(partition, false)?;
        }
        Ok(())
    }

    /// `Ok(false)`: the transaction must be aborted.
    fn commit_transaction(&self, offsets: &TopicPartitionList) -> Result<bool, ProcessorError> {
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| ProcessorError::Handler("consumer has no group metadata".into()))?;
        // Delivery first, served on this thread: librdkafka's own wait inside the commit
        // relies on someone polling for delivery reports.
        if let Err(error) = self.drain() {
            tracing::warn!(%error, "outputs not delivered; the transaction aborts");
            return Ok(false);
        }
        let committed = retrying("sending offsets", || {
            self.producer
                .send_offsets_to_transaction(offsets, &metadata, TIMEOUT)
        })
        .and_then(|()| retrying("committing", || self.producer.commit_transaction(TIMEOUT)));
        match committed {
            Ok(()) => Ok(true),
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                tracing::warn!(error = %e, "transaction must abort");
                Ok(false)
            }
            Err(e) => Err(kafka("commit transaction")(e)),
        }
    }

    /// Waits until every output is acknowledged, then commits the offsets. `false`: some
    /// output was not delivered or the commit failed; the batch is read again.
    fn commit_flushed(&mut self, offsets: &TopicPartitionList) -> bool {
        if let Err(error) = self.drain() {
            tracing::warn!(%error, "outputs not flushed; the batch is read again");
            return false;
        }
        let failed = self.producer.context().failed();
        if failed > self.delivery_failures {
            tracing::warn!(
                records = failed - self.delivery_failures,
                "outputs not delivered; the batch is read again"
            );
            self.delivery_failures = failed;
            return false;
        }
        if offsets.count() > 0
            && let Err(error) = self.consumer.commit(offsets, CommitMode::Sync)
        {
            tracing::warn!(%error, "offsets not committed; the batch is read again");
            return false;
        }
        true
    }

    /// Waits until every record produced is acknowledged (or failed), serving the delivery
    /// reports on this thread. Not `Producer::flush`: rust-rdkafka's `BaseProducer::poll`
    /// always waits out its timeout (a flush costs at least 100 ms), and the last
    /// millisecond of any timeout it busy-polls (librdkafka takes whole milliseconds), so
    /// waiting in `poll` burnt a core against the broker. Serve what is there, then sleep.
    fn drain(&self) -> Result<(), KafkaError> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            self.producer.poll(Duration::ZERO);
            if self.producer.in_flight_count() == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(KafkaError::Flush(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ));
            }
            std::thread::sleep(DRAIN_NAP);
        }
    }

    /// Ends the open batch without committing and drops its pending state: exactly once the
    /// transaction is aborted; at least once its outputs are already out. Used alone when
    /// the loop stops; see [`Loop::abort_and_rewind`].
    pub(super) fn abort(&mut self) -> Result<(), ProcessorError> {
        if self.batch_open {
            if self.config.guarantee == Guarantee::ExactlyOnce {
                // librdkafka's abort waits for the delivery reports someone polls: this
                // thread. Undelivered records are aborted anyway, so a failed drain is fine.
                if let Err(error) = self.drain() {
                    tracing::debug!(%error, "records still in flight at abort");
                }
                retrying("aborting", || self.producer.abort_transaction(TIMEOUT))
                    .map_err(kafka("abort transaction"))?;
            }
            self.batch_open = false;
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
    pub(super) fn abort_and_rewind(&mut self) -> Result<(), ProcessorError> {
        self.abort()?;
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        for partition in partitions {
            self.rewind(partition)?;
        }
        Ok(())
    }

    /// Moves `partition` back to its committed offset.
    pub(super) fn rewind(&mut self, partition: i32) -> Result<(), ProcessorError> {
        self.at_end.remove(&partition);
        let offset = self
            .committed
            .get(&partition)
            .map_or(Offset::Beginning, |o| Offset::Offset(*o));
        self.consumer
            .seek(&self.config.input_topic, partition, offset, TIMEOUT)
            .map_err(kafka("rewind to the committed offset"))
    }
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
