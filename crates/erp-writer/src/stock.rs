//! Window aggregates into batched ERP stock adjustments, as a runtime [`Handler`] over the
//! stock-deltas topic (keyed by MSI source, so one warehouse's lines meet in one partition).
//!
//! Posting is two-phase, so a replay can never post different content under a reference
//! the ERP already has:
//! 1. **collect**: each `StockDeltaAggregated` becomes a pending line of the batch
//!    (warehouse, window start); the first one sets a wall-clock timer `batch_wait` later.
//! 2. **seal**: the timer turns the batch's lines into adjustment documents — summed per
//!    item, sorted, chunked to `batch_limit` — each with a reference that names warehouse,
//!    window and chunk number (`stock:<warehouse>:<window start>:<n>`), stored in state.
//! 3. **post**: at a later punctuation — the runtime punctuates on committed state, so the
//!    sealed documents are committed by then — each is posted. The ERP keeps the reference
//!    unique: a crash after the post and before the record replays the same document and
//!    the ERP answers "exists". Then `StockAdjustmentPosted` goes to the results topic.
//!
//! Lines that arrive after their batch was sealed form the batch's next chunk number.
//! Retryable ERP trouble reschedules the post with backoff (Kafka keeps nothing here: the
//! document is in state); a refusal is kept in state under `rejected/` and counted.

use std::sync::Arc;
use std::time::Duration;

use bridge_events::decimal::checked_add;
use bridge_events::erp::{StockAdjustmentLine, StockAdjustmentPosted};
use bridge_events::ids::FactIdentity;
use bridge_events::inventory::StockDeltaAggregated;
use bridge_events::{AvroEvent, Envelope, Event, Millis};
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound, Timer, TimerKind};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::calls::ErpCaller;
use crate::metrics::WriterMetrics;
use bridge_runtime::json_state::{corrupt, decode};
use bridge_runtime::retry::RetryPolicy;
use erp::connector::{ErpConnector, ErpLine, StockAdjustmentDoc};
use erp::mapping::Mapping;

const SEAL: &str = "seal/";
const POST: &str = "post/";

/// A window aggregate waiting in its batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PendingLine {
    sku: String,
    source_code: String,
    item_code: String,
    quantity: Decimal,
    window_end: Millis,
}

/// A sealed adjustment document, posted at a later punctuation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Sealed {
    doc: StockAdjustmentDoc,
    source_codes: Vec<String>,
    window_start: Millis,
    window_end: Millis,
    lines: Vec<(String, String, Decimal)>,
    attempts: u32,
}

/// How the stock flow batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// How long lines are collected before sealing.
    pub wait: Duration,
    /// Most lines per document.
    pub limit: usize,
    /// Delays between posts of a document the ERP answered "retry later" to (the
    /// service's `[processor.retry]`; `give_up_after` does not apply: a document is posted
    /// until the ERP takes or refuses it).
    pub retry: RetryPolicy,
}

/// The handler.
pub struct StockWriter<C: ErpConnector> {
    connector: Arc<C>,
    mapping: Arc<Mapping>,
    caller: ErpCaller,
    batching: Batching,
    results_topic: String,
    metrics: WriterMetrics,
}

/// `<warehouse>/<window start>`: one batch.
fn batch_id(warehouse: &str, window_start: Millis) -> String {
    format!("{warehouse}/{window_start:020}")
}

impl<C: ErpConnector> StockWriter<C> {
    /// A stock writer posting through `caller` as `mapping` says.
    pub fn new(
        connector: Arc<C>,
        mapping: Arc<Mapping>,
        caller: ErpCaller,
        batching: Batching,
        results_topic: &str,
        metrics: WriterMetrics,
    ) -> Self {
        Self {
            connector,
            mapping,
            caller,
            batching,
            results_topic: results_topic.to_owned(),
            metrics,
        }
    }

    fn collect(
        &self,
        ctx: &mut Context<'_>,
        delta: &StockDeltaAggregated,
    ) -> Result<(), HandlerError> {
        let unmappable = |e: erp::mapping::Unmapped| HandlerError::Terminal {
            class: "unmappable",
            reason: format!(
                "stock of SKU {} at source {} (window {}): {e}",
                delta.sku, delta.source_code, delta.window_start
            ),
        };
        let warehouse = self
            .mapping
            .warehouse(&delta.source_code)
            .map_err(unmappable)?;
        let item_code = self.mapping.item_code(&delta.sku).map_err(unmappable)?;
        if delta.absolute_level.is_some() {
            // The ERP owns stock levels (mapping `[owners]`): Magento's level is not posted,
            // every movement of the window is (before and after the set); the reconciler
            // compares the levels.
            tracing::debug!(sku = %delta.sku, source = %delta.source_code, "absolute level not posted: the ERP owns stock levels");
        }
        self.metrics.stock_lines.inc();
        let moved = delta.moved();
        if moved.is_zero() {
            return Ok(());
        }
        let batch = batch_id(&warehouse, delta.window_start);
        let key = format!("line/{batch}/{}|{}", delta.sku, delta.source_code);
        let mut line = ctx
            .get_json::<PendingLine>(key.as_bytes())?
            .unwrap_or(PendingLine {
                sku: delta.sku.clone(),
                source_code: delta.source_code.clone(),
                item_code,
                quantity: Decimal::ZERO,
                window_end: delta.window_end,
            });
        line.quantity = checked_add(line.quantity, moved).map_err(|e| HandlerError::Terminal {
            class: "out_of_range",
            reason: format!(
                "stock delta of {moved} for `{}` at `{}`: the batch's sum {e}",
                delta.sku, delta.source_code
            ),
        })?;
        ctx.put_json(key.as_bytes(), &line, None)?;
        let collecting = format!("collecting/{batch}");
        if ctx.get(collecting.as_bytes())?.is_none() {
            ctx.put(collecting.as_bytes(), &[], None);
            let at = ctx
                .now()
                .saturating_add(self.batching.wait.as_millis() as i64);
            ctx.schedule(TimerKind::WallClock, at, &format!("{SEAL}{batch}"));
        }
        Ok(())
    }

    fn seal(&self, ctx: &mut Context<'_>, batch: &str) -> Result<(), HandlerError> {
        ctx.delete(format!("collecting/{batch}").as_bytes());
        let Some((warehouse, window_start)) = batch.rsplit_once('/') else {
            return Ok(());
        };
        let window_start: Millis = window_start
            .parse()
            .map_err(|e| corrupt(batch.as_bytes(), e))?;
        let prefix = format!("line/{batch}/");
        let mut lines = Vec::new();
        for (key, raw) in ctx.scan(prefix.as_bytes())? {
            ctx.delete(&key);
            let line: PendingLine = decode(&key, &raw)?;
            lines.push(line);
        }
        lines.sort_by(|a, b| {
            (&a.item_code, &a.sku, &a.source_code).cmp(&(&b.item_code, &b.sku, &b.source_code))
        });
        let window_end = lines
            .iter()
            .map(|l| l.window_end)
            .max()
            .unwrap_or(window_start);
        let seq_key = format!("seq/{batch}");
        let mut seq = ctx.get_json::<u32>(seq_key.as_bytes())?.unwrap_or(0);
        for chunk in lines.chunks(self.batching.limit) {
            seq += 1;
            let reference = format!("stock:{warehouse}:{window_start}:{seq}");
            let mut per_item: Vec<ErpLine> = Vec::new();
            for line in chunk {
                match per_item.last_mut() {
                    // Each line was checked as it was added; several SKUs of one item
                    // saturate rather than panic (the ERP refuses such a quantity).
                    Some(last) if last.item_code == line.item_code => {
                        last.quantity = last.quantity.saturating_add(line.quantity)
                    }
                    _ => per_item.push(ErpLine {
                        item_code: line.item_code.clone(),
                        quantity: line.quantity,
                    }),
                }
            }
            per_item.retain(|l| !l.quantity.is_zero());
            let mut source_codes: Vec<String> =
                chunk.iter().map(|l| l.source_code.clone()).collect();
            source_codes.sort();
            source_codes.dedup();
            let sealed = Sealed {
                doc: StockAdjustmentDoc {
                    external_ref: reference.clone(),
                    warehouse: warehouse.to_owned(),
                    lines: per_item,
                },
                source_codes,
                window_start,
                window_end,
                lines: chunk
                    .iter()
                    .map(|l| (l.sku.clone(), l.item_code.clone(), l.quantity))
                    .collect(),
                attempts: 0,
            };
            ctx.put_json(format!("sealed/{reference}").as_bytes(), &sealed, None)?;
            // A later punctuation: this one's writes are committed by then.
            let at = ctx.now().saturating_add(1);
            ctx.schedule(TimerKind::WallClock, at, &format!("{POST}{reference}"));
        }
        // Kept as long as late lines for the window can come (the aggregator corrects
        // into later windows, so a day is plenty).
        ctx.put_json(
            seq_key.as_bytes(),
            &seq,
            Some(Duration::from_secs(8 * 24 * 3600)),
        )?;
        Ok(())
    }

    fn post(&mut self, ctx: &mut Context<'_>, reference: &str) -> Result<(), HandlerError> {
        let key = format!("sealed/{reference}");
        let Some(mut sealed) = ctx.get_json::<Sealed>(key.as_bytes())? else {
            return Ok(());
        };
        let connector = Arc::clone(&self.connector);
        let outcome = if sealed.doc.lines.is_empty() {
            Ok(Ok(None)) // all lines netted to zero: nothing to tell the ERP
        } else {
            self.caller
                .call(
                    "post_stock_adjustment",
                    connector.post_stock_adjustment(&sealed.doc),
                )
                .map(|r| r.map(Some))
        };
        match outcome {
            Ok(Ok(posted)) => {
                ctx.delete(key.as_bytes());
                let verdict = match &posted {
                    Some(p) if !p.new => "existing",
                    _ => "posted",
                };
                self.metrics.verdict_stock(verdict);
                let document = posted.map(|p| p.doc);
                self.emit_posted(ctx, &sealed, document);
                Ok(())
            }
            Ok(Err(refusal)) => {
                self.metrics.verdict_stock("rejected");
                tracing::error!(
                    reference,
                    code = %refusal.code,
                    reason = %refusal.reason,
                    "the ERP refused a stock adjustment; kept under rejected/ in the stock state"
                );
                ctx.delete(key.as_bytes());
                ctx.put_json(format!("rejected/{reference}").as_bytes(), &sealed, None)
            }
            Err(HandlerError::Retryable {
                reason,
                retry_after,
            }) => {
                self.metrics.verdict_stock("retry");
                sealed.attempts += 1;
                let wait = self.batching.retry.delay_for(sealed.attempts, retry_after);
                tracing::warn!(reference, attempts = sealed.attempts, %reason, ?wait, "stock adjustment not posted yet; retrying");
                ctx.put_json(key.as_bytes(), &sealed, None)?;
                let at = ctx.now().saturating_add(wait.as_millis() as i64);
                ctx.schedule(TimerKind::WallClock, at, &format!("{POST}{reference}"));
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    fn emit_posted(&self, ctx: &mut Context<'_>, sealed: &Sealed, document: Option<String>) {
        let system = self.connector.system();
        let source = format!("erp:{system}");
        let reference = &sealed.doc.external_ref;
        let now = ctx.now();
        let event = StockAdjustmentPosted {
            envelope: Envelope {
                event_id: FactIdentity {
                    source: &source,
                    entity: reference,
                    fact: "StockAdjustmentPosted",
                    version: None,
                }
                .event_id(),
                event_type: StockAdjustmentPosted::RECORD.into(),
                schema_version: StockAdjustmentPosted::VERSION,
                occurred_at: now,
                produced_at: now,
                source,
                correlation_id: reference.clone(),
                causation_id: None,
            },
            window_key: reference.clone(),
            source_code: sealed.source_codes.join(","),
            warehouse: sealed.doc.warehouse.clone(),
            erp_system: system.to_owned(),
            erp_document_id: document,
            window_start: sealed.window_start,
            window_end: sealed.window_end,
            lines: sealed
                .lines
                .iter()
                .map(|(sku, item_code, quantity)| StockAdjustmentLine {
                    sku: sku.clone(),
                    item_code: item_code.clone(),
                    quantity: *quantity,
                })
                .collect(),
        };
        let key = sealed.source_codes.first().cloned().unwrap_or_default();
        ctx.emit(&self.results_topic, &key, Event::from(event));
    }
}

impl<C: ErpConnector> Handler for StockWriter<C> {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        match input.event {
            Event::StockDeltaAggregated(delta) => self.collect(ctx, delta),
            other => Err(HandlerError::Terminal {
                class: "unexpected_event",
                reason: format!("{} on the stock deltas topic", other.envelope().event_type),
            }),
        }
    }

    fn on_timer(&mut self, timer: &Timer, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        if let Some(batch) = timer.name.strip_prefix(SEAL) {
            self.seal(ctx, batch)
        } else if let Some(reference) = timer.name.strip_prefix(POST) {
            self.post(ctx, reference)
        } else {
            Ok(())
        }
    }
}
