//! **erp-sim**: an HTTP ERP for development and tests, with fault injection.
//!
//! It keeps books the way an ERP does — items, customers, sales orders unique by external
//! reference (the Magento increment id), credit notes, stock per warehouse and stock
//! adjustments unique by external reference (the window key) — and computes its own
//! totals: the ERP is the financial authority ([`totals`]). It refuses what a real ERP
//! refuses (unknown item, unknown or blocked customer, credit limit, closed period, too
//! large a batch) with a 422 and a code, and a create whose external reference exists
//! answers 409 with the existing document.
//!
//! Faults ([`faults`]): latency, 429 with `Retry-After`, 5xx bursts, timeouts after the
//! work is done, maintenance windows, validation rejections, and the silent ones for the
//! reconciler — a dropped line item, tax rounded the wrong way.
//!
//! API (`/api`): `GET /health`; `GET /customers?external_ref=`, `POST /customers/batch`;
//! `GET /sales-orders?external_ref=` (or `?page=&size=`), `POST /sales-orders`,
//! `GET /sales-orders/{id}`, `POST /sales-orders/{id}/cancel`; `POST /credit-notes`;
//! `GET /shipments?after=&size=` (the shipment journal, for the shop's "shipped" status);
//! `GET /stock?warehouse=&item_code=`; `GET /stock-adjustments?external_ref=`,
//! `POST /stock-adjustments`. Admin (`/admin`, no faults): `GET|PUT /faults`,
//! `POST /faults/burst {"count":N,"status":503}`, `GET|PUT /rules`, `POST /items
//! {"codes":[..]}`, `PATCH /customers/{ref} {"blocked":true,"credit_limit":"100"}`,
//! `POST /stock`, `GET /sales-orders` (all, with which faults changed which order),
//! `POST /sales-orders/{external_ref}/ship {"carrier":..,"tracking_number":..}` (the
//! warehouse shipped it; rule `ship_after_ms` ships every order that long after booking),
//! `PATCH /sales-orders/{external_ref}` (a raw edit, nothing priced again: `status`,
//! `currency`, `customer_ref`, `quantities` per item, any total, `credited` — faults of your
//! own for the reconciler), `DELETE /sales-orders/{external_ref}` (the ERP loses it),
//! `GET /stats`. `PUT /api/sales-orders/{id}` amends an order (priced again; repairs), and
//! `GET /api/sales-order-refs?after=&size=` pages the external references.
//! `POST /api/sales-orders/search {"external_refs": [..]}` finds up to 1,000 orders by
//! external reference in one request (the reconciler's page).

pub mod faults;
pub mod model;
pub mod routes;
pub mod totals;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub use faults::Faults;
pub use model::Rules;
pub use routes::Shared;

/// How the sim starts.
#[derive(Debug, Clone)]
pub struct ErpSimConfig {
    /// Where it listens (port 0: any free one).
    pub listen: SocketAddr,
    /// Faults from the start.
    pub faults: Faults,
    /// Business rules.
    pub rules: Rules,
}

impl Default for ErpSimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            faults: Faults::default(),
            rules: Rules::default(),
        }
    }
}

/// A running sim.
pub struct ErpSim {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its books and faults.
    pub shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl ErpSim {
    /// Starts serving.
    pub async fn start(config: ErpSimConfig) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            books: Mutex::new(model::Books::new(config.rules)),
            faults: Mutex::new(faults::FaultState::new(config.faults)),
            in_flight: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let app = routes::router(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "erp-sim server stopped");
            }
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.server.abort();
    }
}

impl Drop for ErpSim {
    fn drop(&mut self) {
        self.stop();
    }
}
