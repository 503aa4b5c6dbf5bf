//! Reference handlers shared by the `count-processor` binary (crash tests) and the runtime
//! benchmark, and the process helpers of the end-to-end tests ([`processes`]). The tests
//! live in `tests/tests/`.

use std::path::PathBuf;

use bridge_events::Event;
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound};
use rust_decimal::Decimal;

pub mod processes;

/// The workspace's root folder (the repository checkout).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The binary `name` that `cargo build --bins` put in the workspace's target folder (or
/// `CARGO_TARGET_DIR`), for tests that run the real processes.
pub fn binary(name: &str) -> Result<PathBuf, String> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let path = target.join("debug").join(name);
    match path.exists() {
        true => Ok(path),
        false => Err(format!(
            "{} is missing: run `cargo build --bins` first (make test does)",
            path.display()
        )),
    }
}

/// Counts inventory movements per SKU in state and emits the running count for every input
/// (event id `<sku>#<count>`, quantity = count). With `flaky_failures_left = N` the SKU
/// `SKU-FLAKY` fails as retryable N times before it succeeds.
pub struct CountPerSku {
    /// Output topic.
    pub output: String,
    /// Retryable failures still to give for `SKU-FLAKY`.
    pub flaky_failures_left: u32,
}

impl Handler for CountPerSku {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Event::InventoryMovement(movement) = input.event else {
            return Err(HandlerError::Terminal {
                class: "unexpected_event",
                reason: input.event.record_name().to_owned(),
            });
        };
        if movement.sku == "SKU-FLAKY" && self.flaky_failures_left > 0 {
            self.flaky_failures_left -= 1;
            return Err(HandlerError::Retryable {
                reason: "the flaky sku fails this time".into(),
                retry_after: None,
            });
        }
        let key = movement.sku.as_bytes();
        let count = match ctx.get(key)? {
            Some(raw) => u64::from_be_bytes(raw.try_into().map_err(|_| HandlerError::Fatal {
                reason: "corrupt count".into(),
            })?),
            None => 0,
        } + 1;
        ctx.put(key, &count.to_be_bytes(), None);
        let mut out = movement.clone();
        out.quantity = Decimal::from(count);
        out.envelope.causation_id = Some(movement.envelope.event_id.clone());
        out.envelope.event_id = format!("{}#{count}", movement.sku);
        ctx.emit(&self.output, &movement.sku, out);
        Ok(())
    }
}

/// Emits every input unchanged to `output`, keyed as it came: the runtime's own cost.
pub struct PassThrough {
    /// Output topic.
    pub output: String,
}

impl Handler for PassThrough {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let key = input.event.envelope().event_id.clone();
        ctx.emit(&self.output, &key, input.event.clone());
        Ok(())
    }
}
