//! erp-writer refuses to start on a bad mapping file, naming the key — before it touches
//! Kafka or the ERP (no broker is needed to see it).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const MAPPING: &str = include_str!("../../../deploy/config/mapping.toml");

/// Starts erp-writer with `mapping` and returns its exit success and stderr.
fn start_with(mapping: &str) -> Result<(bool, String), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("mapping.toml");
    std::fs::write(&path, mapping)?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_erp-writer"))
        .env("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env("BRIDGE__HTTP__LISTEN", "127.0.0.1:0")
        .env("BRIDGE__PROCESSOR__STATE_DIR", dir.path().join("state"))
        .env("BRIDGE__WRITER__MAPPING_FILE", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill()?;
            return Err("erp-writer kept running on a bad mapping".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[test]
fn a_field_owned_both_ways_stops_erp_writer_naming_it() -> TestResult {
    let two_way = MAPPING.replace(
        r#""stock_levels", "prices"]"#,
        r#""stock_levels", "prices", "stock_movements"]"#,
    );
    assert_ne!(two_way, MAPPING);
    let (ok, stderr) = start_with(&two_way)?;
    assert!(!ok);
    assert!(
        stderr.contains("`stock_movements` is owned by both"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn an_unknown_mapping_key_stops_erp_writer_naming_it() -> TestResult {
    let typo = MAPPING.replace("[shipping_methods]", "[shiping_methods]");
    let (ok, stderr) = start_with(&typo)?;
    assert!(!ok);
    assert!(stderr.contains("shiping_methods"), "{stderr}");
    Ok(())
}
