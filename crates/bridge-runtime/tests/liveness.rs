//! `/healthz` is the kubelet's liveness probe: it stays green while a processing loop is
//! idle or working, and turns red within the loop's bound once a step never returns — a
//! stuck loop is restarted, not left holding its partitions. Real broker and registry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bridge_events::{EventCodec, samples, topics};
use bridge_runtime::config::{KafkaConfig, ProcessorSettings};
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound};
use bridge_runtime::health::{self, Health};
use bridge_runtime::processor::{self, ProcessorConfig};
use bridge_testkit::{create_topic, produce, stack, unique_name, wait_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A handler whose step blocks until the test releases it (a call that never answers).
struct Stuck {
    entered: Arc<AtomicBool>,
    released: Arc<(Mutex<bool>, Condvar)>,
}

impl Handler for Stuck {
    fn handle(&mut self, _: &Inbound<'_>, _: &mut Context<'_>) -> Result<(), HandlerError> {
        self.entered.store(true, Ordering::SeqCst);
        let (lock, freed) = &*self.released;
        let mut released = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*released {
            released = freed.wait(released).unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }
}

/// Frees the stuck step when dropped: at the end of the test, and on a failed assertion too,
/// so the loop can stop and the test process end.
struct Release(Arc<(Mutex<bool>, Condvar)>);

impl Drop for Release {
    fn drop(&mut self) {
        let (lock, freed) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        freed.notify_all();
    }
}

/// The seconds of silence a red `/healthz` reports for the loop (`no progress for N s`).
fn quiet_seconds(body: &str) -> Option<u64> {
    let rest = body.split("no progress for ").nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

async fn status(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_step_turns_liveness_red_within_the_bound_and_green_once_it_returns() -> TestResult
{
    let stack = stack()?;
    let group = unique_name("liveness");
    let input = unique_name("liveness-in");
    create_topic(&stack.bootstrap, &input, 1, &[]).await?;
    create_topic(&stack.bootstrap, &format!("{group}-parked"), 1, &[]).await?;
    let compacted = [("cleanup.policy", "compact")];
    create_topic(
        &stack.bootstrap,
        &format!("{group}-changelog"),
        1,
        &compacted,
    )
    .await?;

    let state = tempfile::tempdir()?;
    let settings = ProcessorSettings {
        state_dir: Some(state.path().to_path_buf()),
        ..ProcessorSettings::default()
    };
    let mut config = ProcessorConfig::from_settings("liveness-test", &group, &input, &settings);
    let bound = Duration::from_secs(2);
    config.stall_after = bound;
    let kafka = KafkaConfig {
        bootstrap_servers: stack.bootstrap.clone(),
        librdkafka: BTreeMap::new(),
        librdkafka_files: BTreeMap::new(),
    };
    let health = Health::new("liveness-test");
    let (stop, shutdown) = bridge_runtime::shutdown::channel();
    let addr = health::serve(
        "127.0.0.1:0".parse()?,
        Arc::clone(&health),
        shutdown.clone(),
    )
    .await?;
    let (healthz, readyz) = (
        format!("http://{addr}/healthz"),
        format!("http://{addr}/readyz"),
    );
    let entered = Arc::new(AtomicBool::new(false));
    let released = Arc::new((Mutex::new(false), Condvar::new()));
    let handler = Stuck {
        entered: Arc::clone(&entered),
        released: Arc::clone(&released),
    };
    let release = Release(Arc::clone(&released));
    let codec = Arc::new(EventCodec::new(&stack.registry_url));
    let runtime = tokio::runtime::Handle::current();
    let loop_shutdown = shutdown.clone();
    let running = tokio::task::spawn_blocking(move || {
        processor::run(
            &kafka,
            &config,
            codec,
            handler,
            runtime,
            health,
            loop_shutdown,
        )
    });

    wait_until("the loop to be ready", Duration::from_secs(30), || async {
        status(&readyz).await.is_some_and(|(code, _)| code == 200)
    })
    .await?;
    // Idle for longer than the bound: polling is progress, liveness stays green.
    tokio::time::sleep(bound * 2).await;
    let (code, body) = status(&healthz).await.ok_or("no answer on /healthz")?;
    assert_eq!(
        (code, body.as_str()),
        (200, "ok\n"),
        "an idle loop is alive"
    );

    let codec = EventCodec::new(&stack.registry_url);
    let movement = samples::inventory_movement("SKU-STUCK", "wh_east", 0);
    let bytes = codec.encode(topics::INVENTORY_MOVEMENTS, &movement).await?;
    produce(&stack.bootstrap, &input, &[("SKU-STUCK", &bytes)]).await?;
    wait_until("the step to start", Duration::from_secs(30), || async {
        entered.load(Ordering::SeqCst)
    })
    .await?;
    let stuck_at = Instant::now();
    wait_until(
        "/healthz to answer 503 for the stuck loop",
        bound + Duration::from_secs(3),
        || async { status(&healthz).await.is_some_and(|(code, _)| code == 503) },
    )
    .await?;
    let (_, red) = status(&healthz).await.ok_or("no answer on /healthz")?;
    // The loop's last beat was at the start of the round that entered the step, so red
    // may come a little sooner after the step began than the bound, never sooner after
    // the beat: the silence it reports is at least the bound.
    assert!(
        quiet_seconds(&red).is_some_and(|quiet| quiet >= bound.as_secs()),
        "red before the bound ({} ms after the step began): {red}",
        stuck_at.elapsed().as_millis()
    );
    assert!(
        red.starts_with("stalled\n") && red.contains(&group) && red.contains("bound 2 s"),
        "the answer names the loop and its bound: {red}"
    );

    // The step returns: the loop goes on and liveness is green again.
    drop(release);
    wait_until(
        "/healthz to answer 200 again",
        Duration::from_secs(10),
        || async { status(&healthz).await.is_some_and(|(code, _)| code == 200) },
    )
    .await?;
    stop.fire();
    running.await??;
    Ok(())
}
