//! OrderConfirmed → the order's shipment, in three steps so that no lock is
//! held across the carrier call: (1) record the shipment REQUESTED; (2) hand
//! it to the carrier (idempotent on the order id, so a redelivery gets the
//! same shipment); (3) store the carrier's shipment id, claim the event and
//! append `ShipmentRequested`. A crash between the steps leaves the event
//! unclaimed and its offset uncommitted: the redelivery finds the shipment
//! recorded and asks the carrier again, which answers with the same shipment.
//! The carrier's callback for a shipment still REQUESTED is refused with 409
//! and retried by the carrier until step (3) has stored it.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_events::{order::OrderConfirmed, shipment::ShipmentRequested};
use outflow_outbox::{inbox, new_event_id, now_millis, TraceContext};
use tracing::instrument;
use uuid::Uuid;

use crate::Steps;

#[instrument(skip_all, fields(order_id = %event.aggregate_id), err(Debug))]
pub async fn request_shipment(steps: &Steps, delivery: &Delivery, event: &OrderConfirmed) -> Result<Outcome, HandlerError> {
    let order_id = Uuid::parse_str(&event.aggregate_id).map_err(|_| HandlerError::Rejected(format!("order id {} is not a UUID", event.aggregate_id)))?;
    if !record(steps, delivery, event, order_id).await? {
        return Ok(Outcome::Duplicate);
    }
    let shipment = steps
        .carrier
        .request_shipment(&event.aggregate_id, &event.customer_id)
        .await
        .map_err(|e| HandlerError::Transient(e.context("handing the shipment to the carrier")))?;
    store_requested(steps, delivery, event, order_id, &shipment.shipment_id).await
}

/// Step (1): the shipment recorded REQUESTED (once); false when the event
/// was handled already.
async fn record(steps: &Steps, delivery: &Delivery, event: &OrderConfirmed, order_id: Uuid) -> Result<bool, HandlerError> {
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if inbox::seen(&mut tx, delivery.event_id).await.map_err(db)? {
        return Ok(false);
    }
    sqlx::query(
        "insert into shipments (order_id, customer_id, status, version, traceparent) values ($1, $2, 'REQUESTED', 0, $3)
         on conflict (order_id) do nothing",
    )
    .bind(order_id)
    .bind(&event.customer_id)
    .bind(TraceContext::child_of(delivery.traceparent.as_deref()).to_header())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}

/// Step (3): the carrier's shipment on a shipment still REQUESTED, with
/// `ShipmentRequested`; the event claimed either way.
async fn store_requested(steps: &Steps, delivery: &Delivery, event: &OrderConfirmed, order_id: Uuid, shipment_id: &str) -> Result<Outcome, HandlerError> {
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if !inbox::claim(&mut tx, delivery.event_id, "OrderConfirmed").await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    let updated = sqlx::query(
        "update shipments set status = 'IN_TRANSIT', shipment_id = $2, version = 1, updated_at = now() where order_id = $1 and status = 'REQUESTED'",
    )
    .bind(order_id)
    .bind(shipment_id)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if updated.rows_affected() == 0 {
        tx.commit().await.map_err(db)?;
        return Ok(Outcome::Skipped);
    }
    let requested = ShipmentRequested {
        event_id: new_event_id(),
        aggregate_id: event.aggregate_id.clone(),
        aggregate_version: 1,
        occurred_at: now_millis(),
        order_id: event.aggregate_id.clone(),
        customer_id: event.customer_id.clone(),
        shipment_id: shipment_id.to_owned(),
    };
    steps.outbox.append(&mut tx, &requested, &TraceContext::child_of(delivery.traceparent.as_deref())).await.map_err(|e| HandlerError::Transient(e.into()))?;
    tx.commit().await.map_err(db)?;
    Ok(Outcome::Applied)
}
