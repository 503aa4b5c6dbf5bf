//! The configuration loader's and settings' unit tests.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Example {
    kafka: KafkaConfig,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    commit_interval_ms: u64,
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn environment_overrides_the_file_and_reads_numbers() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "commit_interval_ms = 100\n[kafka]\nbootstrap_servers = \"file:9092\"\n",
    )?;
    let config: Example = load(
        Some(&path),
        env(&[
            ("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", "env:9092"),
            ("BRIDGE__COMMIT_INTERVAL_MS", "250"),
            ("OTHER", "ignored"),
        ]),
    )?;
    assert_eq!(config.kafka.bootstrap_servers, "env:9092");
    assert_eq!(config.commit_interval_ms, 250);
    assert_eq!(config.http.listen.port(), 8080);
    Ok(())
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let result: Result<Example, _> = load(
        None,
        env(&[
            ("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", "x:1"),
            ("BRIDGE__KAFKA__BOOTSTRAP", "y:2"),
        ]),
    );
    let Err(error) = result else {
        panic!("a misspelt key was accepted")
    };
    assert!(
        error.to_string().contains("unknown field `bootstrap`"),
        "{error}"
    );
}

#[test]
fn the_liveness_bound_follows_the_longest_retry_unless_set() {
    let mut settings = ProcessorSettings::default();
    assert_eq!(settings.stall_after().as_secs(), 300);
    settings.retry.give_up_after_ms = 600_000;
    settings.retry.max_delay_ms = 60_000;
    // 600 + 60 + 30 s a step may take, and a minute more.
    assert_eq!(settings.stall_after().as_secs(), 750);
    assert!(settings.validate().is_ok());
    settings.stall_after_seconds = Some(700);
    assert!(settings.validate().is_ok());
    settings.stall_after_seconds = Some(690);
    assert!(settings.validate().is_err());
}

#[test]
fn processor_settings_default_and_validate_by_key() -> Result<(), Box<dyn std::error::Error>> {
    let config: ServiceConfig = load(
        None,
        env(&[
            ("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", "x:1"),
            ("BRIDGE__PROCESSOR__GUARANTEE", "at_least_once"),
        ]),
    )?;
    assert_eq!(config.processor.guarantee, Guarantee::AtLeastOnce);
    assert_eq!(config.processor.commit_interval_ms, 200);
    config.processor.validate()?;
    for (variable, value, key) in [
        (
            "BRIDGE__PROCESSOR__COMMIT_INTERVAL_MS",
            "90000",
            "processor.commit_interval_ms",
        ),
        (
            "BRIDGE__PROCESSOR__STATE_CACHE_MB",
            "1",
            "processor.state_cache_mb",
        ),
        (
            "BRIDGE__PROCESSOR__STALL_AFTER_SECONDS",
            "120",
            "processor.stall_after_seconds",
        ),
    ] {
        let bad: ServiceConfig = load(
            None,
            env(&[
                ("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", "x:1"),
                (variable, value),
            ]),
        )?;
        let Err(error) = bad.processor.validate() else {
            panic!("{key} = {value} was accepted")
        };
        assert!(error.to_string().contains(key), "{error}");
    }
    let unknown: Result<ServiceConfig, _> = load(
        None,
        env(&[
            ("BRIDGE__KAFKA__BOOTSTRAP_SERVERS", "x:1"),
            ("BRIDGE__PROCESSOR__GUARANTEE", "maybe_once"),
        ]),
    );
    assert!(unknown.is_err(), "an unknown guarantee was accepted");
    Ok(())
}

#[test]
fn a_librdkafka_secret_comes_from_its_file() -> Result<(), ConfigError> {
    let dir = tempfile::tempdir().map_err(|e| ConfigError::Invalid {
        message: e.to_string(),
    })?;
    let file = dir.path().join("sasl-password");
    std::fs::write(&file, "scram-pass-from-file\n").map_err(|e| ConfigError::Invalid {
        message: e.to_string(),
    })?;
    let config = KafkaConfig {
        bootstrap_servers: "b:9093".into(),
        librdkafka: Default::default(),
        librdkafka_files: [("sasl.password".to_owned(), file.clone())].into(),
    };
    config.validate()?;
    assert_eq!(
        config.client().get("sasl.password"),
        Some("scram-pass-from-file")
    );
    assert!(!format!("{config:?}").contains("scram-pass-from-file"));
    let missing = KafkaConfig {
        librdkafka_files: [("sasl.password".to_owned(), dir.path().join("nope"))].into(),
        ..config
    };
    let text = missing
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(text.contains("sasl.password"), "{text}");
    Ok(())
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let config = KafkaConfig {
        bootstrap_servers: "b:9092".into(),
        librdkafka: [("sasl.password".to_owned(), "hunter2".to_owned())].into(),
        librdkafka_files: Default::default(),
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("**REDACTED**"));
}
