//! The Magento REST calls order-ingest makes: one order or credit memo by id, an order by
//! increment id, and `updated_at` pages of orders or credit memos.

use std::time::Duration;

use serde_json::Value;

use crate::config::MagentoSettings;

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
            token: settings.token.clone(),
        }
    }

    async fn get(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Value>, RestError> {
        let mut request = self.http.get(format!("{}{path}", self.base)).query(query);
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| RestError::Unavailable(e.without_url().to_string()))?;
        let status = answer.status();
        let body = answer
            .text()
            .await
            .map_err(|e| RestError::Unavailable(e.without_url().to_string()))?;
        match status.as_u16() {
            200..=299 => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| RestError::Refused {
                    status: status.as_u16(),
                    body: format!("not JSON: {e}"),
                }),
            404 => Ok(None),
            401 | 403 => Err(RestError::Unauthorized {
                status: status.as_u16(),
                body: short(&body),
            }),
            429 | 500..=599 => Err(RestError::Unavailable(format!(
                "{status}: {}",
                short(&body)
            ))),
            code => Err(RestError::Refused {
                status: code,
                body: short(&body),
            }),
        }
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

/// An id as one path segment (ids from payloads are not trusted to be plain).
fn path_part(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn short(text: &str) -> String {
    text.chars().take(300).collect()
}
