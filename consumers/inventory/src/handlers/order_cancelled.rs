//! OrderCancelled → give a held reservation back: `StockReleased`.

use outflow_consumer::{Delivery, HandlerError, Outcome};
use outflow_events::{inventory::StockReleased, order::OrderCancelled};
use outflow_outbox::{new_event_id, now_millis};
use tracing::instrument;

use crate::Steps;

#[instrument(skip_all, fields(order_id = %event.aggregate_id), err(Debug))]
pub async fn release_stock(steps: &Steps, delivery: &Delivery, event: &OrderCancelled) -> Result<Outcome, HandlerError> {
    super::close(steps, delivery, &event.aggregate_id, &super::RELEASE, Some(&event.customer_id), |version, stock| StockReleased {
        event_id: new_event_id(),
        aggregate_id: event.aggregate_id.clone(),
        aggregate_version: version,
        occurred_at: now_millis(),
        order_id: event.aggregate_id.clone(),
        lines: stock.iter().map(Into::into).collect(),
    })
    .await
}
