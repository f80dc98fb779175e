//! `POST /v1/products/{sku}/restock` (admin): more stock on hand + `StockAdjusted`.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    Json,
};
use outflow_events::inventory::StockAdjusted;
use outflow_outbox::{new_event_id, now_millis, TraceContext};
use outflow_service::{
    auth::{Caller, Role},
    error::{ApiError, ApiJson},
};
use serde::Deserialize;
use tracing::instrument;
use utoipa::ToSchema;

use crate::{
    product::{validate_quantity, Product, MAX_STOCK, PRODUCT_COLUMNS},
    state::AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    /// Units added to stock on hand; on hand may not pass 1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    #[serde(deserialize_with = "outflow_service::error::json_integer")]
    pub quantity: i64,
}

#[utoipa::path(
    post, path = "/v1/products/{sku}/restock", request_body = Restock,
    params(("sku" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 200, body = Product),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such product"),
        (status = 422, description = "Quantity out of range, or stock would exceed the maximum"),
    ),
    security(("bearer" = []))
)]
#[instrument(skip_all, fields(sku = %sku), err(Debug))]
pub async fn restock(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(sku): Path<String>,
    ApiJson(body): ApiJson<Restock>,
) -> Result<Json<Product>, ApiError> {
    caller.require(Role::Admin)?;
    if !crate::product::valid_sku(&sku) {
        return Err(ApiError::not_found(format!("no product {}", sku.escape_debug())));
    }
    validate_quantity(body.quantity, 1)?;
    let mut tx = state.base.pool.begin().await?;
    let row = sqlx::query(&format!(
        "update products set on_hand = on_hand + $2, version = version + 1, updated_at = now()
         where sku = $1 and on_hand + $2 <= $3 returning {PRODUCT_COLUMNS}"
    ))
    .bind(&sku)
    .bind(body.quantity as i32)
    .bind(MAX_STOCK as i32)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        let exists: bool = sqlx::query_scalar("select exists (select 1 from products where sku = $1)").bind(&sku).fetch_one(&mut *tx).await?;
        return Err(if exists {
            ApiError::unprocessable("stock_limit", format!("stock on hand may not exceed {MAX_STOCK}"))
        } else {
            ApiError::not_found(format!("no product {sku}"))
        });
    };
    let product = Product::from(row);
    let event = StockAdjusted {
        event_id: new_event_id(),
        aggregate_id: product.sku.clone(),
        aggregate_version: product.version,
        occurred_at: now_millis(),
        sku: product.sku.clone(),
        name: product.name.clone(),
        price_minor: product.price_minor,
        currency: product.currency.clone(),
        delta: body.quantity as i32,
        on_hand: product.on_hand,
        reserved: product.reserved,
    };
    let trace = TraceContext::child_of(headers.get("traceparent").and_then(|v| v.to_str().ok()));
    state.base.outbox.append(&mut tx, &event, &trace).await.map_err(|e| ApiError::internal(e.into()))?;
    tx.commit().await?;
    Ok(Json(product))
}
