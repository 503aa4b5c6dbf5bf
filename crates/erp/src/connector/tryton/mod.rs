//! Tryton 8.0 over JSON-RPC (recipe and gotchas: `../../shared/erp/tryton/NOTES.md`).
//!
//! Login with `common.db.login`, then `Authorization: Session base64(user:uid:token)`; a
//! 401 logs in again once. Money travels as `{"__class__":"Decimal"}`. Tryton keeps no
//! unique external reference — `sale.sale.reference` holds the Magento increment id and
//! the writer asks before it creates. A sale created but not yet confirmed (a crash
//! between the calls) is confirmed when it is found. The ERP owns the totals: lines go
//! at their net unit price (Magento's discount taken off), taxes from the product's
//! account category, shipping as a `SHIPPING` service line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

mod credit;
mod rpc;
mod shipments;
mod stock;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{
    CreditNoteDoc, CustomerDoc, ErpConnector, ErpError, ErpLine, ErpOrder, ErpTotals, Posted,
    SalesOrderDoc, ShipmentPage, StockAdjustmentDoc, StockLevel,
};

/// How to reach Tryton.
#[derive(Clone)]
pub struct TrytonSettings {
    /// `http://host:8000`.
    pub base_url: String,
    /// The database.
    pub database: String,
    /// The login.
    pub user: String,
    /// The password.
    pub password: String,
}

struct Session {
    header: String,
    context: Value,
}

/// A product as a sale line needs it.
#[derive(Clone)]
struct Product {
    id: i64,
    unit: i64,
    taxes: Vec<i64>,
}

/// The Tryton connector.
pub struct TrytonConnector {
    client: reqwest::Client,
    settings: TrytonSettings,
    session: tokio::sync::Mutex<Option<Session>>,
    products: Mutex<HashMap<String, Product>>,
}

fn decimal(value: Decimal) -> Value {
    json!({"__class__": "Decimal", "decimal": value.to_string()})
}

fn read_decimal(value: &Value) -> Decimal {
    match value {
        Value::Object(o) => o
            .get("decimal")
            .and_then(Value::as_str)
            .and_then(|d| d.parse().ok())
            .unwrap_or_default(),
        Value::Number(n) => n.to_string().parse().unwrap_or_default(),
        _ => Decimal::ZERO,
    }
}

fn unavailable(e: reqwest::Error) -> ErpError {
    ErpError::Unavailable {
        reason: format!("tryton: {}", e.without_url()),
        retry_after: None,
    }
}

impl TrytonConnector {
    /// A connector whose calls give up after `timeout`.
    pub fn new(settings: TrytonSettings, timeout: Duration) -> Result<Self, ErpError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ErpError::Protocol(format!("http client: {e}")))?;
        Ok(Self {
            client,
            settings: TrytonSettings {
                base_url: settings.base_url.trim_end_matches('/').to_owned(),
                ..settings
            },
            session: tokio::sync::Mutex::new(None),
            products: Mutex::new(HashMap::new()),
        })
    }

    async fn product(&self, code: &str) -> Result<Product, ErpError> {
        if let Some(found) = self.products.lock().ok().and_then(|p| p.get(code).cloned()) {
            return Ok(found);
        }
        let rows = self
            .search_read(
                "product.product",
                json!([["code", "=", code]]),
                Some(1),
                json!(["id", "default_uom", "template"]),
                &json!({}),
            )
            .await?;
        let Some(row) = rows.get(0) else {
            return Err(ErpError::Rejected {
                code: "unknown_item".into(),
                reason: format!("item {code} does not exist in Tryton"),
            });
        };
        let id = row["id"].as_i64().unwrap_or_default();
        let unit = row["default_uom"].as_i64().unwrap_or(1);
        let template = row["template"].as_i64().unwrap_or_default();
        let templates = self
            .call(
                "model.product.template.read",
                vec![json!([template]), json!(["account_category"])],
            )
            .await?;
        let category = templates
            .pointer("/0/account_category")
            .and_then(Value::as_i64);
        let taxes = match category {
            Some(category) => self
                .call(
                    "model.product.category.read",
                    vec![json!([category]), json!(["customer_taxes_used"])],
                )
                .await?
                .pointer("/0/customer_taxes_used")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let product = Product { id, unit, taxes };
        if let Ok(mut cache) = self.products.lock() {
            cache.insert(code.to_owned(), product.clone());
        }
        Ok(product)
    }

    async fn read_order(&self, id: i64) -> Result<ErpOrder, ErpError> {
        let sales = self
            .call(
                "model.sale.sale.read",
                vec![
                    json!([id]),
                    json!([
                        "reference",
                        "state",
                        "currency.code",
                        "untaxed_amount",
                        "tax_amount",
                        "total_amount"
                    ]),
                ],
            )
            .await?;
        let sale = sales
            .get(0)
            .cloned()
            .ok_or_else(|| ErpError::Protocol(format!("sale {id} vanished")))?;
        let lines = self
            .search_read(
                "sale.line",
                json!([["sale", "=", id]]),
                None,
                json!(["product.code", "quantity"]),
                &json!({}),
            )
            .await?;
        // A dotted field comes back as `"currency.": {"code": ...}`: no second read.
        let currency = sale
            .pointer("/currency./code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let untaxed = read_decimal(&sale["untaxed_amount"]);
        let tax = read_decimal(&sale["tax_amount"]);
        Ok(ErpOrder {
            id: id.to_string(),
            external_ref: sale["reference"].as_str().unwrap_or_default().to_owned(),
            status: sale["state"].as_str().unwrap_or_default().to_owned(),
            currency,
            totals: ErpTotals {
                subtotal: untaxed,
                discount_amount: Decimal::ZERO,
                shipping_amount: Decimal::ZERO,
                tax_amount: tax,
                grand_total: read_decimal(&sale["total_amount"]),
            },
            credited: Decimal::ZERO,
            customer_ref: None,
            booked_at: None,
            lines: lines
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| ErpLine {
                    item_code: l
                        .pointer("/product./code")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    quantity: l["quantity"].to_string().parse().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Creates the sale `values` (in draft); its id.
    async fn create_sale(&self, values: Value) -> Result<i64, ErpError> {
        let created = self
            .call("model.sale.sale.create", vec![json!([values])])
            .await?;
        created
            .get(0)
            .and_then(Value::as_i64)
            .ok_or_else(|| ErpError::Protocol(format!("sale.create answered {created}")))
    }

    /// Takes a sale left in draft or quotation (a crash mid-way) to confirmed.
    async fn finish(&self, id: i64, state: &str) -> Result<(), ErpError> {
        if state == "draft" {
            self.call("model.sale.sale.quote", vec![json!([id])])
                .await?;
        }
        if matches!(state, "draft" | "quotation") {
            self.call("model.sale.sale.confirm", vec![json!([id])])
                .await?;
        }
        Ok(())
    }
}

impl TrytonConnector {
    /// The ids of every sale carrying `reference` (more than one is a duplicate).
    pub async fn sales_with_reference(&self, reference: &str) -> Result<Vec<i64>, ErpError> {
        self.search("sale.sale", json!([["reference", "=", reference]]))
            .await
    }
}

impl ErpConnector for TrytonConnector {
    fn system(&self) -> &str {
        "tryton"
    }

    async fn probe(&self) -> Result<(), ErpError> {
        let url = format!("{}/rpc/", self.settings.base_url);
        let body = json!({"id": 0, "method": "common.server.version", "params": []});
        self.post(&url, None, &body).await.map(|_| ())
    }

    async fn ensure_customers(&self, customers: &[CustomerDoc]) -> Result<(), ErpError> {
        for customer in customers {
            let found = self
                .search("party.party", json!([["name", "=", customer.external_ref]]))
                .await?;
            if found.is_empty() {
                self.call(
                    "model.party.party.create",
                    vec![json!([{
                        "name": customer.external_ref,
                        "addresses": [["create", [{"street": ""}]]],
                    }])],
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn find_order(&self, external_ref: &str) -> Result<Option<ErpOrder>, ErpError> {
        let ids = self
            .search("sale.sale", json!([["reference", "=", external_ref]]))
            .await?;
        let Some(id) = ids.first().copied() else {
            return Ok(None);
        };
        let order = self.read_order(id).await?;
        if matches!(order.status.as_str(), "draft" | "quotation") {
            self.finish(id, &order.status).await?;
            return self.read_order(id).await.map(Some);
        }
        Ok(Some(order))
    }

    /// One search and read per order: a draft sale found is confirmed on the way, which
    /// [`Self::find_order`] does one sale at a time.
    async fn find_orders(
        &self,
        external_refs: &[String],
    ) -> Result<HashMap<String, ErpOrder>, ErpError> {
        let mut found = HashMap::new();
        for external_ref in external_refs {
            if let Some(order) = self.find_order(external_ref).await? {
                found.insert(external_ref.clone(), order);
            }
        }
        Ok(found)
    }

    async fn order_refs(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, ErpError> {
        let domain = match after {
            Some(after) => json!([["reference", ">", after], ["reference", "!=", null]]),
            None => json!([["reference", "!=", null]]),
        };
        let params = vec![
            domain,
            json!(0),
            json!(limit),
            json!([["reference", "ASC"]]),
            json!(["reference"]),
        ];
        let rows = self
            .call_in("model.sale.sale.search_read", params, &json!({}))
            .await?;
        Ok(rows
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["reference"].as_str().map(str::to_owned))
            .collect())
    }

    async fn create_order(&self, order: &SalesOrderDoc) -> Result<Posted<ErpOrder>, ErpError> {
        let party = self
            .search(
                "party.party",
                json!([["name", "=", order.customer.external_ref]]),
            )
            .await?
            .first()
            .copied()
            .ok_or_else(|| ErpError::Rejected {
                code: "unknown_customer".into(),
                reason: format!(
                    "customer {} does not exist in Tryton",
                    order.customer.external_ref
                ),
            })?;
        let address = self
            .search("party.address", json!([["party", "=", party]]))
            .await?
            .first()
            .copied();
        let warehouse = self
            .one(
                "stock.location",
                json!([["type", "=", "warehouse"], ["code", "=", order.warehouse]]),
                &format!("warehouse {}", order.warehouse),
            )
            .await?;
        let currency = self
            .one(
                "currency.currency",
                json!([["code", "=", order.currency]]),
                &format!("currency {}", order.currency),
            )
            .await?;
        let payment_term = self
            .search("account.invoice.payment_term", json!([]))
            .await?
            .first()
            .copied();
        let mut lines = Vec::new();
        for line in &order.lines {
            let product = self.product(&line.item_code).await?;
            let net = if line.quantity.is_zero() {
                line.unit_price
            } else {
                (line.unit_price - line.discount_amount / line.quantity).round_dp(4)
            };
            lines.push(json!({
                "type": "line",
                "product": product.id,
                "quantity": line.quantity.to_string().parse::<f64>().unwrap_or_default(),
                "unit": product.unit,
                "unit_price": decimal(net),
                "description": line.description,
                "taxes": [["add", product.taxes]],
            }));
        }
        if !order.shipping_amount.is_zero() {
            let shipping = self.product("SHIPPING").await?;
            lines.push(json!({
                "type": "line",
                "product": shipping.id,
                "quantity": 1.0,
                "unit": shipping.unit,
                "unit_price": decimal(order.shipping_amount),
                "description": order.shipping_method.clone().unwrap_or_else(|| "Shipping".into()),
                "taxes": [["add", shipping.taxes]],
            }));
        }
        let mut sale = json!({
            "party": party,
            "warehouse": warehouse,
            "currency": currency,
            "reference": order.external_ref,
            "description": format!("Magento order #{}", order.external_ref),
            "lines": [["create", lines]],
        });
        if let Some(address) = address {
            sale["invoice_address"] = address.into();
            sale["shipment_address"] = address.into();
        }
        if let Some(term) = payment_term {
            sale["payment_term"] = term.into();
        }
        let id = self.create_sale(sale).await?;
        self.finish(id, "draft").await?;
        Ok(Posted {
            doc: self.read_order(id).await?,
            new: true,
        })
    }

    async fn amend_order(
        &self,
        erp_id: &str,
        _order: &SalesOrderDoc,
    ) -> Result<ErpOrder, ErpError> {
        // A confirmed Tryton sale is not edited in place; its repair is a person's call.
        Err(ErpError::Rejected {
            code: "unsupported".into(),
            reason: format!(
                "Tryton sale {erp_id} is confirmed: amending it is left to the accountant (cancel and re-enter)"
            ),
        })
    }

    async fn cancel_order(&self, erp_id: &str) -> Result<(), ErpError> {
        let id: i64 = erp_id
            .parse()
            .map_err(|_| ErpError::Protocol(format!("not a Tryton sale id: {erp_id}")))?;
        self.call("model.sale.sale.cancel", vec![json!([id])])
            .await
            .map(|_| ())
    }

    async fn credit(&self, note: &CreditNoteDoc) -> Result<Posted<String>, ErpError> {
        self.book_credit(note).await
    }

    async fn post_stock_adjustment(
        &self,
        adjustment: &StockAdjustmentDoc,
    ) -> Result<Posted<String>, ErpError> {
        self.adjust_stock(adjustment).await
    }

    async fn shipments_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ShipmentPage, ErpError> {
        self.done_shipments_after(cursor, limit).await
    }

    async fn stock_levels(&self, warehouse: &str) -> Result<Vec<StockLevel>, ErpError> {
        let location = self
            .one(
                "stock.location",
                json!([["type", "=", "warehouse"], ["code", "=", warehouse]]),
                &format!("warehouse {warehouse}"),
            )
            .await?;
        let rows = self
            .search_read(
                "product.product",
                json!([["code", "!=", null]]),
                None,
                json!(["code", "quantity"]),
                &json!({ "locations": [location] }),
            )
            .await?;
        Ok(rows
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| StockLevel {
                warehouse: warehouse.to_owned(),
                item_code: r["code"].as_str().unwrap_or_default().to_owned(),
                quantity: r["quantity"].to_string().parse().unwrap_or_default(),
            })
            .collect())
    }
}
