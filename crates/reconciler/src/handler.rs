//! The reconciler as a runtime [`Handler`] over the orders topic.
//!
//! Records fold into the expected state per order (`o/<order_ref>`). Each punctuation of a
//! partition advances that partition's run by slices of at most `page_size` orders, for up
//! to a quarter second: one Magento search for the slice, one ERP read per order, the
//! comparison, findings settled (opened, changed, resolved) and repairs asked — all in the
//! transaction that stores the run's progress, so a crash repeats a slice, never skips or
//! doubles a finding. Partition 0 compares stock after its orders. A run starts `interval`
//! after the previous one finished, or at once when asked ([`RunNow`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bridge_events::reconciliation::ResyncTarget;
use bridge_events::{Event, Millis};
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound};
use bridge_runtime::json_state::decode;
use erp::connector::{ErpConnector, ErpError, ErpOrder};
use erp::mapping::Mapping;
use magento::rest::Magento;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::compare::{MagentoOrder, OrderSides, compare_order, erp_order_without_magento};
use crate::config::{Effective, StockCheckSettings};
use crate::expected::ExpectedOrder;
use crate::findings::{Scope, Sink, finding_id};
use crate::metrics::{KindLabels, ReconcilerMetrics, SideLabels};
use crate::run::{Active, DailySummary, Phase, RunState, SharedSummary, day_of};

mod stock_phase;

const ORDERS: &[u8] = b"o/";
const RUN: &[u8] = b"run";
/// How long one punctuation may spend on a run.
const SLICE_BUDGET: Duration = Duration::from_millis(250);
/// After a failed API read, the partition's run waits this long.
const API_BACKOFF: Millis = 5_000;

/// Asks every partition for a run now (bumped by the control endpoint).
#[derive(Debug, Clone, Default)]
pub struct RunNow(Arc<AtomicU64>);

impl RunNow {
    /// Asks for a run.
    pub fn request(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn generation(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The settings of runs.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Interval, settle time, tolerance.
    pub effective: Effective,
    /// Orders per slice.
    pub page_size: usize,
    /// Repairs per entity.
    pub max_attempts: u32,
    /// Repairs per partition per run.
    pub max_per_run: u32,
    /// Stock comparison.
    pub stock: StockCheckSettings,
    /// Walk every ERP order for references Magento lacks (partition 0).
    pub erp_scan: bool,
    /// Findings topic.
    pub findings_topic: String,
    /// Resync topic.
    pub resync_topic: String,
}

/// Why a slice stopped early.
enum SliceError {
    /// An API read failed: try again later.
    Unavailable { side: &'static str, reason: String },
    /// State or handler trouble.
    Handler(HandlerError),
}

impl From<HandlerError> for SliceError {
    fn from(e: HandlerError) -> Self {
        Self::Handler(e)
    }
}

impl From<bridge_runtime::state::StateError> for SliceError {
    fn from(e: bridge_runtime::state::StateError) -> Self {
        Self::Handler(e.into())
    }
}

/// On-hand quantity per item, per warehouse.
type StockByWarehouse = BTreeMap<String, BTreeMap<String, Decimal>>;

/// The handler.
pub struct Reconciler<C: ErpConnector> {
    connector: Arc<C>,
    mapping: Arc<Mapping>,
    magento: Magento,
    runtime: tokio::runtime::Handle,
    settings: RunSettings,
    metrics: ReconcilerMetrics,
    run_now: RunNow,
    seen_generation: HashMap<i32, u64>,
    backoff_until: HashMap<i32, Millis>,
    /// ERP stock per warehouse, read once per stock phase (cleared when one starts).
    erp_stock: StockByWarehouse,
    summary: SharedSummary,
}

impl<C: ErpConnector> Reconciler<C> {
    /// A reconciler reading `magento` and the ERP through `connector`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        connector: Arc<C>,
        mapping: Arc<Mapping>,
        magento: Magento,
        runtime: tokio::runtime::Handle,
        settings: RunSettings,
        metrics: ReconcilerMetrics,
        run_now: RunNow,
        summary: SharedSummary,
    ) -> Self {
        Self {
            connector,
            mapping,
            magento,
            runtime,
            settings,
            metrics,
            run_now,
            seen_generation: HashMap::new(),
            backoff_until: HashMap::new(),
            erp_stock: StockByWarehouse::new(),
            summary,
        }
    }

    fn summary(&self) -> std::sync::MutexGuard<'_, DailySummary> {
        self.summary.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A Magento read; a failure pauses the run (the slice is tried again).
    fn magento<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, magento::rest::RestError>>,
    ) -> Result<T, SliceError> {
        self.runtime
            .block_on(read)
            .map_err(|e| SliceError::Unavailable {
                side: "magento",
                reason: e.to_string(),
            })
    }

    /// An ERP read; a failure pauses the run (the slice is tried again).
    fn erp<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, ErpError>>,
    ) -> Result<T, SliceError> {
        self.runtime
            .block_on(read)
            .map_err(|e| SliceError::Unavailable {
                side: "erp",
                reason: e.to_string(),
            })
    }

    fn sink(&self) -> Sink<'_> {
        Sink {
            findings_topic: &self.settings.findings_topic,
            resync_topic: &self.settings.resync_topic,
        }
    }

    fn load_run(ctx: &Context<'_>) -> Result<RunState, HandlerError> {
        Ok(ctx.get_json(RUN)?.unwrap_or_default())
    }

    fn save_run(ctx: &mut Context<'_>, run: &RunState) -> Result<(), HandlerError> {
        ctx.put_json(RUN, run, None)
    }

    /// One slice of orders; `true` when the partition's orders are done.
    fn orders_slice(
        &mut self,
        ctx: &mut Context<'_>,
        run: &mut Active,
    ) -> Result<bool, SliceError> {
        let now = ctx.now();
        let page = ctx.scan_page(
            ORDERS,
            run.cursor.as_deref().map(str::as_bytes),
            self.settings.page_size,
        )?;
        let Some((last, _)) = page.last() else {
            return Ok(true);
        };
        let last = String::from_utf8_lossy(last).into_owned();
        let settle = self.settings.effective.settle.as_millis() as Millis;
        let mut due = Vec::new();
        for (key, raw) in page {
            let order: ExpectedOrder = decode(&key, &raw)?;
            let order_ref = String::from_utf8_lossy(&key[ORDERS.len()..]).into_owned();
            if order.placed.is_none() {
                continue;
            }
            if now - order.updated_at < settle {
                self.metrics.orders_unsettled.inc();
                continue;
            }
            due.push((order_ref, order));
        }
        let refs: Vec<&str> = due.iter().map(|(r, _)| r.as_str()).collect();
        let rows = self.magento(self.magento.orders_by_increment_ids(&refs))?;
        let magento: HashMap<String, MagentoOrder> = rows
            .iter()
            .filter_map(MagentoOrder::from_json)
            .map(|m| (m.increment_id.clone(), m))
            .collect();
        let refs: Vec<String> = due.iter().map(|(r, _)| r.clone()).collect();
        let erp = self.erp(self.connector.find_orders(&refs))?;
        for (order_ref, mut expected) in due {
            self.compare_one(
                ctx,
                run,
                &order_ref,
                &mut expected,
                magento.get(&order_ref),
                erp.get(&order_ref),
            )?;
        }
        run.cursor = Some(last);
        Ok(false)
    }

    fn compare_one(
        &mut self,
        ctx: &mut Context<'_>,
        run: &mut Active,
        order_ref: &str,
        expected: &mut ExpectedOrder,
        magento: Option<&MagentoOrder>,
        erp: Option<&ErpOrder>,
    ) -> Result<(), SliceError> {
        let Some(placed) = &expected.placed else {
            return Ok(());
        };
        let doc = match self.mapping.sales_order(placed) {
            Ok(doc) => doc,
            Err(e) => {
                // erp-writer parks such an order naming the gap; nothing to compare it to.
                tracing::debug!(order_ref, reason = %e, "order not comparable: unmappable");
                return Ok(());
            }
        };
        if let (Some(erp), false) = (erp, expected.synced) {
            if let Some(booked) = erp.booked_at {
                let seconds = (booked - placed.updated_at).max(0) as f64 / 1000.0;
                self.metrics.sync_delay.observe(seconds);
                let mut summary = self.summary();
                summary.turn_to(day_of(ctx.now()));
                summary.delay(seconds);
            }
            expected.synced = true;
            ctx.put_json(&order_key(order_ref), &*expected, None)?;
        }
        let comparison = compare_order(
            &OrderSides {
                order_ref,
                expected,
                doc: &doc,
                magento,
                erp,
            },
            self.settings.effective.tolerance,
        );
        run.checked += 1;
        self.metrics.orders_checked.inc();
        if !comparison.rounding.is_zero() {
            run.rounding = run.rounding.saturating_add(comparison.rounding);
            self.metrics
                .rounding
                .inc_by(comparison.rounding.to_f64().unwrap_or_default());
        }
        self.settle(
            ctx,
            run,
            (Scope::Orders, "order", order_ref),
            &comparison.differences,
            None,
        )
    }

    /// Settles one entity's findings and asks for its repair when one can help.
    fn settle(
        &mut self,
        ctx: &mut Context<'_>,
        run: &mut Active,
        (scope, entity_type, entity_ref): (Scope, &str, &str),
        differences: &[crate::compare::Difference],
        quantity: Option<Decimal>,
    ) -> Result<(), SliceError> {
        let settled = self
            .sink()
            .settle(ctx, scope, entity_type, entity_ref, differences)?;
        for kind in &settled.opened {
            let label = KindLabels {
                kind: kind_label(*kind),
            };
            self.metrics.opened.get_or_create(&label).inc();
            *self.summary().opened.entry(label.kind).or_default() += 1;
        }
        for kind in &settled.resolved {
            self.metrics
                .resolved
                .get_or_create(&KindLabels {
                    kind: kind_label(*kind),
                })
                .inc();
        }
        for kind in &settled.open {
            *run.open.entry(kind_label(*kind)).or_default() += 1;
        }
        let Some(first) = differences.iter().find(|d| d.repair.is_some()) else {
            return Ok(());
        };
        let Some(target) = first.repair else {
            return Ok(());
        };
        if run.resyncs >= self.settings.max_per_run {
            return Ok(());
        }
        let id = finding_id(first.kind, entity_ref, &first.detail);
        let min_gap = self.settings.effective.settle.as_millis() as Millis;
        let asked = self.sink().request_repair(
            ctx,
            scope,
            target,
            entity_type,
            entity_ref,
            &first.explanation,
            Some(&id),
            quantity,
            (self.settings.max_attempts, min_gap),
        )?;
        if asked {
            run.resyncs += 1;
            let side = match target {
                ResyncTarget::Erp => "erp",
                ResyncTarget::Magento => "magento",
            };
            self.metrics
                .resyncs
                .get_or_create(&SideLabels { side: side.into() })
                .inc();
        }
        Ok(())
    }

    /// One page of ERP order references against Magento; `true` when done.
    fn erp_orders_slice(
        &mut self,
        ctx: &mut Context<'_>,
        run: &mut Active,
    ) -> Result<bool, SliceError> {
        let refs = self.erp(
            self.connector
                .order_refs(run.erp_cursor.as_deref(), self.settings.page_size),
        )?;
        let Some(last) = refs.last().cloned() else {
            return Ok(true);
        };
        let asked: Vec<&str> = refs.iter().map(String::as_str).collect();
        let rows = self.magento(self.magento.orders_by_increment_ids(&asked))?;
        let known: std::collections::HashSet<String> = rows
            .iter()
            .filter_map(|r| r.get("increment_id")?.as_str().map(str::to_owned))
            .collect();
        for order_ref in &refs {
            let differences = if known.contains(order_ref) {
                Vec::new()
            } else {
                match self.erp(self.connector.find_order(order_ref))? {
                    Some(o) => vec![erp_order_without_magento(order_ref, Some(&o.id))],
                    None => Vec::new(),
                }
            };
            self.settle(
                ctx,
                run,
                (Scope::ErpOrders, "order", order_ref),
                &differences,
                None,
            )?;
        }
        run.erp_cursor = Some(last);
        Ok(false)
    }

    /// The phase after `phase`: partition 0 also walks the ERP's orders and the stock.
    fn next_phase(&self, phase: Phase, partition: i32) -> Option<Phase> {
        let owner = partition == 0;
        let order = [
            (Phase::Orders, true),
            (Phase::ErpOrders, owner && self.settings.erp_scan),
            (Phase::Stock, owner && self.settings.stock.enabled),
        ];
        let at = order.iter().position(|(p, _)| *p == phase)?;
        order[at + 1..].iter().find(|(_, on)| *on).map(|(p, _)| *p)
    }

    fn finish(&mut self, ctx: &Context<'_>, state: &mut RunState, run: Active) {
        let now = ctx.now();
        let seconds = (now - run.started_at).max(0) as f64 / 1000.0;
        self.metrics.runs.inc();
        self.metrics.run_seconds.set(seconds);
        self.metrics.last_run.set(now as f64 / 1000.0);
        self.metrics.run_finished(ctx.partition(), &run.open);
        tracing::info!(
            partition = ctx.partition(),
            orders_checked = run.checked,
            stock_checked = run.stock_checked,
            open_findings = ?run.open,
            resyncs_requested = run.resyncs,
            rounding_tolerated = %run.rounding,
            seconds,
            "reconciliation run finished"
        );
        {
            let mut summary = self.summary();
            summary.turn_to(day_of(now));
            summary.runs += 1;
            summary.orders_checked += run.checked;
            summary.rounding = summary.rounding.saturating_add(run.rounding);
        }
        state.next_at = now + self.settings.effective.interval.as_millis() as Millis;
        state.active = None;
    }
}

fn order_key(order_ref: &str) -> Vec<u8> {
    [ORDERS, order_ref.as_bytes()].concat()
}

fn kind_label(kind: bridge_events::reconciliation::FindingKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn order_ref_of(event: &Event) -> Option<&str> {
    match event {
        Event::OrderPlaced(e) => Some(&e.order_ref),
        Event::OrderUpdated(e) => Some(&e.order_ref),
        Event::OrderCancelled(e) => Some(&e.order_ref),
        Event::CreditMemoCreated(e) => Some(&e.order_ref),
        _ => None,
    }
}

impl<C: ErpConnector> Handler for Reconciler<C> {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Some(order_ref) = order_ref_of(input.event) else {
            return Ok(());
        };
        let key = order_key(order_ref);
        let mut expected: ExpectedOrder = ctx.get_json(&key)?.unwrap_or_default();
        let mapping = Arc::clone(&self.mapping);
        expected.apply(input.event, |status| mapping.creates_on(status));
        ctx.put_json(&key, &expected, None)
    }

    fn on_punctuate(&mut self, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let partition = ctx.partition();
        let now = ctx.now();
        if self.backoff_until.get(&partition).is_some_and(|t| now < *t) {
            return Ok(());
        }
        let mut state = Self::load_run(ctx)?;
        let mut run = match state.active.take() {
            Some(run) => run,
            // A run compares what the orders topic says: it starts once the partition
            // has been read to its end, not while a restart is catching up.
            None if !ctx.caught_up() => return Ok(()),
            None => {
                let generation = self.run_now.generation();
                let asked = self.seen_generation.get(&partition).copied().unwrap_or(0) < generation;
                if now < state.next_at && !asked {
                    return Ok(());
                }
                self.seen_generation.insert(partition, generation);
                tracing::info!(partition, on_demand = asked, "reconciliation run started");
                Active::new(now)
            }
        };
        let started = Instant::now();
        let mut finished = false;
        while started.elapsed() < SLICE_BUDGET {
            let step = match run.phase {
                Phase::Orders => self.orders_slice(ctx, &mut run),
                Phase::ErpOrders => self.erp_orders_slice(ctx, &mut run),
                Phase::Stock => self.stock_slice(ctx, &mut run),
            };
            match step {
                Ok(false) => {}
                Ok(true) => match self.next_phase(run.phase, partition) {
                    Some(next) => {
                        if next == Phase::Stock {
                            self.erp_stock.clear();
                        }
                        run.phase = next;
                    }
                    None => {
                        finished = true;
                        break;
                    }
                },
                Err(SliceError::Unavailable { side, reason }) => {
                    self.metrics.api_error(side);
                    tracing::warn!(partition, side, %reason, "reconciliation paused: an API read failed; the slice is tried again");
                    self.backoff_until.insert(partition, now + API_BACKOFF);
                    break;
                }
                Err(SliceError::Handler(e)) => return Err(e),
            }
        }
        if finished {
            self.finish(ctx, &mut state, run);
        } else {
            state.active = Some(run);
        }
        Self::save_run(ctx, &state)
    }
}
