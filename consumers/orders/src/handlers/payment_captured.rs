//! PaymentCaptured → the order is CONFIRMED (`OrderConfirmed`). A captured
//! payment of an order cancelled meanwhile is refunded by the payments side.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_events::{order::OrderConfirmed, payment::PaymentCaptured};
use outflow_outbox::{inbox, new_event_id, now_millis, TraceContext};
use tracing::instrument;

use super::{lock_in, order_id};
use crate::Steps;

#[instrument(skip_all, fields(order_id = %event.order_id), err(Debug))]
pub async fn confirm_order(steps: &Steps, delivery: &Delivery, event: &PaymentCaptured) -> Result<Outcome, HandlerError> {
    let id = order_id(&event.order_id)?;
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if !inbox::claim(&mut tx, delivery.event_id, "PaymentCaptured").await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    let Some((customer_id, version)) = lock_in(&mut tx, id, delivery.event.occurred_at(), "PENDING").await? else {
        tx.commit().await.map_err(db)?;
        return Ok(Outcome::Skipped);
    };
    sqlx::query("update orders set status = 'CONFIRMED', version = $2, updated_at = now(), confirmed_at = now() where id = $1")
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let confirmed =
        OrderConfirmed { event_id: new_event_id(), aggregate_id: event.order_id.clone(), aggregate_version: version, occurred_at: now_millis(), customer_id };
    steps.outbox.append(&mut tx, &confirmed, &TraceContext::child_of(delivery.traceparent.as_deref())).await.map_err(|e| HandlerError::Transient(e.into()))?;
    tx.commit().await.map_err(db)?;
    Ok(Outcome::Applied)
}
