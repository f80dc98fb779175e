//! One file per reaction.

pub mod catalog;
pub mod order_failed;
pub mod payment_captured;
pub mod shipment_ended;

use outflow_consumer::{db, HandlerError};
use sqlx::PgConnection;
use uuid::Uuid;

/// Locks an order that is in `status` and gives its customer and next
/// version; None when it is in another status (PENDING for the payment's
/// and the stock's answers, CONFIRMED for the shipment's end).
///
/// An order this database does not show yet is retried while the event about
/// it is recent: PostgreSQL hands a commit to logical decoding once its WAL
/// is flushed, a moment before other sessions see it, and on a loaded machine
/// the order's own commit was seen to become visible only after its saga had
/// reached PaymentCaptured (taking the event as "not pending" left the order
/// PENDING for good). An order still missing long after the event happened
/// does not exist, and the event is dead-lettered.
pub async fn lock_in(tx: &mut PgConnection, order_id: Uuid, occurred_at: i64, status: &str) -> Result<Option<(String, i64)>, HandlerError> {
    let row: Option<(String, String, i64)> =
        sqlx::query_as("select customer_id, status, version from orders where id = $1 for update").bind(order_id).fetch_optional(&mut *tx).await.map_err(db)?;
    let Some((customer, found, version)) = row else {
        return Err(missing(order_id, outflow_outbox::now_millis().0 - occurred_at));
    };
    Ok((found == status).then_some((customer, version + 1)))
}

/// How long an event's order may stay invisible before the event is taken to
/// name an order that does not exist.
const ORDER_VISIBLE_WITHIN_MS: i64 = 60_000;

fn missing(order_id: Uuid, age_ms: i64) -> HandlerError {
    if age_ms < ORDER_VISIBLE_WITHIN_MS {
        HandlerError::Transient(anyhow::anyhow!("order {order_id} is not visible yet ({age_ms} ms after the event)"))
    } else {
        HandlerError::Rejected(format!("order {order_id} does not exist ({} s after the event)", age_ms / 1000))
    }
}

pub fn order_id(id: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(id).map_err(|_| HandlerError::Rejected(format!("order id {id} is not a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_order_is_retried_while_the_event_is_recent_then_dead_lettered() {
        let id = Uuid::nil();
        assert!(matches!(missing(id, 0), HandlerError::Transient(_)));
        assert!(matches!(missing(id, ORDER_VISIBLE_WITHIN_MS - 1), HandlerError::Transient(_)));
        assert!(matches!(missing(id, ORDER_VISIBLE_WITHIN_MS), HandlerError::Rejected(_)));
    }
}
