//! StockRejected or PaymentFailed → the order is CANCELLED with the reason
//! (`out_of_stock`, `payment_failed`, `expired`) and `OrderCancelled` starts
//! the compensations.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_events::order::OrderCancelled;
use outflow_outbox::{inbox, new_event_id, now_millis, TraceContext};
use tracing::instrument;

use super::{lock_in, order_id};
use crate::Steps;

#[instrument(skip_all, fields(order_id = %order), err(Debug))]
pub async fn cancel_order(steps: &Steps, delivery: &Delivery, order: &str, reason: &str) -> Result<Outcome, HandlerError> {
    let id = order_id(order)?;
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if !inbox::claim(&mut tx, delivery.event_id, delivery.event.name()).await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    let Some((customer_id, version)) = lock_in(&mut tx, id, delivery.event.occurred_at(), "PENDING").await? else {
        tx.commit().await.map_err(db)?;
        return Ok(Outcome::Skipped);
    };
    sqlx::query("update orders set status = 'CANCELLED', cancel_reason = $2, version = $3, updated_at = now() where id = $1")
        .bind(id)
        .bind(reason)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let cancelled = OrderCancelled {
        event_id: new_event_id(),
        aggregate_id: order.to_owned(),
        aggregate_version: version,
        occurred_at: now_millis(),
        customer_id,
        reason: reason.to_owned(),
    };
    steps.outbox.append(&mut tx, &cancelled, &TraceContext::child_of(delivery.traceparent.as_deref())).await.map_err(|e| HandlerError::Transient(e.into()))?;
    tx.commit().await.map_err(db)?;
    Ok(Outcome::Applied)
}
