//! `GET /v1/shipments/{order_id}`: the shipment of an order, for its owner or an admin.

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

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Shipment {
    pub order_id: Uuid,
    /// REQUESTED, IN_TRANSIT, DELIVERED or FAILED.
    pub status: String,
    /// The carrier's id (its tracking number); absent until the carrier took it.
    pub shipment_id: Option<String>,
    pub failure_reason: Option<String>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

#[utoipa::path(
    get, path = "/v1/shipments/{order_id}", params(("order_id" = Uuid, Path)),
    responses(
        (status = 200, body = Shipment),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "Another customer's shipment"),
        (status = 404, description = "No shipment for this order"),
    ),
    security(("bearer" = []))
)]
pub async fn get_shipment(State(state): State<AppState>, caller: Caller, Path(order_id): Path<String>) -> Result<Json<Shipment>, ApiError> {
    let not_found = || ApiError::not_found(format!("no shipment for order {order_id}"));
    let id = Uuid::parse_str(&order_id).map_err(|_| not_found())?;
    let row = sqlx::query("select order_id, customer_id, status, shipment_id, failure_reason, version, updated_at from shipments where order_id = $1")
        .bind(id)
        .fetch_optional(&state.base.pool)
        .await?
        .ok_or_else(not_found)?;
    if !caller.may_see(row.get("customer_id")) {
        return Err(ApiError::forbidden("this shipment belongs to another customer"));
    }
    Ok(Json(Shipment {
        order_id: row.get("order_id"),
        status: row.get("status"),
        shipment_id: row.get("shipment_id"),
        failure_reason: row.get("failure_reason"),
        version: row.get("version"),
        updated_at: row.get("updated_at"),
    }))
}
