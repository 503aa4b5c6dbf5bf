//! The simulator's HTTP/JSON API (`crates/erp-sim`), the shape of many REST ERPs: 201 for a
//! new document, 409 with the existing one for a known external reference, 422 with a
//! code for a business rejection, 429/503 with `Retry-After` when it wants a pause.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    CreditNoteDoc, CustomerDoc, ErpConnector, ErpError, ErpLine, ErpOrder, ErpShipment, ErpTotals,
    Posted, SalesOrderDoc, ShipmentPage, StockAdjustmentDoc, StockLevel,
};

/// The erp-sim connector.
#[derive(Debug, Clone)]
pub struct ErpSimConnector {
    client: reqwest::Client,
    base: String,
}

impl ErpSimConnector {
    /// A connector to `base_url` (e.g. `http://127.0.0.1:8070`) whose calls give up after
    /// `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ErpError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ErpError::Protocol(format!("http client: {e}")))?;
        Ok(Self {
            client,
            base: base_url.trim_end_matches('/').to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.base)
    }
}

fn unavailable(e: reqwest::Error) -> ErpError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    ErpError::Unavailable {
        reason: format!("{what}: {e}"),
        retry_after: None,
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// Sends `request`: 2xx and 409 (with the body) pass; the rest become errors.
async fn exchange(request: RequestBuilder) -> Result<(StatusCode, Value), ErpError> {
    let response = bridge_runtime::http_trace::send(request, "erp-sim")
        .await
        .map_err(unavailable)?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = super::json_answer(response).await?;
    if status.is_success() || status == StatusCode::CONFLICT {
        return Ok((status, body));
    }
    let detail = serde_json::from_value::<ErrorBody>(body.clone()).ok();
    let (code, message) = detail
        .map(|b| (b.error.code, b.error.message))
        .unwrap_or_else(|| (status.as_str().to_owned(), body.to_string()));
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Err(ErpError::Unavailable {
            reason: format!("HTTP {status} {code}: {message}"),
            retry_after,
        });
    }
    if status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::PAYLOAD_TOO_LARGE {
        return Err(ErpError::Rejected {
            code,
            reason: message,
        });
    }
    Err(ErpError::Protocol(format!(
        "HTTP {status} {code}: {message}"
    )))
}

fn parse<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, ErpError> {
    serde_json::from_value(value).map_err(|e| ErpError::Protocol(format!("{what}: {e}")))
}

#[derive(Deserialize)]
struct SimLine {
    item_code: String,
    quantity: rust_decimal::Decimal,
}

/// A shipment journal entry as erp-sim answers it.
#[derive(Deserialize)]
struct SimShipment {
    seq: u64,
    id: String,
    order_id: String,
    external_ref: String,
    carrier: Option<String>,
    tracking_number: Option<String>,
    shipped_at: i64,
}

#[derive(Deserialize)]
struct SimOrder {
    id: String,
    external_ref: String,
    status: String,
    currency: String,
    totals: ErpTotals,
    lines: Vec<SimLine>,
    #[serde(default)]
    credited: Decimal,
    #[serde(default)]
    customer_ref: Option<String>,
    #[serde(default)]
    created_at: Option<i64>,
}

impl From<SimOrder> for ErpOrder {
    fn from(o: SimOrder) -> Self {
        Self {
            id: o.id,
            external_ref: o.external_ref,
            status: o.status,
            currency: o.currency,
            totals: o.totals,
            credited: o.credited,
            customer_ref: o.customer_ref,
            booked_at: o.created_at.filter(|t| *t > 0),
            lines: o
                .lines
                .into_iter()
                .map(|l| ErpLine {
                    item_code: l.item_code,
                    quantity: l.quantity,
                })
                .collect(),
        }
    }
}

/// The document of a 201, or the `existing` one of a 409.
fn posted(status: StatusCode, body: Value) -> (Value, bool) {
    if status == StatusCode::CONFLICT {
        (body.get("existing").cloned().unwrap_or(Value::Null), false)
    } else {
        (body, true)
    }
}

/// The ERP's id of the document a create answered (new or existing).
fn posted_id(status: StatusCode, body: Value, what: &str) -> Result<Posted<String>, ErpError> {
    let (doc, new) = posted(status, body);
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ErpError::Protocol(format!("{what} without an id")))?;
    Ok(Posted { doc: id, new })
}

/// The JSON of a sales order as erp-sim takes it (create and amend).
fn order_body(order: &SalesOrderDoc) -> Value {
    let lines: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            json!({
                "item_code": l.item_code,
                "description": l.description,
                "quantity": l.quantity,
                "unit_price": l.unit_price,
                "discount_amount": l.discount_amount,
                "tax_code": l.tax_code,
                "tax_rate": l.tax_rate,
                "tax_amount": l.tax_amount,
                "source_line": l.source_line,
            })
        })
        .collect();
    json!({
        "external_ref": order.external_ref,
        "customer_ref": order.customer.external_ref,
        "currency": order.currency,
        "order_date": order.order_date,
        "warehouse": order.warehouse,
        "shipping_method": order.shipping_method,
        "payment_method": order.payment_method,
        "shipping_amount": order.shipping_amount,
        "shipping_tax_amount": order.shipping_tax_amount,
        "lines": lines,
    })
}

impl ErpConnector for ErpSimConnector {
    fn system(&self) -> &str {
        "erp-sim"
    }

    async fn probe(&self) -> Result<(), ErpError> {
        exchange(self.client.get(self.url("/health")))
            .await
            .map(|_| ())
    }

    async fn ensure_customers(&self, customers: &[CustomerDoc]) -> Result<(), ErpError> {
        let body = json!({ "customers": customers });
        exchange(self.client.post(self.url("/customers/batch")).json(&body))
            .await
            .map(|_| ())
    }

    async fn find_order(&self, external_ref: &str) -> Result<Option<ErpOrder>, ErpError> {
        let (_, body) = exchange(
            self.client
                .get(self.url("/sales-orders"))
                .query(&[("external_ref", external_ref)]),
        )
        .await?;
        let mut items: Vec<SimOrder> = parse(
            body.get("items").cloned().unwrap_or(Value::Null),
            "sales order search",
        )?;
        Ok(items.pop().map(ErpOrder::from))
    }

    /// `POST /sales-orders/search`, 1,000 references per request.
    async fn find_orders(
        &self,
        external_refs: &[String],
    ) -> Result<HashMap<String, ErpOrder>, ErpError> {
        let mut found = HashMap::new();
        for chunk in external_refs.chunks(1000) {
            let body = json!({ "external_refs": chunk });
            let (_, body) = exchange(
                self.client
                    .post(self.url("/sales-orders/search"))
                    .json(&body),
            )
            .await?;
            let items: Vec<SimOrder> = parse(
                body.get("items").cloned().unwrap_or(Value::Null),
                "sales order search",
            )?;
            found.extend(
                items
                    .into_iter()
                    .map(ErpOrder::from)
                    .map(|o| (o.external_ref.clone(), o)),
            );
        }
        Ok(found)
    }

    async fn order_refs(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, ErpError> {
        let mut query = vec![("size", limit.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let (_, body) =
            exchange(self.client.get(self.url("/sales-order-refs")).query(&query)).await?;
        parse(
            body.get("items").cloned().unwrap_or(Value::Null),
            "sales order references",
        )
    }

    async fn create_order(&self, order: &SalesOrderDoc) -> Result<Posted<ErpOrder>, ErpError> {
        let body = order_body(order);
        let (status, body) =
            exchange(self.client.post(self.url("/sales-orders")).json(&body)).await?;
        let (doc, new) = posted(status, body);
        let doc: SimOrder = parse(doc, "sales order")?;
        Ok(Posted {
            doc: doc.into(),
            new,
        })
    }

    async fn amend_order(&self, erp_id: &str, order: &SalesOrderDoc) -> Result<ErpOrder, ErpError> {
        let (_, body) = exchange(
            self.client
                .put(self.url(&format!("/sales-orders/{erp_id}")))
                .json(&order_body(order)),
        )
        .await?;
        Ok(parse::<SimOrder>(body, "sales order")?.into())
    }

    async fn cancel_order(&self, erp_id: &str) -> Result<(), ErpError> {
        exchange(
            self.client
                .post(self.url(&format!("/sales-orders/{erp_id}/cancel"))),
        )
        .await
        .map(|_| ())
    }

    async fn credit(&self, note: &CreditNoteDoc) -> Result<Posted<String>, ErpError> {
        let (status, body) = exchange(self.client.post(self.url("/credit-notes")).json(&json!({
            "external_ref": note.external_ref,
            "order_ref": note.order_ref,
            "amount": note.amount,
            "tax_amount": note.tax_amount,
            "lines": note.lines,
        })))
        .await?;
        posted_id(status, body, "credit note")
    }

    async fn post_stock_adjustment(
        &self,
        adjustment: &StockAdjustmentDoc,
    ) -> Result<Posted<String>, ErpError> {
        let (status, body) = exchange(
            self.client
                .post(self.url("/stock-adjustments"))
                .json(adjustment),
        )
        .await?;
        posted_id(status, body, "stock adjustment")
    }

    async fn stock_levels(&self, warehouse: &str) -> Result<Vec<StockLevel>, ErpError> {
        let (_, body) = exchange(
            self.client
                .get(self.url("/stock"))
                .query(&[("warehouse", warehouse)]),
        )
        .await?;
        parse(
            body.get("items").cloned().unwrap_or(Value::Null),
            "stock levels",
        )
    }

    async fn shipments_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ShipmentPage, ErpError> {
        // erp-sim's cursor is the journal position.
        let after: u64 = match cursor {
            Some(c) => c.parse().map_err(|_| {
                ErpError::Protocol(format!(
                    "shipment cursor `{c}` is not an erp-sim journal position"
                ))
            })?,
            None => 0,
        };
        let query = [("after", after.to_string()), ("size", limit.to_string())];
        let (_, body) = exchange(self.client.get(self.url("/shipments")).query(&query)).await?;
        let items: Vec<SimShipment> = parse(
            body.get("items").cloned().unwrap_or(Value::Null),
            "shipments",
        )?;
        let last = items.last().map_or(after, |s| s.seq);
        Ok(ShipmentPage {
            shipments: items
                .into_iter()
                .map(|s| ErpShipment {
                    external_ref: s.external_ref,
                    erp_order_id: s.order_id,
                    shipment_id: s.id,
                    carrier: s.carrier,
                    tracking_number: s.tracking_number,
                    shipped_at: s.shipped_at,
                })
                .collect(),
            cursor: last.to_string(),
        })
    }
}
