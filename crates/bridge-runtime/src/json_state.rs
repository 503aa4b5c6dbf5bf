//! Handler state kept as JSON documents: typed reads and writes on [`Context`], and the
//! decoding of a scanned value. A stored value that does not read back (or a value that
//! cannot be written) is fatal: the loop stops naming the key, since going on would act
//! on state it cannot see.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::handler::{Context, HandlerError};

/// The fatal error of the state value under `key` that cannot be read or written.
pub fn corrupt(key: &[u8], e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Fatal {
        reason: format!(
            "state `{}` is unreadable: {e}",
            String::from_utf8_lossy(key)
        ),
    }
}

/// A JSON value as a scan ([`Context::scan`], [`Context::scan_page`]) returned it.
pub fn decode<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T, HandlerError> {
    serde_json::from_slice(raw).map_err(|e| corrupt(key, e))
}

impl Context<'_> {
    /// The JSON value under `key`.
    pub fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, HandlerError> {
        self.get(key)?.map(|raw| decode(key, &raw)).transpose()
    }

    /// Puts `value` as JSON under `key`, expiring after `ttl` if given.
    pub fn put_json<T: Serialize>(
        &mut self,
        key: &[u8],
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), HandlerError> {
        let raw = serde_json::to_vec(value).map_err(|e| corrupt(key, e))?;
        self.put(key, &raw, ttl);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::TestDriver;
    use crate::handler::{Handler, Inbound};
    use bridge_events::samples;

    /// Counts movements per SKU in a JSON document (noting each count it wrote and the
    /// sum a scan of all of them reads back), and reads a value it cannot parse.
    #[derive(Default)]
    struct Counts {
        written: Vec<u32>,
        scanned: Vec<u32>,
    }

    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    struct Count {
        seen: u32,
    }

    impl Handler for Counts {
        fn handle(
            &mut self,
            input: &Inbound<'_>,
            ctx: &mut Context<'_>,
        ) -> Result<(), HandlerError> {
            let bridge_events::Event::InventoryMovement(m) = input.event else {
                return Ok(());
            };
            if m.sku == "garbage" {
                ctx.put(b"count/garbage", b"not json", None);
                let read: Result<Option<Count>, _> = ctx.get_json(b"count/garbage");
                return read.map(|_| ());
            }
            let key = format!("count/{}", m.sku);
            let mut count: Count = ctx.get_json(key.as_bytes())?.unwrap_or_default();
            count.seen += 1;
            ctx.put_json(key.as_bytes(), &count, None)?;
            self.written.push(count.seen);
            let scanned: Vec<Count> = ctx
                .scan(b"count/")?
                .iter()
                .map(|(k, raw)| decode(k, raw))
                .collect::<Result<_, _>>()?;
            self.scanned.push(scanned.iter().map(|c| c.seen).sum());
            Ok(())
        }
    }

    #[test]
    fn json_values_round_trip_and_an_unreadable_one_is_fatal_naming_its_key()
    -> Result<(), HandlerError> {
        let mut driver = TestDriver::new(Counts::default(), 0);
        for (n, sku) in ["RED", "RED", "BLUE"].iter().enumerate() {
            let mut movement = samples::inventory_movement(sku, "default", 1);
            movement.envelope.event_id = format!("e{n}");
            driver.send(movement)?;
        }
        assert_eq!(driver.handler().written, [1, 2, 1]);
        assert_eq!(driver.handler().scanned, [1, 2, 3]);
        let mut movement = samples::inventory_movement("garbage", "default", 1);
        movement.envelope.event_id = "bad".into();
        match driver.send(movement) {
            Err(HandlerError::Fatal { reason }) => {
                assert!(reason.contains("count/garbage"), "{reason}");
            }
            other => panic!("expected a fatal error, got {other:?}"),
        }
        Ok(())
    }
}
