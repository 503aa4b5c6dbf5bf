//! The ERP's books: items, customers, sales orders (unique by external reference), credit
//! notes, stock levels per warehouse and stock adjustments (unique by external reference),
//! with the rules a real ERP enforces (unknown item, unknown or blocked customer, credit
//! limit, closed posting period, batch size).

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

mod documents;
mod fulfilment;
mod orders;
#[cfg(test)]
mod tests;

pub use documents::*;

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
}
