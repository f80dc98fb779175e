//! OrderDeliveryFailed → the sold goods come back: `StockReturned` (the
//! COMMITTED reservation becomes RETURNED, each line's quantity is on hand
//! again). An order whose reservation is not COMMITTED (a redelivery after the
//! return) changes nothing.

use outflow_consumer::{Delivery, HandlerError, Outcome};
use outflow_events::{inventory::StockReturned, order::OrderDeliveryFailed};
use outflow_outbox::{new_event_id, now_millis};
use tracing::instrument;

use crate::Steps;

#[instrument(skip_all, fields(order_id = %event.aggregate_id), err(Debug))]
pub async fn return_stock(steps: &Steps, delivery: &Delivery, event: &OrderDeliveryFailed) -> Result<Outcome, HandlerError> {
    super::close(steps, delivery, &event.aggregate_id, &super::RETURN, None, |version, stock| StockReturned {
        event_id: new_event_id(),
        aggregate_id: event.aggregate_id.clone(),
        aggregate_version: version,
        occurred_at: now_millis(),
        order_id: event.aggregate_id.clone(),
        lines: stock.iter().map(Into::into).collect(),
    })
    .await
}
