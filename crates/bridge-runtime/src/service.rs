//! The life of a service process: serve health, reach Kafka, report ready, run until
//! shutdown. Services call [`run`] with their work as a future.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::{HttpConfig, KafkaConfig};
use crate::handler::Handler;
use crate::health::{self, Health};
use crate::shutdown::Shutdown;

/// Why a service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The operations HTTP server could not bind.
    #[error("cannot serve health endpoints on `{listen}`")]
    Http {
        /// The address.
        listen: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A Kafka client could not be created from the configuration (fatal: fix the config).
    #[error("invalid kafka client configuration")]
    KafkaConfig(#[source] rdkafka::error::KafkaError),
    /// A part of the service could not start (a port taken, local state unreadable).
    #[error("cannot start {what}: {reason}")]
    Start {
        /// The part.
        what: String,
        /// Why.
        reason: String,
    },
}

/// How long a stop waits for the work to finish what it is doing (within Kubernetes'
/// default 30 s termination grace).
const STOP_GRACE: Duration = Duration::from_secs(20);

/// The readiness part of the Kafka connection.
const KAFKA: &str = "kafka";

/// Runs a service: health endpoints first, then waits (retrying, not failing) until Kafka
/// answers, marks the service ready and runs `work` until it ends or shutdown is asked.
pub async fn run<F, Fut>(
    name: &'static str,
    kafka: &KafkaConfig,
    http: &HttpConfig,
    shutdown: Shutdown,
    work: F,
) -> Result<(), ServiceError>
where
    F: FnOnce(Arc<Health>) -> Fut,
    Fut: Future<Output = Result<(), ServiceError>>,
{
    let health = Health::new(name);
    health.waiting_for(KAFKA, "connecting to Kafka");
    let addr = health::serve(http.listen, Arc::clone(&health), shutdown.clone())
        .await
        .map_err(|source| ServiceError::Http {
            listen: http.listen,
            source,
        })?;
    tracing::info!(service = name, %addr, "health endpoints listening");

    let probe: BaseConsumer = kafka.client().create().map_err(ServiceError::KafkaConfig)?;
    let probe = Arc::new(probe);
    loop {
        if shutdown.is_requested() {
            return Ok(());
        }
        let p = Arc::clone(&probe);
        let reached =
            tokio::task::spawn_blocking(move || p.fetch_metadata(None, Duration::from_secs(2)))
                .await
                .map(|r| r.map(|m| m.brokers().len()));
        match reached {
            Ok(Ok(brokers)) => {
                tracing::info!(service = name, brokers, "kafka reachable");
                break;
            }
            Ok(Err(e)) => {
                tracing::warn!(service = name, error = %e, "kafka not reachable yet, retrying");
                health.waiting_for(KAFKA, format!("Kafka not reachable yet: {e}"));
            }
            Err(e) => {
                tracing::warn!(service = name, error = %e, "kafka probe task failed, retrying")
            }
        }
        tokio::select! {
            _ = shutdown.clone().wait() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    // The work marks its own parts not ready when it is made, before Kafka's is cleared.
    let work = work(Arc::clone(&health));
    health.ready(KAFKA);
    tokio::pin!(work);
    let result = tokio::select! {
        result = &mut work => result,
        // The work stops on the same signal (the loops finish their step and commit): let
        // it, for a bounded time, so nothing it still runs outlives the async runtime.
        _ = shutdown.wait() => match tokio::time::timeout(STOP_GRACE, &mut work).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(service = name, grace_ms = STOP_GRACE.as_millis() as u64,
                    "the work did not stop in time; leaving it");
                Ok(())
            }
        },
    };
    health.waiting_for(name, "stopping");
    tracing::info!(service = name, "stopped");
    result
}

/// The command line every service takes.
#[derive(clap::Parser)]
#[command(version = crate::VERSION)]
struct Args {
    /// TOML configuration file; `BRIDGE__SECTION__KEY` environment variables override it.
    #[arg(long, env = "BRIDGE_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Load and validate the configuration (file and environment), say so and exit: 0 when
    /// the service would start with it, 1 with the first problem named otherwise.
    #[arg(long)]
    check_config: bool,
}

/// What a service's `main` does first: parse `--config`, start telemetry (keep the guard
/// until the end of `main`: dropping it flushes traces), load the layered configuration and
/// listen for SIGTERM / Ctrl-C.
pub fn bootstrap<C: serde::de::DeserializeOwned + crate::config::Validate>(
    name: &'static str,
) -> Result<(C, Shutdown, crate::telemetry::TelemetryGuard), crate::config::ConfigError> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Args::command().name(name).get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if args.check_config {
        let config: C = crate::config::load(args.config.as_deref(), std::env::vars())?;
        config.validate()?;
        println!("{name} {}: configuration valid", crate::VERSION);
        std::process::exit(0);
    }
    let guard = crate::telemetry::init(name);
    let config: C = crate::config::load(args.config.as_deref(), std::env::vars())?;
    config.validate()?;
    Ok((config, crate::shutdown::on_signals(), guard))
}

/// One processing loop of a service: `handler` over `input_topic` in `group_id`.
pub struct LoopSpec {
    /// Consumer group (also names the changelog `<group>-changelog` and parked topic
    /// `<group>-parked`).
    pub group_id: String,
    /// The input topic.
    pub input_topic: String,
    /// Builds the handler, given the service's metrics to register its own series.
    pub make_handler: Box<dyn FnOnce(Arc<crate::metrics::Metrics>) -> Box<dyn Handler> + Send>,
    /// One of several loops of the same group in this process: see [`LoopSpec::worker`].
    pub worker: Option<usize>,
}

impl LoopSpec {
    /// A loop running the handler `make_handler` builds.
    pub fn new<H, F>(group_id: &str, input_topic: &str, make_handler: F) -> Self
    where
        H: Handler + 'static,
        F: FnOnce(Arc<crate::metrics::Metrics>) -> H + Send + 'static,
    {
        Self {
            group_id: group_id.to_owned(),
            input_topic: input_topic.to_owned(),
            make_handler: Box::new(move |metrics| Box::new(make_handler(metrics))),
            worker: None,
        }
    }

    /// Makes this loop worker `index` of several in this process reading the same group
    /// (Kafka Streams' `num.stream.threads`): the group's partitions are shared among them,
    /// so that many records are in the works at once — how a service whose handler waits
    /// on a remote system bounds its concurrency. Each worker has its own consumer,
    /// transactional producer (`transactional.id` and static member id end in `-<index>`),
    /// state folder (`<state_dir>/<group>/worker-<index>`) and `/readyz` part; a worker
    /// given no partition (more workers than partitions) is ready and idle.
    pub fn worker(mut self, index: usize) -> Self {
        self.worker = Some(index);
        self
    }
}

/// Serves a service whose work is one handler on the processing loop: the health
/// endpoints and Kafka wait of [`run`], then `handler` over `input_topic` in `group_id`
/// (changelog `<group>-changelog`, parked `<group>-parked`, loop settings from
/// `[processor]`) on a blocking thread until `shutdown`. `make_handler` gets the service's
/// metrics to register its own series.
pub async fn run_handler<H, F>(
    name: &'static str,
    config: &crate::config::ServiceConfig,
    group_id: &str,
    input_topic: &str,
    shutdown: Shutdown,
    make_handler: F,
) -> Result<(), ServiceError>
where
    H: Handler + 'static,
    F: FnOnce(Arc<crate::metrics::Metrics>) -> H + Send + 'static,
{
    let spec = LoopSpec::new(group_id, input_topic, make_handler);
    run_handlers(name, config, vec![spec], shutdown).await
}

/// [`run_handler`] for several loops in one process (one health endpoint and metrics
/// registry, one blocking thread per loop); the service stops when any loop stops. With
/// more than one loop each keeps its state in `<state_dir>/<group_id>` (and a worker in
/// `worker-<index>` below that).
pub async fn run_handlers(
    name: &'static str,
    config: &crate::config::ServiceConfig,
    loops: Vec<LoopSpec>,
    shutdown: Shutdown,
) -> Result<(), ServiceError> {
    let several = loops.len() > 1;
    let codec = Arc::new(config.registry.codec().map_err(|e| ServiceError::Start {
        what: "the schema registry client".into(),
        reason: e.to_string(),
    })?);
    let kafka = config.kafka.clone();
    let settings = config.processor.clone();
    let work_shutdown = shutdown.clone();
    let failed = |reason: String| ServiceError::Start {
        what: "processing loop".into(),
        reason,
    };
    run(name, &config.kafka, &config.http, shutdown, |health| {
        // Each loop is not ready from the moment the work is made, before the Kafka
        // part is marked ready: `/readyz` never answers 200 between the two.
        let mut prepared = Vec::with_capacity(loops.len());
        for spec in loops {
            let mut loop_config = crate::processor::ProcessorConfig::from_settings(
                name,
                &spec.group_id,
                &spec.input_topic,
                &settings,
            );
            if several {
                loop_config.state_dir = loop_config.state_dir.join(&spec.group_id);
            }
            let mut kafka = kafka.clone();
            if let Some(worker) = spec.worker {
                loop_config.worker = Some(worker);
                loop_config.state_dir = loop_config.state_dir.join(format!("worker-{worker}"));
                loop_config.instance_id = format!("{}-{worker}", loop_config.instance_id);
                // Static members of one group must differ, or they fence each other.
                if let Some(member) = kafka.librdkafka.get_mut("group.instance.id") {
                    *member = format!("{member}-{worker}");
                }
            }
            // Not ready until the loop has joined its group (it marks itself).
            health.waiting_for(&loop_config.readiness_part(), "starting");
            prepared.push((spec, loop_config, kafka));
        }
        async move {
            let runtime = tokio::runtime::Handle::current();
            // The loops stop on the service's shutdown, or when one of them has ended, or
            // when this work is dropped ([`run`] drops it on shutdown, and the runtime then
            // cancels the forwarding task below yet waits for the loops' threads).
            let (stop_loops, loops_shutdown) = crate::shutdown::channel();
            let stop_loops = Arc::new(stop_loops);
            let _stop_when_dropped = FireOnDrop(Arc::clone(&stop_loops));
            let forward = Arc::clone(&stop_loops);
            tokio::spawn(async move {
                work_shutdown.wait().await;
                forward.fire();
            });
            let mut running = tokio::task::JoinSet::new();
            for (spec, loop_config, kafka) in prepared {
                let handler = (spec.make_handler)(health.metrics());
                let (codec, runtime) = (Arc::clone(&codec), runtime.clone());
                let (health, shutdown) = (Arc::clone(&health), loops_shutdown.clone());
                running.spawn_blocking(move || {
                    crate::processor::run(
                        &kafka,
                        &loop_config,
                        codec,
                        handler,
                        runtime,
                        health,
                        shutdown,
                    )
                });
            }
            // The first loop to end ends the service (an error is its reason).
            let first = running.join_next().await;
            stop_loops.fire();
            let mut result = match first {
                Some(Ok(Ok(()))) | None => Ok(()),
                Some(Ok(Err(e))) => Err(failed(crate::error_chain(&e))),
                Some(Err(e)) => Err(failed(crate::error_chain(&e))),
            };
            while let Some(other) = running.join_next().await {
                if let (Ok(()), Ok(Err(e))) = (&result, other) {
                    result = Err(failed(crate::error_chain(&e)));
                }
            }
            result
        }
    })
    .await
}

/// Fires its trigger when dropped.
struct FireOnDrop(Arc<crate::shutdown::Trigger>);

impl Drop for FireOnDrop {
    fn drop(&mut self) {
        self.0.fire();
    }
}
