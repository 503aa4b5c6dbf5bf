//! Customers found-or-created in the ERP ahead of their orders, in batches, as a runtime
//! [`Handler`] over the orders topic in a consumer group of its own.
//!
//! Each `OrderPlaced` whose customer this loop has not ensured yet adds the customer to
//! the pending batch; the first one sets a wall-clock timer `batch_wait` later, and the
//! timer sends the batch in chunks of `batch_limit` (one `ensure_customers` request each).
//! Ensured customers are remembered for `remember` (then ensured again: a customer merged
//! or deleted in the ERP comes back within that time without any order failing).
//!
//! The order loops of the process never wait for this one: they skip their own
//! find-or-create for a customer it has ensured ([`Ensured`], shared in memory) and do it
//! themselves, one customer, for any other (a store at a trickle books each order before a
//! batch would go; a backlog after downtime is where batches save calls). Finding or
//! creating by reference is idempotent, so a batch sent again after a crash, or a customer
//! ensured by both loops, creates nothing twice.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bridge_events::Event;
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound, Timer, TimerKind};

use crate::calls::ErpCaller;
use crate::metrics::WriterMetrics;
use bridge_runtime::json_state::decode;
use erp::connector::{CustomerDoc, ErpConnector};
use erp::mapping::Mapping;

const PENDING: &str = "pending/";
const KNOWN: &str = "known/";
const COLLECTING: &[u8] = b"collecting";
const SEND: &str = "send";

/// Customers the batch loop has ensured, shared with the order loops of the process;
/// the oldest are forgotten past a bound (it is a cache: forgetting costs one call).
#[derive(Debug, Clone, Default)]
pub struct Ensured(Arc<Mutex<(HashSet<String>, VecDeque<String>)>>);

impl Ensured {
    /// At most this many customers are remembered.
    const BOUND: usize = 200_000;

    /// Whether `customer_ref` was ensured.
    pub fn contains(&self, customer_ref: &str) -> bool {
        let guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        guard.0.contains(customer_ref)
    }

    fn insert(&self, customer_ref: &str) {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if set.insert(customer_ref.to_owned()) {
            order.push_back(customer_ref.to_owned());
            while order.len() > Self::BOUND {
                if let Some(oldest) = order.pop_front() {
                    set.remove(&oldest);
                }
            }
        }
    }
}

/// How customers are batched.
#[derive(Debug, Clone, Copy)]
pub struct CustomerBatching {
    /// How long customers are collected before a batch is sent.
    pub wait: Duration,
    /// Most customers per request (the ERP's limit: erp-sim takes 200).
    pub limit: usize,
    /// How long an ensured customer is not ensured again.
    pub remember: Duration,
}

/// The handler.
pub struct CustomerSync<C: ErpConnector> {
    connector: Arc<C>,
    mapping: Arc<Mapping>,
    caller: ErpCaller,
    batching: CustomerBatching,
    metrics: WriterMetrics,
    ensured: Ensured,
}

impl<C: ErpConnector> CustomerSync<C> {
    /// A customer sync calling the ERP through `caller`.
    pub fn new(
        connector: Arc<C>,
        mapping: Arc<Mapping>,
        caller: ErpCaller,
        batching: CustomerBatching,
        metrics: WriterMetrics,
        ensured: Ensured,
    ) -> Self {
        Self {
            connector,
            mapping,
            caller,
            batching,
            metrics,
            ensured,
        }
    }

    fn schedule_send(&self, ctx: &mut Context<'_>, after: Duration) {
        ctx.put(COLLECTING, &[], None);
        let at = ctx.now().saturating_add(after.as_millis() as i64);
        ctx.schedule(TimerKind::WallClock, at, SEND);
    }

    /// Sends up to one request's worth of pending customers; more wait for the next timer.
    fn send(&mut self, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        ctx.delete(COLLECTING);
        // One entry past the request: whether more wait, without reading them all.
        let mut page = ctx.scan_page(PENDING.as_bytes(), None, self.batching.limit + 1)?;
        let more = page.len() > self.batching.limit;
        page.truncate(self.batching.limit);
        let chunk: Vec<(Vec<u8>, CustomerDoc)> = page
            .into_iter()
            .map(|(key, raw)| Ok((key.clone(), decode(&key, &raw)?)))
            .collect::<Result<_, HandlerError>>()?;
        if chunk.is_empty() {
            return Ok(());
        }
        let docs: Vec<CustomerDoc> = chunk.iter().map(|(_, doc)| doc.clone()).collect();
        let connector = Arc::clone(&self.connector);
        // Retryable trouble returns here with nothing kept: the timer fires again at the
        // next punctuation.
        match self
            .caller
            .call("ensure_customers", connector.ensure_customers(&docs))?
        {
            Ok(()) => {
                self.metrics.customers_ensured.inc_by(docs.len() as u64);
                for (key, doc) in &chunk {
                    ctx.delete(key);
                    self.ensured.insert(&doc.external_ref);
                    let known = format!("{KNOWN}{}", doc.external_ref);
                    ctx.put(known.as_bytes(), &[], Some(self.batching.remember));
                }
            }
            Err(refusal) => {
                // The order loops ensure these customers one by one and refuse their
                // orders with the ERP's reason if it refuses again.
                tracing::warn!(
                    customers = docs.len(),
                    code = %refusal.code,
                    reason = %refusal.reason,
                    "the ERP refused a customer batch; their orders will ensure them one by one"
                );
                for (key, _) in &chunk {
                    ctx.delete(key);
                }
            }
        }
        if more {
            self.schedule_send(ctx, Duration::ZERO);
        }
        Ok(())
    }
}

impl<C: ErpConnector> Handler for CustomerSync<C> {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Event::OrderPlaced(placed) = input.event else {
            return Ok(());
        };
        // An order the mapping refuses is refused by the order loop, with the reason.
        let Ok(doc) = self.mapping.sales_order(placed) else {
            return Ok(());
        };
        let customer = doc.customer;
        let known = format!("{KNOWN}{}", customer.external_ref);
        if ctx.get(known.as_bytes())?.is_some() {
            // Known to this loop's state (e.g. after a restart): known to the order loops too.
            self.ensured.insert(&customer.external_ref);
            return Ok(());
        }
        ctx.put_json(
            format!("{PENDING}{}", customer.external_ref).as_bytes(),
            &customer,
            None,
        )?;
        if ctx.get(COLLECTING)?.is_none() {
            self.schedule_send(ctx, self.batching.wait);
        }
        Ok(())
    }

    fn on_timer(&mut self, timer: &Timer, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        if timer.name == SEND {
            self.send(ctx)?;
        }
        Ok(())
    }
}
