//! `POST /v1/orders/{id}/cancel`: the owner cancels an order that is not yet
//! confirmed: CANCELLED(customer_request) + `OrderCancelled`, one transaction.
//! Cancelling a cancelled order again answers as the first time did.
//!
//! A confirmed order is refused (409 `order_confirmed`), whether its shipment
//! is still being handed to the carrier or already on its way: confirmation
//! hands the order to shipping at once, and a cancel racing that hand-over
//! would leave goods travelling to a customer who was refunded. What is left
//! after confirmation is the carrier's word: delivered (COMPLETED) or not
//! (DELIVERY_FAILED, refunded and restocked). A completed or failed order is
//! refused the same way (409 `order_ended`).

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    Json,
};
use outflow_events::order::OrderCancelled;
use outflow_outbox::{new_event_id, now_millis, TraceContext};
use outflow_service::{auth::Caller, error::ApiError};
use sqlx::Row;
use tracing::instrument;

use super::{get_order::parse_order_id, OrderAccepted};
use crate::{domain::OrderStatus, state::AppState};

pub const CUSTOMER_REQUEST: &str = "customer_request";

#[utoipa::path(
    post, path = "/v1/orders/{id}/cancel",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = OrderAccepted, description = "Cancelled (or already was)"),
        (status = 401, description = "No valid bearer token"),
        (status = 403, description = "Another customer's order"),
        (status = 404, description = "No such order"),
        (status = 409, description = "The order is already confirmed (handed to shipping) or has ended"),
    ),
    security(("bearer" = []))
)]
#[instrument(skip_all, fields(order_id = %id, customer_id = %caller.id), err(Debug))]
pub async fn cancel_order(State(state): State<AppState>, caller: Caller, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<OrderAccepted>, ApiError> {
    let order_id = parse_order_id(&id)?;
    let mut tx = state.base.pool.begin().await?;
    let row = sqlx::query("select customer_id, status, version from orders where id = $1 for update")
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {order_id}")))?;
    let customer_id: String = row.get("customer_id");
    if !caller.may_see(&customer_id) {
        return Err(ApiError::forbidden("this order belongs to another customer"));
    }
    match OrderStatus::parse(row.get("status")) {
        Some(OrderStatus::Cancelled) => return Ok(Json(OrderAccepted { order_id, status: OrderStatus::Cancelled })),
        Some(OrderStatus::Confirmed) => return Err(ApiError::conflict("order_confirmed", "a confirmed order is handed to shipping and cannot be cancelled")),
        Some(status @ (OrderStatus::Completed | OrderStatus::DeliveryFailed)) => {
            return Err(ApiError::conflict("order_ended", format!("the order has ended {}", status.as_str())))
        }
        Some(OrderStatus::Pending) => {}
        None => return Err(ApiError::internal(anyhow::anyhow!("order {order_id} has an unknown status"))),
    }
    let version: i64 = row.get::<i64, _>("version") + 1;
    sqlx::query("update orders set status = 'CANCELLED', cancel_reason = $2, version = $3, updated_at = now() where id = $1")
        .bind(order_id)
        .bind(CUSTOMER_REQUEST)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    let event = OrderCancelled {
        event_id: new_event_id(),
        aggregate_id: order_id.to_string(),
        aggregate_version: version,
        occurred_at: now_millis(),
        customer_id,
        reason: CUSTOMER_REQUEST.to_owned(),
    };
    let trace = TraceContext::child_of(headers.get("traceparent").and_then(|v| v.to_str().ok()));
    state.base.outbox.append(&mut tx, &event, &trace).await.map_err(|e| ApiError::internal(e.into()))?;
    tx.commit().await?;
    Ok(Json(OrderAccepted { order_id, status: OrderStatus::Cancelled }))
}
