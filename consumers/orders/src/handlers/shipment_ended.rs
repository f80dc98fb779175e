//! ShipmentDelivered → the order is COMPLETED (`OrderCompleted`);
//! ShipmentFailed → the order is DELIVERY_FAILED with the carrier's reason
//! (`OrderDeliveryFailed`), which starts the compensation after confirmation:
//! the payments consumer refunds, the inventory consumer takes the goods back.
//! Only a CONFIRMED order moves: a shipment exists only for a confirmed
//! order, so anything else is a redelivery after the order ended. The order
//! is locked as the other steps lock it ([`super::lock_in`]), so one it does
//! not show is retried while the event is recent, then dead-lettered.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_events::order::{OrderCompleted, OrderDeliveryFailed};
use outflow_outbox::{inbox, new_event_id, now_millis, TraceContext};
use tracing::{instrument, warn};

use super::{lock_in, order_id};
use crate::Steps;

/// How the shipment ended: delivered, or failed with the carrier's reason.
pub enum Ended<'a> {
    Delivered,
    Failed(&'a str),
}

#[instrument(skip_all, fields(order_id = %order), err(Debug))]
pub async fn end_order(steps: &Steps, delivery: &Delivery, order: &str, ended: Ended<'_>) -> Result<Outcome, HandlerError> {
    let id = order_id(order)?;
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if !inbox::claim(&mut tx, delivery.event_id, delivery.event.name()).await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    let Some((customer_id, version)) = lock_in(&mut tx, id, delivery.event.occurred_at(), "CONFIRMED").await? else {
        warn!("a shipment's end for an order that is not confirmed: nothing to do");
        tx.commit().await.map_err(db)?;
        return Ok(Outcome::Skipped);
    };
    let trace = TraceContext::child_of(delivery.traceparent.as_deref());
    let (event_id, occurred_at, aggregate_id) = (new_event_id(), now_millis(), order.to_owned());
    let (new_status, reason) = match ended {
        Ended::Delivered => ("COMPLETED", None),
        Ended::Failed(reason) => ("DELIVERY_FAILED", Some(reason)),
    };
    sqlx::query("update orders set status = $2, cancel_reason = $3, version = $4, updated_at = now() where id = $1")
        .bind(id)
        .bind(new_status)
        .bind(reason)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let appended = match reason {
        None => {
            let event = OrderCompleted { event_id, aggregate_id, aggregate_version: version, occurred_at, customer_id };
            steps.outbox.append(&mut tx, &event, &trace).await
        }
        Some(reason) => {
            let event = OrderDeliveryFailed { event_id, aggregate_id, aggregate_version: version, occurred_at, customer_id, reason: reason.to_owned() };
            steps.outbox.append(&mut tx, &event, &trace).await
        }
    };
    appended.map_err(|e| HandlerError::Transient(e.into()))?;
    tx.commit().await.map_err(db)?;
    Ok(Outcome::Applied)
}
