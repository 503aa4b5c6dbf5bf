//! A record in: decode, dedupe and handle it through `step`, retry it in place or pause
//! its partition, park what cannot be handled; and resuming paused partitions when due.

use opentelemetry::KeyValue;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::*;
use crate::trace;

impl<H: Handler> Loop<'_, H> {
    pub(super) fn on_message(
        &mut self,
        message: &BorrowedMessage<'_>,
    ) -> Result<(), ProcessorError> {
        let partition = message.partition();
        let offset = message.offset();
        if !self.partitions.contains_key(&partition) || self.paused.contains_key(&partition) {
            // Polled together with the revocation of its partition (its new owner reads it
            // again from the committed offset), or fetched before the partition paused
            // (it is read again on resume).
            return Ok(());
        }
        if let Some(counter) = self.records_in.get(&partition) {
            counter.inc();
        }
        // The parent before the span is entered (entering starts it): a record parked
        // undecodable is in its producer's trace too.
        let span = self.record_span(partition, offset);
        let parent = trace::extract(|name| header(message, name));
        let _ = span.set_parent(parent.clone());
        let _entered = span.enter();
        // With spans exported the span has its own context (a new trace without a parent);
        // without, the producer's trace is the one to log.
        let own;
        let logged = if crate::telemetry::spans_exported() {
            own = span.context();
            &own
        } else {
            &parent
        };
        if let Some(id) = trace::trace_id(logged) {
            span.record("trace_id", id);
        }
        self.begin()?;
        let payload = message.payload().unwrap_or_default();
        let decoded = match self.codec.decode_cached(payload) {
            Some(decoded) => decoded,
            None => self.runtime.block_on(self.codec.decode(payload)),
        };
        let event = match decoded {
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
        span.record("messaging.message.id", event.envelope().event_id.as_str());
        let age_ms = now_millis()
            .saturating_sub(event.envelope().occurred_at)
            .max(0);
        crate::metrics::observe_traced(&self.metrics.event_age_seconds, age_ms as f64 / 1000.0);
        span.record("correlation_id", event.envelope().correlation_id.as_str());
        let input = Inbound {
            event: &event,
            topic: &self.config.input_topic,
            partition,
            offset,
        };
        // Started at the first retryable error: most records never need it (and starting
        // reads the clock).
        let mut retries = None;
        loop {
            let store = self
                .partitions
                .get(&partition)
                .ok_or_else(|| ProcessorError::Handler("partition not restored".into()))?;
            match step::process(
                &mut self.handler,
                store,
                &input,
                now_millis(),
                &self.config.step,
            ) {
                Ok(step) => {
                    if step.outcome == step::Outcome::Duplicate {
                        self.metrics.dedupe_hits.inc();
                        trace::event("deduplicated", Vec::new());
                    }
                    if step.event_time_ahead {
                        self.metrics.event_time_ahead.inc();
                    }
                    self.begin()?;
                    if let Some((class, reason)) = &step.parked {
                        self.park(message, class, reason, attempt(&retries))?;
                    }
                    self.emit(partition, offset, step, Some(&parent))?;
                    self.next.insert(partition, offset + 1);
                    return Ok(());
                }
                Err(HandlerError::Terminal { class, reason }) => {
                    self.begin()?;
                    self.park(message, class, &reason, attempt(&retries))?;
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
                    if self.batch_open {
                        self.commit()?;
                    }
                    let retries = retries.get_or_insert_with(|| self.config.retry.start());
                    match retries.next_delay(retry_after) {
                        Some(delay) => {
                            tracing::warn!(partition, offset, error = %reason, delay_ms = delay.as_millis() as u64, "retrying");
                            trace::event(
                                "retry",
                                vec![
                                    KeyValue::new(
                                        "bridge.retry.attempt",
                                        i64::from(retries.attempts()),
                                    ),
                                    KeyValue::new(
                                        "bridge.retry.delay_ms",
                                        delay.as_millis() as i64,
                                    ),
                                    KeyValue::new("error.type", "retryable"),
                                ],
                            );
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

    /// The span of one input record: an OpenTelemetry messaging `process` span (its parent,
    /// event id and trace id are set once the record is read).
    fn record_span(&self, partition: i32, offset: i64) -> tracing::Span {
        tracing::info_span!(
            "process",
            otel.name = %self.process_name,
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %self.config.input_topic,
            messaging.destination.partition.id = %partition,
            messaging.consumer.group.name = %self.config.group_id,
            messaging.kafka.offset = offset,
            messaging.message.id = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        )
    }

    /// Gives up on the record for now: what is done commits, the partition goes back to its
    /// committed offset (Kafka keeps the record) and pauses for `retry.max_delay` while the
    /// other partitions go on.
    fn retry_later(
        &mut self,
        partition: i32,
        offset: i64,
        reason: &str,
    ) -> Result<(), ProcessorError> {
        tracing::warn!(
            partition,
            offset,
            error = %reason,
            pause_ms = self.config.retry.max_delay.as_millis() as u64,
            "giving up for now; the partition pauses and the record stays in kafka"
        );
        trace::event(
            "partition paused",
            vec![KeyValue::new(
                "bridge.pause_ms",
                self.config.retry.max_delay.as_millis() as i64,
            )],
        );
        let labels = ErrorLabels {
            error_code: "retry_exhausted".into(),
        };
        self.metrics.errors.get_or_create(&labels).inc();
        if self.batch_open {
            self.commit()?;
        }
        self.rewind(partition)?;
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.config.input_topic, partition);
        self.consumer.pause(&list).map_err(kafka("pause"))?;
        if self
            .paused
            .insert(partition, Instant::now() + self.config.retry.max_delay)
            .is_none()
        {
            self.metrics.paused_partitions.inc();
        }
        Ok(())
    }

    /// The offset of the last input of `partition` the open batch (or, without one in the
    /// batch, the last commit) covers; `-1` before any.
    pub(super) fn last_input_offset(&self, partition: i32) -> i64 {
        self.next
            .get(&partition)
            .or(self.committed.get(&partition))
            .map_or(-1, |n| n - 1)
    }

    /// Resumes the paused partitions whose pause is over.
    pub(super) fn resume_due(&mut self) -> Result<(), ProcessorError> {
        let now = Instant::now();
        let due: Vec<i32> = self
            .paused
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| *p)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for partition in &due {
            list.add_partition(&self.config.input_topic, *partition);
            self.paused.remove(partition);
            self.metrics.paused_partitions.dec();
        }
        tracing::info!(partitions = ?due, "resuming paused partitions");
        self.consumer.resume(&list).map_err(kafka("resume"))
    }
}
