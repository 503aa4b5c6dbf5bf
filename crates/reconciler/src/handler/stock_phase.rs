//! The stock phase of a run (partition 0): pages of MSI source items from Magento against
//! the ERP's on-hand quantities, each warehouse read once per phase.

use bridge_events::Millis;
use bridge_runtime::handler::Context;
use erp::connector::ErpConnector;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::compare::{compare_stock, money};
use crate::findings::Scope;
use crate::run::Active;

use super::{Reconciler, SliceError};

/// A stock observation that is not yet drift: the same two quantities must stay for the
/// stock settle time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Observation {
    magento: Decimal,
    erp: Decimal,
    since: Millis,
}

impl<C: ErpConnector> Reconciler<C> {
    /// The ERP's on-hand quantity of `item` in `warehouse`; each warehouse's stock is read
    /// once per stock phase.
    pub(super) fn erp_quantity(
        &mut self,
        warehouse: &str,
        item: &str,
    ) -> Result<Decimal, SliceError> {
        if !self.erp_stock.contains_key(warehouse) {
            let levels = self.erp(self.connector.stock_levels(warehouse))?;
            let by_item = levels
                .into_iter()
                .map(|l| (l.item_code, l.quantity))
                .collect();
            self.erp_stock.insert(warehouse.to_owned(), by_item);
        }
        Ok(self
            .erp_stock
            .get(warehouse)
            .and_then(|levels| levels.get(item))
            .copied()
            .unwrap_or_default())
    }

    /// One page of MSI source items against the ERP's stock; `true` when done.
    pub(super) fn stock_slice(
        &mut self,
        ctx: &mut Context<'_>,
        run: &mut Active,
    ) -> Result<bool, SliceError> {
        let now = ctx.now();
        let size = self.settings.stock.page_size;
        let page_no = run.stock_page + 1;
        let page = self.magento(self.magento.source_items(page_no, size))?;
        // Magento answers a page past the end with the last page again: count, do not trust.
        if page.items.is_empty() || (page_no - 1) * size >= page.total_count {
            return Ok(true);
        }
        let settle = self.settings.effective.stock_settle.as_millis() as Millis;
        for row in &page.items {
            let (Some(sku), Some(source)) = (
                row.get("sku").and_then(|v| v.as_str()),
                row.get("source_code").and_then(|v| v.as_str()),
            ) else {
                continue;
            };
            let (Ok(item), Ok(warehouse)) =
                (self.mapping.item_code(sku), self.mapping.warehouse(source))
            else {
                continue;
            };
            let magento_qty = money(&row["quantity"]);
            let erp_qty = self.erp_quantity(&warehouse, &item)?;
            run.stock_checked += 1;
            self.metrics.stock_checked.inc();
            let entity = format!("{sku}|{source}");
            let observed_key = format!("sd/{entity}").into_bytes();
            match compare_stock(sku, source, &item, &warehouse, magento_qty, erp_qty) {
                None => {
                    ctx.delete(&observed_key);
                    self.settle(ctx, run, (Scope::Stock, "stock", &entity), &[], None)?;
                }
                Some(difference) => {
                    let seen = match ctx.get(&observed_key)? {
                        Some(raw) => serde_json::from_slice::<Observation>(&raw).ok(),
                        None => None,
                    };
                    match seen {
                        Some(o) if o.magento == magento_qty && o.erp == erp_qty => {
                            if now - o.since >= settle {
                                self.settle(
                                    ctx,
                                    run,
                                    (Scope::Stock, "stock", &entity),
                                    &[difference],
                                    Some(erp_qty),
                                )?;
                            }
                        }
                        _ => {
                            let o = Observation {
                                magento: magento_qty,
                                erp: erp_qty,
                                since: now,
                            };
                            ctx.put_json(&observed_key, &o, None)?;
                        }
                    }
                }
            }
        }
        run.stock_page = page_no;
        Ok(false)
    }
}
