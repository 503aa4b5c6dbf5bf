//! Configuration and mapping text as operators write it: a service's TOML through the
//! loader's deserialization and validation (order-ingest, whose webhook section is the
//! largest), and erp-writer's `mapping.toml`.
#![no_main]

use bridge_runtime::config::Validate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = toml::from_str::<order_ingest::Config>(text) {
        let _ = config.validate();
    }
    let _ = erp::mapping::Mapping::parse(text);
});
