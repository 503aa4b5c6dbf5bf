//! The inventory flow on a real broker and registry: movements → inventory-aggregator (its
//! real binary, SIGKILLed five times) → stock deltas → erp-writer's stock loop (in process)
//! → erp-sim. The ERP must end with exactly the sum of the movements per SKU and
//! warehouse, and no window may be posted twice.
//!
//! The stream is generated (`KILL_MOVEMENTS`, `KILL_SKUS`, `KILL_SEED`, …: see `stock_stream::plan`) or
//! read from a file of your own, one JSON movement per line (see `stock_stream::FileMovement`):
//! `KILL_MOVEMENTS_FILE=$PWD/crates/inventory-aggregator/tests/streams/mixed.jsonl cargo test
//! -p bridge-e2e --test inventory_kill -- --nocapture` (redeliveries, late and future
//! dates, level sets, decimal quantities, a source the deployed mapping lacks). Either way
//! `KILL_WAVES` (5) sets the SIGKILLs, and the expected stock goes through erp-writer's
//! mapping (an unmappable SKU is parked there, a `|` in SKU or source by the aggregator:
//! either is left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use bridge_events::inventory::MovementKind;
use bridge_events::{Event, EventCodec};
use bridge_testkit::{
    Isolation, consume_all, create_topic, free_port, runtime_sections, stack, unique_name,
    wait_until,
};
use erp_sim::{ErpSim, ErpSimConfig};
use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rust_decimal::Decimal;

mod stock_stream;

use stock_stream::*;

const PARTITIONS: i32 = 3;

struct Names {
    movements: String,
    deltas: String,
    results: String,
    orders: String,
    aggregator: String,
    stock: String,
    writer: String,
}

struct Aggregator {
    child: Child,
}

impl Aggregator {
    fn start(config: &Path) -> Result<Self, AnyError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.with_extension("log"))?;
        let child = Command::new(bridge_e2e::binary("inventory-aggregator")?)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(Self { child })
    }

    fn kill(&mut self) -> Result<(), AnyError> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Offsets the group has committed on `topic`, summed over partitions.
fn committed(bootstrap: &str, group: &str, topic: &str) -> Result<i64, AnyError> {
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition(topic, p);
    }
    let committed = probe.committed_offsets(list, Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| e.offset().to_raw())
        .filter(|o| *o > 0)
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn movements_survive_five_aggregator_kills_and_the_erp_gets_exactly_their_sum()
-> Result<(), AnyError> {
    let file = std::env::var("KILL_MOVEMENTS_FILE").ok().map(PathBuf::from);
    stock_flow(file).await
}

/// The hand-written stream in `tests/streams/mixed.jsonl` — every kind of movement, a
/// redelivery, movements an hour and ten minutes late and one dated a day ahead (taken as
/// the allowed lead, 5 s here, ahead of the wall clock), decimal quantities, a source the
/// deployed mapping lacks, a SKU with the key separator and one no item maps to (both
/// parked, the rest goes on) — through the same kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hand_written_stream_of_every_kind_survives_the_kills_too() -> Result<(), AnyError> {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/inventory-aggregator/tests/streams/mixed.jsonl"
    );
    stock_flow(Some(PathBuf::from(file))).await
}

/// Runs the flow over the stream in `file` (one JSON movement per line), or a generated one.
async fn stock_flow(file: Option<PathBuf>) -> Result<(), AnyError> {
    let stack = stack()?;
    let (bootstrap, registry) = (stack.bootstrap.clone(), stack.registry_url.clone());
    let name = unique_name("stockflow");
    let names = Names {
        movements: format!("{name}-movements"),
        deltas: format!("{name}-deltas"),
        results: format!("{name}-results"),
        orders: format!("{name}-orders"),
        aggregator: format!("{name}-aggregator"),
        stock: format!("{name}-stock"),
        writer: format!("{name}-writer"),
    };
    for topic in [
        &names.movements,
        &names.deltas,
        &names.results,
        &names.orders,
    ] {
        create_topic(&bootstrap, topic, PARTITIONS, &[]).await?;
    }
    for group in [&names.aggregator, &names.stock, &names.writer] {
        create_topic(&bootstrap, &format!("{group}-parked"), 1, &[]).await?;
        let compact = [("cleanup.policy", "compact")];
        create_topic(
            &bootstrap,
            &format!("{group}-changelog"),
            PARTITIONS,
            &compact,
        )
        .await?;
    }
    let erp = ErpSim::start(ErpSimConfig::default()).await?;
    let dir = tempfile::tempdir()?;
    let plan = match &file {
        Some(path) => plan_from_file(&name, path)?,
        None => plan(&name),
    };

    // erp-writer in this process: the orders loop idles on an empty topic, the stock loop
    // posts what the aggregator emits. Every source of the stream has a warehouse.
    let mapping = dir.path().join("mapping.toml");
    let base_mapping = include_str!("../../deploy/config/mapping.toml");
    let deployed = erp::mapping::Mapping::parse(base_mapping)?;
    let mut warehouses = String::from("wh_east = \"WH-EAST\"");
    let sources: BTreeSet<&str> = plan
        .iter()
        .map(|p| p.movement.source_code.as_str())
        .collect();
    for source in sources {
        if deployed.warehouse(source).is_err() {
            warehouses.push_str(&format!("\n\"{source}\" = \"{}\"", warehouse_of(source)));
        }
    }
    let mapping_text = base_mapping.replace("wh_east = \"WH-EAST\"", &warehouses);
    std::fs::write(&mapping, &mapping_text)?;
    let erp_mapping = erp::mapping::Mapping::parse(&mapping_text)?;
    let writer_config = dir.path().join("writer.toml");
    std::fs::write(
        &writer_config,
        format!(
            r#"{sections}commit_interval_ms = 200
[writer]
group_id = "{writer}"
orders_topic = "{orders}"
results_topic = "{results}"
mapping_file = "{mapping}"
[writer.customers]
enabled = false
[writer.stock]
group_id = "{stock}"
topic = "{deltas}"
batch_wait_ms = 500
[writer.erp]
base_url = "{erp}"
rate_limit_per_second = 0
"#,
            sections = runtime_sections(
                &bootstrap,
                &registry,
                free_port()?,
                &dir.path().join("writer-state"),
                "0"
            ),
            writer = names.writer,
            orders = names.orders,
            results = names.results,
            mapping = mapping.display(),
            stock = names.stock,
            deltas = names.deltas,
            erp = erp.url(),
        ),
    )?;
    let config: erp_writer::Config =
        bridge_runtime::config::load(Some(&writer_config), std::iter::empty())?;
    let (stop_writer, writer_shutdown) = bridge_runtime::shutdown::channel();
    let writer = tokio::spawn(erp_writer::run(config, writer_shutdown));

    let aggregator_config = dir.path().join("aggregator.toml");
    std::fs::write(
        &aggregator_config,
        format!(
            r#"{sections}commit_interval_ms = 100
max_event_time_ahead_ms = 5000
[kafka.librdkafka]
"session.timeout.ms" = "10000"
[aggregator]
group_id = "{group}"
input_topic = "{movements}"
output_topic = "{deltas}"
window_ms = 2000
grace_ms = 1000
"#,
            sections = runtime_sections(
                &bootstrap,
                &registry,
                free_port()?,
                &dir.path().join("aggregator-state"),
                "0"
            ),
            group = names.aggregator,
            movements = names.movements,
            deltas = names.deltas,
        ),
    )?;
    let mut aggregator = Aggregator::start(&aggregator_config)?;

    // The movements, in waves; after each the aggregator dies part-way through it.
    let codec = EventCodec::new(&registry);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    // What the ERP must end with: each event id once, per (ERP item, warehouse) through
    // the mapping erp-writer uses; a level set moves nothing there (the ERP owns levels).
    let mut expected: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    let mut counted = BTreeSet::new();
    let (mut duplicates, mut late, mut sets, mut parked) = (0, 0, 0, 0);
    for planned in &plan {
        let m = &planned.movement;
        duplicates += planned.sends - 1;
        if !counted.insert(m.envelope.event_id.clone()) {
            duplicates += 1;
            continue;
        }
        late += usize::from(planned.age_ms > 0);
        if m.kind == MovementKind::SourceItemSet {
            sets += 1;
            continue;
        }
        // The aggregator parks a key with its separator, erp-writer an unmappable SKU.
        let keyable = !m.sku.contains('|') && !m.source_code.contains('|');
        match (
            erp_mapping.item_code(&m.sku),
            erp_mapping.warehouse(&m.source_code),
        ) {
            (Ok(item), Ok(warehouse)) if keyable => {
                *expected.entry((item, warehouse)).or_default() += m.quantity
            }
            _ => parked += 1,
        }
    }
    let waves = setting("KILL_WAVES", 5).max(1) as usize;
    eprintln!(
        "{} movements ({duplicates} sent again with their event id, {late} dated back, {sets} \
         level sets, {parked} parked: a `|` in the key or an unmappable SKU), {waves} kills",
        plan.len()
    );
    let per_wave = plan.len().div_ceil(waves).max(1);
    let started = std::time::Instant::now();
    let mut records_sent = 0;
    for (wave, planned_wave) in plan.chunks(per_wave).enumerate() {
        eprintln!("wave {wave} at {:?}", started.elapsed());
        let sent_before = records_sent;
        for planned in planned_wave {
            let mut movement = planned.movement.clone();
            movement.envelope.occurred_at = bridge_events::now_millis() - planned.age_ms;
            let key = format!("{}|{}", movement.sku, movement.source_code);
            let bytes = codec
                .encode_event(&names.movements, &Event::InventoryMovement(movement))
                .await?;
            for _ in 0..planned.sends {
                let mut record = BaseRecord::to(&names.movements).key(&key).payload(&bytes);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            record = back;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
                records_sent += 1;
            }
        }
        producer.flush(Duration::from_secs(60))?;
        // Kill it once it has committed part of this wave, then start it again.
        let target = (sent_before + (records_sent - sent_before) / 3) as i64;
        wait_until(
            "the aggregator to commit part of the wave",
            Duration::from_secs(120),
            || {
                let (b, g, t) = (
                    bootstrap.clone(),
                    names.aggregator.clone(),
                    names.movements.clone(),
                );
                async move { committed(&b, &g, &t).map(|c| c >= target).unwrap_or(false) }
            },
        )
        .await
        .map_err(|e| {
            let log = std::fs::read_to_string(aggregator_config.with_extension("log"));
            let log = log.unwrap_or_default();
            let kept = std::env::temp_dir().join(format!("{name}-aggregator.log"));
            let _ = std::fs::write(&kept, &log);
            let tail: String = log.lines().rev().take(10).collect::<Vec<_>>().join("\n");
            format!(
                "wave {wave}: {e}; aggregator log in {} (last lines, newest first):\n{tail}",
                kept.display()
            )
        })?;
        aggregator.kill()?;
        aggregator = Aggregator::start(&aggregator_config)?;
    }

    // Every window closes (the wall clock does it once the data stops) and is posted.
    let stock_of = |erp: &ErpSim| -> BTreeMap<(String, String), Decimal> {
        let books = erp.shared.books();
        books
            .stock
            .iter()
            .filter(|(_, q)| !q.is_zero())
            .map(|((wh, item), q)| ((item.clone(), wh.clone()), *q))
            .collect()
    };
    expected.retain(|_, q| !q.is_zero());
    eprintln!("waves done at {:?}", started.elapsed());
    let settled = wait_until(
        "the ERP's stock to equal the movements",
        Duration::from_secs(240),
        || {
            let done = stock_of(&erp) == expected;
            async move { done }
        },
    )
    .await;
    let actual = stock_of(&erp);
    // (item, warehouse): expected, in the ERP.
    let differing: Vec<_> = expected
        .iter()
        .filter_map(|(k, q)| {
            let in_erp = actual.get(k).copied();
            (in_erp != Some(*q)).then(|| (k, *q, in_erp.unwrap_or_default()))
        })
        .collect();
    assert!(
        settled.is_ok(),
        "{} of {} keys differ, e.g. (key, expected, in the ERP): {:?}",
        differing.len(),
        expected.len(),
        &differing[..differing.len().min(5)]
    );
    assert_eq!(actual, expected);

    // No window posted twice: each (warehouse, window, item) in at most one adjustment.
    let mut seen = BTreeSet::new();
    for adjustment in erp.shared.books().adjustments.values() {
        let mut parts = adjustment.adjustment.external_ref.rsplitn(2, ':');
        let _chunk = parts.next();
        let window = parts.next().unwrap_or_default().to_owned();
        for line in &adjustment.adjustment.lines {
            assert!(
                seen.insert((window.clone(), line.item_code.clone())),
                "{} posted twice for {window}",
                line.item_code
            );
        }
    }
    // One StockAdjustmentPosted per ERP adjustment, once each (read_committed). The ERP
    // sees a post before the writer's transaction that reports it commits, so wait.
    let in_erp: BTreeSet<String> = erp.shared.books().adjustments.keys().cloned().collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let keys = loop {
        let keys = posted_with_documents(&bootstrap, &names.results, &codec).await?;
        if keys == in_erp || std::time::Instant::now() > deadline {
            break keys;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let missing: Vec<_> = in_erp.difference(&keys).take(5).collect();
    let extra: Vec<_> = keys.difference(&in_erp).take(5).collect();
    assert!(
        keys == in_erp,
        "{} ERP adjustments, {} reported; missing e.g. {missing:?}, extra e.g. {extra:?}",
        in_erp.len(),
        keys.len()
    );
    eprintln!(
        "{} movements, {} keys, {} adjustments, {} aggregator lines",
        plan.len(),
        expected.len(),
        keys.len(),
        seen.len()
    );
    stop_writer.fire();
    writer.await??;
    Ok(())
}

/// The window keys of the committed StockAdjustmentPosted events that name an ERP document
/// (an all-zero window is reported without one: nothing was sent). A key twice fails.
async fn posted_with_documents(
    bootstrap: &str,
    topic: &str,
    codec: &EventCodec,
) -> Result<BTreeSet<String>, AnyError> {
    let posted = consume_all(
        bootstrap,
        topic,
        Isolation::ReadCommitted,
        Duration::from_secs(5),
    )?;
    let mut keys = BTreeSet::new();
    for record in &posted {
        let Some(payload) = &record.payload else {
            continue;
        };
        if let Event::StockAdjustmentPosted(p) = codec.decode(payload).await? {
            assert!(
                keys.insert(p.window_key.clone()),
                "{} posted twice",
                p.window_key
            );
            if p.erp_document_id.is_none() {
                keys.remove(&p.window_key);
            }
        }
    }
    Ok(keys)
}
