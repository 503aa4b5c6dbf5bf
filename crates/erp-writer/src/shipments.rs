//! The ERP's shipments back to the shop: on the orders loop's punctuation for partition 0
//! (one reader per group, whichever instance owns it), the ERP's shipment journal is read
//! after the position kept in state, and each shipment becomes an `OrderShipped` event on
//! the results topic. The events and the new position commit in one transaction; a crash
//! in between reads the same page again and produces the same event ids, which readers
//! dedupe.

use bridge_events::erp::OrderShipped;
use bridge_events::ids::FactIdentity;
use bridge_events::{AvroEvent, Envelope, Event, Millis};
use bridge_runtime::handler::{Context, HandlerError};

use crate::calls::ErpCaller;
use crate::config::ShipmentSettings;
use crate::metrics::WriterMetrics;
use erp::connector::{ErpConnector, ErpShipment};

/// Where the journal position is kept.
const CURSOR_KEY: &[u8] = b"shipments/cursor";

/// Reads the shipment journal on a schedule.
pub struct ShipmentReader {
    settings: ShipmentSettings,
    /// When the next read is due (none: at the next punctuation).
    next_read: Option<Millis>,
    /// The ERP said it cannot list shipments: stop asking.
    unsupported: bool,
}

impl ShipmentReader {
    /// A reader as `settings` say.
    pub fn new(settings: ShipmentSettings) -> Self {
        Self {
            settings,
            next_read: None,
            unsupported: false,
        }
    }

    /// Reads one page if due, emitting its shipments to `results_topic`.
    pub fn poll<C: ErpConnector>(
        &mut self,
        connector: &C,
        caller: &mut ErpCaller,
        metrics: &WriterMetrics,
        results_topic: &str,
        ctx: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        let now = ctx.now();
        if !self.settings.enabled
            || self.unsupported
            || ctx.partition() != 0
            || self.next_read.is_some_and(|at| now < at)
        {
            return Ok(());
        }
        self.next_read = Some(now + self.settings.poll_interval_ms as Millis);
        let cursor = match ctx.get(CURSOR_KEY)? {
            Some(raw) => Some(String::from_utf8(raw).map_err(|_| HandlerError::Fatal {
                reason: "shipment cursor in state is not UTF-8".into(),
            })?),
            None => None,
        };
        let limit = self.settings.page_size;
        let read = connector.shipments_after(cursor.as_deref(), limit);
        let page = match caller.call("shipments", read)? {
            Ok(page) => page,
            Err(refusal) => {
                tracing::warn!(code = %refusal.code, reason = %refusal.reason,
                    "the ERP does not list shipments; shipped statuses are not sent back");
                self.unsupported = true;
                return Ok(());
            }
        };
        if page.shipments.len() >= limit {
            // More wait: read on at the next punctuation.
            self.next_read = None;
        }
        let system = connector.system();
        for shipment in &page.shipments {
            let event = order_shipped(system, shipment, now);
            tracing::info!(order_ref = %shipment.external_ref, shipment = %shipment.shipment_id,
                "the ERP shipped an order");
            ctx.emit(results_topic, &shipment.external_ref, event);
            metrics.verdict("shipped");
        }
        if cursor.as_deref() != Some(page.cursor.as_str()) {
            ctx.put(CURSOR_KEY, page.cursor.as_bytes(), None);
        }
        Ok(())
    }
}

/// The event of one shipment; its id depends only on the ERP and the shipment.
fn order_shipped(system: &str, shipment: &ErpShipment, now: Millis) -> Event {
    let source = format!("erp:{system}");
    let fact = format!("OrderShipped:{}", shipment.shipment_id);
    let identity = FactIdentity {
        source: &source,
        entity: &shipment.external_ref,
        fact: &fact,
        version: None,
    };
    Event::OrderShipped(OrderShipped {
        envelope: Envelope {
            event_id: identity.event_id(),
            event_type: OrderShipped::RECORD.into(),
            schema_version: OrderShipped::VERSION,
            occurred_at: shipment.shipped_at,
            produced_at: now,
            source,
            correlation_id: shipment.external_ref.clone(),
            causation_id: None,
        },
        order_ref: shipment.external_ref.clone(),
        erp_system: system.to_owned(),
        erp_order_id: shipment.erp_order_id.clone(),
        shipment_id: shipment.shipment_id.clone(),
        carrier: shipment.carrier.clone(),
        tracking_number: shipment.tracking_number.clone(),
        shipped_at: shipment.shipped_at,
    })
}
