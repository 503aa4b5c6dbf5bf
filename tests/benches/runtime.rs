//! Runtime throughput on the real local broker: pass-through and a stateful
//! per-SKU count, exactly once vs at least once, against a raw rdkafka consume of the same
//! topic as the ceiling, and a raw copy (consume, produce the same bytes, commit) as the
//! ceiling of any loop that writes one output per input. Each loop runs in this process with its own group and topics;
//! its time runs from its first record to the moment every input offset is committed.
//! The same count in Kafka Streams (`bench/kstreams`, `BENCH_KSTREAMS_CLASSPATH`) and the
//! aggregation in Quix Streams (`BENCH_QUIX_PYTHON`) run on the same input beside them.
//!
//! Each loop (and Quix Streams) runs once to warm up, then `BENCH_RUNS` times (default 3),
//! and prints the median with the range: on a small shared machine one run varies by ±15 %, and the ratios the
//! targets name are taken between medians.
//!
//! `BENCH_RECORDS` (default 200000), `BENCH_PARTITIONS` (4), `BENCH_SKUS` (1000),
//! `BENCH_COMMIT_MS` (200), `BENCH_THREADS` (1: loops per run sharing the partitions, as
//! worker loops of one service do); `BENCH_ONLY=count-eos` runs one loop,
//! `BENCH_ONLY=aggregator,quix` two. Uses `BRIDGE_TEST_BOOTSTRAP` / `BRIDGE_TEST_REGISTRY` when set,
//! else starts a broker and registry of its own.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bridge_e2e::{CountPerSku, PassThrough};
use bridge_events::{Event, EventCodec, samples};
use bridge_runtime::config::{Guarantee, KafkaConfig};
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound, Timer};
use bridge_runtime::health::Health;
use bridge_runtime::processor::{FETCH_QUEUE_BACKOFF_MS, ProcessorConfig, run};
use bridge_testkit::{create_topic, stack, unique_name};
use inventory_aggregator::handler::Aggregator;
use inventory_aggregator::metrics::AggregatorMetrics;
use inventory_aggregator::window::Windows;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

mod ceilings;

#[global_allocator]
static ALLOCATOR: bridge_runtime::Allocator = bridge_runtime::Allocator {};

/// MSI sources the movements cycle through (the aggregator keys by SKU and source).
const SOURCES: [&str; 3] = ["default", "wh_east", "wh_west"];

/// The runs of one measurement: median and range (NaN: not run).
#[derive(Debug, Clone, Copy)]
struct Rate {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

impl Rate {
    const NOT_RUN: Rate = Rate {
        median: f64::NAN,
        min: f64::NAN,
        max: f64::NAN,
        runs: 0,
    };
}

/// `once` run `runs` times after one warm-up run that is not counted (the first run after
/// the input is produced was 20 % slower: the broker's JIT and page cache warm up); a NaN
/// from it (not selected) ends the measurement as not run.
fn measure(runs: usize, mut once: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<Rate> {
    let warm_up = once()?;
    if warm_up.is_nan() {
        return Ok(Rate::NOT_RUN);
    }
    eprintln!("    warm-up: {warm_up:.0} records/s");
    let mut rates = Vec::new();
    for _ in 0..runs.max(1) {
        let rate = once()?;
        eprintln!("    run {}: {rate:.0} records/s", rates.len() + 1);
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    Ok(Rate {
        median: rates[rates.len() / 2],
        min: rates[0],
        max: rates[rates.len() - 1],
        runs: rates.len(),
    })
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Notes when the wrapped handler sees its first record.
struct Timed<H> {
    inner: H,
    first: Arc<OnceLock<Instant>>,
}

impl<H: Handler> Handler for Timed<H> {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        self.first.get_or_init(Instant::now);
        self.inner.handle(input, ctx)
    }

    fn on_timer(&mut self, timer: &Timer, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        self.inner.on_timer(timer, ctx)
    }
}

struct Bench {
    bootstrap: String,
    registry: String,
    input: String,
    records: usize,
    partitions: i32,
    commit: Duration,
    runtime: tokio::runtime::Runtime,
    /// How far event time moves per record (0: every movement in one window).
    event_step_ms: i64,
    /// Loops per run, sharing the partitions (`BENCH_THREADS`).
    threads: usize,
    /// The largest resident set seen during the last `processor` run, in bytes.
    peak_rss: std::cell::Cell<u64>,
    /// The bytes of the local state folder at the end of the last `processor` run (what a
    /// state volume holds).
    state_bytes: std::cell::Cell<u64>,
}

/// The bytes of the files under `dir`.
fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// This process's resident set, in bytes (Linux; 0 elsewhere).
fn rss() -> u64 {
    bridge_runtime::process_metrics::memory("self", "VmRSS")
}

impl Bench {
    fn produce_input(&self, skus: usize) -> anyhow::Result<()> {
        let codec = EventCodec::new(&self.registry);
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .create()?;
        for i in 0..self.records {
            let sku = format!("SKU-{:05}", i % skus);
            let source = SOURCES[(i / skus) % SOURCES.len()];
            let mut movement = samples::inventory_movement(&sku, source, 1);
            movement.envelope.event_id = format!("bench-{i}");
            movement.envelope.occurred_at += (i as i64) * self.event_step_ms;
            let bytes = self
                .runtime
                .block_on(codec.encode_event(&self.input, &Event::InventoryMovement(movement)))?;
            // Keyed as the aggregator's state is (Quix Streams windows per message key).
            let key = format!("{sku}|{source}");
            let record = BaseRecord::to(&self.input).key(&key).payload(&bytes);
            send_when_queued(&producer, record)?;
        }
        producer.flush(Duration::from_secs(60))?;
        Ok(())
    }

    /// Records per second of the runtime loop with `handler` under `guarantee`.
    fn processor<H: Handler + 'static>(
        &self,
        name: &str,
        guarantee: Guarantee,
        make: impl Fn(String) -> H,
    ) -> anyhow::Result<f64> {
        if !selected(name) {
            return Ok(f64::NAN);
        }
        let group = unique_name(&format!("bench-{name}"));
        let output = format!("{group}-out");
        let changelog = format!("{group}-changelog");
        let parked = format!("{group}-parked");
        self.runtime.block_on(async {
            create_topic(&self.bootstrap, &output, self.partitions, &[]).await?;
            create_topic(
                &self.bootstrap,
                &changelog,
                self.partitions,
                &[("cleanup.policy", "compact")],
            )
            .await?;
            create_topic(&self.bootstrap, &parked, 1, &[]).await
        })?;
        let state = tempfile::tempdir()?;
        let threads = self.threads.max(1);
        let config = ProcessorConfig {
            service: "bench",
            group_id: group.clone(),
            input_topic: self.input.clone(),
            changelog_topic: changelog,
            parked_topic: parked,
            state_dir: state.path().to_owned(),
            state_cache_bytes: 64 << 20,
            write_behind: false,
            instance_id: "0".into(),
            guarantee,
            commit_interval: self.commit,
            step: Default::default(),
            retry: Default::default(),
            stall_after: Duration::from_secs(300),
            worker: None,
        };
        let kafka = KafkaConfig {
            bootstrap_servers: self.bootstrap.clone(),
            librdkafka: Default::default(),
            librdkafka_files: Default::default(),
        };
        self.peak_rss.set(0);
        let first = Arc::new(OnceLock::new());
        let codec = Arc::new(EventCodec::new(&self.registry));
        let (trigger, shutdown) = bridge_runtime::shutdown::channel();
        let health = Health::new("bench");
        let mut workers = Vec::with_capacity(threads);
        for index in 0..threads {
            let handler = Timed {
                inner: make(output.clone()),
                first: Arc::clone(&first),
            };
            let mut config = config.clone();
            if threads > 1 {
                config.worker = Some(index);
                config.instance_id = index.to_string();
                config.state_dir = state.path().join(format!("worker-{index}"));
            }
            let (kafka, codec, health) = (kafka.clone(), Arc::clone(&codec), Arc::clone(&health));
            let (handle, shutdown) = (self.runtime.handle().clone(), shutdown.clone());
            workers.push(std::thread::spawn(move || {
                run(&kafka, &config, codec, handler, handle, health, shutdown)
            }));
        }
        let watcher: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", &group)
            .create()?;
        let mut list = TopicPartitionList::new();
        for p in 0..self.partitions {
            list.add_partition(&self.input, p);
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        let finished = loop {
            if workers.iter().any(|w| w.is_finished()) {
                break Err(anyhow!("the loop stopped early"));
            }
            if Instant::now() > deadline {
                break Err(anyhow!("not all offsets committed in 600 s"));
            }
            let committed: i64 = watcher
                .committed_offsets(list.clone(), Duration::from_secs(10))?
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum();
            self.peak_rss.set(self.peak_rss.get().max(rss()));
            if committed as usize >= self.records {
                break Ok(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        trigger.fire();
        let stopped: Vec<_> = workers
            .into_iter()
            .map(std::thread::JoinHandle::join)
            .collect();
        let finished = finished?;
        for worker in stopped {
            worker
                .map_err(|_| anyhow!("the loop panicked"))?
                .context("the loop failed")?;
        }
        let started = first.get().copied().context("no record was handled")?;
        self.state_bytes.set(folder_bytes(state.path()));
        Ok(self.records as f64 / (finished - started).as_secs_f64())
    }
}

/// Sends `record` with `producer`, serving its queue while it is full; any other error
/// ends the run.
fn send_when_queued<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, K, P>,
) -> anyhow::Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Whether the loop `name` runs: `BENCH_ONLY` unset, or one of its comma-separated parts is
/// in the name (`BENCH_ONLY=aggregator,quix`).
fn selected(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|part| name.contains(part)))
}

/// The setting in `variable` (a peer's interpreter or classpath) when the peer `name` is to
/// run: set, and selected by `BENCH_ONLY`.
fn peer_setting(variable: &str, name: &str) -> Option<String> {
    let value = std::env::var(variable).ok()?;
    selected(name).then_some(value)
}

/// Runs `command` (a peer benchmark) and reads `records_per_s` from the last JSON line it
/// prints.
fn records_per_s(what: &str, mut command: std::process::Command) -> anyhow::Result<f64> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        return Err(anyhow!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .and_then(|summary| summary["records_per_s"].as_f64())
        .with_context(|| format!("no records_per_s from {what} in: {stdout}"))
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a filter naming another benchmark skips this one.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with("--") && !"runtime".contains(&a))
    {
        return Ok(());
    }
    let stack = stack()?;
    let records = setting("BENCH_RECORDS", 200_000);
    let partitions = setting("BENCH_PARTITIONS", 4) as i32;
    let skus = setting("BENCH_SKUS", 1000);
    let bench = Bench {
        bootstrap: stack.bootstrap.clone(),
        registry: stack.registry_url.clone(),
        input: unique_name("bench-input"),
        records,
        partitions,
        commit: Duration::from_millis(setting("BENCH_COMMIT_MS", 200) as u64),
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
        // Event time moves 10 ms per record: a 60 s window holds 6,000 movements.
        event_step_ms: 10,
        threads: setting("BENCH_THREADS", 1),
        peak_rss: Default::default(),
        state_bytes: Default::default(),
    };
    bench.runtime.block_on(create_topic(
        &bench.bootstrap,
        &bench.input,
        partitions,
        &[],
    ))?;
    let started = Instant::now();
    bench.produce_input(skus)?;
    println!(
        "runtime bench: {records} InventoryMovement records, {partitions} partitions, {skus} SKUs, \
         commit every {} ms (input produced in {:.1} s)",
        bench.commit.as_millis(),
        started.elapsed().as_secs_f64()
    );
    let runs = setting("BENCH_RUNS", 3);
    let raw = measure(runs, || bench.raw_consume())?;
    let copy_alo = measure(runs, || bench.raw_copy("copy-alo", false))?;
    let copy_eos = measure(runs, || bench.raw_copy("copy-eos", true))?;
    let out = |output: String| PassThrough { output };
    let count = |output: String| CountPerSku {
        output,
        flaky_failures_left: 0,
    };
    let pass_alo = measure(runs, || {
        bench.processor("pass-alo", Guarantee::AtLeastOnce, out)
    })?;
    let pass_eos = measure(runs, || {
        bench.processor("pass-eos", Guarantee::ExactlyOnce, out)
    })?;
    let count_alo = measure(runs, || {
        bench.processor("count-alo", Guarantee::AtLeastOnce, count)
    })?;
    let count_eos = measure(runs, || {
        bench.processor("count-eos", Guarantee::ExactlyOnce, count)
    })?;
    let aggregator_eos = measure(runs, || {
        bench.processor("aggregator-eos", Guarantee::ExactlyOnce, aggregator)
    })?;
    let quix = match peer_setting("BENCH_QUIX_PYTHON", "quix") {
        Some(python) => Some(measure(runs, || bench.quix(&python))?),
        None => None,
    };
    let kstreams = match peer_setting("BENCH_KSTREAMS_CLASSPATH", "kstreams") {
        Some(classpath) => Some((
            measure(runs, || bench.kstreams(&classpath, "at_least_once"))?,
            measure(runs, || bench.kstreams(&classpath, "exactly_once_v2"))?,
        )),
        None => None,
    };
    let row = |name: &str, rate: Rate, note: String| {
        if rate.median.is_nan() {
            println!("  {name:<34} {:>10} (not selected by BENCH_ONLY)", "-");
        } else {
            println!(
                "  {name:<34} {:>10.0} records/s  ({:.0}-{:.0}, {} runs)   {note}",
                rate.median, rate.min, rate.max, rate.runs
            );
        }
    };
    let ratio = |a: Rate, b: Rate| a.median / b.median;
    println!();
    row("raw rdkafka consume (ceiling)", raw, String::new());
    row(
        "raw copy, at least once",
        copy_alo,
        format!(
            "{:.2}x raw consume; consume, produce the same bytes, flush, commit",
            ratio(copy_alo, raw)
        ),
    );
    row(
        "raw copy, exactly once",
        copy_eos,
        format!(
            "{:.2}x raw consume; the same in transactions: the ceiling of an exactly-once \
             loop with one output per input",
            ratio(copy_eos, raw)
        ),
    );
    row("pass-through, at least once", pass_alo, String::new());
    row(
        "pass-through, exactly once",
        pass_eos,
        format!(
            "{:.2}x at-least-once (target >= 0.90)",
            ratio(pass_eos, pass_alo)
        ),
    );
    row("stateful count, at least once", count_alo, String::new());
    row(
        "stateful count, exactly once",
        count_eos,
        format!(
            "{:.2}x at-least-once (target >= 0.90), {:.2}x raw consume (target >= 0.50), \
             {:.2}x raw copy",
            ratio(count_eos, count_alo),
            ratio(count_eos, raw),
            ratio(count_eos, copy_eos)
        ),
    );
    row(
        "inventory-aggregator, exactly once",
        aggregator_eos,
        format!(
            "{:.2}x raw consume (target >= 0.50), {:.2}x raw copy; 60 s windows per SKU and \
             source",
            ratio(aggregator_eos, raw),
            ratio(aggregator_eos, copy_eos)
        ),
    );
    match quix {
        Some(quix) => row(
            "Quix Streams aggregation, EOS",
            quix,
            format!(
                "the same windows and commit interval in Python; inventory-aggregator is {:.1}x \
                 (target >= 10)",
                ratio(aggregator_eos, quix)
            ),
        ),
        None => println!("  (Quix Streams not run: set BENCH_QUIX_PYTHON, as `make bench` does)"),
    }
    match kstreams {
        Some((alo, eos)) => {
            row("Kafka Streams count, at least once", alo, String::new());
            row(
                "Kafka Streams count, exactly once",
                eos,
                format!(
                    "{:.2}x at-least-once, {:.2}x raw consume; the runtime's count is {:.1}x \
                     (same input, commit interval, one output per input)",
                    ratio(eos, alo),
                    ratio(eos, raw),
                    ratio(count_eos, eos)
                ),
            );
        }
        None => println!(
            "  (Kafka Streams not run: set BENCH_KSTREAMS_CLASSPATH, as `make bench` does)"
        ),
    }
    match setting("BENCH_STATE_KEYS", 1_000_000) {
        0 => {}
        keys => state_size(&bench, keys)?,
    }
    Ok(())
}

/// The aggregator with `keys` distinct (SKU, source) keys open in one window: its rate, and
/// the process's peak resident set against the one before the run.
fn state_size(bench: &Bench, keys: usize) -> anyhow::Result<()> {
    let big = Bench {
        bootstrap: bench.bootstrap.clone(),
        registry: bench.registry.clone(),
        input: unique_name("bench-keys"),
        records: keys,
        partitions: bench.partitions,
        commit: bench.commit,
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
        event_step_ms: 0,
        threads: bench.threads,
        peak_rss: Default::default(),
        state_bytes: Default::default(),
    };
    big.runtime.block_on(create_topic(
        &big.bootstrap,
        &big.input,
        big.partitions,
        &[],
    ))?;
    big.produce_input(keys)?;
    let before = rss();
    let rate = big.processor("aggregator-keys", Guarantee::ExactlyOnce, aggregator)?;
    if rate.is_nan() {
        return Ok(());
    }
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "  {:<34} {rate:>10.0} records/s   peak RSS {:.0} MiB ({:.0} MiB before the run), \
         state on disk {:.0} MiB, {keys} keys in one window",
        "inventory-aggregator, state size",
        mib(big.peak_rss.get()),
        mib(before),
        mib(big.state_bytes.get())
    );
    Ok(())
}

/// inventory-aggregator's handler as the service builds it: 60 s windows, 10 s grace.
fn aggregator(output: String) -> Aggregator {
    let windows = Windows {
        size: 60_000,
        grace: 10_000,
    };
    let metrics = AggregatorMetrics::unregistered();
    Aggregator::new(
        windows,
        Duration::from_secs(8 * 24 * 3600),
        &output,
        metrics,
    )
}
