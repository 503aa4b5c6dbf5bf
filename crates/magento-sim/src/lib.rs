//! **magento-sim**: a Magento 2 REST look-alike for development and tests.
//!
//! It serves the dev fixture orders and generated ones in their real REST shapes
//! (`GET /rest/V1/orders` with `searchCriteria`, including Magento's page-past-the-end
//! quirk; `GET /rest/V1/orders/{id}`; credit memos; shipments with their MSI source; MSI
//! source items and salable quantity), accepts write-backs (order comments and status, source-item quantities) and
//! records them for tests (`GET /sim/writebacks`), generates orders at a configurable rate
//! (bundles, configurables, discounts, tax, EUR orders, guests, cancellations, refunds),
//! and announces every change as a signed Adobe I/O Events delivery (CloudEvents 1.0) to a
//! webhook, retried like Adobe does.
//!
//! Admin routes: `POST /sim/orders {"count": N}` generates; `POST /sim/orders/{id}/{invoice|
//! ship|cancel|refund|touch|announce}` (`ship?source=wh_east` picks the source; otherwise
//! every third order prefers `wh_east`), `POST /sim/shipments/{id}/announce`; `POST /sim/import/orders` and
//! `/sim/import/creditmemos` take your own REST-shaped payloads (one or a list), serve them
//! as given and announce them; `GET /sim/writebacks`, `GET /sim/stats`, `GET /sim/keys/*.pem`.

pub mod routes;
pub mod search;
pub mod signing;
pub mod store;
pub mod table;
pub mod templates;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};

pub use routes::Shared;
pub use store::{Action, Store};
pub use webhooks::RetrySchedule;

/// How the sim runs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// The integration token REST calls must carry; `None` accepts any.
    pub token: Option<String>,
    /// Where to deliver I/O events; `None` sends none.
    pub webhook_url: Option<String>,
    /// The `recipient_client_id` of the deliveries.
    pub client_id: String,
    /// Retry schedule of failed deliveries.
    pub retry: RetrySchedule,
    /// Orders generated per second in the background (0: only on request).
    pub orders_per_second: f64,
    /// Share of generated orders that later get invoiced, shipped, cancelled or refunded.
    pub lifecycle_share: f64,
    /// Seed of the generator.
    pub seed: u64,
    /// The first generated order, credit memo and shipment number (see
    /// [`Store::number_from`]); 0 keeps the sim's own (1001 on).
    pub first_id: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            webhook_url: None,
            client_id: "magento-erp-bridge".into(),
            retry: RetrySchedule::default(),
            orders_per_second: 0.0,
            lifecycle_share: 0.5,
            seed: 42,
            first_id: 0,
        }
    }
}

/// A running sim.
pub struct Sim {
    /// The bound address.
    pub addr: SocketAddr,
    /// Its data and settings.
    pub shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    generator: Option<tokio::task::JoinHandle<()>>,
}

impl Sim {
    /// Binds, then serves in the background.
    pub async fn start(config: SimConfig) -> anyhow::Result<Self> {
        let signer = Arc::new(tokio::task::spawn_blocking(signing::Signer::generate).await??);
        let deliveries = config.webhook_url.clone().map(|url| {
            webhooks::Deliveries::new(
                url,
                Arc::clone(&signer),
                config.retry,
                config.client_id.clone(),
            )
        });
        let shared = Arc::new(Shared {
            store: Mutex::new({
                let mut store = Store::with_fixtures();
                store.number_from(config.first_id);
                store
            }),
            signer,
            deliveries,
            token: config.token.clone(),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(config.seed)),
        });
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let app = routes::router(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "magento-sim server stopped");
            }
        });
        let generator = (config.orders_per_second > 0.0).then(|| {
            tokio::spawn(generate(
                Arc::clone(&shared),
                config.orders_per_second,
                config.lifecycle_share,
                config.seed,
            ))
        });
        Ok(Self {
            addr,
            shared,
            server,
            generator,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:8090`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and generating.
    pub fn stop(&self) {
        self.server.abort();
        if let Some(generator) = &self.generator {
            generator.abort();
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Places orders at `rate` per second; a `lifecycle` share of them is later invoiced and
/// shipped, cancelled, or invoiced and refunded.
async fn generate(shared: Arc<Shared>, rate: f64, lifecycle: f64, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut ticker = tokio::time::interval(period);
    let mut placed: Vec<u64> = Vec::new();
    loop {
        ticker.tick().await;
        placed.extend(shared.generate(1).into_iter().map(|(id, _)| id));
        if placed.len() > 3 && rng.random_bool(lifecycle.clamp(0.0, 1.0)) {
            let id = placed.remove(rng.random_range(0..placed.len() - 1));
            let steps: &[Action] = match rng.random_range(0..3) {
                0 => &[Action::Invoice, Action::Ship],
                1 => &[Action::Cancel],
                _ => &[Action::Invoice, Action::Refund],
            };
            for step in steps {
                let result = shared.store().act(id, *step);
                if let Ok(changes) = result {
                    shared.announce(changes);
                }
            }
        }
    }
}
