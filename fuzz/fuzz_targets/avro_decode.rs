//! The production decode path for every event: a Confluent-framed record whose schema id
//! names one of this build's schemas (cached as a registry would give them), body from the
//! fuzzer. Errors are parked records in the services; a panic or a huge allocation is a
//! finding.
#![no_main]

use std::sync::OnceLock;

use bridge_events::EventCodec;
use bridge_events::event::RECORDS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static CODEC: OnceLock<EventCodec> = OnceLock::new();
    let codec = CODEC.get_or_init(|| {
        let codec = EventCodec::new("http://127.0.0.1:9");
        for (id, (name, _)) in RECORDS.iter().enumerate() {
            if let Ok(schema) = bridge_events::schema::record(name) {
                let _ = codec.keep_writer(id as u32 + 1, &schema.text);
            }
        }
        codec
    });
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let id = u32::from(which) % RECORDS.len() as u32 + 1;
    let mut framed = vec![0];
    framed.extend_from_slice(&id.to_be_bytes());
    framed.extend_from_slice(body);
    if let Some(Ok(event)) = codec.decode_cached(&framed) {
        bridge_fuzz::write_through_schema(&event);
    }
    let _ = codec.decode_cached(data);
});
