//! OrderConfirmed → the reservation becomes a sale: `StockCommitted`.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_events::{inventory::StockCommitted, order::OrderConfirmed};
use outflow_outbox::{inbox, new_event_id, now_millis, TraceContext};
use tracing::instrument;
use uuid::Uuid;



use super::{close_reservation, move_stock};
use crate::Steps;

#[instrument(skip_all, fields(order_id = %event.aggregate_id), err(Debug))]
pub async fn commit_stock(steps: &Steps, delivery: &Delivery, event: &OrderConfirmed) -> Result<Outcome, HandlerError> {
    let order_id = Uuid::parse_str(&event.aggregate_id).map_err(|_| HandlerError::Rejected(format!("order id {} is not a UUID", event.aggregate_id)))?;
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if !inbox::claim(&mut tx, delivery.event_id, "OrderConfirmed").await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    let Some(version) = close_reservation(&mut tx, order_id, "COMMITTED").await.map_err(db)? else {
        tx.commit().await.map_err(db)?;
        return Ok(Outcome::Skipped);
    };
    let stock = move_stock(&mut tx, order_id, -1, -1).await.map_err(db)?;
    let committed = StockCommitted {
        event_id: new_event_id(),
        aggregate_id: event.aggregate_id.clone(),
        aggregate_version: version,
        occurred_at: now_millis(),
        order_id: event.aggregate_id.clone(),
        lines: stock.iter().map(Into::into).collect(),
    };
    let trace = TraceContext::child_of(delivery.traceparent.as_deref());
    steps.outbox.append(&mut tx, &committed, &trace).await.map_err(|e| HandlerError::Transient(e.into()))?;
    tx.commit().await.map_err(db)?;
    Ok(Outcome::Applied)
}
