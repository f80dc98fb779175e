//! # Layout
//!
//! The query service (port 7110): reads only, from the views in MongoDB.
//!
//! - `GET /v1/orders/{id}`: the order view (owner or admin);
//! - `GET /v1/customers/{id}/orders?page=&per_page=`: a customer's orders,
//!   newest first (that customer or an admin);
//! - `GET /v1/products/{sku}/availability`: on hand, reserved, available;
//! - `GET /v1/orders/{id}/events`, `GET /v1/products/{sku}/availability/events`:
//!   the same views, live (Server-Sent Events, [`live`]);
//! - `GET /live/orders/{id}`: a small page that shows an order live (EventSource);
//! - `/healthz`, `/readyz` (MongoDB answers), `/metrics`, `/openapi.json`.

pub mod live;
pub mod openapi;
mod streams;

use std::{future::Future, time::Duration};

use anyhow::Context;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use futures::TryStreamExt;
use mongodb::{
    bson::{doc, Bson, Document},
    Database,
};
use outflow_service::{
    auth::{Caller, HasJwtKeys, JwtKeys},
    edge::{self, EdgeLimits, RateLimit},
    error::{ApiError, ApiQuery},
    ops,
};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub jwt: JwtKeys,
    pub live: std::sync::Arc<live::Hub>,
}

impl HasJwtKeys for AppState {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.jwt
    }
}

pub fn router(state: AppState, limits: &EdgeLimits) -> Router {
    let handle = ops::metrics_handle();
    let reads = Router::new()
        .route("/v1/orders/{id}", get(order))
        .route("/v1/customers/{id}/orders", get(customer_orders))
        .route("/v1/products/{sku}/availability", get(availability))
        .route("/v1/orders/{id}/events", get(streams::order_events))
        .route("/v1/products/{sku}/availability/events", get(streams::availability_events));
    let document = <openapi::ApiDoc as utoipa::OpenApi>::openapi();
    let api = edge::limit_clients(reads, RateLimit::per_client(limits))
        .route("/readyz", get(readyz))
        .route("/live/orders/{id}", get(streams::order_page))
        .route("/live/order.js", get(streams::order_script))
        .route("/openapi.json", get(move || std::future::ready(Json(document.clone()))))
        .with_state(state)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/metrics", get(move || std::future::ready(handle.render())));
    ops::with_common_layers(api, "query")
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: &EdgeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    ops::serve(listener, router(state, limits), limits, shutdown).await.context("serving HTTP")
}

async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.db.run_command(doc! { "ping": 1 })).await {
        Ok(Ok(_)) => Json(json!({"status": "ready"})).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "not_ready", "reason": "MongoDB does not answer"}))).into_response(),
    }
}

fn mongo(error: mongodb::error::Error) -> ApiError {
    ApiError::internal(anyhow::Error::new(error).context("MongoDB"))
}

/// A view document as JSON, with `_id` under its proper name and without
/// the view consumer's revision (`_rev`).
fn to_json(mut document: Document, id_name: &str) -> Value {
    document.remove(outflow_service::views::REVISION);
    if let Some(id) = document.remove("_id") {
        document.insert(id_name, id);
    }
    Bson::Document(document).into_relaxed_extjson()
}

#[utoipa::path(
    get, path = "/v1/orders/{id}", params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = openapi::OrderView),
        (status = 403, description = "Another customer's order"),
        (status = 404, description = "No view of this order (yet)"),
    ),
    security(("bearer" = []))
)]
async fn order(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let view = order_view(&state.db, &id).await?;
    if !caller.may_see(view.get_str("customer_id").unwrap_or_default()) {
        return Err(ApiError::forbidden("this order belongs to another customer"));
    }
    Ok(Json(to_json(view, "order_id")))
}

/// Order `id`'s view, once its order is in it (other parts may come first).
async fn order_view(db: &Database, id: &str) -> Result<Document, ApiError> {
    // Views are keyed by order ids; anything else (a NUL, which the views'
    // store cannot even hold) names no view.
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::not_found(format!("no order view {}", id.escape_debug())));
    }
    let view = db.collection::<Document>(live::ORDERS).find_one(doc! { "_id": id }).await.map_err(mongo)?;
    view.filter(|v| v.contains_key("customer_id")).ok_or_else(|| ApiError::not_found(format!("no order view {id}")))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Page {
    /// 1 for the newest orders (the default).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u64>,
    /// 20 by default.
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<i64>,
}

const MAX_PAGE: u64 = 1_000_000;

#[utoipa::path(
    get, path = "/v1/customers/{id}/orders", params(("id" = String, Path, description = "Customer id"), Page),
    responses(
        (status = 200, body = openapi::CustomerOrders),
        (status = 400, description = "A query parameter that is not a number, or one this endpoint does not take"),
        (status = 403, description = "Another customer's orders"),
        (status = 404, description = "An id no customer can have"),
        (status = 422, description = "page or per_page out of range"),
    ),
    security(("bearer" = []))
)]
async fn customer_orders(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    if !caller.may_see(&id) {
        return Err(ApiError::forbidden("these are another customer's orders"));
    }
    if id.contains('\0') {
        return Err(ApiError::not_found("no customer id holds a NUL"));
    }
    let (number, per_page) = (page.page.unwrap_or(1), page.per_page.unwrap_or(20));
    if !(1..=MAX_PAGE).contains(&number) || !(1..=100).contains(&per_page) {
        return Err(ApiError::unprocessable("invalid_page", format!("page is 1 to {MAX_PAGE}, per_page 1 to 100")));
    }
    let collection = state.db.collection::<Document>("customer_orders");
    let filter = doc! { "customer_id": &id };
    let total = collection.count_documents(filter.clone()).await.map_err(mongo)?;
    let orders: Vec<Value> = collection
        .find(filter)
        .sort(doc! { "placed_at": -1, "_id": 1 })
        .skip((number - 1) * per_page as u64)
        .limit(per_page)
        .await
        .map_err(mongo)?
        .try_collect::<Vec<Document>>()
        .await
        .map_err(mongo)?
        .into_iter()
        .map(|d| to_json(d, "order_id"))
        .collect();
    Ok(Json(json!({ "customer_id": id, "page": number, "per_page": per_page, "total": total, "orders": orders })))
}

#[utoipa::path(
    get, path = "/v1/products/{sku}/availability", params(("sku" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = openapi::Availability), (status = 404, description = "No view of this product (yet)"))
)]
async fn availability(State(state): State<AppState>, Path(sku): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(to_json(availability_view(&state.db, &sku).await?, "sku")))
}

async fn availability_view(db: &Database, sku: &str) -> Result<Document, ApiError> {
    if !outflow_events::sku::is_valid(sku) {
        return Err(ApiError::not_found(format!("no product {}", sku.escape_debug())));
    }
    let view = db.collection::<Document>(live::PRODUCTS).find_one(doc! { "_id": sku }).await.map_err(mongo)?;
    view.ok_or_else(|| ApiError::not_found(format!("no product {sku}")))
}
