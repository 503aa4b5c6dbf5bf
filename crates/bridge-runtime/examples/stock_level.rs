//! The smallest complete service on the runtime: copy it to start one.
//!
//! It keeps the stock level of every (SKU, MSI source) from the inventory movements and
//! emits the new level after each movement, as a `SourceItemSet` movement on
//! `example.stock-levels.v1`. The runtime does the rest, exactly once:
//! - the transactions, and the changelog of the state;
//! - dedupe of redelivered event ids;
//! - parking, retries, tracing, `/metrics`, `/healthz`, `/readyz`;
//! - a graceful stop on SIGTERM.
//!
//! The handler is pure: its tests below run it with the runtime's test driver, with no
//! broker and no clock. `cargo test -p bridge-runtime --example stock_level` runs them.
//!
//! Run it against a broker and registry (the topics must exist; the changelog and parked
//! topics are `example-stock-level-changelog` and `example-stock-level-parked`):
//!
//! ```text
//! BRIDGE__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 \
//! BRIDGE__REGISTRY__URL=http://127.0.0.1:8081 \
//! BRIDGE__PROCESSOR__STATE_DIR=/tmp/stock-level \
//!   cargo run -p bridge-runtime --example stock_level
//! ```

use bridge_events::inventory::{InventoryMovement, MovementKind};
use bridge_events::{AvroEvent, Envelope, Event, topics};
use bridge_runtime::config::ServiceConfig;
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound};
use rust_decimal::Decimal;

const NAME: &str = "example-stock-level";
const OUTPUT: &str = "example.stock-levels.v1";

/// The level per (SKU, source), in state under `<sku>|<source>`.
struct StockLevel;

impl Handler for StockLevel {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        // Anything else on the topic is parked with this class and reason; the loop goes on.
        let Event::InventoryMovement(movement) = input.event else {
            return Err(HandlerError::Terminal {
                class: "unexpected_event",
                reason: input.event.record_name().to_owned(),
            });
        };
        let key = format!("{}|{}", movement.sku, movement.source_code);
        let level = match movement.kind {
            MovementKind::SourceItemSet => movement.quantity,
            _ => ctx.get_json::<Decimal>(key.as_bytes())?.unwrap_or_default() + movement.quantity,
        };
        // Written in this record's transaction, with its changelog record.
        ctx.put_json(key.as_bytes(), &level, None)?;
        ctx.emit(OUTPUT, &key, level_set(movement, level));
        Ok(())
    }
}

/// The level after `movement`. Its event id is derived from the input's, so a replay
/// emits the same id and consumers can dedupe on it.
fn level_set(movement: &InventoryMovement, level: Decimal) -> InventoryMovement {
    let input = &movement.envelope;
    InventoryMovement {
        envelope: Envelope {
            event_id: format!("{}/level", input.event_id),
            event_type: InventoryMovement::RECORD.to_owned(),
            schema_version: InventoryMovement::VERSION,
            occurred_at: input.occurred_at,
            produced_at: input.produced_at,
            source: NAME.to_owned(),
            correlation_id: input.correlation_id.clone(),
            causation_id: Some(input.event_id.clone()),
        },
        sku: movement.sku.clone(),
        source_code: movement.source_code.clone(),
        kind: MovementKind::SourceItemSet,
        quantity: level,
        order_ref: movement.order_ref.clone(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Config (TOML from `--config`, then `BRIDGE__SECTION__KEY`), validated; telemetry;
    // the signal handlers.
    let (config, shutdown, _telemetry) = bridge_runtime::service::bootstrap::<ServiceConfig>(NAME)?;
    bridge_runtime::service::run_handler(
        NAME,
        &config,
        NAME,
        topics::INVENTORY_MOVEMENTS,
        shutdown,
        |_metrics| StockLevel,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_events::samples;
    use bridge_runtime::driver::TestDriver;

    fn movement(id: &str, kind: MovementKind, quantity: i64) -> InventoryMovement {
        let mut movement = samples::inventory_movement("SKU-1", "wh_east", 0);
        movement.envelope.event_id = id.to_owned();
        movement.kind = kind;
        movement.quantity = Decimal::from(quantity);
        movement
    }

    fn levels(outputs: &[bridge_runtime::handler::Output]) -> Vec<(String, Decimal)> {
        outputs
            .iter()
            .map(|o| match o.event.as_ref() {
                Event::InventoryMovement(m) => (o.key.clone(), m.quantity),
                other => panic!("unexpected output {other:?}"),
            })
            .collect()
    }

    #[test]
    fn deltas_add_up_and_a_set_replaces_the_level() {
        let mut driver = TestDriver::new(StockLevel, 0);
        let mut seen = Vec::new();
        for (id, kind, quantity) in [
            ("a", MovementKind::SourceItemSet, 10),
            ("b", MovementKind::Reservation, -3),
            ("c", MovementKind::Return, 1),
            ("d", MovementKind::SourceItemSet, 4),
            ("e", MovementKind::Shipment, -1),
        ] {
            let outputs = driver
                .send(movement(id, kind, quantity))
                .map_err(|e| e.to_string());
            seen.extend(levels(&outputs.unwrap_or_else(|e| panic!("{id}: {e}"))));
        }
        let key = "SKU-1|wh_east".to_owned();
        let expected = [10, 7, 8, 4, 3].map(|n| (key.clone(), Decimal::from(n)));
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_redelivered_movement_is_counted_once() {
        let mut driver = TestDriver::new(StockLevel, 0);
        let mut send = |m| driver.send(m).map(|o| o.len()).map_err(|e| e.to_string());
        assert_eq!(send(movement("a", MovementKind::Return, 2)), Ok(1));
        assert_eq!(send(movement("a", MovementKind::Return, 2)), Ok(0));
        assert_eq!(driver.duplicates, 1);
    }

    #[test]
    fn another_event_type_is_parked() {
        let mut driver = TestDriver::new(StockLevel, 0);
        let order: Event = samples::order_placed("000000042", 1).into();
        let outputs = driver
            .send(order)
            .map(|o| o.len())
            .map_err(|e| e.to_string());
        assert_eq!(outputs, Ok(0));
        assert_eq!(driver.parked.len(), 1);
    }
}
