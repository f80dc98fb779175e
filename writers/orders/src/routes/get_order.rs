//! `GET /v1/orders/{id}`: the order as the writer sees it, for its owner or an admin.

use axum::{
    extract::{Path, State},
    Json,
};
use chrono::{DateTime, Utc};
use outflow_service::{auth::Caller, error::ApiError};
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{domain::OrderStatus, state::AppState};

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetails {
    pub order_id: Uuid,
    pub customer_id: String,
    pub status: OrderStatus,
    pub cancel_reason: Option<String>,
    pub total_minor: i64,
    pub currency: String,
    pub version: i64,
    pub items: Vec<OrderItem>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItem {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

#[utoipa::path(
    get, path = "/v1/orders/{id}",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = OrderDetails),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "Another customer's order"),
        (status = 404, description = "No such order"),
    ),
    security(("bearer" = []))
)]
pub async fn get_order(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<OrderDetails>, ApiError> {
    let id = parse_order_id(&id)?;
    let order = load_order(&state.base.pool, id).await?.ok_or_else(|| ApiError::not_found(format!("no order {id}")))?;
    if !caller.may_see(&order.customer_id) {
        return Err(ApiError::forbidden("this order belongs to another customer"));
    }
    Ok(Json(order))
}

pub fn parse_order_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found(format!("no order {id}")))
}

pub async fn load_order(pool: &sqlx::PgPool, id: Uuid) -> Result<Option<OrderDetails>, ApiError> {
    let Some(row) =
        sqlx::query("select id, customer_id, status, cancel_reason, total_minor, currency, version, created_at, updated_at from orders where id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    else {
        return Ok(None);
    };
    let items = sqlx::query("select sku, quantity, unit_price_minor from order_items where order_id = $1 order by line_no")
        .bind(id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| OrderItem { sku: r.get("sku"), quantity: r.get("quantity"), unit_price_minor: r.get("unit_price_minor") })
        .collect();
    let status: String = row.get("status");
    Ok(Some(OrderDetails {
        order_id: row.get("id"),
        customer_id: row.get("customer_id"),
        status: OrderStatus::parse(&status).ok_or_else(|| ApiError::internal(anyhow::anyhow!("unknown status {status}")))?,
        cancel_reason: row.get("cancel_reason"),
        total_minor: row.get("total_minor"),
        currency: row.get("currency"),
        version: row.get("version"),
        items,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }))
}
