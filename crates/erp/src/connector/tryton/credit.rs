//! Credit notes in Tryton: a *return sale* — a sale with negative quantities, the way
//! Tryton books returns; confirming it makes the customer return shipment and the credit
//! note invoice. It carries the credit memo's reference (`<order>/<memo>`), which is looked
//! up first, so a replay books nothing twice. Lines take the original sale's unit price,
//! unit and taxes for their item; Magento's total is authoritative for what was refunded
//! (shipping, adjustment fees, rounding), so a difference between Tryton's computed total
//! and the memo's becomes one untaxed adjustment line on the SHIPPING item.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{TrytonConnector, decimal, read_decimal};
use crate::connector::{CreditNoteDoc, ErpError, Posted};

/// What a return line needs from the sale line that sold the item.
struct Sold {
    product: i64,
    unit: i64,
    unit_price: Value,
    taxes: Value,
}

fn quantity(value: Decimal) -> f64 {
    value.to_string().parse::<f64>().unwrap_or_default()
}

impl TrytonConnector {
    /// Books `note` as a confirmed return sale (idempotent by its external reference); the
    /// document id is the sale's id.
    pub(super) async fn book_credit(
        &self,
        note: &CreditNoteDoc,
    ) -> Result<Posted<String>, ErpError> {
        if let Some(&id) = self.sales_with_reference(&note.external_ref).await?.first() {
            let state = self.sale_state(id).await?;
            self.finish(id, &state).await?;
            return Ok(Posted {
                doc: id.to_string(),
                new: false,
            });
        }
        let fields = json!([
            "party",
            "invoice_address",
            "shipment_address",
            "warehouse",
            "currency",
            "payment_term"
        ]);
        let originals = self
            .search_read(
                "sale.sale",
                json!([["reference", "=", note.order_ref]]),
                Some(1),
                fields,
                &json!({}),
            )
            .await?;
        let Some(original) = originals.get(0).cloned() else {
            return Err(ErpError::Rejected {
                code: "not_found".into(),
                reason: format!(
                    "credit note {}: order {} is not in Tryton",
                    note.external_ref, note.order_ref
                ),
            });
        };
        let original_id = original["id"].as_i64().unwrap_or_default();
        let sold = self
            .search_read(
                "sale.line",
                json!([["sale", "=", original_id], ["type", "=", "line"]]),
                None,
                json!(["product", "product.code", "unit", "unit_price", "taxes"]),
                &json!({}),
            )
            .await?;
        let sold_as = |code: &str| {
            sold.as_array()?
                .iter()
                .find(|l| l.pointer("/product./code").and_then(Value::as_str) == Some(code))
                .map(|l| Sold {
                    product: l["product"].as_i64().unwrap_or_default(),
                    unit: l["unit"].as_i64().unwrap_or(1),
                    unit_price: l["unit_price"].clone(),
                    taxes: l["taxes"].clone(),
                })
        };
        let mut lines = Vec::new();
        for line in note.lines.iter().filter(|l| !l.quantity.is_zero()) {
            let Some(sold) = sold_as(&line.item_code) else {
                return Err(ErpError::Rejected {
                    code: "unknown_item".into(),
                    reason: format!(
                        "credit note {}: item {} was not sold on Tryton sale {original_id} ({})",
                        note.external_ref, line.item_code, note.order_ref
                    ),
                });
            };
            lines.push(json!({
                "type": "line",
                "product": sold.product,
                "quantity": -quantity(line.quantity.abs()),
                "unit": sold.unit,
                "unit_price": sold.unit_price,
                "description": format!("Return of {} (credit memo {})", line.item_code, note.external_ref),
                "taxes": [["add", sold.taxes]],
            }));
        }
        let mut sale = json!({
            "party": original["party"],
            "warehouse": original["warehouse"],
            "currency": original["currency"],
            "reference": note.external_ref,
            "description": format!("Magento credit memo {} (order #{})", note.external_ref, note.order_ref),
            "lines": [["create", lines]],
        });
        for key in ["invoice_address", "shipment_address", "payment_term"] {
            if original[key].is_i64() {
                sale[key] = original[key].clone();
            }
        }
        let id = self.create_sale(sale).await?;
        self.match_total(id, note).await?;
        self.finish(id, "draft").await?;
        Ok(Posted {
            doc: id.to_string(),
            new: true,
        })
    }

    /// Adds the untaxed line that makes the return's total minus the memo's amount.
    async fn match_total(&self, id: i64, note: &CreditNoteDoc) -> Result<(), ErpError> {
        let total = read_decimal(&self.read_field("sale.sale", id, "total_amount").await?);
        let difference = -note.amount.abs() - total;
        if difference.is_zero() {
            return Ok(());
        }
        let item = self.product("SHIPPING").await?;
        let adjustment = json!({
            "type": "line",
            "product": item.id,
            "quantity": -1.0,
            "unit": item.unit,
            "unit_price": decimal(-difference),
            "description": format!("Refund adjustment (credit memo {})", note.external_ref),
        });
        self.call(
            "model.sale.sale.write",
            vec![json!([id]), json!({"lines": [["create", [adjustment]]]})],
        )
        .await
        .map(|_| ())
    }

    async fn sale_state(&self, id: i64) -> Result<String, ErpError> {
        let state = self.read_field("sale.sale", id, "state").await?;
        Ok(state.as_str().unwrap_or_default().to_owned())
    }
}
