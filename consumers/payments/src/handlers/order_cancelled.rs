//! OrderCancelled or OrderDeliveryFailed → the order is given up on the
//! payments side, whatever state its payment is in, or whether it exists yet
//! (a failed delivery always finds it CAPTURED, and has it refunded):
//!
//! - no payment yet (its StockReserved, on the other topic, is still to come):
//!   the order is recorded as given up, so that StockReserved opens none;
//! - PENDING: voided (`PaymentFailed`, reason `order_cancelled`) and its
//!   provider transaction cancelled, so a settlement arriving later is refunded
//!   by the webhook instead of kept;
//! - CAPTURED: a refund is recorded (`REFUNDING`), committed, made at the
//!   provider, then finished (`PaymentRefunded`): no lock is held across the
//!   call, and a crash or a refusing provider in between leaves it owed for the
//!   next delivery or the sweep;
//! - FAILED or REFUNDED: nothing to do.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_outbox::{inbox, TraceContext};
use outflow_payments::{events, refund};
use sqlx::PgConnection;
use tracing::{instrument, warn};
use uuid::Uuid;

use crate::{lock_order, Steps};

/// `order` gave up for `reason` (the order's cancel reason, or `delivery_failed`).
#[instrument(skip_all, fields(order_id = %order), err(Debug))]
pub async fn refund_or_void(steps: &Steps, delivery: &Delivery, order: &str, reason: &str) -> Result<Outcome, HandlerError> {
    let order_id = Uuid::parse_str(order).map_err(|_| HandlerError::Rejected(format!("order id {order} is not a UUID")))?;
    let trace = TraceContext::child_of(delivery.traceparent.as_deref());
    let mut tx = steps.pool.begin().await.map_err(db)?;
    lock_order(&mut tx, order_id).await?;
    if inbox::seen(&mut tx, delivery.event_id).await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    sqlx::query("insert into given_up_orders (order_id, reason) values ($1, $2) on conflict do nothing")
        .bind(order_id)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let payment: Option<(String, i64)> =
        sqlx::query_as("select status, version from payments where order_id = $1 for update").bind(order_id).fetch_optional(&mut *tx).await.map_err(db)?;
    let owes_refund = match payment {
        Some((status, version)) if status == "PENDING" => {
            void(steps, &mut tx, order_id, version, &trace).await?;
            inbox::claim(&mut tx, delivery.event_id, delivery.event.name()).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            if let Err(e) = steps.provider.cancel(order).await {
                warn!(error = format!("{e:#}"), "cancelling the provider transaction failed; a late capture would be refunded");
            }
            return Ok(Outcome::Applied);
        }
        Some((status, _)) if status == "CAPTURED" => {
            sqlx::query("update payments set status = 'REFUNDING', failure_reason = $2, updated_at = now() where order_id = $1")
                .bind(order_id)
                .bind(reason)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            true
        }
        Some((status, _)) => status == "REFUNDING",
        None => {
            inbox::claim(&mut tx, delivery.event_id, delivery.event.name()).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            return Ok(Outcome::Applied);
        }
    };
    if !owes_refund {
        inbox::claim(&mut tx, delivery.event_id, delivery.event.name()).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        return Ok(Outcome::Skipped);
    }
    tx.commit().await.map_err(db)?;
    match refund::finish(&steps.pool, &steps.outbox, &steps.provider, order_id, &trace).await {
        Ok(_) => {}
        // Owed and recorded: the sweep retries it, and this partition goes on.
        Err(refund::RefundError::Provider(e)) => warn!(error = format!("{e:#}"), "the provider did not refund; the refund stays owed for the sweep"),
        Err(e) => return Err(HandlerError::Transient(e.into())),
    }
    claim_alone(steps, delivery).await
}

async fn void(steps: &Steps, tx: &mut PgConnection, order_id: Uuid, version: i64, trace: &TraceContext) -> Result<(), HandlerError> {
    sqlx::query("update payments set status = 'FAILED', failure_reason = 'order_cancelled', version = $2, updated_at = now() where order_id = $1")
        .bind(order_id)
        .bind(version + 1)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let failed = events::given_up(order_id, version + 1, "order_cancelled");
    steps.outbox.append(tx, &failed, trace).await.map_err(|e| HandlerError::Transient(e.into()))
}

/// The event's claim once its refund is finished (a crash before it makes the
/// redelivery find the payment REFUNDED and change nothing).
async fn claim_alone(steps: &Steps, delivery: &Delivery) -> Result<Outcome, HandlerError> {
    let mut tx = steps.pool.begin().await.map_err(db)?;
    let first = inbox::claim(&mut tx, delivery.event_id, delivery.event.name()).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(if first { Outcome::Applied } else { Outcome::Duplicate })
}
