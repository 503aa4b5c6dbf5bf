//! The movements the inventory kill test sends: generated from `KILL_*` settings, or read
//! from a JSON-lines file of your own; each with how often it is sent and how late.

use std::collections::HashMap;
use std::path::Path;

use bridge_events::inventory::{InventoryMovement, MovementKind};
use bridge_events::{Millis, samples};
use rust_decimal::Decimal;

/// An error of any kind, sendable between tasks.
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// A setting from the environment (`KILL_MOVEMENTS=500000 cargo test … --test inventory_kill`), or
/// its default.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
pub const SOURCES: [(&str, &str); 3] = [
    ("default", "WH-MAIN"),
    ("wh_east", "WH-EAST"),
    ("wh_west", "WH-WEST"),
];
/// One movement of the stream: sent `sends` times (the same event id: must count once),
/// dated `age_ms` before the moment it is sent (late when its window has closed by then).
pub struct Planned {
    pub movement: InventoryMovement,
    pub sends: usize,
    pub age_ms: Millis,
}

/// The ERP warehouse of an MSI source the deployed mapping does not name.
pub fn warehouse_of(source: &str) -> String {
    match SOURCES.iter().find(|(s, _)| *s == source) {
        Some((_, warehouse)) => (*warehouse).to_owned(),
        None => format!("WH-{}", source.to_uppercase()),
    }
}

/// A generated stream: `KILL_MOVEMENTS`
/// over `KILL_SKUS` SKUs × 3 sources from `KILL_SEED`; one in `KILL_DUPLICATE_EVERY` sent
/// again with its event id, one in `KILL_LATE_EVERY` dated 10 s back (its window closed:
/// a late correction), one in `KILL_SET_EVERY` an MSI source-item set (an absolute level:
/// it moves nothing in the ERP, and the deltas around it in its window still reach it).
/// 0 turns any of them off.
pub fn plan(name: &str) -> Vec<Planned> {
    let movements = setting("KILL_MOVEMENTS", 100_000) as usize;
    let skus = setting("KILL_SKUS", 1_000).max(1) as usize;
    let duplicate_every = setting("KILL_DUPLICATE_EVERY", 97) as usize;
    let late_every = setting("KILL_LATE_EVERY", 89) as usize;
    let set_every = setting("KILL_SET_EVERY", 53) as usize;
    let mut seed: u64 = setting("KILL_SEED", 42);
    eprintln!(
        "generated: {movements} movements, {skus} SKUs, seed {seed}, a duplicate every \
         {duplicate_every}, a late one every {late_every}, a level set every {set_every}"
    );
    let every = |n: usize, i: usize| n > 0 && i % n == n - 1;
    let mut plan = Vec::with_capacity(movements);
    for i in 0..movements {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let sku = format!("SKU-{:04}", (seed >> 33) as usize % skus);
        let (source, _) = SOURCES[(seed >> 20) as usize % SOURCES.len()];
        let qty = ((seed >> 40) % 7) as i64 - 3;
        let qty = if qty == 0 { 5 } else { qty };
        let mut movement = samples::inventory_movement(&sku, source, 0);
        movement.envelope.event_id = format!("{name}-movement-{i}");
        (movement.kind, movement.quantity) = match (every(set_every, i), qty < 0) {
            (true, _) => (MovementKind::SourceItemSet, Decimal::from(100 + qty)),
            (false, true) => (MovementKind::Reservation, Decimal::from(qty)),
            (false, false) => (MovementKind::Return, Decimal::from(qty)),
        };
        plan.push(Planned {
            movement,
            sends: if every(duplicate_every, i) { 2 } else { 1 },
            age_ms: if every(late_every, i) { 10_000 } else { 0 },
        });
    }
    plan
}

/// One line of a `KILL_MOVEMENTS_FILE`, e.g.
/// `{"sku": "RED", "source": "default", "kind": "RESERVATION", "quantity": "-2"}`, with
/// optional `"event_id"` (a line repeating an earlier line's id is a redelivery: counted
/// once; it must repeat that line's sku, source, kind and quantity) and `"age_ms"` (dated that long before it is sent; default 0). `kind` is one of
/// RESERVATION, SHIPMENT, CANCELLATION_RELEASE, RETURN (signed deltas) and
/// SOURCE_ITEM_SET (an absolute level).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMovement {
    pub sku: String,
    pub source: String,
    pub kind: MovementKind,
    pub quantity: Decimal,
    pub event_id: Option<String>,
    #[serde(default)]
    pub age_ms: Millis,
}

/// What a line moves: sku, source, kind, quantity.
type Moved = (String, String, MovementKind, Decimal);

pub fn plan_from_file(name: &str, path: &Path) -> Result<Vec<Planned>, AnyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("KILL_MOVEMENTS_FILE {}: {e}", path.display()))?;
    let mut plan = Vec::new();
    // Event id → the first line that named it, and its movement.
    let mut named: HashMap<String, (usize, Moved)> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line: FileMovement = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
        if let Some(id) = &line.event_id {
            let what = (
                line.sku.clone(),
                line.source.clone(),
                line.kind,
                line.quantity,
            );
            match named.get(id) {
                Some((first, earlier)) if *earlier != what => {
                    return Err(format!(
                        "{} line {}: event id {id:?} is line {first}'s, with a different \
                         movement; a redelivery repeats its movement (dedupe is by event id \
                         within the (SKU, source) partition, so one id naming two movements \
                         is not a redelivery)",
                        path.display(),
                        n + 1
                    )
                    .into());
                }
                Some(_) => {}
                None => {
                    named.insert(id.clone(), (n + 1, what));
                }
            }
        }
        let mut movement = samples::inventory_movement(&line.sku, &line.source, 0);
        movement.envelope.event_id = line
            .event_id
            .unwrap_or_else(|| format!("{name}-line-{}", n + 1));
        movement.kind = line.kind;
        movement.quantity = line.quantity;
        plan.push(Planned {
            movement,
            sends: 1,
            age_ms: line.age_ms,
        });
    }
    eprintln!("{}: {} lines", path.display(), plan.len());
    Ok(plan)
}
