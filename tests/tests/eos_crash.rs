//! The runtime's exactly-once loop on the real broker, through a stateful count (the
//! `count-processor` binary): SIGKILLs at random moments, a lost state disk, a poison
//! record, and instances joining and leaving. Each scenario checks the output topic
//! (read_committed) holds every (SKU, count) exactly once, with no gap.

use std::collections::BTreeSet;
use std::time::Duration;

use bridge_events::samples;
use bridge_runtime::parking::ParkedRecord;
use bridge_testkit::{Isolation, consume_all, free_port, produce, wait_until};
use rand::Rng;
use rdkafka::producer::FutureRecord;

mod eos;

use eos::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_stateful_count_survives_ten_sigkills_exactly_once() -> TestResult {
    // `EOS_KILLS=50 cargo test -p bridge-e2e --test eos_crash ten_sigkills` kills more often.
    let kills: usize = std::env::var("EOS_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(10);
    let mut fixture = Fixture::new("eos-crash").await?;
    let mut processor = fixture.start("0")?;
    let mut rng = rand::rng();
    for _ in 0..kills {
        fixture.produce(300).await?;
        // A random moment while it works through the new input, then an unclean stop.
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        processor.kill()?;
        processor = fixture.start("0")?;
    }
    fixture.produce(300).await?;
    fixture.assert_exactly_once().await?;
    assert!(processor.stop()?, "clean stop after the run");
    fixture.cleanup(&["0"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn state_is_rebuilt_from_the_changelog_when_the_disk_is_lost() -> TestResult {
    let mut fixture = Fixture::new("eos-lost-disk").await?;
    let mut processor = fixture.start("0")?;
    fixture.produce(400).await?;
    fixture.assert_exactly_once().await?;
    assert!(processor.stop()?, "clean stop");
    // The disk is gone: no sled tree, no clean-stop marker.
    std::fs::remove_dir_all(fixture.state_dir("0"))?;
    let mut processor = fixture.start("0")?;
    fixture.produce(400).await?;
    // Counts continue from the restored state (a restart from zero would repeat counts).
    fixture.assert_exactly_once().await?;
    assert!(processor.stop()?);
    fixture.cleanup(&["0"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivered_events_are_skipped_in_the_run_and_after_a_lost_disk() -> TestResult {
    let mut fixture = Fixture::new("eos-redelivered").await?;
    let port = free_port()?;
    let http = [("COUNT_HTTP", format!("127.0.0.1:{port}"))];
    let mut processor = fixture.start_with("0", &http)?;
    fixture.produce(300).await?;
    fixture.assert_exactly_once().await?;
    // Duplicates of committed inputs (remembered in committed buckets), then new inputs.
    fixture.redeliver(0..300).await?;
    fixture.produce(40).await?;
    fixture.assert_exactly_once().await?;
    wait_for_dedupe_hits(port, 300).await?;
    // An unclean stop and a lost disk: what is remembered comes back from the changelog.
    processor.kill()?;
    std::fs::remove_dir_all(fixture.state_dir("0"))?;
    let mut processor = fixture.start_with("0", &http)?;
    fixture.redeliver(0..340).await?;
    fixture.produce(40).await?;
    fixture.assert_exactly_once().await?;
    wait_for_dedupe_hits(port, 340).await?;
    assert!(processor.stop()?);
    fixture.cleanup(&["0"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_record_is_parked_with_its_bytes_and_the_rest_is_processed() -> TestResult {
    let mut fixture = Fixture::new("eos-poison").await?;
    let port = free_port()?;
    let mut processor = fixture.start_with("0", &[("COUNT_HTTP", format!("127.0.0.1:{port}"))])?;
    fixture.produce(100).await?;
    let poison: &[(&str, &[u8])] = &[
        ("SKU-00", b"not avro at all"),
        ("SKU-01", &[0, 0x7F, 0xFF, 0xFF, 0xFF, 1, 2]),
    ];
    produce(&fixture.bootstrap, &fixture.input, poison).await?;
    fixture.produce(100).await?;
    fixture.assert_exactly_once().await?;

    let parked_topic = format!("{}-parked", fixture.group);
    let mut parked = Vec::new();
    wait_until(
        "both poison records parked",
        Duration::from_secs(60),
        || {
            parked = consume_all(
                &fixture.bootstrap,
                &parked_topic,
                Isolation::ReadCommitted,
                Duration::from_secs(10),
            )
            .unwrap_or_default();
            let done = parked.len() >= 2;
            async move { done }
        },
    )
    .await?;
    assert_eq!(parked.len(), 2);
    let records: Vec<ParkedRecord> = parked
        .into_iter()
        .map(|r| ParkedRecord::from_parts(r.key, r.payload, r.headers))
        .collect::<Result<_, _>>()?;
    let mut classes: Vec<&str> = records.iter().map(|r| r.error_class.as_str()).collect();
    classes.sort();
    assert_eq!(classes, ["unknown_magic_byte", "unknown_schema_id"]);
    for record in &records {
        assert_eq!(record.topic, fixture.input);
        assert_eq!(record.service, "count-processor");
        let original = poison
            .iter()
            .find(|(k, _)| Some(k.as_bytes()) == record.key.as_deref())
            .map(|(_, v)| v.to_vec());
        assert_eq!(record.payload, original, "original bytes kept");
    }

    // The operations endpoint counts them by class and says the processor is ready.
    let metrics = metrics(port).await?;
    for line in [
        r#"bridge_parked_total{bridge_service="count-processor",error_code="unknown_magic_byte"} 1"#,
        r#"bridge_parked_total{bridge_service="count-processor",error_code="unknown_schema_id"} 1"#,
        r#"bridge_service_ready{bridge_service="count-processor"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert!(
        metrics.contains("bridge_transactions_committed_total"),
        "{metrics}"
    );
    assert!(processor.stop()?);
    fixture.cleanup(&["0"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn work_moves_between_instances_as_one_joins_and_one_leaves() -> TestResult {
    let mut fixture = Fixture::new("eos-scale").await?;
    let mut first = fixture.start("0")?;
    fixture.produce(500).await?;
    let mut second = fixture.start("1")?;
    fixture.produce(500).await?;
    assert!(first.stop()?, "the first instance leaves cleanly");
    fixture.produce(500).await?;
    fixture.assert_exactly_once().await?;
    assert!(second.stop()?);
    // The instance that joined really took partitions over: it holds state for some.
    let db = sled::open(fixture.state_dir("1").join("sled"))?;
    let trees_with_state = db
        .tree_names()
        .iter()
        .filter_map(|name| db.open_tree(name).ok())
        .filter(|tree| tree.len() > 1)
        .count();
    drop(db);
    assert!(
        trees_with_state >= 1,
        "the second instance processed nothing"
    );
    fixture.cleanup(&["0", "1"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_continues_the_trace_of_its_input() -> TestResult {
    use rdkafka::message::{Header, OwnedHeaders};
    let mut fixture = Fixture::new("eos-trace").await?;
    let mut processor = fixture.start("0")?;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let movement = samples::inventory_movement("SKU-TRACE", "ams", 1);
    let bytes = fixture.codec.encode(&fixture.input, &movement).await?;
    let headers = OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some(parent),
    });
    fixture
        .producer
        .send(
            FutureRecord::to(&fixture.input)
                .key("SKU-TRACE")
                .payload(&bytes)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    fixture.produced += 1;
    fixture.expected.insert("SKU-TRACE".into(), 1);
    fixture.assert_exactly_once().await?;

    let outputs = consume_all(
        &fixture.bootstrap,
        &fixture.output,
        Isolation::ReadCommitted,
        Duration::from_secs(30),
    )?;
    let header = outputs
        .first()
        .and_then(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "traceparent")
                .map(|(_, v)| v.clone())
        })
        .ok_or("output has no traceparent")?;
    let header = String::from_utf8(header)?;
    assert!(
        header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{header}"
    );
    assert!(
        !header.contains("00f067aa0ba902b7"),
        "a new span id: {header}"
    );
    assert!(processor.stop()?);
    fixture.cleanup(&["0"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retryable_failure_is_retried_and_given_up_on_without_loss_or_duplicates() -> TestResult {
    let mut fixture = Fixture::new("eos-retry").await?;
    // Twelve failures outlast one retry sequence (500 ms): the loop gives up, commits what is
    // done, rewinds the partition to the committed offset and pauses it, then reads the record
    // again; then it succeeds.
    let port = free_port()?;
    let mut processor = fixture.start_with(
        "0",
        &[
            ("COUNT_FLAKY_FAILURES", "12".to_owned()),
            ("COUNT_HTTP", format!("127.0.0.1:{port}")),
        ],
    )?;
    fixture.produce(100).await?;
    fixture
        .produce_for(10, |i| {
            if i % 2 == 0 {
                "SKU-FLAKY".to_owned()
            } else {
                format!("SKU-{:02}", i % SKUS)
            }
        })
        .await?;
    fixture.produce(100).await?;
    fixture.assert_exactly_once().await?;
    let metrics = metrics(port).await?;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(
        value(r#"bridge_errors_total{bridge_service="count-processor",error_code="retryable"}"#),
        12.0,
        "{metrics}"
    );
    assert!(
        value(
            r#"bridge_errors_total{bridge_service="count-processor",error_code="retry_exhausted"}"#
        ) >= 1.0,
        "gave up at least once:\n{metrics}"
    );
    // Each give-up rewinds to the committed offset, so the flaky record is read again.
    let reads = bridge_testkit::metric_sum(&metrics, "bridge_records_in_total");
    assert!(
        reads > fixture.produced as f64,
        "{reads} reads for {} inputs",
        fixture.produced
    );
    assert!(processor.stop()?);
    fixture.cleanup(&["0"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_that_keeps_failing_pauses_while_the_others_go_on() -> TestResult {
    let mut fixture = Fixture::new("eos-pause").await?;
    // Sixty failures: about a dozen retry sequences (500 ms each) with 200 ms pauses between.
    let port = free_port()?;
    let mut processor = fixture.start_with(
        "0",
        &[
            ("COUNT_FLAKY_FAILURES", "60".to_owned()),
            ("COUNT_HTTP", format!("127.0.0.1:{port}")),
        ],
    )?;
    fixture.produce_for(1, |_| "SKU-FLAKY".to_owned()).await?;
    fixture.produce(300).await?;
    let stuck = fixture.partition_of["SKU-FLAKY"];
    let others: usize = fixture
        .expected
        .iter()
        .filter(|(sku, _)| fixture.partition_of[*sku] != stuck)
        .map(|(_, n)| *n as usize)
        .sum();
    assert!(others > 0, "every SKU landed on the flaky partition");

    let mut collector = Collector::new(&fixture.bootstrap, &fixture.output)?;
    let runtime = tokio::runtime::Handle::current();
    let on_other_partitions = |seen: &[(String, i64, String)]| {
        seen.iter()
            .filter(|(sku, _, _)| fixture.partition_of[sku] != stuck)
            .count()
    };
    wait_until(
        "the outputs of the other partitions",
        Duration::from_secs(60),
        || {
            collector.drain(&fixture.codec, &runtime);
            let done = on_other_partitions(&collector.seen) >= others;
            async move { done }
        },
    )
    .await?;
    assert!(
        !collector.seen.iter().any(|(sku, _, _)| sku == "SKU-FLAKY"),
        "the flaky record finished before the others: nothing was paused"
    );
    let metrics = metrics(port).await?;
    assert!(
        metrics.contains(r#"error_code="retry_exhausted""#),
        "{metrics}"
    );
    // Then the failures run out and the stuck record is counted, exactly once.
    fixture.assert_exactly_once().await?;
    assert!(processor.stop()?);
    fixture.cleanup(&["0"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_loses_nothing_across_sigkills() -> TestResult {
    let mut fixture = Fixture::new("alo-crash").await?;
    let alo = [("COUNT_GUARANTEE", "at_least_once".to_owned())];
    let mut processor = fixture.start_with("0", &alo)?;
    let mut rng = rand::rng();
    for _ in 0..3 {
        fixture.produce(300).await?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1200))).await;
        processor.kill()?;
        processor = fixture.start_with("0", &alo)?;
    }
    fixture.produce(300).await?;
    // Outputs may repeat, but no count is skipped and the state ends right.
    let mut collector = Collector::new(&fixture.bootstrap, &fixture.output)?;
    let runtime = tokio::runtime::Handle::current();
    let complete = |seen: &[(String, i64, String)]| {
        fixture.expected.iter().all(|(sku, n)| {
            let counts: BTreeSet<i64> = seen
                .iter()
                .filter(|(s, _, _)| s == sku)
                .map(|(_, c, _)| *c)
                .collect();
            (1..=*n).all(|c| counts.contains(&c))
        })
    };
    wait_until(
        "every count at least once",
        Duration::from_secs(240),
        || {
            collector.drain(&fixture.codec, &runtime);
            let done = complete(&collector.seen);
            async move { done }
        },
    )
    .await?;
    assert!(processor.stop()?);
    collector.drain(&fixture.codec, &runtime);
    for (sku, n) in &fixture.expected {
        let highest = collector
            .seen
            .iter()
            .filter(|(s, _, _)| s == sku)
            .map(|(_, c, _)| *c)
            .max();
        assert_eq!(
            highest,
            Some(*n),
            "{sku}: the state counted past its inputs"
        );
    }
    fixture.cleanup(&["0"]);
    Ok(())
}
