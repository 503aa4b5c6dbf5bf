//! Service configuration for tests: the runtime's sections every service has.

use std::path::Path;

/// The runtime's sections of a service's TOML configuration: Kafka at `bootstrap`, the
/// registry at `registry`, health on `http_port`, state in `state_dir`, `instance_id`. It
/// ends inside `[processor]`, so lines appended before a new table set more of its keys.
pub fn runtime_sections(
    bootstrap: &str,
    registry: &str,
    http_port: u16,
    state_dir: &Path,
    instance_id: &str,
) -> String {
    format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"
[registry]
url = "{registry}"
[http]
listen = "127.0.0.1:{http_port}"
[processor]
state_dir = "{state}"
instance_id = "{instance_id}"
"#,
        state = state_dir.display(),
    )
}
