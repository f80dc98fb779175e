//! OrderConfirmed → the reservation becomes a sale: `StockCommitted`.

use outflow_consumer::{Delivery, HandlerError, Outcome};
use outflow_events::{inventory::StockCommitted, order::OrderConfirmed};
use outflow_outbox::{new_event_id, now_millis};
use tracing::instrument;

use crate::Steps;

#[instrument(skip_all, fields(order_id = %event.aggregate_id), err(Debug))]
pub async fn commit_stock(steps: &Steps, delivery: &Delivery, event: &OrderConfirmed) -> Result<Outcome, HandlerError> {
    super::close(steps, delivery, &event.aggregate_id, &super::COMMIT, None, |version, stock| StockCommitted {
        event_id: new_event_id(),
        aggregate_id: event.aggregate_id.clone(),
        aggregate_version: version,
        occurred_at: now_millis(),
        order_id: event.aggregate_id.clone(),
        lines: stock.iter().map(Into::into).collect(),
    })
    .await
}
