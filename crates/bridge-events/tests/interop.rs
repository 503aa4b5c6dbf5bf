//! Any schema-registry consumer can read our topics, and we read theirs: Python's
//! fastavro, fetching schemas from the registry over HTTP, decodes what the codec wrote
//! to a real topic, and encodes (with minimal decimal bytes) what the codec then decodes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bridge_events::{Event, EventCodec, samples, topics};
use bridge_testkit::{Isolation, consume_all, create_topic, produce, stack, unique_name};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The Python with fastavro: `BRIDGE_TEST_PYTHON` (`make test` points it at a venv made from
/// `tests/interop/requirements.txt`), else `python3`.
fn python(args: &[&str], input: &str) -> Result<String, Box<dyn std::error::Error>> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/confluent_avro.py");
    let interpreter = std::env::var("BRIDGE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&interpreter)
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {interpreter}: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(input.as_bytes())?;
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'fastavro'") {
        return Err(format!(
            "fastavro is missing in {interpreter}: `make test` makes a venv with it, or set \
             BRIDGE_TEST_PYTHON to a Python that has it (pip install -r tests/interop/requirements.txt)"
        )
        .into());
    }
    if !output.status.success() {
        return Err(format!("python failed: {stderr}").into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fastavro_reads_an_order_from_a_real_topic() -> TestResult {
    let stack = stack()?;
    let topic = format!("{}-{}", topics::ORDERS, unique_name("interop"));
    create_topic(&stack.bootstrap, &topic, 1, &[]).await?;
    let codec = EventCodec::new(&stack.registry_url);
    let order = samples::order_placed("000000777", 10);
    let bytes = codec.encode(&topic, &order).await?;
    produce(
        &stack.bootstrap,
        &topic,
        &[(order.order_ref.as_str(), &bytes)],
    )
    .await?;
    let read = consume_all(
        &stack.bootstrap,
        &topic,
        Isolation::ReadCommitted,
        Duration::from_secs(30),
    )?;
    let payload = read
        .first()
        .and_then(|r| r.payload.clone())
        .ok_or("nothing on the topic")?;

    let out = python(&["decode", &stack.registry_url], &(hex(&payload) + "\n"))?;
    let decoded: serde_json::Value = serde_json::from_str(out.trim())?;
    let record = &decoded["record"];
    assert_eq!(record["order_ref"], "000000777");
    assert_eq!(record["envelope"]["event_id"], order.envelope.event_id);
    assert_eq!(record["totals"]["grand_total"], "464.5580");
    assert_eq!(record["lines"][9]["unit_price"], "19.9900");
    assert_eq!(record["lines"].as_array().map(Vec::len), Some(10));
    assert_eq!(record["shipping_method"], "flatrate_flatrate");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_codec_reads_what_fastavro_wrote() -> TestResult {
    let stack = stack()?;
    let topic = format!("{}-{}", topics::ORDERS, unique_name("interop-in"));
    let codec = EventCodec::new(&stack.registry_url);
    let order = samples::order_placed("000000778", 2);
    let ours = codec.encode(&topic, &order).await?;

    // fastavro decodes our record, we change two amounts, fastavro encodes it again with the
    // registry's schema — writing decimals with minimal two's complement bytes, as Java does.
    let decoded = python(&["decode", &stack.registry_url], &(hex(&ours) + "\n"))?;
    let mut as_json: serde_json::Value = serde_json::from_str(decoded.trim())?;
    let mut record = as_json["record"].take();
    record["totals"]["grand_total"] = "0.0128".into();
    record["lines"][0]["unit_price"] = "-5.5".into();
    let subject = EventCodec::subject(&topic, "bridge.events.OrderPlaced");
    let out = python(
        &["encode", &stack.registry_url, &subject],
        &record.to_string(),
    )?;
    let bytes: Vec<u8> = (0..out.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&out.trim()[i..i + 2], 16))
        .collect::<Result<_, _>>()?;

    let Event::OrderPlaced(read) = codec.decode(&bytes).await? else {
        panic!("wrong type")
    };
    assert_eq!(read.totals.grand_total.to_string(), "0.0128");
    assert_eq!(read.lines[0].unit_price.to_string(), "-5.5000");
    assert_eq!(read.order_ref, "000000778");
    assert_eq!(read.envelope.event_id, order.envelope.event_id);
    Ok(())
}
