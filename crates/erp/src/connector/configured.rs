//! The connector `[…erp]` settings name, built in one place for every service that talks to
//! the ERP (erp-writer, the reconciler): [`Configured`] is whichever connector the
//! settings chose, and an [`ErpConnector`] itself, passing each call on.

use std::collections::HashMap;
use std::time::Duration;

use super::erp_sim::ErpSimConnector;
use super::tryton::{TrytonConnector, TrytonSettings};
use super::{
    CreditNoteDoc, CustomerDoc, ErpConnector, ErpError, ErpOrder, Posted, SalesOrderDoc,
    ShipmentPage, StockAdjustmentDoc, StockLevel,
};
use crate::settings::{ConnectorKind, ErpSettings};

/// The connector of the settings.
pub enum Configured {
    /// erp-sim over HTTP/JSON.
    ErpSim(ErpSimConnector),
    /// Tryton over JSON-RPC (boxed: its session state is ten times erp-sim's client).
    Tryton(Box<TrytonConnector>),
}

impl Configured {
    /// The connector `settings` name, with their timeout.
    pub fn from_settings(settings: &ErpSettings) -> Result<Self, ErpError> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        Ok(match settings.connector {
            ConnectorKind::ErpSim => {
                Self::ErpSim(ErpSimConnector::new(&settings.base_url, timeout)?)
            }
            ConnectorKind::Tryton => Self::Tryton(Box::new(TrytonConnector::new(
                TrytonSettings {
                    base_url: settings.base_url.clone(),
                    database: settings.database.clone(),
                    user: settings.user.clone(),
                    password: settings
                        .resolved_password("erp")
                        .map_err(|e| ErpError::Protocol(e.to_string()))?
                        .expose()
                        .to_owned(),
                },
                timeout,
            )?)),
        })
    }
}

/// `$call` on whichever connector `$self` holds.
macro_rules! on_each {
    ($self:ident, $c:ident => $call:expr) => {
        match $self {
            Configured::ErpSim($c) => $call,
            Configured::Tryton($c) => $call,
        }
    };
}

impl ErpConnector for Configured {
    fn system(&self) -> &str {
        on_each!(self, c => c.system())
    }

    async fn probe(&self) -> Result<(), ErpError> {
        on_each!(self, c => c.probe().await)
    }

    async fn ensure_customers(&self, customers: &[CustomerDoc]) -> Result<(), ErpError> {
        on_each!(self, c => c.ensure_customers(customers).await)
    }

    async fn find_order(&self, external_ref: &str) -> Result<Option<ErpOrder>, ErpError> {
        on_each!(self, c => c.find_order(external_ref).await)
    }

    async fn find_orders(
        &self,
        external_refs: &[String],
    ) -> Result<HashMap<String, ErpOrder>, ErpError> {
        on_each!(self, c => c.find_orders(external_refs).await)
    }

    async fn order_refs(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, ErpError> {
        on_each!(self, c => c.order_refs(after, limit).await)
    }

    async fn shipments_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ShipmentPage, ErpError> {
        on_each!(self, c => c.shipments_after(cursor, limit).await)
    }

    async fn create_order(&self, order: &SalesOrderDoc) -> Result<Posted<ErpOrder>, ErpError> {
        on_each!(self, c => c.create_order(order).await)
    }

    async fn amend_order(&self, erp_id: &str, order: &SalesOrderDoc) -> Result<ErpOrder, ErpError> {
        on_each!(self, c => c.amend_order(erp_id, order).await)
    }

    async fn cancel_order(&self, erp_id: &str) -> Result<(), ErpError> {
        on_each!(self, c => c.cancel_order(erp_id).await)
    }

    async fn credit(&self, note: &CreditNoteDoc) -> Result<Posted<String>, ErpError> {
        on_each!(self, c => c.credit(note).await)
    }

    async fn post_stock_adjustment(
        &self,
        adjustment: &StockAdjustmentDoc,
    ) -> Result<Posted<String>, ErpError> {
        on_each!(self, c => c.post_stock_adjustment(adjustment).await)
    }

    async fn stock_levels(&self, warehouse: &str) -> Result<Vec<StockLevel>, ErpError> {
        on_each!(self, c => c.stock_levels(warehouse).await)
    }
}
