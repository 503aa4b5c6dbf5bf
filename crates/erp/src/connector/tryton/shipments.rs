//! Tryton's shipments read back: customer shipments (`stock.shipment.out`) that are done,
//! oldest change first, keyset-paged on `(write_date, id)` — a shipment done after one with
//! a higher id is still found, and one written again later comes back under the same
//! shipment id (its `OrderShipped` event id is the same, so the shop sees it once). The
//! sale comes from the shipment's outgoing moves, whose origin is a `sale.line`; a
//! shipment of no sale is passed over. Tracking number: the shipment's `reference`.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Value, json};

use super::TrytonConnector;
use crate::connector::{ErpError, ErpShipment, ShipmentPage};

/// Milliseconds since the epoch of a Tryton `date` or `datetime` value (UTC).
fn millis(value: &Value) -> Option<i64> {
    let part = |key: &str| value.get(key).and_then(Value::as_u64);
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(part("year")?).ok()?,
        u32::try_from(part("month")?).ok()?,
        u32::try_from(part("day")?).ok()?,
    )?;
    let time = date.and_hms_micro_opt(
        u32::try_from(part("hour").unwrap_or(0)).ok()?,
        u32::try_from(part("minute").unwrap_or(0)).ok()?,
        u32::try_from(part("second").unwrap_or(0)).ok()?,
        u32::try_from(part("microsecond").unwrap_or(0)).ok()?,
    )?;
    Some(NaiveDateTime::and_utc(&time).timestamp_millis())
}

/// `sale.line,12` → 12.
fn sale_line(origin: &Value) -> Option<i64> {
    origin.as_str()?.strip_prefix("sale.line,")?.parse().ok()
}

impl TrytonConnector {
    /// Up to `limit` done customer shipments after `cursor` (from the start without one).
    pub(super) async fn done_shipments_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ShipmentPage, ErpError> {
        let after = cursor.and_then(|c| serde_json::from_str::<Value>(c).ok());
        let mut domain = vec![json!(["state", "=", "done"])];
        if let Some(after) = &after {
            let (at, id) = (&after["at"], after["id"].as_i64().unwrap_or_default());
            domain.push(json!([
                "OR",
                ["write_date", ">", at],
                [["write_date", "=", at], ["id", ">", id]]
            ]));
        }
        let params = vec![
            json!(domain),
            json!(0),
            json!(limit),
            json!([["write_date", "ASC"], ["id", "ASC"]]),
            json!([
                "number",
                "reference",
                "effective_date",
                "write_date",
                "outgoing_moves"
            ]),
        ];
        let rows = self
            .call_in("model.stock.shipment.out.search_read", params, &json!({}))
            .await?;
        let rows = rows.as_array().cloned().unwrap_or_default();
        let Some(last) = rows.last() else {
            return Ok(ShipmentPage {
                shipments: Vec::new(),
                cursor: cursor.unwrap_or_default().to_owned(),
            });
        };
        let next = json!({"at": last["write_date"], "id": last["id"]}).to_string();
        let move_ids: Vec<i64> = rows
            .iter()
            .flat_map(|r| r["outgoing_moves"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| m.as_i64())
            .collect();
        let moves = self
            .read("stock.move", &move_ids, json!(["shipment", "origin"]))
            .await?;
        let line_ids: Vec<i64> = moves
            .iter()
            .filter_map(|m| sale_line(&m["origin"]))
            .collect();
        let lines = self
            .read("sale.line", &line_ids, json!(["sale", "sale.reference"]))
            .await?;
        let sale_of_line = |id: i64| {
            let line = lines.iter().find(|l| l["id"].as_i64() == Some(id))?;
            let reference = line.pointer("/sale./reference")?.as_str()?.to_owned();
            Some((line["sale"].as_i64()?, reference))
        };
        let mut shipments = Vec::new();
        for row in &rows {
            let id = row["id"].as_i64().unwrap_or_default();
            let shipment = format!("stock.shipment.out,{id}");
            let sale = moves
                .iter()
                .filter(|m| m["shipment"].as_str() == Some(shipment.as_str()))
                .find_map(|m| sale_line(&m["origin"]).and_then(sale_of_line));
            let Some((sale_id, reference)) = sale else {
                continue;
            };
            let tracking = row["reference"]
                .as_str()
                .filter(|r| !r.is_empty())
                .map(str::to_owned);
            shipments.push(ErpShipment {
                external_ref: reference,
                erp_order_id: sale_id.to_string(),
                shipment_id: row["number"]
                    .as_str()
                    .map_or_else(|| id.to_string(), str::to_owned),
                carrier: None,
                tracking_number: tracking,
                shipped_at: millis(&row["effective_date"])
                    .or_else(|| millis(&row["write_date"]))
                    .unwrap_or_default(),
            });
        }
        Ok(ShipmentPage {
            shipments,
            cursor: next,
        })
    }
}

impl TrytonConnector {
    /// Ships every customer shipment of sale `sale_id` the way a warehouse clerk does
    /// (assignment forced, picked, packed, done), with `tracking` as its reference: how
    /// the tests and demos make Tryton ship.
    pub async fn ship_sale(&self, sale_id: i64, tracking: &str) -> Result<(), ErpError> {
        let shipments = self.read_field("sale.sale", sale_id, "shipments").await?;
        for id in shipments
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
        {
            self.call(
                "model.stock.shipment.out.write",
                vec![json!([id]), json!({"reference": tracking})],
            )
            .await?;
            for step in ["assign_force", "pick", "pack", "do"] {
                self.call(
                    &format!("model.stock.shipment.out.{step}"),
                    vec![json!([id])],
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tryton_dates_and_origins_are_read() {
        let date = json!({"__class__": "date", "year": 2026, "month": 11, "day": 30});
        assert_eq!(millis(&date), Some(1_795_996_800_000));
        let at = json!({"__class__": "datetime", "year": 2026, "month": 11, "day": 30,
            "hour": 1, "minute": 2, "second": 3, "microsecond": 4000});
        assert_eq!(millis(&at), Some(1_795_996_800_000 + 3_723_004));
        assert_eq!(millis(&json!(null)), None);
        assert_eq!(sale_line(&json!("sale.line,12")), Some(12));
        assert_eq!(sale_line(&json!("purchase.line,12")), None);
        assert_eq!(sale_line(&json!(null)), None);
    }
}
