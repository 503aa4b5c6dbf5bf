//! A client of the Magento 2 / Adobe Commerce REST API, shared by the services that talk
//! to the store: reads (an order, credit memo or shipment by id, an order by increment id,
//! keyset pages by `updated_at`, MSI source items) for order-ingest and the reconciler, and
//! writes (an order comment with a status, source-item quantities) for magento-writer.
//! Errors are classified: [`RestError::is_retryable`] for 429/5xx/network, the rest need a
//! person (token, ACL, payload).

use std::path::PathBuf;
use std::time::Duration;

use bridge_runtime::config::{ConfigError, check_url};
use bridge_runtime::http_body::{MAX_RESPONSE_BYTES, read_capped};
use bridge_runtime::secret::Secret;
use serde::Deserialize;
use serde_json::{Value, json};

/// How to reach one store's REST API (`[ingest.magento]`, `[writer.magento]`, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MagentoSettings {
    /// Base URL of the store, e.g. `https://shop.example.com`; REST calls go to
    /// `<base_url>/rest/V1/...`. https unless on loopback or `allow_http`.
    pub base_url: String,
    /// Integration access token (Admin → System → Integrations), sent as a bearer token;
    /// or `token_file`.
    pub token: Secret,
    /// A file holding `token` (a mounted Kubernetes Secret).
    pub token_file: Option<PathBuf>,
    /// Timeout of one REST call.
    pub timeout_ms: u64,
    /// Accept a plain-http `base_url` off loopback (a private network you trust).
    pub allow_http: bool,
}

impl Default for MagentoSettings {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8090".into(),
            token: Secret::default(),
            token_file: None,
            timeout_ms: 10_000,
            allow_http: false,
        }
    }
}

impl MagentoSettings {
    /// Refuses a URL that is not http(s), http off loopback unless allowed, and a token
    /// given twice or whose file cannot be read; `section` names the keys.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        check_url(
            &format!("{section}.base_url"),
            &self.base_url,
            self.allow_http,
        )?;
        self.resolved_token(section).map(|_| ())
    }

    /// The token, from the value or its file (empty when neither is set).
    pub fn resolved_token(&self, section: &str) -> Result<Secret, ConfigError> {
        bridge_runtime::secret::of_section(
            section,
            "token",
            &self.token,
            self.token_file.as_deref(),
        )
    }
}

/// Why a REST call failed.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Network error, timeout, 429 or 5xx: try again later.
    #[error("magento unavailable: {0}")]
    Unavailable(String),
    /// 401/403: the integration token is wrong or lacks a resource (fix the setup).
    #[error("magento refused the integration token ({status}): {body}")]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// Magento's message.
        body: String,
    },
    /// Another 4xx, or a body that is not the JSON expected.
    #[error("magento answered {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Magento's message (or the parse error).
        body: String,
    },
}

impl RestError {
    /// Whether to try again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Where a keyset page starts: at `updated_at` (inclusive), or — inside a second with more
/// rows than a page — after `after_entity` within that second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Magento time, `YYYY-MM-DD HH:MM:SS`.
    pub updated_at: String,
    /// The last entity id read in that second.
    pub after_entity: Option<u64>,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The rows.
    pub items: Vec<Value>,
    /// Rows matching the search in all pages.
    pub total_count: usize,
}

/// A client of one store's REST API.
#[derive(Clone)]
pub struct Magento {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Magento {
    /// A client for `settings`.
    pub fn new(settings: &MagentoSettings) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(settings.timeout_ms))
                .build()
                .unwrap_or_default(),
            base: format!("{}/rest/V1", settings.base_url.trim_end_matches('/')),
            // Validated at start: the file was readable then.
            token: settings
                .resolved_token("magento")
                .map(|t| t.expose().to_owned())
                .unwrap_or_default(),
        }
    }

    async fn get(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Value>, RestError> {
        let request = self.http.get(format!("{}{path}", self.base)).query(query);
        match self.send(request).await? {
            (404, _) => Ok(None),
            (status, body) => answer(status, &body).map(Some),
        }
    }

    /// Sends with the token; the status and the body text.
    async fn send(&self, mut request: reqwest::RequestBuilder) -> Result<(u16, String), RestError> {
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        let response = bridge_runtime::http_trace::send(request, "magento.rest")
            .await
            .map_err(|e| RestError::Unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let body = read_capped(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| RestError::Unavailable(e.to_string()))?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// `GET /V1/orders/{id}`; `None` if Magento has no such order.
    pub async fn order(&self, entity_id: &str) -> Result<Option<Value>, RestError> {
        self.get(&format!("/orders/{}", path_part(entity_id)), &[])
            .await
    }

    /// `GET /V1/creditmemo/{id}`.
    pub async fn creditmemo(&self, entity_id: &str) -> Result<Option<Value>, RestError> {
        self.get(&format!("/creditmemo/{}", path_part(entity_id)), &[])
            .await
    }

    /// `GET /V1/shipment/{id}`.
    pub async fn shipment(&self, entity_id: &str) -> Result<Option<Value>, RestError> {
        self.get(&format!("/shipment/{}", path_part(entity_id)), &[])
            .await
    }

    /// The order with increment id `increment_id`, through a search.
    pub async fn order_by_increment_id(
        &self,
        increment_id: &str,
    ) -> Result<Option<Value>, RestError> {
        let query = criteria(&[("increment_id", increment_id, "eq")], &[], Some((1, 1)));
        let page = self.page("/orders", &query).await?;
        Ok(page.items.into_iter().next())
    }

    /// The orders with these increment ids (those Magento has), in one search.
    pub async fn orders_by_increment_ids(&self, ids: &[&str]) -> Result<Vec<Value>, RestError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids.join(",");
        let query = criteria(
            &[("increment_id", list.as_str(), "in")],
            &[("entity_id", "ASC")],
            Some((1, ids.len())),
        );
        Ok(self.page("/orders", &query).await?.items)
    }

    /// The credit memos of the order with entity id `order_id` (at most 100).
    pub async fn creditmemos_of_order(&self, order_id: &str) -> Result<Vec<Value>, RestError> {
        let query = criteria(
            &[("order_id", order_id, "eq")],
            &[("entity_id", "ASC")],
            Some((1, 100)),
        );
        Ok(self.page("/creditmemos", &query).await?.items)
    }

    /// The first `page_size` rows of `kind` (`orders`, `creditmemos`, `shipments`) after `position`,
    /// oldest first, ties by entity id: a keyset page, immune to rows moving while
    /// paging (offsets shift when a row changes; keys do not).
    pub async fn updated_after(
        &self,
        kind: &str,
        position: &Position,
        page_size: usize,
    ) -> Result<Page, RestError> {
        let after_id;
        let filters: Vec<(&str, &str, &str)> = match &position.after_entity {
            // Inside one second: the rest of that second by entity id.
            Some(id) => {
                after_id = id.to_string();
                vec![
                    ("updated_at", position.updated_at.as_str(), "eq"),
                    ("entity_id", after_id.as_str(), "gt"),
                ]
            }
            None => vec![("updated_at", position.updated_at.as_str(), "gteq")],
        };
        let query = criteria(
            &filters,
            &[("updated_at", "ASC"), ("entity_id", "ASC")],
            Some((1, page_size)),
        );
        self.page(&format!("/{kind}"), &query).await
    }

    /// Page `page` (from 1) of every MSI source item, by SKU and source.
    pub async fn source_items(&self, page: usize, page_size: usize) -> Result<Page, RestError> {
        let query = criteria(
            &[],
            &[("sku", "ASC"), ("source_code", "ASC")],
            Some((page, page_size)),
        );
        self.page("/inventory/source-items", &query).await
    }

    async fn page(&self, path: &str, query: &[(String, String)]) -> Result<Page, RestError> {
        let body = self
            .get(path, query)
            .await?
            .ok_or_else(|| RestError::Refused {
                status: 404,
                body: format!("{path} is not served (is this Magento 2?)"),
            })?;
        let items = match body.get("items") {
            Some(Value::Array(items)) => items.clone(),
            // Magento answers `"items": null` or leaves it out when nothing matches.
            None | Some(Value::Null) => Vec::new(),
            Some(other) => {
                return Err(RestError::Refused {
                    status: 200,
                    body: format!("`items` is not a list: {}", short(&other.to_string())),
                });
            }
        };
        let total_count = body
            .get("total_count")
            .and_then(|t| {
                t.as_u64()
                    .or_else(|| t.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(items.len() as u64) as usize;
        Ok(Page { items, total_count })
    }
}

/// `searchCriteria` query pairs: one filter group per filter (ANDed), sort orders, paging.
pub fn criteria(
    filters: &[(&str, &str, &str)],
    sorts: &[(&str, &str)],
    paging: Option<(usize, usize)>,
) -> Vec<(String, String)> {
    let mut query = Vec::new();
    for (group, (field, value, condition)) in filters.iter().enumerate() {
        let key =
            |part: &str| format!("searchCriteria[filter_groups][{group}][filters][0][{part}]");
        query.push((key("field"), (*field).to_owned()));
        query.push((key("value"), (*value).to_owned()));
        query.push((key("condition_type"), (*condition).to_owned()));
    }
    for (n, (field, direction)) in sorts.iter().enumerate() {
        query.push((
            format!("searchCriteria[sortOrders][{n}][field]"),
            (*field).to_owned(),
        ));
        query.push((
            format!("searchCriteria[sortOrders][{n}][direction]"),
            (*direction).to_owned(),
        ));
    }
    if let Some((page, size)) = paging {
        query.push(("searchCriteria[currentPage]".into(), page.to_string()));
        query.push(("searchCriteria[pageSize]".into(), size.to_string()));
    }
    query
}

/// A shipment's tracking, as `POST /V1/order/{id}/ship` takes it.
#[derive(Debug, Clone, Copy)]
pub struct Track<'a> {
    /// The carrier's tracking number.
    pub number: &'a str,
    /// The carrier as customers see it, e.g. `UPS`.
    pub title: &'a str,
    /// Magento's carrier code (`ups`, `fedex`, `usps`, `dhl`, or `custom`).
    pub carrier_code: &'a str,
}

/// An id as one path segment (ids from payloads are not trusted to be plain).
fn path_part(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn short(text: &str) -> String {
    text.chars().take(300).collect()
}

impl Magento {
    /// `POST /V1/orders/{id}/comments`: a status-history comment, optionally setting the
    /// order status, not notifying the customer unless asked.
    pub async fn post_comment(
        &self,
        entity_id: &str,
        comment: &str,
        status: Option<&str>,
        notify_customer: bool,
    ) -> Result<(), RestError> {
        let mut history = json!({
            "comment": comment,
            "is_customer_notified": u8::from(notify_customer),
            "is_visible_on_front": 0,
        });
        if let Some(status) = status {
            history["status"] = status.into();
        }
        self.post(
            &format!("/orders/{}/comments", path_part(entity_id)),
            &json!({ "statusHistory": history }),
        )
        .await
        .map(|_| ())
    }

    /// `POST /V1/order/{id}/ship`: ships the whole order with its tracking (none when the
    /// carrier or number is unknown) and appends `comment`; returns the shipment id.
    /// Magento refuses (400) an order that cannot ship: cancelled, on hold, shipped.
    pub async fn ship_order(
        &self,
        entity_id: &str,
        track: Option<Track<'_>>,
        comment: &str,
        notify_customer: bool,
    ) -> Result<Value, RestError> {
        let tracks: Vec<Value> = track
            .into_iter()
            .map(|t| {
                json!({
                    "track_number": t.number,
                    "title": t.title,
                    "carrier_code": t.carrier_code,
                })
            })
            .collect();
        let body = json!({
            "notify": notify_customer,
            "appendComment": true,
            "comment": { "comment": comment, "is_visible_on_front": 0 },
            "tracks": tracks,
        });
        self.post(&format!("/order/{}/ship", path_part(entity_id)), &body)
            .await
    }

    /// `POST /V1/inventory/source-items`: sets MSI source-item quantities (absolute).
    pub async fn save_source_items(&self, items: &[SourceItemQuantity]) -> Result<(), RestError> {
        let items: Vec<Value> = items
            .iter()
            .map(|i| {
                json!({
                    "sku": i.sku,
                    "source_code": i.source_code,
                    "quantity": i.quantity,
                    "status": u8::from(i.in_stock),
                })
            })
            .collect();
        self.post("/inventory/source-items", &json!({ "sourceItems": items }))
            .await
            .map(|_| ())
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, RestError> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        let (status, text) = self.send(request).await?;
        answer(status, &text)
    }
}

/// A 2xx body as JSON (an empty one as `null`), or the error its status means.
fn answer(status: u16, body: &str) -> Result<Value, RestError> {
    match status {
        200..=299 if body.trim().is_empty() => Ok(Value::Null),
        200..=299 => serde_json::from_str(body).map_err(|e| RestError::Refused {
            status,
            body: format!("not JSON: {e}"),
        }),
        401 | 403 => Err(RestError::Unauthorized {
            status,
            body: short(body),
        }),
        429 | 500..=599 => Err(RestError::Unavailable(format!("{status}: {}", short(body)))),
        _ => Err(RestError::Refused {
            status,
            body: short(body),
        }),
    }
}

/// One MSI source item's quantity, to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceItemQuantity {
    /// The SKU.
    pub sku: String,
    /// The MSI source.
    pub source_code: String,
    /// The quantity, absolute.
    pub quantity: rust_decimal::Decimal,
    /// In stock (`status` 1).
    pub in_stock: bool,
}
