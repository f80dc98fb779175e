//! Events the payments side builds in more than one place.

use outflow_events::payment::PaymentFailed;
use outflow_outbox::{new_event_id, now_millis};
use uuid::Uuid;

/// The payment given up before it was paid (`expired`, `order_cancelled`), at
/// its next version.
pub fn given_up(order_id: Uuid, version: i64, reason: &str) -> PaymentFailed {
    let id = order_id.to_string();
    PaymentFailed {
        event_id: new_event_id(),
        aggregate_id: id.clone(),
        aggregate_version: version,
        occurred_at: now_millis(),
        order_id: id,
        transaction_id: None,
        reason: reason.into(),
    }
}
