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
mod shipments;
mod stock;

use base64::Engine as _;
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

    async fn post(
        &self,
        url: &str,
        header: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value), ErpError> {
        let mut request = self.client.post(url).json(body);
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status().as_u16();
        Ok((status, super::json_answer(response).await?))
    }

    async fn login(&self) -> Result<Session, ErpError> {
        let url = format!("{}/{}/rpc/", self.settings.base_url, self.settings.database);
        let body = json!({"id": 1, "method": "common.db.login",
            "params": [self.settings.user, {"password": self.settings.password}, "en"]});
        let (status, answer) = self.post(&url, None, &body).await?;
        if status == 401 {
            return Err(ErpError::Protocol("tryton refused the login".into()));
        }
        // The answer is never quoted: a login answer can carry the server's internals.
        let result = answer.get("result").ok_or_else(|| {
            ErpError::Protocol(format!(
                "tryton login answered HTTP {status} without a `result` (check writer.erp.tryton user, password and database)"
            ))
        })?;
        let uid = result.get(0).and_then(Value::as_i64);
        let token = result.get(1).and_then(Value::as_str);
        let (Some(uid), Some(token)) = (uid, token) else {
            return Err(ErpError::Protocol(format!(
                "tryton login answered HTTP {status} without a user id and session token"
            )));
        };
        let raw = format!("{}:{uid}:{token}", self.settings.user);
        let header = format!(
            "Session {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        let body =
            json!({"id": 2, "method": "model.res.user.get_preferences", "params": [true, {}]});
        let (_, prefs) = self.post(&url, Some(&header), &body).await?;
        let company = prefs
            .pointer("/result/company")
            .cloned()
            .unwrap_or(Value::Null);
        Ok(Session {
            header,
            context: json!({"company": company, "language": "en"}),
        })
    }

    /// `method(params..., context)`; logs in when needed (and once more on a 401).
    async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ErpError> {
        self.call_in(method, params, &json!({})).await
    }

    /// [`Self::call`] with `extra` keys in the context (e.g. `locations` for quantities).
    async fn call_in(
        &self,
        method: &str,
        params: Vec<Value>,
        extra: &Value,
    ) -> Result<Value, ErpError> {
        let url = format!("{}/{}/rpc/", self.settings.base_url, self.settings.database);
        for attempt in 0..2 {
            let mut session = self.session.lock().await;
            if session.is_none() {
                *session = Some(self.login().await?);
            }
            let Some(current) = session.as_ref() else {
                continue;
            };
            let mut context = current.context.clone();
            if let (Some(context), Some(extra)) = (context.as_object_mut(), extra.as_object()) {
                context.extend(extra.clone());
            }
            let mut with_context = params.clone();
            with_context.push(context);
            let body = json!({"id": 3, "method": method, "params": with_context});
            let (status, answer) = self.post(&url, Some(&current.header), &body).await?;
            if status == 401 && attempt == 0 {
                *session = None;
                continue;
            }
            if status == 429 || status >= 500 {
                return Err(ErpError::Unavailable {
                    reason: format!("tryton answered HTTP {status} to {method}"),
                    retry_after: None,
                });
            }
            if let Some(error) = answer.get("error") {
                let kind = error.get(0).and_then(Value::as_str).unwrap_or_default();
                let message = error
                    .pointer("/1/0")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| error.to_string());
                return Err(if kind == "UserError" || kind == "UserWarning" {
                    ErpError::Rejected {
                        code: "validation".into(),
                        reason: message,
                    }
                } else {
                    ErpError::Protocol(format!("{method}: {error}"))
                });
            }
            return answer
                .get("result")
                .cloned()
                .ok_or_else(|| ErpError::Protocol(format!("{method} answered {answer}")));
        }
        Err(ErpError::Protocol(
            "tryton kept refusing the session".into(),
        ))
    }

    /// `model.<model>.search_read(domain, 0, limit, None, fields)` with `extra` context.
    async fn search_read(
        &self,
        model: &str,
        domain: Value,
        limit: Option<u32>,
        fields: Value,
        extra: &Value,
    ) -> Result<Value, ErpError> {
        let limit = limit.map_or(Value::Null, |l| json!(l));
        let params = vec![domain, json!(0), limit, Value::Null, fields];
        self.call_in(&format!("model.{model}.search_read"), params, extra)
            .await
    }

    /// `model.<model>.read(ids, fields)`: the records, or none when Tryton answers oddly.
    async fn read(&self, model: &str, ids: &[i64], fields: Value) -> Result<Vec<Value>, ErpError> {
        let rows = self
            .call(&format!("model.{model}.read"), vec![json!(ids), fields])
            .await?;
        Ok(rows.as_array().cloned().unwrap_or_default())
    }

    /// One field of one record (`Null` when it is not there).
    async fn read_field(&self, model: &str, id: i64, field: &str) -> Result<Value, ErpError> {
        let rows = self.read(model, &[id], json!([field])).await?;
        Ok(rows
            .first()
            .and_then(|row| row.get(field))
            .cloned()
            .unwrap_or_default())
    }

    async fn search(&self, model: &str, domain: Value) -> Result<Vec<i64>, ErpError> {
        let ids = self
            .call(
                &format!("model.{model}.search"),
                vec![domain, json!(0), Value::Null, Value::Null],
            )
            .await?;
        Ok(ids
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default())
    }

    async fn one(&self, model: &str, domain: Value, what: &str) -> Result<i64, ErpError> {
        self.search(model, domain)
            .await?
            .first()
            .copied()
            .ok_or_else(|| ErpError::Rejected {
                code: "unknown_reference".into(),
                reason: format!("tryton has no {what}"),
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
