//! A webhook or REST order body: the I/O Events envelope's `data.value`, a Commerce
//! webhook's `order`, or the order itself — mapped, and every event written through its
//! schema.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    bridge_fuzz::map_and_write_order(&body);
    for inner in [
        body.get("data").and_then(|d| d.get("value")),
        body.get("order"),
        body.get("data").and_then(|d| d.get("order")),
    ]
    .into_iter()
    .flatten()
    {
        bridge_fuzz::map_and_write_order(inner);
    }
});
