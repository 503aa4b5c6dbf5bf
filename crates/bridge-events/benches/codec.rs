//! Encode and decode throughput for a 10-line order and an inventory movement: the bare
//! Avro body, and the whole Confluent codec (header, schema-id caches, resolution) against
//! an in-memory local registry, so the registry's caches — not the network — are measured.
#![allow(missing_docs)]

use apache_avro::writer::datum::GenericDatumWriter;
use bridge_events::codec::read_body;
use bridge_events::{Event, EventCodec, samples, schema};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn cases() -> Vec<(&'static str, Event)> {
    vec![
        (
            "order_10_lines",
            samples::order_placed("000000042", 10).into(),
        ),
        (
            "inventory_movement",
            samples::inventory_movement("SKU-0001", "ams", 2).into(),
        ),
    ]
}

fn avro_body(c: &mut Criterion) {
    let mut group = c.benchmark_group("avro_body");
    group.throughput(Throughput::Elements(1));
    for (name, event) in cases() {
        let Ok(record) = schema::record(event.record_name()) else {
            return;
        };
        let Ok(writer) = GenericDatumWriter::builder(&record.schema).build() else {
            return;
        };
        let encode = || {
            event
                .to_value()
                .and_then(|v| v.resolve(&record.schema))
                .and_then(|v| writer.write_value_to_vec(v))
        };
        let Ok(body) = encode() else { return };
        group.bench_function(format!("encode/{name}"), |b| b.iter(encode));
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                read_body(&record.schema, &record.schema, &body)
                    .map(|v| Event::from_value(event.record_name(), &v))
            })
        });
    }
    group.finish();
}

fn confluent_codec(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        return;
    };
    let registry = runtime.block_on(schema_registry::start(schema_registry::Config::default()));
    let Ok(registry) = registry else { return };
    let codec = EventCodec::new(&registry.url());
    let mut group = c.benchmark_group("confluent_codec");
    group.throughput(Throughput::Elements(1));
    for (name, event) in cases() {
        let Ok(bytes) = runtime.block_on(codec.encode_event("bench.topic.v1", &event)) else {
            return;
        };
        group.bench_function(format!("encode/{name}"), |b| {
            b.to_async(&runtime)
                .iter(|| codec.encode_event("bench.topic.v1", &event))
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.to_async(&runtime).iter(|| codec.decode(&bytes))
        });
    }
    group.finish();
}

criterion_group!(benches, avro_body, confluent_codec);
criterion_main!(benches);
