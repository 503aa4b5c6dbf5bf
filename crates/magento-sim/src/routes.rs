//! The HTTP surface: Magento REST look-alike routes (under `/rest/V1` and
//! `/rest/<store>/V1`, bearer-token protected when a token is set) and the sim's own
//! admin routes under `/sim`.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::search::SearchCriteria;
use crate::signing::Signer;
use crate::store::{Action, Change, Store, StoreError};
use crate::webhooks::Deliveries;

/// Shared by every handler.
pub struct Shared {
    /// The data.
    pub store: Mutex<Store>,
    /// The signing keys (their public halves are served under `/sim/keys`).
    pub signer: Arc<Signer>,
    /// Where changes are announced, if anywhere.
    pub deliveries: Option<Deliveries>,
    /// The integration token REST calls must carry, if any.
    pub token: Option<String>,
    /// For generated orders.
    pub rng: Mutex<StdRng>,
}

impl Shared {
    /// The store, even if a panicking holder poisoned the lock.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `changes` to the webhook, if one is configured.
    pub fn announce(&self, changes: Vec<Change>) {
        if let Some(deliveries) = &self.deliveries {
            for change in changes {
                deliveries.announce(change);
            }
        }
    }

    /// Generates `count` orders; returns their (entity id, increment id).
    pub fn generate(&self, count: usize) -> Vec<(u64, String)> {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let mut created = Vec::new();
        let mut changes = Vec::new();
        {
            let mut store = self.store();
            for _ in 0..count {
                let (placed, new) = store.generate(&mut *rng);
                created.extend(placed);
                changes.extend(new);
            }
        }
        self.announce(changes);
        created
    }
}

/// Magento's error body.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "message": message.into() }))).into_response()
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "The entity that was requested doesn't exist. Verify the entity and try again.",
    )
}

/// Announces the changes of a store operation and answers `body`, or the store's error.
fn announced(shared: &Shared, result: Result<Vec<Change>, StoreError>, body: Value) -> Response {
    match result {
        Ok(changes) => {
            shared.announce(changes);
            Json(body).into_response()
        }
        Err(e) => store_error(e),
    }
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NoOrder(_) => not_found(),
        other => error(StatusCode::BAD_REQUEST, other.to_string()),
    }
}

/// The whole router.
pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/orders", get(search_orders))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/comments", post(post_comment))
        .route("/order/{id}/ship", post(ship_order))
        .route("/creditmemos", get(search_creditmemos))
        .route("/creditmemo/{id}", get(get_creditmemo))
        .route("/shipments", get(search_shipments))
        .route("/shipment/{id}", get(get_shipment))
        .route(
            "/inventory/source-items",
            get(search_source_items).post(post_source_items),
        )
        .route(
            "/inventory/get-product-salable-quantity/{sku}/{stock}",
            get(salable_qty),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            authorize,
        ));
    Router::new()
        .nest("/rest/V1", api.clone())
        .nest("/rest/{store}/V1", api)
        .route("/sim/keys/{file}", get(public_key))
        .route("/sim/orders", post(generate_orders))
        .route("/sim/orders/{id}/{action}", post(act_on_order))
        .route("/sim/creditmemos/{id}/announce", post(announce_creditmemo))
        .route("/sim/shipments/{id}/announce", post(announce_shipment))
        .route("/sim/import/orders", post(import_orders))
        .route("/sim/import/creditmemos", post(import_creditmemos))
        .route("/sim/writebacks", get(writebacks))
        .route("/sim/stats", get(stats))
        .with_state(shared)
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &shared.token {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "The consumer isn't authorized to access %resources.",
            );
        }
    }
    next.run(request).await
}

/// Searches the rows `pick` chooses from the store, under its lock; only the page is copied.
fn search(
    shared: &Shared,
    query: Option<String>,
    run: impl for<'s> FnOnce(&'s Store, &SearchCriteria) -> (Vec<&'s Value>, usize),
) -> Response {
    let criteria = match SearchCriteria::parse(query.as_deref().unwrap_or_default()) {
        Ok(criteria) => criteria,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (page, total) = {
        let store = shared.store();
        let (page, total) = run(&store, &criteria);
        (page.into_iter().cloned().collect::<Vec<Value>>(), total)
    };
    Json(json!({
        "items": page,
        "search_criteria": criteria.echo(),
        "total_count": total,
    }))
    .into_response()
}

async fn search_orders(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    search(&shared, query, |store, c| {
        c.apply_indexed(store.order_table())
    })
}

async fn get_order(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let found = id
        .parse()
        .ok()
        .and_then(|id| shared.store().order(id).cloned());
    found.map_or_else(not_found, |o| Json(o).into_response())
}

async fn post_comment(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Ok(id) = id.parse() else {
        return not_found();
    };
    let result = shared
        .store()
        .comment(id, body)
        .map(|change| change.into_iter().collect());
    announced(&shared, result, Value::Bool(true))
}

/// `POST /V1/order/{id}/ship`: answers the new shipment's id, as Magento does.
async fn ship_order(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Ok(id) = id.parse() else {
        return not_found();
    };
    let result = shared.store().ship_order(id, body);
    match result {
        Ok((shipment_id, changes)) => announced(&shared, Ok(changes), shipment_id.into()),
        Err(e) => store_error(e),
    }
}

async fn search_creditmemos(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    search(&shared, query, |store, c| {
        c.apply_indexed(store.creditmemo_table())
    })
}

async fn get_creditmemo(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let found = id
        .parse()
        .ok()
        .and_then(|id| shared.store().creditmemo(id).cloned());
    found.map_or_else(not_found, |m| Json(m).into_response())
}

async fn search_shipments(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    search(&shared, query, |store, c| {
        c.apply_indexed(store.shipment_table())
    })
}

async fn get_shipment(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let found = id
        .parse()
        .ok()
        .and_then(|id| shared.store().shipment(id).cloned());
    found.map_or_else(not_found, |s| Json(s).into_response())
}

async fn search_source_items(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    search(&shared, query, |store, c| c.apply(store.source_items()))
}

async fn post_source_items(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let result = shared.store().save_source_items(body);
    match result {
        Ok(()) => Json(json!([])).into_response(),
        Err(e) => store_error(e),
    }
}

/// A bare number, as Magento answers.
async fn salable_qty(
    State(shared): State<Arc<Shared>>,
    Path((sku, _stock)): Path<(String, String)>,
) -> Response {
    let qty = shared.store().salable_qty(&sku);
    let qty: f64 = qty.to_string().parse().unwrap_or_default();
    Json(qty).into_response()
}

async fn public_key(State(shared): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let n = match file.as_str() {
        "pub-key-1.pem" => 0,
        "pub-key-2.pem" => 1,
        _ => return not_found(),
    };
    shared
        .signer
        .public_pem(n)
        .map_or_else(not_found, |pem| pem.to_owned().into_response())
}

#[derive(serde::Deserialize)]
struct GenerateRequest {
    count: usize,
}

async fn generate_orders(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<GenerateRequest>,
) -> Response {
    let created: Vec<Value> = shared
        .generate(request.count.min(100_000))
        .into_iter()
        .map(|(id, increment)| json!({"entity_id": id, "increment_id": increment}))
        .collect();
    Json(created).into_response()
}

#[derive(serde::Deserialize)]
struct ActQuery {
    /// `ship` only: the MSI source to ship from.
    source: Option<String>,
}

async fn act_on_order(
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(u64, String)>,
    Query(query): Query<ActQuery>,
) -> Response {
    if action == "announce" {
        let change = shared.store().announcement(id);
        let result = change
            .map(|c| vec![c])
            .ok_or(StoreError::NoOrder(id.to_string()));
        return announced(&shared, result, Value::Bool(true));
    }
    let Ok(action) = serde_json::from_value::<Action>(Value::String(action.clone())) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("unknown action `{action}`"),
        );
    };
    let result = shared.store().act_from(id, action, query.source.as_deref());
    announced(&shared, result, Value::Bool(true))
}

async fn announce_creditmemo(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    let change = shared.store().creditmemo_announcement(id);
    let result = change
        .map(|c| vec![c])
        .ok_or(StoreError::NoOrder(id.to_string()));
    announced(&shared, result, Value::Bool(true))
}

async fn announce_shipment(State(shared): State<Arc<Shared>>, Path(id): Path<u64>) -> Response {
    let change = shared.store().shipment_announcement(id);
    let result = change
        .map(|c| vec![c])
        .ok_or(StoreError::NoOrder(id.to_string()));
    announced(&shared, result, Value::Bool(true))
}

/// One REST-shaped entity or a list of them.
fn one_or_many(body: Value) -> Vec<Value> {
    match body {
        Value::Array(items) => items,
        one => vec![one],
    }
}

/// `POST /sim/import/orders`: your own REST-shaped orders (one or a list), served as given
/// and announced to the webhook.
async fn import_orders(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let result = shared.store().import_orders(one_or_many(body));
    let count = result.as_ref().map_or(0, Vec::len);
    announced(&shared, result, json!({ "imported": count }))
}

/// `POST /sim/import/creditmemos`: your own REST-shaped credit memos.
async fn import_creditmemos(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<Value>,
) -> Response {
    let result = shared.store().import_creditmemos(one_or_many(body));
    let count = result.as_ref().map_or(0, Vec::len);
    announced(&shared, result, json!({ "imported": count }))
}

async fn writebacks(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.store().writebacks().to_vec()).into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let (orders, creditmemos, shipments) = {
        let store = shared.store();
        (
            store.orders().count(),
            store.creditmemos().count(),
            store.shipments().count(),
        )
    };
    let deliveries = shared.deliveries.as_ref().map(|d| {
        json!({
            "delivered": d.stats.delivered.load(Relaxed),
            "failed_attempts": d.stats.failed_attempts.load(Relaxed),
            "given_up": d.stats.given_up.load(Relaxed),
            "pending": d.stats.pending.load(Relaxed),
        })
    });
    Json(json!({
        "orders": orders,
        "creditmemos": creditmemos,
        "shipments": shipments,
        "deliveries": deliveries,
    }))
    .into_response()
}
