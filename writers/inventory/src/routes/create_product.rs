//! `POST /v1/products` (admin): the product row + `ProductCreated`, one transaction.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    Json,
};
use outflow_events::inventory::ProductCreated;
use outflow_outbox::{new_event_id, now_millis, TraceContext};
use outflow_service::{
    auth::{Caller, Role},
    error::{ApiError, ApiJson},
};
use tracing::instrument;

use crate::{
    product::{NewProduct, Product, PRODUCT_COLUMNS},
    state::AppState,
};

#[utoipa::path(
    post, path = "/v1/products", request_body = NewProduct,
    responses(
        (status = 201, body = Product),
        (status = 400, description = "Malformed JSON"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "Not an admin"),
        (status = 409, description = "The SKU exists"),
        (status = 422, description = "An invalid field"),
    ),
    security(("bearer" = []))
)]
#[instrument(skip_all, fields(sku = %body.sku), err(Debug))]
pub async fn create_product(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewProduct>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    caller.require(Role::Admin)?;
    body.validate()?;
    let mut tx = state.base.pool.begin().await?;
    let row = sqlx::query(&format!(
        "insert into products (sku, name, price_minor, currency, on_hand, reserved, version)
         values ($1, $2, $3, $4, $5, 0, 1) on conflict (sku) do nothing returning {PRODUCT_COLUMNS}"
    ))
    .bind(&body.sku)
    .bind(body.name.trim())
    .bind(body.price_minor)
    .bind(&body.currency)
    .bind(body.stock as i32)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::conflict("product_exists", format!("product {} exists", body.sku)))?;
    let product = Product::from(row);
    let event = ProductCreated {
        event_id: new_event_id(),
        aggregate_id: product.sku.clone(),
        aggregate_version: product.version,
        occurred_at: now_millis(),
        sku: product.sku.clone(),
        name: product.name.clone(),
        price_minor: product.price_minor,
        currency: product.currency.clone(),
        on_hand: product.on_hand,
    };
    let trace = TraceContext::child_of(headers.get("traceparent").and_then(|v| v.to_str().ok()));
    state.base.outbox.append(&mut tx, &event, &trace).await.map_err(|e| ApiError::internal(e.into()))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(product)))
}
