//! What follows a sale in the books: shipments and their journal, credit notes and stock
//! adjustments (both unique by external reference).

use super::documents::{
    Adjustment, CreditNote, NewAdjustment, NewCreditNote, NewShipment, Shipment,
};
use super::{Books, Created, Rejection, reject};

impl Books {
    /// Ships an order (idempotent: a shipped order answers its shipment).
    pub fn ship(
        &mut self,
        external_ref: &str,
        new: NewShipment,
        now: i64,
    ) -> Result<Created<Shipment>, Rejection> {
        let id = self
            .order_refs
            .get(external_ref)
            .cloned()
            .ok_or_else(|| reject("not_found", format!("no sales order for {external_ref}")))?;
        let order = self
            .orders
            .get_mut(&id)
            .ok_or_else(|| reject("not_found", format!("sales order {id} does not exist")))?;
        if let Some(shipped) = &order.shipment_id {
            let existing = self.shipments.iter().find(|s| &s.id == shipped);
            if let Some(existing) = existing {
                return Ok(Created::Existing(existing.clone()));
            }
        }
        if order.status == "cancelled" {
            return Err(reject(
                "cancelled",
                format!("sales order {id} is cancelled: nothing to ship"),
            ));
        }
        let seq = self.shipments.len() as u64 + 1;
        let shipment = Shipment {
            seq,
            id: format!("SH-{seq:06}"),
            order_id: id,
            external_ref: external_ref.to_owned(),
            carrier: new.carrier,
            tracking_number: new.tracking_number,
            shipped_at: now,
        };
        order.shipment_id = Some(shipment.id.clone());
        self.shipments.push(shipment.clone());
        Ok(Created::New(shipment))
    }

    /// Ships every confirmed order booked `after_ms` or longer before `now` (the rule
    /// `ship_after_ms`: a warehouse that keeps up).
    pub fn ship_due(&mut self, now: i64) {
        let Some(after_ms) = self.rules.ship_after_ms else {
            return;
        };
        let due: Vec<String> = self
            .orders
            .values()
            .filter(|o| o.status != "cancelled" && o.shipment_id.is_none())
            .filter(|o| o.created_at.saturating_add(after_ms as i64) <= now)
            .map(|o| o.external_ref.clone())
            .collect();
        for external_ref in due {
            let tracking = format!("1Z{:010}", self.shipments.len() + 1);
            let new = NewShipment {
                carrier: Some("ups".into()),
                tracking_number: Some(tracking),
            };
            // Every one of them is known and not cancelled: this cannot refuse.
            let _ = self.ship(&external_ref, new, now);
        }
    }

    /// Up to `size` journal entries after position `after`.
    pub fn shipments_after(&self, after: u64, size: usize) -> &[Shipment] {
        let start = (after as usize).min(self.shipments.len());
        let end = start.saturating_add(size).min(self.shipments.len());
        &self.shipments[start..end]
    }

    /// Books a credit note, unless one with its external reference exists.
    pub fn credit(&mut self, new: NewCreditNote) -> Result<Created<CreditNote>, Rejection> {
        if let Some(existing) = self.credit_notes.get(&new.external_ref) {
            return Ok(Created::Existing(existing.clone()));
        }
        let Some(order_id) = self.order_refs.get(&new.order_ref).cloned() else {
            return Err(reject(
                "not_found",
                format!("no sales order for {}", new.order_ref),
            ));
        };
        let order = self
            .orders
            .get_mut(&order_id)
            .ok_or_else(|| reject("not_found", format!("sales order {order_id} is gone")))?;
        if order.credited + new.amount > order.totals.grand_total {
            return Err(reject(
                "validation",
                format!(
                    "credit {} exceeds what is left to credit on {} ({})",
                    new.amount,
                    order.id,
                    order.totals.grand_total - order.credited
                ),
            ));
        }
        let id = format!("CN-{:06}", self.credit_notes.len() + 1);
        order.credited += new.amount;
        order.credit_notes.push(id.clone());
        let note = CreditNote {
            id,
            sales_order_id: order_id,
            note: new,
        };
        self.credit_notes
            .insert(note.note.external_ref.clone(), note.clone());
        Ok(Created::New(note))
    }

    /// Books a stock adjustment, unless one with its external reference exists.
    pub fn adjust(&mut self, new: NewAdjustment) -> Result<Created<Adjustment>, Rejection> {
        if let Some(existing) = self.adjustments.get(&new.external_ref) {
            return Ok(Created::Existing(existing.clone()));
        }
        let limit = match self.rules.adjustment_batch_limit {
            0 => 500,
            n => n,
        };
        if new.lines.len() > limit {
            return Err(reject(
                "batch_too_large",
                format!("{} lines; at most {limit} per adjustment", new.lines.len()),
            ));
        }
        for line in &new.lines {
            if self.rules.closed_catalogue && !self.items.contains(&line.item_code) {
                return Err(reject(
                    "unknown_item",
                    format!("item {} does not exist", line.item_code),
                ));
            }
        }
        for line in &new.lines {
            *self
                .stock
                .entry((new.warehouse.clone(), line.item_code.clone()))
                .or_default() += line.quantity;
        }
        let id = format!("ADJ-{:06}", self.adjustments.len() + 1);
        let adjustment = Adjustment {
            id,
            adjustment: new,
        };
        self.adjustments.insert(
            adjustment.adjustment.external_ref.clone(),
            adjustment.clone(),
        );
        Ok(Created::New(adjustment))
    }
}
