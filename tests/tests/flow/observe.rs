//! What a test reads of a running flow: decoded events, parked records, consumer lag.

use super::*;

impl Flow {
    /// Decoded events on `topic` (read_committed).
    pub async fn events(&self, topic: &str) -> Result<Vec<Event>, AnyError> {
        let codec = EventCodec::new(&self.registry);
        let records = consume_all(
            &self.bootstrap,
            topic,
            Isolation::ReadCommitted,
            Duration::from_secs(30),
        )?;
        let mut events = Vec::with_capacity(records.len());
        for record in records {
            events.push(
                codec
                    .decode(record.payload.as_deref().unwrap_or_default())
                    .await?,
            );
        }
        Ok(events)
    }

    /// The writer's parked records.
    pub fn parked(&self) -> Result<Vec<ParkedRecord>, AnyError> {
        let records = consume_all(
            &self.bootstrap,
            &format!("{}-parked", self.group),
            Isolation::ReadCommitted,
            Duration::from_secs(30),
        )?;
        let mut parked = Vec::new();
        for r in records {
            parked.push(ParkedRecord::from_parts(r.key, r.payload, r.headers)?);
        }
        Ok(parked)
    }

    /// Records the writer's group has not consumed yet (read_committed from its committed
    /// offsets to the end; transaction markers are not records, so watermark arithmetic
    /// would count them).
    pub fn lag(&self) -> Result<usize, AnyError> {
        let probe: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .create()?;
        let metadata = probe.fetch_metadata(Some(&self.orders), Duration::from_secs(10))?;
        let mut list = TopicPartitionList::new();
        for topic in metadata.topics() {
            for p in topic.partitions() {
                list.add_partition(&self.orders, p.id());
            }
        }
        let committed = probe.committed_offsets(list, Duration::from_secs(10))?;
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", unique_name("lag-reader"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        for element in committed.elements() {
            let (_, high) = reader.fetch_watermarks(
                &self.orders,
                element.partition(),
                Duration::from_secs(10),
            )?;
            let from = element.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0);
            if from < high {
                assignment.add_partition_offset(
                    &self.orders,
                    element.partition(),
                    rdkafka::Offset::Offset(from),
                )?;
                ends.insert(element.partition(), high);
            }
        }
        if ends.is_empty() {
            return Ok(0);
        }
        reader.assign(&assignment)?;
        let mut unread = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Some(message) = reader.poll(Duration::from_millis(200)) {
                message?;
                unread += 1;
            }
            let position = reader.position()?;
            let done = position.elements().iter().all(|e| {
                let end = ends.get(&e.partition()).copied().unwrap_or(0);
                e.offset().to_raw().is_some_and(|o| o >= end)
            });
            if done {
                break;
            }
        }
        Ok(unread)
    }
}
