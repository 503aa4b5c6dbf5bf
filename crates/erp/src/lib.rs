//! **erp**: the ERP side of the bridge, once, for every service that talks to the ERP.
//!
//! - [`connector`]: the [`connector::ErpConnector`] trait — post a sales order, credit note
//!   or stock adjustment idempotently by external reference, read an order back, page
//!   shipments — with its implementations: Tryton over JSON-RPC ([`connector::tryton`]),
//!   `erp-sim` over HTTP/JSON ([`connector::erp_sim`]), and the one chosen by configuration
//!   ([`connector::configured`]). Errors are classified retryable or terminal.
//! - [`mapping`]: the mapping file — SKU → item code rules, tax and payment codes,
//!   warehouses — and the ERP documents it makes from order events.
//! - [`settings`]: `[writer.erp]` / `[reconciler.erp]`: which ERP, where, credentials from a
//!   file or the environment, timeouts and the rate limit.

pub mod connector;
pub mod mapping;
pub mod settings;
