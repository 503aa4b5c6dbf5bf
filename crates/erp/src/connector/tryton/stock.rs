//! Stock adjustments in Tryton: internal shipments between the warehouse's lost-and-found
//! and its storage location — `<external_ref>:in` for the lines that add stock,
//! `<external_ref>:out` for those that remove it — taken through draft → waiting →
//! assigned (forced) → done. Tryton keeps no unique reference, so the shipment's
//! `reference` is looked up first; one found part-way (a crash between the calls) is taken
//! on from its state, one found done is the adjustment posted before.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Value, json};

use super::TrytonConnector;
use crate::connector::{ErpError, ErpLine, Posted, StockAdjustmentDoc};

const SHIPMENT: &str = "stock.shipment.internal";

/// The locations an adjustment moves stock between.
struct Warehouse {
    storage: i64,
    lost_found: i64,
}

impl TrytonConnector {
    /// Posts `adjustment` (idempotent by its external reference); the document id lists
    /// the internal shipments, e.g. `stock.shipment.internal:7,8`.
    pub(super) async fn adjust_stock(
        &self,
        adjustment: &StockAdjustmentDoc,
    ) -> Result<Posted<String>, ErpError> {
        let warehouse = self.warehouse(&adjustment.warehouse).await?;
        let mut ids = Vec::new();
        let mut new = false;
        for (direction, adds) in [("in", true), ("out", false)] {
            let lines: Vec<&ErpLine> = adjustment
                .lines
                .iter()
                .filter(|l| !l.quantity.is_zero() && (l.quantity > Decimal::ZERO) == adds)
                .collect();
            if lines.is_empty() {
                continue;
            }
            let reference = format!("{}:{direction}", adjustment.external_ref);
            let (from, to) = match adds {
                true => (warehouse.lost_found, warehouse.storage),
                false => (warehouse.storage, warehouse.lost_found),
            };
            let (id, state) = match self.shipment(&reference).await? {
                Some(found) => found,
                None => {
                    new = true;
                    (
                        self.create_shipment(&reference, from, to, &lines).await?,
                        "draft".into(),
                    )
                }
            };
            self.finish_shipment(id, &state, &reference).await?;
            ids.push(id.to_string());
        }
        Ok(Posted {
            doc: format!("{SHIPMENT}:{}", ids.join(",")),
            new,
        })
    }

    async fn warehouse(&self, code: &str) -> Result<Warehouse, ErpError> {
        let rows = self
            .search_read(
                "stock.location",
                json!([["type", "=", "warehouse"], ["code", "=", code]]),
                Some(1),
                json!(["storage_location", "lost_found_location"]),
                &json!({}),
            )
            .await?;
        let Some(row) = rows.get(0) else {
            return Err(ErpError::Rejected {
                code: "unknown_warehouse".into(),
                reason: format!("warehouse {code} does not exist in Tryton"),
            });
        };
        match (
            row["storage_location"].as_i64(),
            row["lost_found_location"].as_i64(),
        ) {
            (Some(storage), Some(lost_found)) => Ok(Warehouse {
                storage,
                lost_found,
            }),
            _ => Err(ErpError::Rejected {
                code: "validation".into(),
                reason: format!(
                    "warehouse {code} needs a storage and a lost-and-found location in Tryton \
                     to take stock adjustments"
                ),
            }),
        }
    }

    /// The internal shipment with this reference and its state, if there is one.
    async fn shipment(&self, reference: &str) -> Result<Option<(i64, String)>, ErpError> {
        let rows = self
            .search_read(
                SHIPMENT,
                json!([["reference", "=", reference], ["state", "!=", "cancelled"]]),
                Some(1),
                json!(["state"]),
                &json!({}),
            )
            .await?;
        Ok(rows.get(0).and_then(|row| {
            let id = row["id"].as_i64()?;
            Some((id, row["state"].as_str().unwrap_or_default().to_owned()))
        }))
    }

    async fn create_shipment(
        &self,
        reference: &str,
        from: i64,
        to: i64,
        lines: &[&ErpLine],
    ) -> Result<i64, ErpError> {
        let mut moves = Vec::with_capacity(lines.len());
        for line in lines {
            let product = self.product(&line.item_code).await?;
            let quantity = line
                .quantity
                .abs()
                .to_f64()
                .ok_or_else(|| ErpError::Rejected {
                    code: "validation".into(),
                    reason: format!(
                        "quantity {} of {} is out of range",
                        line.quantity, line.item_code
                    ),
                })?;
            moves.push(json!({
                "product": product.id,
                "unit": product.unit,
                "quantity": quantity,
                "from_location": from,
                "to_location": to,
            }));
        }
        let created = self
            .call(
                &format!("model.{SHIPMENT}.create"),
                vec![json!([{
                    "reference": reference,
                    "from_location": from,
                    "to_location": to,
                    "moves": [["create", moves]],
                }])],
            )
            .await?;
        created
            .get(0)
            .and_then(Value::as_i64)
            .ok_or_else(|| ErpError::Protocol(format!("{SHIPMENT}.create answered {created}")))
    }

    /// Takes the shipment from `state` to done (assignment forced: the ERP records what
    /// the store says happened, even below zero).
    async fn finish_shipment(&self, id: i64, state: &str, reference: &str) -> Result<(), ErpError> {
        let steps: &[&str] = match state {
            "request" | "draft" => &["wait", "assign_force", "do"],
            "waiting" => &["assign_force", "do"],
            "assigned" => &["do"],
            "done" => &[],
            other => {
                return Err(ErpError::Rejected {
                    code: "validation".into(),
                    reason: format!("stock adjustment {reference} is {other} in Tryton"),
                });
            }
        };
        for step in steps {
            self.call(&format!("model.{SHIPMENT}.{step}"), vec![json!([id])])
                .await?;
        }
        Ok(())
    }
}
