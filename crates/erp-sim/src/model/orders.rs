//! Sales orders in the books: booking with the rules and faults, amending, tampering (for
//! tests), forgetting and cancelling, and pricing their lines.

use rust_decimal::Decimal;

use crate::faults::OrderFaults;
use crate::totals::{PricedLine, TaxRounding, price_line, totals};

use super::documents::{Line, NewLine, NewSalesOrder, OrderPatch, SalesOrder};
use super::{Books, Created, Rejection, reject};

impl Books {
    /// Books a sales order, unless one with its external reference exists (then that one).
    pub fn create_order(
        &mut self,
        new: NewSalesOrder,
        faults: OrderFaults,
    ) -> Result<Created<SalesOrder>, Rejection> {
        if let Some(existing) = self.order_by_ref(&new.external_ref).cloned() {
            self.duplicate_creates += 1;
            if !self.rules.allow_duplicate_refs {
                return Ok(Created::Existing(existing));
            }
        }
        let result = self.check_and_book(new, faults);
        if let Err(r) = &result {
            *self.rejected.entry(r.code).or_default() += 1;
        }
        result.map(Created::New)
    }

    fn check_and_book(
        &mut self,
        new: NewSalesOrder,
        faults: OrderFaults,
    ) -> Result<SalesOrder, Rejection> {
        if new.lines.is_empty() {
            return Err(reject(
                "validation",
                "a sales order needs at least one line".into(),
            ));
        }
        if faults.reject {
            return Err(reject(
                "validation",
                format!(
                    "sales order {} failed validation (injected)",
                    new.external_ref
                ),
            ));
        }
        if let Some(closed) = &self.rules.closed_before
            && new.order_date.as_str() < closed.as_str()
        {
            return Err(reject(
                "closed_period",
                format!(
                    "the posting period of {} is closed (closed before {closed})",
                    new.order_date
                ),
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
        let Some(customer) = self.customers.get(&new.customer_ref) else {
            return Err(reject(
                "unknown_customer",
                format!("customer {} does not exist", new.customer_ref),
            ));
        };
        if customer.blocked {
            return Err(reject(
                "customer_blocked",
                format!("customer {} is blocked", customer.id),
            ));
        }
        let rounding = if faults.wrong_tax_rounding {
            TaxRounding::Truncate
        } else {
            TaxRounding::HalfUp
        };
        let mut lines = new.lines.clone();
        if faults.drop_line {
            lines.pop();
        }
        let priced = price_lines(&lines, rounding);
        let totals = totals(&priced, new.shipping_amount, new.shipping_tax_amount);
        if let Some(limit) = customer.credit_limit
            && customer.open_balance + totals.grand_total > limit
        {
            return Err(reject(
                "credit_limit",
                format!(
                    "customer {} would exceed the credit limit of {limit} {} (open {}, order {})",
                    customer.id, new.currency, customer.open_balance, totals.grand_total
                ),
            ));
        }
        let customer_id = customer.id.clone();
        if !self.rules.closed_catalogue {
            self.items.extend(lines.iter().map(|l| l.item_code.clone()));
        }
        self.last_order_number += 1;
        let id = format!("SO-{:06}", self.last_order_number);
        let mut changed = Vec::new();
        if faults.drop_line {
            changed.push("drop_line");
        }
        if faults.wrong_tax_rounding
            && priced
                .iter()
                .zip(&lines)
                .any(|(p, l)| l.tax_amount.is_some_and(|t| t != p.tax))
        {
            changed.push("wrong_tax_rounding");
        }
        if !changed.is_empty() {
            self.faulted.insert(new.external_ref.clone(), changed);
        }
        let order = SalesOrder {
            id: id.clone(),
            external_ref: new.external_ref.clone(),
            customer_id,
            customer_ref: new.customer_ref.clone(),
            currency: new.currency,
            order_date: new.order_date,
            warehouse: new.warehouse,
            shipping_method: new.shipping_method,
            payment_method: new.payment_method,
            status: "confirmed".into(),
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            lines: booked_lines(lines, priced),
            totals,
            credit_notes: Vec::new(),
            credited: Decimal::ZERO,
            shipment_id: None,
        };
        if let Some(c) = self.customers.get_mut(&new.customer_ref) {
            c.open_balance += order.totals.grand_total;
        }
        match self.order_refs.entry(new.external_ref) {
            std::collections::btree_map::Entry::Vacant(first) => {
                first.insert(id.clone());
            }
            std::collections::btree_map::Entry::Occupied(booked) => self
                .rebooked_refs
                .entry(booked.key().clone())
                .or_default()
                .push(id.clone()),
        }
        self.orders.insert(id, order.clone());
        Ok(order)
    }

    /// Replaces the lines of a booked order with `new`'s, priced again (a repair: the
    /// reconciler found the booking wrong and erp-writer sends the order again). Business
    /// faults do not apply; the customer's open balance follows the new total.
    pub fn amend(&mut self, id: &str, new: NewSalesOrder) -> Result<SalesOrder, Rejection> {
        let order = self
            .orders
            .get_mut(id)
            .ok_or_else(|| reject("not_found", format!("sales order {id} does not exist")))?;
        if order.external_ref != new.external_ref {
            return Err(reject(
                "validation",
                format!(
                    "sales order {id} is {}, not {}",
                    order.external_ref, new.external_ref
                ),
            ));
        }
        if order.status == "cancelled" {
            return Err(reject(
                "validation",
                format!("sales order {id} is cancelled and cannot be amended"),
            ));
        }
        if new.lines.is_empty() {
            return Err(reject(
                "validation",
                "a sales order needs at least one line".into(),
            ));
        }
        let priced = price_lines(&new.lines, TaxRounding::HalfUp);
        let totals = totals(&priced, new.shipping_amount, new.shipping_tax_amount);
        let before = order.totals.grand_total;
        order.lines = booked_lines(new.lines, priced);
        order.totals = totals;
        let amended = order.clone();
        if let Some(c) = self.customers.get_mut(&amended.customer_ref) {
            c.open_balance += amended.totals.grand_total - before;
        }
        self.faulted.remove(&amended.external_ref);
        self.amendments += 1;
        Ok(amended)
    }

    /// Changes a booked order's data behind everyone's back (`PATCH /admin/sales-orders/{ref}`):
    /// what an accountant's manual edit or a buggy ERP job does — nothing is priced again,
    /// so the reconciler has something to find.
    pub fn tamper(
        &mut self,
        external_ref: &str,
        patch: OrderPatch,
    ) -> Result<SalesOrder, Rejection> {
        let id = self
            .order_refs
            .get(external_ref)
            .cloned()
            .ok_or_else(|| reject("not_found", format!("no sales order for {external_ref}")))?;
        let order = self
            .orders
            .get_mut(&id)
            .ok_or_else(|| reject("not_found", format!("sales order {id} is gone")))?;
        if let Some(status) = patch.status {
            order.status = status;
        }
        if let Some(currency) = patch.currency {
            order.currency = currency;
        }
        if let Some(customer_ref) = patch.customer_ref {
            order.customer_ref = customer_ref;
        }
        for (item, quantity) in patch.quantities {
            if quantity.is_zero() {
                order.lines.retain(|l| l.item_code != item);
            } else if let Some(line) = order.lines.iter_mut().find(|l| l.item_code == item) {
                line.quantity = quantity;
            } else {
                let number = order.lines.len() as u32 + 1;
                order.lines.push(Line {
                    number,
                    item_code: item,
                    description: "added by hand".into(),
                    quantity,
                    unit_price: Decimal::ZERO,
                    discount_amount: Decimal::ZERO,
                    tax_amount: Decimal::ZERO,
                    tax_code: None,
                    source_line: None,
                });
            }
        }
        let t = &mut order.totals;
        for (field, value) in [
            (&mut t.subtotal, patch.subtotal),
            (&mut t.discount_amount, patch.discount_amount),
            (&mut t.shipping_amount, patch.shipping_amount),
            (&mut t.tax_amount, patch.tax_amount),
            (&mut t.grand_total, patch.grand_total),
            (&mut order.credited, patch.credited),
        ] {
            if let Some(value) = value {
                *field = value;
            }
        }
        Ok(order.clone())
    }

    /// Deletes a booked order (`DELETE /admin/sales-orders/{ref}`): an ERP that lost it.
    pub fn forget(&mut self, external_ref: &str) -> Option<SalesOrder> {
        let id = self.order_refs.remove(external_ref)?;
        self.orders.remove(&id)
    }

    /// Cancels an order (idempotent).
    pub fn cancel(&mut self, id: &str) -> Result<SalesOrder, Rejection> {
        let order = self
            .orders
            .get_mut(id)
            .ok_or_else(|| reject("not_found", format!("sales order {id} does not exist")))?;
        if order.status != "cancelled" {
            order.status = "cancelled".into();
            if let Some(c) = self.customers.get_mut(&order.customer_ref) {
                c.open_balance -= order.totals.grand_total;
            }
        }
        Ok(order.clone())
    }
}

/// Prices each line as the ERP does.
fn price_lines(lines: &[NewLine], rounding: TaxRounding) -> Vec<PricedLine> {
    lines
        .iter()
        .map(|l| {
            price_line(
                l.quantity,
                l.unit_price,
                l.discount_amount,
                l.tax_rate,
                l.tax_amount,
                rounding,
            )
        })
        .collect()
}

/// The booked lines of priced ones, numbered from 1.
fn booked_lines(lines: Vec<NewLine>, priced: Vec<PricedLine>) -> Vec<Line> {
    lines
        .into_iter()
        .zip(priced)
        .enumerate()
        .map(|(n, (l, p))| Line {
            number: n as u32 + 1,
            item_code: l.item_code,
            description: l.description,
            quantity: l.quantity,
            unit_price: l.unit_price,
            discount_amount: l.discount_amount,
            tax_amount: p.tax,
            tax_code: l.tax_code,
            source_line: l.source_line,
        })
        .collect()
}
