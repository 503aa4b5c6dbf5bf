//! The stack round trip: register a schema, produce a Confluent-framed Avro record,
//! read it back with a `read_committed` consumer and decode it through the registry.

use bridge_runtime::config::{KafkaConfig, RegistryConfig};
use std::time::Duration;

use anyhow::{Context, bail};
use apache_avro::types::Value;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

const SCHEMA: &str = include_str!("../schemas/stack_probe.avsc");
const RECORD: &str = "bridge.demo.StackProbe";

pub async fn run(
    kafka: &KafkaConfig,
    registry: &RegistryConfig,
    topic: &str,
) -> anyhow::Result<()> {
    let layout = TopicLayout {
        partitions: 3,
        replication_factor: -1,
        min_insync_replicas: None,
    };
    ensure_topic(kafka, topic, &layout, &[]).await?;
    let settings = registry.access()?.sr_settings()?;
    let registry_url = &registry.url;
    let strategy = SubjectNameStrategy::TopicRecordNameStrategyWithSchema(
        topic.to_owned(),
        SuppliedSchema::new(Some(RECORD.to_owned()), SchemaType::Avro, SCHEMA.to_owned()),
    );
    let probe_id = uuid::Uuid::new_v4().to_string();
    let sent_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_millis() as i64;
    // 12.3400 with scale 4 is the unscaled integer 123400, big-endian two's complement.
    let amount = apache_avro::Decimal::from(123_400_i64.to_be_bytes().to_vec());
    let bytes = AvroEncoder::new(settings.clone())
        .encode(
            vec![
                ("probe_id", Value::String(probe_id.clone())),
                ("sent_at", Value::TimestampMillis(sent_at)),
                (
                    "message",
                    Value::String("hello from magento-erp-bridge".into()),
                ),
                ("amount", Value::Decimal(amount)),
            ],
            strategy,
        )
        .await
        .context("encoding through the schema registry")?;
    // Confluent framing: magic byte 0, then the schema id as a big-endian u32.
    let Some(&[magic, a, b, c, d]) = bytes.get(..5) else {
        bail!("encoded record is shorter than its header")
    };
    let schema_id = u32::from_be_bytes([a, b, c, d]);
    println!("registered subject `{topic}-{RECORD}` at {registry_url}: schema id {schema_id}");

    let producer: FutureProducer = kafka
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()?;
    let delivery = producer
        .send(
            FutureRecord::to(topic).key(&probe_id).payload(&bytes),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .context("producing the probe")?;
    let (partition, offset) = (delivery.partition, delivery.offset);
    println!(
        "produced {} bytes (magic byte {}, schema id {schema_id}) to {topic} partition {partition} offset {offset}",
        bytes.len(),
        magic
    );

    let payload = read_back(kafka, topic, partition, offset)?;
    let decoded = AvroDecoder::new(settings)
        .decode(Some(&payload))
        .await
        .context("decoding through the schema registry")?;
    let Value::Record(fields) = decoded.value else {
        bail!("decoded value is not a record")
    };
    println!(
        "read back and decoded `{}`:",
        decoded.name.map(|n| n.fullname(None)).unwrap_or_default()
    );
    for (name, value) in fields {
        let shown = match value {
            Value::Decimal(d) => {
                let unscaled: Vec<u8> = d.try_into().unwrap_or_default();
                let mut be = [0u8; 16];
                let start = 16usize.saturating_sub(unscaled.len());
                be[start..].copy_from_slice(&unscaled[unscaled.len().saturating_sub(16)..]);
                let n = i128::from_be_bytes(be);
                format!(
                    "{}.{:04} (decimal, scale 4)",
                    n / 10_000,
                    (n % 10_000).abs()
                )
            }
            other => format!("{other:?}"),
        };
        println!("  {name:<9} {shown}");
    }
    Ok(())
}

fn read_back(
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<Vec<u8>> {
    let consumer: BaseConsumer = kafka
        .client()
        .set("group.id", "bridgectl-demo")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message?;
            return Ok(message.payload().unwrap_or_default().to_vec());
        }
    }
    bail!("the probe at {topic}/{partition}@{offset} was not readable within 30 s")
}

/// How `create-topics` lays out a topic.
pub struct TopicLayout {
    /// Partitions.
    pub partitions: i32,
    /// Copies per partition; -1: the cluster's `default.replication.factor` (one copy on
    /// the local single-node broker).
    pub replication_factor: i32,
    /// `min.insync.replicas`; `None`: the cluster's default.
    pub min_insync_replicas: Option<String>,
}

/// Creates `topic` as `layout` says unless it exists (an existing topic is left as it is).
pub async fn ensure_topic(
    kafka: &KafkaConfig,
    topic: &str,
    layout: &TopicLayout,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka.client().create()?;
    let replication = TopicReplication::Fixed(layout.replication_factor);
    let mut new_topic = NewTopic::new(topic, layout.partitions, replication);
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    if let Some(min_isr) = &layout.min_insync_replicas {
        new_topic = new_topic.set("min.insync.replicas", min_isr);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics([&new_topic], &options).await? {
        match result {
            Ok(_) => println!("created topic {topic} ({} partitions)", layout.partitions),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic `{name}` failed: {code}"),
        }
    }
    Ok(())
}

pub fn list_topics(kafka: &KafkaConfig, output: crate::Output) -> anyhow::Result<()> {
    let consumer: BaseConsumer = kafka.client().create()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
    if output == crate::Output::Json {
        let topics: Vec<serde_json::Value> = metadata
            .topics()
            .iter()
            .map(|t| serde_json::json!({ "topic": t.name(), "partitions": t.partitions().len() }))
            .collect();
        println!("{}", serde_json::json!({ "topics": topics }));
        return Ok(());
    }
    for topic in metadata.topics() {
        println!(
            "{:<40} {} partitions",
            topic.name(),
            topic.partitions().len()
        );
    }
    Ok(())
}
