//! The codec against the real broker and schema registry: every event type through the
//! Confluent wire format with TopicRecordNameStrategy subjects, each failure classified,
//! and the registry agreeing with the evolution gate.

use std::time::Duration;

use bridge_events::codec::split_header;
use bridge_events::event::RECORDS;
use bridge_events::evolution::{history_dir, releases, short_name};
use bridge_events::{CodecError, Event, EventCodec, samples, schema, topics};
use bridge_testkit::{Isolation, consume_all, create_topic, stack, unique_name};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn topic_of(record: &str) -> &'static str {
    topics::LAYOUT
        .iter()
        .find(|(_, records)| records.contains(&record))
        .map(|(topic, _)| *topic)
        .unwrap_or("unassigned")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_crosses_a_real_topic_and_decodes_to_itself() -> TestResult {
    let stack = stack()?;
    let codec = EventCodec::new(&stack.registry_url);
    let suffix = unique_name("t");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap)
        .set("enable.idempotence", "true")
        .create()?;
    let events = samples::one_of_each();
    let mut topics_used = Vec::new();
    for event in &events {
        let topic = format!("{}-{suffix}", topic_of(event.record_name()));
        if !topics_used.contains(&topic) {
            create_topic(&stack.bootstrap, &topic, 1, &[]).await?;
            topics_used.push(topic.clone());
        }
        let bytes = codec.encode_event(&topic, event).await?;
        let key = event.envelope().correlation_id.clone();
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&bytes),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    let mut decoded = Vec::new();
    for topic in &topics_used {
        for record in consume_all(
            &stack.bootstrap,
            topic,
            Isolation::ReadCommitted,
            Duration::from_secs(30),
        )? {
            let payload = record.payload.ok_or("record without value")?;
            assert_eq!(payload.first(), Some(&0), "magic byte");
            decoded.push(codec.decode(&payload).await?);
        }
    }
    for event in &events {
        assert!(
            decoded.contains(event),
            "{} did not come back",
            event.record_name()
        );
    }
    assert_eq!(decoded.len(), events.len());

    // TopicRecordNameStrategy: one subject per record type on the shared orders topic.
    let subjects: Vec<String> = reqwest::get(format!("{}/subjects", stack.registry_url))
        .await?
        .json()
        .await?;
    let orders = format!("{}-{suffix}", topics::ORDERS);
    for record in [
        "OrderPlaced",
        "OrderUpdated",
        "OrderCancelled",
        "CreditMemoCreated",
    ] {
        let subject = EventCodec::subject(&orders, &format!("bridge.events.{record}"));
        assert!(subjects.contains(&subject), "{subject} not in {subjects:?}");
    }
    Ok(())
}

/// After the first event of a subject (registered through the converter, via an Avro
/// `Value`), the codec writes straight from the types and reads straight into them; both
/// directions must give exactly what the `Value` path gives.
#[tokio::test(flavor = "multi_thread")]
async fn the_direct_path_writes_and_reads_exactly_what_the_value_path_does() -> TestResult {
    let stack = stack()?;
    let codec = EventCodec::new(&stack.registry_url);
    let topic = unique_name("direct");
    let mut events = samples::one_of_each();
    let mut big = samples::order_placed("000000777", 7);
    // Negative, to cover sign-extended decimal bytes (the codec does not judge meaning).
    big.totals.discount_amount = -big.totals.discount_amount - rust_decimal::Decimal::new(12345, 2);
    events.push(Event::OrderPlaced(big));
    let mut registered = std::collections::BTreeSet::new();
    for event in &events {
        if registered.insert(event.record_name()) {
            assert!(
                codec.encode_event_cached(&topic, event).is_none(),
                "{}: nothing registered yet",
                event.record_name()
            );
        }
        let first = codec.encode_event(&topic, event).await?;
        let direct = codec.encode_event(&topic, event).await?;
        assert_eq!(first, direct, "{}", event.record_name());
        let cached = codec.encode_event_cached(&topic, event).transpose()?;
        assert_eq!(cached.as_ref(), Some(&direct), "{}", event.record_name());
        // A codec that has not read this schema id yet has to ask the registry.
        let fresh = EventCodec::new(&stack.registry_url);
        assert!(fresh.decode_cached(&direct).is_none());
        let (_, body) = split_header(&direct)?;
        let ours = schema::record(event.record_name())?;
        let through_value = bridge_events::codec::read_body(&ours.schema, &ours.schema, body)?;
        let through_value = Event::from_value(event.record_name(), &through_value)?;
        assert_eq!(&through_value, event, "{}", event.record_name());
        assert_eq!(
            &fresh.decode(&direct).await?,
            event,
            "{}",
            event.record_name()
        );
        let cached = fresh.decode_cached(&direct).transpose()?;
        assert_eq!(cached.as_ref(), Some(event), "{}", event.record_name());
    }
    let movement = samples::inventory_movement("SKU-1", "default", -3);
    let first = codec.encode(&topic, &movement).await?;
    assert_eq!(first, codec.encode(&topic, &movement).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_decode_failure_has_its_own_error() -> TestResult {
    let stack = stack()?;
    let codec = EventCodec::new(&stack.registry_url);
    let topic = unique_name("errors");
    let bytes = codec
        .encode(&topic, &samples::inventory_movement("SKU-1", "ams", 3))
        .await?;
    let (id, _) = split_header(&bytes)?;

    let mut wrong_magic = bytes.clone();
    wrong_magic[0] = 7;
    assert!(matches!(
        codec.decode(&wrong_magic).await,
        Err(CodecError::UnknownMagicByte { found: 7 })
    ));

    let mut unknown_id = bytes.clone();
    unknown_id[1..5].copy_from_slice(&999_999u32.to_be_bytes());
    let err = codec.decode(&unknown_id).await;
    assert!(
        matches!(&err, Err(CodecError::UnknownSchemaId { id: 999_999, .. })),
        "{err:?}"
    );
    assert!(err.is_err_and(|e| !e.is_retryable()));

    let mut truncated_body = bytes.clone();
    truncated_body.truncate(bytes.len() - 3);
    let err = codec.decode(&truncated_body).await;
    assert!(
        matches!(&err, Err(CodecError::BodyMismatch { id: found, .. }) if *found == id),
        "{err:?}"
    );

    let mut trailing = bytes.clone();
    trailing.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(
        codec.decode(&trailing).await,
        Err(CodecError::BodyMismatch { .. })
    ));

    // Nothing listens on port 9 of loopback: the registry is unreachable, so retry later.
    let offline = EventCodec::new("http://127.0.0.1:9");
    let err = offline.decode(&bytes).await;
    assert!(
        matches!(&err, Err(CodecError::RegistryUnavailable { .. })),
        "{err:?}"
    );
    assert!(err.is_err_and(|e| e.is_retryable()));
    let err = offline
        .encode(&topic, &samples::inventory_movement("SKU-1", "ams", 3))
        .await;
    assert!(err.is_err_and(|e| e.is_retryable()));
    Ok(())
}

async fn register(
    registry: &str,
    subject: &str,
    schema: &str,
) -> Result<reqwest::StatusCode, reqwest::Error> {
    let response = reqwest::Client::new()
        .post(format!("{registry}/subjects/{subject}/versions"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(json!({ "schema": schema }).to_string())
        .send()
        .await?;
    Ok(response.status())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_agrees_with_the_evolution_gate() -> TestResult {
    let stack = stack()?;
    for (record, _) in RECORDS {
        let subject = unique_name(&format!("gate-{}", short_name(record)));
        for (version, text) in releases(&history_dir(), short_name(record))? {
            assert!(
                register(&stack.registry_url, &subject, &text)
                    .await?
                    .is_success(),
                "{record} v{version}"
            );
        }
        let current = schema::record(record)?;
        assert!(
            register(&stack.registry_url, &subject, &current.text)
                .await?
                .is_success(),
            "{record} current"
        );

        // A next version with a field added with a default: both accept it.
        let mut json: serde_json::Value = serde_json::from_str(&current.text)?;
        let fields = json["fields"].as_array_mut().ok_or("no fields")?;
        fields.push(json!({"name": "added_later", "type": ["null", "string"], "default": null}));
        assert!(
            register(&stack.registry_url, &subject, &json.to_string())
                .await?
                .is_success()
        );

        // Changing a type: the registry refuses with 409, as the gate does.
        let fields = json["fields"].as_array_mut().ok_or("no fields")?;
        if let Some(last) = fields.last_mut() {
            last["type"] = json!("long");
            last.as_object_mut().map(|o| o.remove("default"));
        }
        assert_eq!(
            register(&stack.registry_url, &subject, &json.to_string())
                .await?
                .as_u16(),
            409,
            "{record}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn data_written_with_an_older_schema_reads_into_todays_type() -> TestResult {
    let stack = stack()?;
    let topic = unique_name("older-writer");
    let subject = EventCodec::subject(&topic, "bridge.events.InventoryMovement");
    // An older InventoryMovement without `order_ref` (today's has it, with default null).
    let current = schema::record("bridge.events.InventoryMovement")?;
    let mut older: serde_json::Value = serde_json::from_str(&current.text)?;
    let fields = older["fields"].as_array_mut().ok_or("no fields")?;
    fields.retain(|f| f["name"] != "order_ref");
    assert!(
        register(&stack.registry_url, &subject, &older.to_string())
            .await?
            .is_success()
    );

    let sample = samples::inventory_movement("SKU-9", "ams", 4);
    let older_schema = apache_avro::Schema::parse_str(&older.to_string())?;
    let mut value = apache_avro::to_value(&sample)?;
    if let apache_avro::types::Value::Record(fields) = &mut value {
        fields.retain(|(name, _)| name != "order_ref");
    }
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(&older_schema)
        .build()?
        .write_value_to_vec(value.resolve(&older_schema)?)?;
    let versions: Vec<u32> = reqwest::get(format!(
        "{}/subjects/{subject}/versions",
        stack.registry_url
    ))
    .await?
    .json()
    .await?;
    let latest: serde_json::Value = reqwest::get(format!(
        "{}/subjects/{subject}/versions/{}",
        stack.registry_url, versions[0]
    ))
    .await?
    .json()
    .await?;
    let id = latest["id"].as_u64().ok_or("no id")? as u32;
    let mut framed = vec![0];
    framed.extend_from_slice(&id.to_be_bytes());
    framed.extend_from_slice(&body);

    let Event::InventoryMovement(read) =
        EventCodec::new(&stack.registry_url).decode(&framed).await?
    else {
        panic!("wrong type")
    };
    assert_eq!(read.order_ref, None);
    assert_eq!(read.quantity, sample.quantity);
    assert_eq!(read.envelope, sample.envelope);
    Ok(())
}

/// With automatic registration off (production: a release step registers), a subject the
/// registry does not have is refused — a terminal error naming the release command, never
/// a registration — and once registered the codec looks the id up and writes the same
/// bytes as a registering codec.
#[tokio::test(flavor = "multi_thread")]
async fn without_auto_registration_ids_are_looked_up_never_registered() -> TestResult {
    let stack = stack()?;
    let topic = unique_name("lookup");
    let event = samples::one_of_each()
        .into_iter()
        .next()
        .ok_or("no sample event")?;
    let looking = EventCodec::connect(&bridge_events::RegistryAccess {
        url: stack.registry_url.clone(),
        auto_register: false,
        ..Default::default()
    })?;
    let refused = looking.encode_event(&topic, &event).await;
    match &refused {
        Err(e @ CodecError::RegistryRefused { reason, .. }) => {
            assert!(!e.is_retryable());
            assert!(reason.contains("bridgectl schemas release"), "{reason}");
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    let subject = EventCodec::subject(&topic, event.record_name());
    let subjects: Vec<String> = reqwest::get(format!("{}/subjects", stack.registry_url))
        .await?
        .json()
        .await?;
    assert!(!subjects.contains(&subject), "nothing was registered");

    let registering = EventCodec::new(&stack.registry_url);
    let registered = registering.encode_event(&topic, &event).await?;
    let looked_up = looking.encode_event(&topic, &event).await?;
    assert_eq!(looked_up, registered);
    assert_eq!(looking.decode(&looked_up).await?, event);
    Ok(())
}
