//! `GET /v1/products/{sku}`: the product as the writer sees it.

use axum::{
    extract::{Path, State},
    Json,
};
use outflow_service::error::ApiError;

use crate::{
    product::{Product, PRODUCT_COLUMNS},
    state::AppState,
};

#[utoipa::path(
    get, path = "/v1/products/{sku}", params(("sku" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses((status = 200, body = Product), (status = 404, description = "No such product"))
)]
pub async fn get_product(State(state): State<AppState>, Path(sku): Path<String>) -> Result<Json<Product>, ApiError> {
    // No product has a SKU outside the rule (and PostgreSQL refuses some, NUL).
    if !crate::product::valid_sku(&sku) {
        return Err(ApiError::not_found(format!("no product {}", sku.escape_debug())));
    }
    sqlx::query(&format!("select {PRODUCT_COLUMNS} from products where sku = $1"))
        .bind(&sku)
        .fetch_optional(&state.base.pool)
        .await?
        .map(|row| Json(Product::from(row)))
        .ok_or_else(|| ApiError::not_found(format!("no product {sku}")))
}
