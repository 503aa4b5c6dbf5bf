//! The ERP's books: items, customers, sales orders (unique by external reference), credit
//! notes, stock levels per warehouse and stock adjustments (unique by external reference),
//! with the rules a real ERP enforces (unknown item, unknown or blocked customer, credit
//! limit, closed posting period, batch size).

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::faults::OrderFaults;
use crate::totals::{PricedLine, TaxRounding, Totals, price_line, totals};

/// A rejection, answered 422 with its code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// Machine-readable: `unknown_item`, `unknown_customer`, `customer_blocked`,
    /// `credit_limit`, `closed_period`, `validation`, `batch_too_large`, `not_found`.
    pub code: &'static str,
    /// Readable.
    pub message: String,
}

fn reject(code: &'static str, message: String) -> Rejection {
    Rejection { code, message }
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The ERP's id, `C-000001`.
    pub id: String,
    /// The shop's reference (`customer:42`, `guest:000000123`).
    pub external_ref: String,
    /// Display name.
    pub name: String,
    /// Orders are refused.
    pub blocked: bool,
    /// Open order value allowed; none = unlimited.
    pub credit_limit: Option<Decimal>,
    /// Σ grand totals of open orders.
    pub open_balance: Decimal,
}

/// A customer to find or create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCustomer {
    /// The shop's reference.
    pub external_ref: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// A sales-order line as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLine {
    /// The item.
    pub item_code: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit price, order currency.
    pub unit_price: Decimal,
    /// Discount on the line (positive).
    #[serde(default)]
    pub discount_amount: Decimal,
    /// Tax code.
    #[serde(default)]
    pub tax_code: Option<String>,
    /// Tax rate in percent.
    #[serde(default)]
    pub tax_rate: Decimal,
    /// The tax as invoiced by the shop; computed from the rate when absent.
    #[serde(default)]
    pub tax_amount: Option<Decimal>,
    /// The shop's line id.
    #[serde(default)]
    pub source_line: Option<String>,
}

/// A sales order as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSalesOrder {
    /// The shop's order reference (Magento increment id): unique.
    pub external_ref: String,
    /// The customer's reference.
    pub customer_ref: String,
    /// ISO 4217.
    pub currency: String,
    /// `YYYY-MM-DD`, for the posting period.
    pub order_date: String,
    /// The warehouse it ships from.
    pub warehouse: String,
    /// Fulfilment method.
    #[serde(default)]
    pub shipping_method: Option<String>,
    /// Payment method.
    #[serde(default)]
    pub payment_method: Option<String>,
    /// Shipping before tax.
    #[serde(default)]
    pub shipping_amount: Decimal,
    /// Tax on shipping.
    #[serde(default)]
    pub shipping_tax_amount: Decimal,
    /// The lines.
    pub lines: Vec<NewLine>,
}

/// A sales-order line as booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// 1-based.
    pub number: u32,
    /// The item.
    pub item_code: String,
    /// Description.
    pub description: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit price.
    pub unit_price: Decimal,
    /// Discount.
    pub discount_amount: Decimal,
    /// Tax.
    pub tax_amount: Decimal,
    /// Tax code.
    pub tax_code: Option<String>,
    /// The shop's line id.
    pub source_line: Option<String>,
}

/// A booked sales order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesOrder {
    /// `SO-000001`.
    pub id: String,
    /// The shop's reference.
    pub external_ref: String,
    /// The ERP customer id.
    pub customer_id: String,
    /// The shop's customer reference.
    pub customer_ref: String,
    /// ISO 4217.
    pub currency: String,
    /// Posting date.
    pub order_date: String,
    /// Warehouse.
    pub warehouse: String,
    /// Fulfilment method.
    pub shipping_method: Option<String>,
    /// Payment method.
    pub payment_method: Option<String>,
    /// `confirmed`, `cancelled`.
    pub status: String,
    /// When it was booked, milliseconds since the epoch.
    #[serde(default)]
    pub created_at: i64,
    /// Lines as booked.
    pub lines: Vec<Line>,
    /// The ERP's totals (authoritative).
    pub totals: Totals,
    /// Credit notes against it.
    pub credit_notes: Vec<String>,
    /// Σ credited.
    pub credited: Decimal,
    /// The shipment that delivered it, once shipped.
    #[serde(default)]
    pub shipment_id: Option<String>,
}

/// A delivery of an order's goods as the warehouse confirmed it, in the ERP's shipment
/// journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// Position in the journal (1, 2, …): what readers page by.
    pub seq: u64,
    /// `SH-000001`.
    pub id: String,
    /// The sales order shipped.
    pub order_id: String,
    /// The shop's reference of that order.
    pub external_ref: String,
    /// Carrier code, e.g. `ups`.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// When it left the warehouse, milliseconds since the epoch.
    pub shipped_at: i64,
}

/// What the warehouse says when it ships an order (`POST /admin/sales-orders/{ref}/ship`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewShipment {
    /// Carrier code.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
}

/// A raw edit of a booked order: every field optional; `quantities` sets an item's
/// quantity (0 removes its lines, an unknown item is added at price 0). Totals are not
/// computed again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderPatch {
    /// New status, e.g. `cancelled`.
    pub status: Option<String>,
    /// New currency.
    pub currency: Option<String>,
    /// Another customer.
    pub customer_ref: Option<String>,
    /// Item code → quantity.
    pub quantities: BTreeMap<String, Decimal>,
    /// Totals to overwrite.
    pub subtotal: Option<Decimal>,
    /// Discount to overwrite.
    pub discount_amount: Option<Decimal>,
    /// Shipping to overwrite.
    pub shipping_amount: Option<Decimal>,
    /// Tax to overwrite.
    pub tax_amount: Option<Decimal>,
    /// Grand total to overwrite.
    pub grand_total: Option<Decimal>,
    /// Credited to overwrite.
    pub credited: Option<Decimal>,
}

/// A credit note as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCreditNote {
    /// The shop's credit memo reference: unique.
    pub external_ref: String,
    /// The order's external reference.
    pub order_ref: String,
    /// Amount credited, tax included.
    pub amount: Decimal,
    /// Of which tax.
    #[serde(default)]
    pub tax_amount: Decimal,
    /// Lines credited (item, quantity).
    #[serde(default)]
    pub lines: Vec<StockLine>,
}

/// A booked credit note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    /// `CN-000001`.
    pub id: String,
    /// As sent.
    #[serde(flatten)]
    pub note: NewCreditNote,
    /// The sales order.
    pub sales_order_id: String,
}

/// An item and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    /// The item.
    pub item_code: String,
    /// The quantity (signed for adjustments).
    pub quantity: Decimal,
}

/// A stock adjustment as sent: one per window and warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAdjustment {
    /// Unique: the window key (and chunk).
    pub external_ref: String,
    /// The warehouse.
    pub warehouse: String,
    /// Signed quantities.
    pub lines: Vec<StockLine>,
}

/// A booked adjustment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// `ADJ-000001`.
    pub id: String,
    /// As sent.
    #[serde(flatten)]
    pub adjustment: NewAdjustment,
}

/// Whether a create made something new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created<T> {
    /// New.
    New(T),
    /// It existed already (same external reference): the existing one.
    Existing(T),
}

/// The rules a business sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Only registered items exist (otherwise any item code is accepted and registered).
    pub closed_catalogue: bool,
    /// Orders dated before this `YYYY-MM-DD` fall in a closed period.
    pub closed_before: Option<String>,
    /// Default credit limit of new customers; none = unlimited.
    pub credit_limit: Option<Decimal>,
    /// Most lines in one stock adjustment; 0 = 500.
    pub adjustment_batch_limit: usize,
    /// Book a second sales order with a known external reference, as ERPs without a
    /// unique reference do (Tryton's `reference` is not unique): the writer's own
    /// idempotency is then all that stands between a retry and a duplicate.
    pub allow_duplicate_refs: bool,
    /// Ship every confirmed order this long after it was booked (a warehouse that keeps
    /// up); none = only when `POST /admin/sales-orders/{ref}/ship` says so.
    pub ship_after_ms: Option<u64>,
}

/// All of it.
#[derive(Debug, Default)]
pub struct Books {
    /// Business rules.
    pub rules: Rules,
    /// Registered items.
    pub items: BTreeSet<String>,
    /// Customers by external reference.
    pub customers: BTreeMap<String, Customer>,
    /// Sales orders by id.
    pub orders: BTreeMap<String, SalesOrder>,
    /// Order id by external reference (the first booking of it).
    pub order_refs: BTreeMap<String, String>,
    /// Later bookings of a reference already booked, in booking order (only where
    /// duplicate references are allowed): with `order_refs`, every order of a reference
    /// is found without reading every order.
    pub rebooked_refs: BTreeMap<String, Vec<String>>,
    /// Credit notes by external reference.
    pub credit_notes: BTreeMap<String, CreditNote>,
    /// Stock by (warehouse, item).
    pub stock: BTreeMap<(String, String), Decimal>,
    /// Adjustments by external reference.
    pub adjustments: BTreeMap<String, Adjustment>,
    /// Which faults changed which order (for tests and the reconciler's checks).
    pub faulted: BTreeMap<String, Vec<&'static str>>,
    /// Rejections by code.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Creates that named a known external reference (answered 409, or booked twice when
    /// duplicates are allowed).
    pub duplicate_creates: u64,
    /// Orders amended (repairs).
    pub amendments: u64,
    /// Find-or-create requests for customers, and the most customers one of them held.
    pub customer_batches: u64,
    /// See [`Books::customer_batches`].
    pub largest_customer_batch: usize,
    /// The last sales-order number given (ids are never reused, even after a delete).
    pub last_order_number: u64,
    /// The shipment journal, in order (`seq` = position + 1).
    pub shipments: Vec<Shipment>,
}

impl Books {
    /// Empty books under `rules`.
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            ..Self::default()
        }
    }

    /// Finds or creates each customer.
    pub fn customers(&mut self, wanted: &[NewCustomer]) -> Vec<Customer> {
        self.customer_batches += 1;
        self.largest_customer_batch = self.largest_customer_batch.max(wanted.len());
        let mut out = Vec::with_capacity(wanted.len());
        for c in wanted {
            let next = self.customers.len() + 1;
            let limit = self.rules.credit_limit;
            let customer = self
                .customers
                .entry(c.external_ref.clone())
                .or_insert_with(|| Customer {
                    id: format!("C-{next:06}"),
                    external_ref: c.external_ref.clone(),
                    name: c.name.clone(),
                    blocked: false,
                    credit_limit: limit,
                    open_balance: Decimal::ZERO,
                });
            out.push(customer.clone());
        }
        out
    }

    /// The order with this external reference.
    pub fn order_by_ref(&self, external_ref: &str) -> Option<&SalesOrder> {
        self.order_refs
            .get(external_ref)
            .and_then(|id| self.orders.get(id))
    }

    /// Every order booked with this external reference, in booking order (more than one
    /// only where duplicate references are allowed).
    pub fn orders_by_ref(&self, external_ref: &str) -> Vec<&SalesOrder> {
        let mut ids: Vec<&String> = self.order_refs.get(external_ref).into_iter().collect();
        ids.extend(self.rebooked_refs.get(external_ref).into_iter().flatten());
        let mut found: Vec<&SalesOrder> = ids
            .into_iter()
            .filter_map(|id| self.orders.get(id))
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn order(external_ref: &str, lines: usize) -> NewSalesOrder {
        NewSalesOrder {
            external_ref: external_ref.into(),
            customer_ref: "customer:1".into(),
            currency: "USD".into(),
            order_date: "2026-11-24".into(),
            warehouse: "WH-MAIN".into(),
            shipping_method: None,
            payment_method: None,
            shipping_amount: Decimal::TEN,
            shipping_tax_amount: Decimal::ZERO,
            lines: (0..lines)
                .map(|n| NewLine {
                    item_code: format!("ITEM-{n}"),
                    description: String::new(),
                    quantity: Decimal::ONE,
                    unit_price: Decimal::ONE_HUNDRED,
                    discount_amount: Decimal::ZERO,
                    tax_code: None,
                    tax_rate: Decimal::ZERO,
                    tax_amount: None,
                    source_line: None,
                })
                .collect(),
        }
    }

    fn books() -> Books {
        let mut books = Books::new(Rules::default());
        books.customers(&[NewCustomer {
            external_ref: "customer:1".into(),
            name: "A".into(),
        }]);
        books
    }

    #[test]
    fn an_external_reference_is_booked_once() -> Result<(), Rejection> {
        let mut books = books();
        let first = books.create_order(order("100", 2), OrderFaults::default())?;
        let again = books.create_order(order("100", 2), OrderFaults::default())?;
        assert!(matches!(first, Created::New(_)));
        assert!(matches!(again, Created::Existing(o) if o.id == "SO-000001"));
        assert_eq!(books.orders.len(), 1);
        Ok(())
    }

    #[test]
    fn an_amendment_books_the_lines_again_without_faults_and_moves_the_balance()
    -> Result<(), Rejection> {
        let mut books = books();
        let faults = OrderFaults {
            drop_line: true,
            ..OrderFaults::default()
        };
        let Created::New(short) = books.create_order(order("9", 3), faults)? else {
            return Err(reject("validation", "not new".into()));
        };
        assert_eq!(short.lines.len(), 2);
        let amended = books.amend(&short.id, order("9", 3))?;
        assert_eq!(
            (amended.id.as_str(), amended.lines.len()),
            (short.id.as_str(), 3)
        );
        assert_eq!(amended.totals.grand_total, Decimal::from(310));
        assert!(!books.faulted.contains_key("9"));
        assert_eq!(
            books.customers["customer:1"].open_balance,
            Decimal::from(310)
        );
        assert_eq!(books.amendments, 1);
        // Not another order's lines, and not a cancelled order.
        assert!(books.amend(&short.id, order("10", 1)).is_err());
        books.cancel(&short.id)?;
        assert!(books.amend(&short.id, order("9", 1)).is_err());
        Ok(())
    }

    #[test]
    fn an_order_booked_after_a_delete_gets_a_new_number() -> Result<(), Rejection> {
        let mut books = books();
        for r in ["1", "2", "3"] {
            books.create_order(order(r, 1), OrderFaults::default())?;
        }
        assert!(books.forget("2").is_some());
        let Created::New(again) = books.create_order(order("2", 1), OrderFaults::default())? else {
            return Err(reject("validation", "not new".into()));
        };
        assert_eq!(again.id, "SO-000004");
        assert_eq!(
            books.order_by_ref("3").map(|o| o.id.as_str()),
            Some("SO-000003")
        );
        Ok(())
    }

    #[test]
    fn every_booking_of_a_reference_is_found_by_it_where_duplicates_are_allowed()
    -> Result<(), Rejection> {
        let mut books = books();
        books.rules.allow_duplicate_refs = true;
        for r in ["1", "2", "1", "1"] {
            books.create_order(order(r, 1), OrderFaults::default())?;
        }
        let ids = |books: &Books, r: &str| -> Vec<String> {
            books
                .orders_by_ref(r)
                .into_iter()
                .map(|o| o.id.clone())
                .collect()
        };
        assert_eq!(ids(&books, "1"), ["SO-000001", "SO-000003", "SO-000004"]);
        assert_eq!(ids(&books, "2"), ["SO-000002"]);
        assert!(ids(&books, "5").is_empty());
        assert_eq!(books.duplicate_creates, 2);
        // A delete forgets the first booking; the later ones stay, and a new one joins.
        assert!(books.forget("1").is_some());
        assert_eq!(ids(&books, "1"), ["SO-000003", "SO-000004"]);
        books.create_order(order("1", 1), OrderFaults::default())?;
        assert_eq!(ids(&books, "1"), ["SO-000003", "SO-000004", "SO-000005"]);
        Ok(())
    }

    #[test]
    fn a_dropped_line_is_booked_silently_and_remembered() -> Result<(), Rejection> {
        let mut books = books();
        let faults = OrderFaults {
            drop_line: true,
            ..OrderFaults::default()
        };
        let Created::New(booked) = books.create_order(order("7", 3), faults)? else {
            return Err(reject("validation", "not new".into()));
        };
        assert_eq!(booked.lines.len(), 2);
        assert_eq!(booked.totals.grand_total, Decimal::from(210));
        assert_eq!(books.faulted["7"], vec!["drop_line"]);
        Ok(())
    }

    #[test]
    fn rules_reject_with_a_code() {
        let mut books = books();
        books.rules.closed_catalogue = true;
        let e = books.create_order(order("1", 1), OrderFaults::default());
        assert_eq!(e.map(|_| ()).map_err(|r| r.code), Err("unknown_item"));
        books.rules.closed_catalogue = false;
        books.rules.closed_before = Some("2026-12-01".into());
        let e = books.create_order(order("2", 1), OrderFaults::default());
        assert_eq!(e.map(|_| ()).map_err(|r| r.code), Err("closed_period"));
        books.rules.closed_before = None;
        if let Some(c) = books.customers.get_mut("customer:1") {
            c.credit_limit = Some(Decimal::from(150));
        }
        let e = books.create_order(order("3", 1), OrderFaults::default());
        assert!(e.is_ok());
        let e = books.create_order(order("4", 1), OrderFaults::default());
        assert_eq!(e.map(|_| ()).map_err(|r| r.code), Err("credit_limit"));
    }

    #[test]
    fn adjustments_are_unique_by_reference_and_bounded() -> Result<(), Rejection> {
        let mut books = books();
        books.rules.adjustment_batch_limit = 2;
        let adjustment = NewAdjustment {
            external_ref: "w1".into(),
            warehouse: "WH".into(),
            lines: vec![StockLine {
                item_code: "A".into(),
                quantity: Decimal::from(-3),
            }],
        };
        books.adjust(adjustment.clone())?;
        books.adjust(adjustment)?;
        assert_eq!(books.stock[&("WH".into(), "A".into())], Decimal::from(-3));
        let big = NewAdjustment {
            external_ref: "w2".into(),
            warehouse: "WH".into(),
            lines: vec![
                StockLine {
                    item_code: "A".into(),
                    quantity: Decimal::ONE,
                };
                3
            ],
        };
        assert_eq!(
            books.adjust(big).map(|_| ()).map_err(|r| r.code),
            Err("batch_too_large")
        );
        Ok(())
    }

    #[test]
    fn an_order_ships_once_into_the_journal_and_a_cancelled_one_not_at_all() -> Result<(), Rejection>
    {
        let mut books = books();
        for r in ["1", "2", "3"] {
            books.create_order(order(r, 1), OrderFaults::default())?;
        }
        let Created::New(first) = books.ship("2", NewShipment::default(), 10)? else {
            panic!("a first shipment is new");
        };
        assert_eq!((first.seq, first.id.as_str()), (1, "SH-000001"));
        let again = books.ship("2", NewShipment::default(), 20)?;
        assert!(matches!(again, Created::Existing(s) if s == first));
        let id = books.order_refs["3"].clone();
        books.cancel(&id)?;
        assert_eq!(
            books.ship("3", NewShipment::default(), 30).map(|_| ()),
            Err(reject(
                "cancelled",
                "sales order SO-000003 is cancelled: nothing to ship".into()
            ))
        );
        assert!(books.ship("404", NewShipment::default(), 30).is_err());

        // The rule ships what is due (not the cancelled one), after the journal so far.
        // Every order is booked at one instant: the wall clock moves between the creates.
        books.rules.ship_after_ms = Some(1_000);
        let booked = 1_700_000_000_000;
        for o in books.orders.values_mut() {
            o.created_at = booked;
        }
        books.ship_due(booked + 999);
        assert_eq!(books.shipments.len(), 1, "nothing due yet");
        books.ship_due(booked + 1_000);
        let refs: Vec<&str> = books
            .shipments_after(1, 10)
            .iter()
            .map(|s| s.external_ref.as_str())
            .collect();
        assert_eq!(refs, ["1"]);
        assert!(books.shipments_after(2, 10).is_empty());
        assert_eq!(books.shipments_after(0, 1).len(), 1);
        Ok(())
    }
}
