//! `GET /v1/payments/{order_id}`: the payment of an order, for its owner or an admin.

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
pub struct Payment {
    pub order_id: Uuid,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    /// Where the customer pays; absent for the moment between recording the
    /// payment and opening it at the provider.
    pub redirect_url: Option<String>,
    pub transaction_id: Option<String>,
    pub failure_reason: Option<String>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

#[utoipa::path(
    get, path = "/v1/payments/{order_id}", params(("order_id" = Uuid, Path)),
    responses(
        (status = 200, body = Payment),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "Another customer's payment"),
        (status = 404, description = "No payment for this order"),
    ),
    security(("bearer" = []))
)]
pub async fn get_payment(State(state): State<AppState>, caller: Caller, Path(order_id): Path<String>) -> Result<Json<Payment>, ApiError> {
    let not_found = || ApiError::not_found(format!("no payment for order {order_id}"));
    let id = Uuid::parse_str(&order_id).map_err(|_| not_found())?;
    let row = sqlx::query(
        "select order_id, customer_id, status, amount_minor, currency, redirect_url, transaction_id, failure_reason, version, updated_at
         from payments where order_id = $1",
    )
    .bind(id)
    .fetch_optional(&state.base.pool)
    .await?
    .ok_or_else(not_found)?;
    if !caller.may_see(row.get("customer_id")) {
        return Err(ApiError::forbidden("this payment belongs to another customer"));
    }
    Ok(Json(Payment {
        order_id: row.get("order_id"),
        status: row.get("status"),
        amount_minor: row.get("amount_minor"),
        currency: row.get("currency"),
        redirect_url: row.get("redirect_url"),
        transaction_id: row.get("transaction_id"),
        failure_reason: row.get("failure_reason"),
        version: row.get("version"),
        updated_at: row.get("updated_at"),
    }))
}
