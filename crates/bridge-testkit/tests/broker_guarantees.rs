//! Proof, on the real broker through rdkafka, of the guarantees the bridge is built on:
//! transactions and read_committed, atomic offset commits, group partition splitting,
//! and durability across a broker restart.

use std::collections::BTreeSet;
use std::time::Duration;

use bridge_testkit::{
    Isolation, KafkaBroker, consume_all, create_topic, produce, stack, unique_name, wait_until,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(30);

fn transactional_producer(
    bootstrap: &str,
) -> Result<ThreadedProducer<DefaultProducerContext>, rdkafka::error::KafkaError> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", unique_name("txn"))
        .set("transaction.timeout.ms", "30000")
        .create()?;
    producer.init_transactions(TIMEOUT)?;
    Ok(producer)
}

fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    value: &str,
) -> TestResult {
    producer
        .send(BaseRecord::to(topic).key(key).payload(value))
        .map_err(|(e, _)| e)?;
    Ok(())
}

fn payloads(records: &[bridge_testkit::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.payload.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_transaction_is_visible_and_aborted_one_is_not() -> TestResult {
    let stack = stack()?;
    let topic = unique_name("txn-visibility");
    create_topic(&stack.bootstrap, &topic, 1, &[]).await?;
    let producer = transactional_producer(&stack.bootstrap)?;

    producer.begin_transaction()?;
    send(&producer, &topic, "k", "committed-1")?;
    send(&producer, &topic, "k", "committed-2")?;
    producer.commit_transaction(TIMEOUT)?;

    producer.begin_transaction()?;
    send(&producer, &topic, "k", "aborted")?;
    producer.flush(TIMEOUT)?;
    producer.abort_transaction(TIMEOUT)?;

    producer.begin_transaction()?;
    send(&producer, &topic, "k", "committed-3")?;
    producer.commit_transaction(TIMEOUT)?;

    let committed = consume_all(&stack.bootstrap, &topic, Isolation::ReadCommitted, TIMEOUT)?;
    assert_eq!(
        payloads(&committed),
        ["committed-1", "committed-2", "committed-3"]
    );
    // The aborted record really reached the log: an uncommitted reader sees it.
    let everything = consume_all(
        &stack.bootstrap,
        &topic,
        Isolation::ReadUncommitted,
        TIMEOUT,
    )?;
    assert_eq!(
        payloads(&everything),
        ["committed-1", "committed-2", "aborted", "committed-3"]
    );
    Ok(())
}

/// Consumes `count` records from `input` in a group and, inside one transaction, writes
/// one output each plus the input offsets; then commits or aborts.
fn consume_transform_produce(
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    count: usize,
    commit: bool,
) -> TestResult {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[input])?;
    let producer = transactional_producer(bootstrap)?;
    producer.begin_transaction()?;
    let mut next_offsets = TopicPartitionList::new();
    let mut seen = 0;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while seen < count {
        assert!(
            std::time::Instant::now() < deadline,
            "input not consumed in time ({seen}/{count})"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).to_uppercase();
        send(&producer, output, "k", &value)?;
        next_offsets.add_partition_offset(
            message.topic(),
            message.partition(),
            Offset::Offset(message.offset() + 1),
        )?;
        seen += 1;
    }
    let metadata = consumer
        .group_metadata()
        .ok_or("consumer has no group metadata")?;
    producer.send_offsets_to_transaction(&next_offsets, &metadata, TIMEOUT)?;
    if commit {
        producer.commit_transaction(TIMEOUT)?;
    } else {
        producer.flush(TIMEOUT)?;
        producer.abort_transaction(TIMEOUT)?;
    }
    Ok(())
}

fn committed_offset(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> Result<Offset, Box<dyn std::error::Error>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()?;
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, 0);
    let committed = consumer.committed_offsets(wanted, TIMEOUT)?;
    Ok(committed
        .find_partition(topic, 0)
        .map(|p| p.offset())
        .unwrap_or(Offset::Invalid))
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_sent_to_a_transaction_commit_and_abort_with_it() -> TestResult {
    let stack = stack()?;
    let input = unique_name("eos-input");
    let output = unique_name("eos-output");
    create_topic(&stack.bootstrap, &input, 1, &[]).await?;
    create_topic(&stack.bootstrap, &output, 1, &[]).await?;
    produce(
        &stack.bootstrap,
        &input,
        &[("k", b"a"), ("k", b"b"), ("k", b"c")],
    )
    .await?;
    let group = unique_name("eos-group");
    let bootstrap = stack.bootstrap.clone();

    // Aborted: neither the output nor the input offsets are committed.
    let (b, i, o, g) = (
        bootstrap.clone(),
        input.clone(),
        output.clone(),
        group.clone(),
    );
    tokio::task::spawn_blocking(move || {
        consume_transform_produce(&b, &i, &o, &g, 3, false).map_err(|e| e.to_string())
    })
    .await??;
    assert!(consume_all(&bootstrap, &output, Isolation::ReadCommitted, TIMEOUT)?.is_empty());
    assert_eq!(
        committed_offset(&bootstrap, &group, &input)?,
        Offset::Invalid
    );

    // Committed: the outputs and the offset land together.
    let (b, i, o, g) = (
        bootstrap.clone(),
        input.clone(),
        output.clone(),
        group.clone(),
    );
    tokio::task::spawn_blocking(move || {
        consume_transform_produce(&b, &i, &o, &g, 3, true).map_err(|e| e.to_string())
    })
    .await??;
    let outputs = consume_all(&bootstrap, &output, Isolation::ReadCommitted, TIMEOUT)?;
    assert_eq!(payloads(&outputs), ["A", "B", "C"]);
    assert_eq!(
        committed_offset(&bootstrap, &group, &input)?,
        Offset::Offset(3)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_consumers_in_one_group_split_the_partitions() -> TestResult {
    let stack = stack()?;
    let topic = unique_name("group-split");
    create_topic(&stack.bootstrap, &topic, 4, &[]).await?;
    let group = unique_name("split-group");
    let consumer = |name: &str| -> Result<StreamConsumer, rdkafka::error::KafkaError> {
        let c: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &stack.bootstrap)
            .set("group.id", &group)
            .set("client.id", name)
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "6000")
            .create()?;
        c.subscribe(&[&topic])?;
        Ok(c)
    };
    let first = consumer("first")?;
    let second = consumer("second")?;
    let assigned = |c: &StreamConsumer| -> BTreeSet<i32> {
        c.assignment()
            .map(|a| a.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default()
    };
    // Polling drives the group protocol; the stream yields nothing since the topic is empty.
    let drive = |c: &StreamConsumer| {
        let _ = futures::FutureExt::now_or_never(c.recv());
    };
    wait_until(
        "both consumers to hold a disjoint half of 4 partitions",
        Duration::from_secs(60),
        || {
            drive(&first);
            drive(&second);
            let (a, b) = (assigned(&first), assigned(&second));
            let ok =
                !a.is_empty() && !b.is_empty() && a.is_disjoint(&b) && a.union(&b).count() == 4;
            async move { ok }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn data_and_committed_offsets_survive_a_broker_restart() -> TestResult {
    let broker = tokio::task::spawn_blocking(KafkaBroker::start).await??;
    let bootstrap = broker.bootstrap();
    let topic = unique_name("durable");
    create_topic(&bootstrap, &topic, 1, &[]).await?;
    let values: Vec<String> = (0..100).map(|i| format!("record-{i}")).collect();
    let records: Vec<(&str, &[u8])> = values.iter().map(|v| ("k", v.as_bytes())).collect();
    produce(&bootstrap, &topic, &records).await?;

    let group = unique_name("durable-group");
    {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut offsets = TopicPartitionList::new();
        offsets.add_partition_offset(&topic, 0, Offset::Offset(42))?;
        consumer.commit(&offsets, CommitMode::Sync)?;
    }

    // An unclean stop: no chance to flush or close anything.
    broker.kill()?;
    let broker = std::sync::Arc::new(broker);
    let restarting = std::sync::Arc::clone(&broker);
    tokio::task::spawn_blocking(move || restarting.restart()).await??;

    let read = consume_all(&bootstrap, &topic, Isolation::ReadCommitted, TIMEOUT)?;
    assert_eq!(payloads(&read), values);
    assert_eq!(
        wait_for_offset(&bootstrap, &group, &topic).await?,
        Offset::Offset(42)
    );
    Ok(())
}

/// The group coordinator reloads its offsets after a restart; ask until it answers.
async fn wait_for_offset(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> Result<Offset, Box<dyn std::error::Error>> {
    let mut found = Offset::Invalid;
    wait_until(
        "the group coordinator to load committed offsets",
        TIMEOUT,
        || {
            if let Ok(offset) = committed_offset(bootstrap, group, topic) {
                found = offset;
            }
            let loaded = found != Offset::Invalid;
            async move { loaded }
        },
    )
    .await?;
    Ok(found)
}
