//! The HTTP API. `/api/*` is the ERP as a client sees it (faults apply); `/admin/*` sets
//! faults and rules and shows the books to tests (faults never apply).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::{FaultState, Faults, Verdict};
use crate::model::{
    Books, Created, NewAdjustment, NewCreditNote, NewCustomer, NewSalesOrder, NewShipment,
    Rejection, Rules,
};

/// What the handlers share.
pub struct Shared {
    /// The books.
    pub books: Mutex<Books>,
    /// The faults.
    pub faults: Mutex<FaultState>,
    /// Sales-order calls being served, and the most at once so far.
    pub in_flight: InFlight,
}

/// Calls being served at once (a client's concurrency, seen from the server).
#[derive(Debug, Default)]
pub struct InFlight {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl InFlight {
    /// The most calls served at once so far.
    pub fn most(&self) -> usize {
        self.most.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn enter(&self) -> InFlightGuard<'_> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.now.fetch_add(1, Relaxed) + 1;
        self.most.fetch_max(now, Relaxed);
        InFlightGuard(self)
    }
}

/// Leaves [`InFlight`] when dropped (also when the client gave up and the call was cut).
struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0
            .now
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Shared {
    /// The books, locked (a poisoned lock is still the data).
    pub fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The faults, locked.
    pub fn faults(&self) -> MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type App = State<Arc<Shared>>;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}

fn rejected(r: Rejection) -> Response {
    let status = match r.code {
        "not_found" => StatusCode::NOT_FOUND,
        "batch_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, r.code, r.message)
}

fn created<T: serde::Serialize>(result: Result<Created<T>, Rejection>, name: &str) -> Response {
    match result {
        Ok(Created::New(value)) => (StatusCode::CREATED, Json(json!(value))).into_response(),
        Ok(Created::Existing(value)) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": { "code": "duplicate", "message": format!("{name} exists already") },
                "existing": value,
            })),
        )
            .into_response(),
        Err(r) => rejected(r),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The whole router.
pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .route("/customers", get(find_customer))
        .route("/customers/batch", post(customers_batch))
        .route("/sales-orders", get(list_orders).post(create_order))
        .route("/sales-orders/{id}", get(get_order).put(amend_order))
        .route("/sales-order-refs", get(order_refs))
        .route("/sales-orders/search", post(search_orders))
        .route("/sales-orders/{id}/cancel", post(cancel_order))
        .route("/credit-notes", post(credit))
        .route("/shipments", get(shipments))
        .route("/stock", get(stock))
        .route("/stock-adjustments", get(find_adjustment).post(adjust))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            inject_faults,
        ));
    Router::new()
        .nest("/api", api)
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/faults/burst", post(burst))
        .route("/admin/rules", get(get_rules).put(put_rules))
        .route("/admin/items", post(add_items))
        .route("/admin/customers/{external_ref}", patch(patch_customer))
        .route("/admin/stock", post(set_stock))
        .route("/admin/sales-orders", get(all_orders))
        .route(
            "/admin/sales-orders/{external_ref}",
            patch(tamper_order).delete(forget_order),
        )
        .route("/admin/sales-orders/{external_ref}/ship", post(ship_order))
        .route("/admin/stats", get(stats))
        .with_state(shared)
}

async fn inject_faults(
    State(shared): App,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let _serving = request
        .uri()
        .path()
        .contains("/sales-order")
        .then(|| shared.in_flight.enter());
    let verdict = shared.faults().request(now_ms());
    match verdict {
        Verdict::Fail {
            status,
            retry_after,
            code,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut response = error(status, code, format!("injected fault: {code}"));
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
            }
            response
        }
        Verdict::Serve { delay, hang } => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let response = next.run(request).await;
            if let Some(hang) = hang {
                tokio::time::sleep(hang).await;
            }
            response
        }
    }
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Deserialize)]
struct ByRef {
    external_ref: Option<String>,
}

async fn find_customer(State(shared): App, Query(q): Query<ByRef>) -> Json<Value> {
    let books = shared.books();
    let found: Vec<&crate::model::Customer> = q
        .external_ref
        .iter()
        .filter_map(|r| books.customers.get(r))
        .collect();
    Json(json!({ "items": found }))
}

#[derive(Deserialize)]
struct CustomerBatch {
    customers: Vec<NewCustomer>,
}

async fn customers_batch(State(shared): App, Json(batch): Json<CustomerBatch>) -> Response {
    if batch.customers.len() > 200 {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            "at most 200 customers per batch",
        );
    }
    let customers = shared.books().customers(&batch.customers);
    Json(json!({ "customers": customers })).into_response()
}

#[derive(Deserialize)]
struct OrderQuery {
    external_ref: Option<String>,
    #[serde(default)]
    page: usize,
    size: Option<usize>,
}

async fn list_orders(State(shared): App, Query(q): Query<OrderQuery>) -> Json<Value> {
    let books = shared.books();
    if let Some(external_ref) = &q.external_ref {
        let found = books.orders_by_ref(external_ref);
        return Json(json!({ "items": found, "total": found.len() }));
    }
    let size = q.size.unwrap_or(100).clamp(1, 1000);
    let items: Vec<_> = books
        .orders
        .values()
        .skip(q.page * size)
        .take(size)
        .collect();
    Json(json!({ "items": items, "total": books.orders.len(), "page": q.page, "size": size }))
}

#[derive(Deserialize)]
struct OrderSearch {
    external_refs: Vec<String>,
}

/// The most references one search takes.
const SEARCH_LIMIT: usize = 1000;

/// The orders with these external references (each found one once; with duplicate
/// references allowed, the last booked one, as `GET /sales-orders?external_ref=` lists last).
async fn search_orders(State(shared): App, Json(search): Json<OrderSearch>) -> Response {
    if search.external_refs.len() > SEARCH_LIMIT {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "search_too_large",
            format!("at most {SEARCH_LIMIT} external references per search"),
        );
    }
    let books = shared.books();
    let wanted: std::collections::HashSet<&str> =
        search.external_refs.iter().map(String::as_str).collect();
    let items: Vec<_> = wanted
        .iter()
        .filter_map(|r| books.orders_by_ref(r).pop())
        .collect();
    Json(json!({ "items": items, "total": items.len() })).into_response()
}

#[derive(Deserialize)]
struct RefsQuery {
    after: Option<String>,
    size: Option<usize>,
}

/// External references of the sales orders, sorted, after `after`: a keyset page.
async fn order_refs(State(shared): App, Query(q): Query<RefsQuery>) -> Json<Value> {
    let books = shared.books();
    let size = q.size.unwrap_or(100).clamp(1, 1000);
    let items: Vec<&String> = match &q.after {
        Some(after) => books
            .order_refs
            .range::<str, _>((
                std::ops::Bound::Excluded(after.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .map(|(r, _)| r)
            .take(size)
            .collect(),
        None => books.order_refs.keys().take(size).collect(),
    };
    Json(json!({ "items": items }))
}

async fn create_order(State(shared): App, Json(order): Json<NewSalesOrder>) -> Response {
    let faults = {
        let exists = shared.books().order_by_ref(&order.external_ref).is_some();
        if exists {
            Default::default()
        } else {
            shared
                .faults()
                .order(&order.external_ref, order.lines.len())
        }
    };
    let result = shared.books().create_order(order, faults);
    created(result, "a sales order with this external_ref")
}

async fn get_order(State(shared): App, Path(id): Path<String>) -> Response {
    match shared.books().orders.get(&id) {
        Some(order) => Json(json!(order)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no sales order {id}"),
        ),
    }
}

async fn amend_order(
    State(shared): App,
    Path(id): Path<String>,
    Json(order): Json<NewSalesOrder>,
) -> Response {
    match shared.books().amend(&id, order) {
        Ok(order) => Json(json!(order)).into_response(),
        Err(r) => rejected(r),
    }
}

async fn cancel_order(State(shared): App, Path(id): Path<String>) -> Response {
    match shared.books().cancel(&id) {
        Ok(order) => Json(json!(order)).into_response(),
        Err(r) => rejected(r),
    }
}

#[derive(Deserialize)]
struct ShipmentsQuery {
    after: Option<u64>,
    size: Option<usize>,
}

/// The shipment journal after position `after`, oldest first (orders due under the rule
/// `ship_after_ms` are shipped first).
async fn shipments(State(shared): App, Query(q): Query<ShipmentsQuery>) -> Json<Value> {
    let mut books = shared.books();
    books.ship_due(now_ms());
    let size = q.size.unwrap_or(100).clamp(1, 1000);
    let items = books.shipments_after(q.after.unwrap_or(0), size);
    Json(json!({ "items": items }))
}

async fn ship_order(
    State(shared): App,
    Path(external_ref): Path<String>,
    body: Option<Json<NewShipment>>,
) -> Response {
    let new = body.map(|Json(b)| b).unwrap_or_default();
    let result = shared.books().ship(&external_ref, new, now_ms());
    created(result, "a shipment of this order")
}

async fn credit(State(shared): App, Json(note): Json<NewCreditNote>) -> Response {
    let result = shared.books().credit(note);
    created(result, "a credit note with this external_ref")
}

#[derive(Deserialize)]
struct StockQuery {
    warehouse: Option<String>,
    item_code: Option<String>,
}

async fn stock(State(shared): App, Query(q): Query<StockQuery>) -> Json<Value> {
    let books = shared.books();
    let items: Vec<Value> = books
        .stock
        .iter()
        .filter(|((w, i), _)| {
            q.warehouse.as_ref().is_none_or(|x| x == w)
                && q.item_code.as_ref().is_none_or(|x| x == i)
        })
        .map(|((w, i), qty)| json!({ "warehouse": w, "item_code": i, "quantity": qty }))
        .collect();
    Json(json!({ "items": items }))
}

async fn find_adjustment(State(shared): App, Query(q): Query<ByRef>) -> Json<Value> {
    let books = shared.books();
    let found: Vec<_> = q
        .external_ref
        .iter()
        .filter_map(|r| books.adjustments.get(r))
        .collect();
    Json(json!({ "items": found }))
}

async fn adjust(State(shared): App, Json(adjustment): Json<NewAdjustment>) -> Response {
    let result = shared.books().adjust(adjustment);
    created(result, "a stock adjustment with this external_ref")
}

async fn get_faults(State(shared): App) -> Json<Value> {
    let faults = shared.faults();
    Json(json!({ "faults": faults.faults, "fired": faults.fired }))
}

async fn put_faults(State(shared): App, Json(faults): Json<Faults>) -> Json<Value> {
    shared.faults().set(faults.clone());
    tracing::info!(?faults, "faults set");
    Json(json!({ "faults": faults }))
}

#[derive(Deserialize)]
struct Burst {
    count: u32,
    #[serde(default)]
    status: u16,
}

async fn burst(State(shared): App, Json(burst): Json<Burst>) -> Json<Value> {
    let mut state = shared.faults();
    state.faults.error_burst = burst.count;
    state.faults.burst_status = burst.status;
    Json(json!({ "faults": state.faults }))
}

async fn get_rules(State(shared): App) -> Json<Value> {
    Json(json!(shared.books().rules))
}

async fn put_rules(State(shared): App, Json(rules): Json<Rules>) -> Json<Value> {
    shared.books().rules = rules.clone();
    Json(json!(rules))
}

#[derive(Deserialize)]
struct Items {
    codes: Vec<String>,
}

async fn add_items(State(shared): App, Json(items): Json<Items>) -> Json<Value> {
    let mut books = shared.books();
    books.items.extend(items.codes);
    Json(json!({ "items": books.items.len() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerPatch {
    blocked: Option<bool>,
    credit_limit: Option<Decimal>,
}

async fn patch_customer(
    State(shared): App,
    Path(external_ref): Path<String>,
    Json(patch): Json<CustomerPatch>,
) -> Response {
    let mut books = shared.books();
    books.customers(&[NewCustomer {
        external_ref: external_ref.clone(),
        name: String::new(),
    }]);
    let Some(customer) = books.customers.get_mut(&external_ref) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such customer");
    };
    if let Some(blocked) = patch.blocked {
        customer.blocked = blocked;
    }
    if patch.credit_limit.is_some() {
        customer.credit_limit = patch.credit_limit;
    }
    Json(json!(customer)).into_response()
}

#[derive(Deserialize)]
struct StockLevel {
    warehouse: String,
    item_code: String,
    quantity: Decimal,
}

async fn set_stock(State(shared): App, Json(level): Json<StockLevel>) -> Json<Value> {
    shared
        .books()
        .stock
        .insert((level.warehouse, level.item_code), level.quantity);
    Json(json!({ "ok": true }))
}

async fn tamper_order(
    State(shared): App,
    Path(external_ref): Path<String>,
    Json(patch): Json<crate::model::OrderPatch>,
) -> Response {
    match shared.books().tamper(&external_ref, patch) {
        Ok(order) => Json(json!(order)).into_response(),
        Err(r) => rejected(r),
    }
}

async fn forget_order(State(shared): App, Path(external_ref): Path<String>) -> Response {
    match shared.books().forget(&external_ref) {
        Some(order) => Json(json!(order)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no sales order for {external_ref}"),
        ),
    }
}

async fn all_orders(State(shared): App) -> Json<Value> {
    let mut books = shared.books();
    books.ship_due(now_ms());
    Json(json!({ "items": books.orders.values().collect::<Vec<_>>(), "faulted": books.faulted }))
}

async fn stats(State(shared): App) -> Json<Value> {
    let books = shared.books();
    let cancelled = books
        .orders
        .values()
        .filter(|o| o.status == "cancelled")
        .count();
    let fired = shared.faults().fired.clone();
    Json(json!({
        "sales_orders": books.orders.len(),
        "cancelled": cancelled,
        "credit_notes": books.credit_notes.len(),
        "customers": books.customers.len(),
        "adjustments": books.adjustments.len(),
        "duplicate_creates": books.duplicate_creates,
        "amendments": books.amendments,
        "rejected": books.rejected,
        "faults_fired": fired,
        "most_sales_order_calls_at_once": shared.in_flight.most(),
    }))
}
