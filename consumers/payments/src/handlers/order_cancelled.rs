//! OrderCancelled → a captured payment is refunded (`PaymentRefunded`); a
//! pending one is voided (`PaymentFailed`, reason `order_cancelled`), so that a
//! settlement arriving later is refunded by the webhook instead of kept.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_events::{order::OrderCancelled, payment::{PaymentFailed, PaymentRefunded}};
use outflow_outbox::{inbox, new_event_id, now_millis, TraceContext};
use tracing::instrument;
use uuid::Uuid;

use crate::Steps;

#[instrument(skip_all, fields(order_id = %event.aggregate_id), err(Debug))]
pub async fn refund_or_void(steps: &Steps, delivery: &Delivery, event: &OrderCancelled) -> Result<Outcome, HandlerError> {
    let order_id = Uuid::parse_str(&event.aggregate_id).map_err(|_| HandlerError::Rejected(format!("order id {} is not a UUID", event.aggregate_id)))?;
    // The refund call is idempotent at the provider, so it may run before the
    // transaction that records it; a redelivery calls it again, harmlessly.
    let status: Option<String> = sqlx::query_scalar("select status from payments where order_id = $1").bind(order_id).fetch_optional(&steps.pool).await.map_err(db)?;
    let refunded_at_provider = status.as_deref() == Some("CAPTURED");
    if refunded_at_provider {
        steps.provider.refund(&event.aggregate_id).await.map_err(|e| HandlerError::Transient(e.context("refunding at the provider")))?;
    }
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if !inbox::claim(&mut tx, delivery.event_id, "OrderCancelled").await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    let payment: Option<(String, i64, i64)> = sqlx::query_as("select status, amount_minor, version from payments where order_id = $1 for update")
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
    let trace = TraceContext::child_of(delivery.traceparent.as_deref());
    let (event_id, occurred_at, id) = (new_event_id(), now_millis(), event.aggregate_id.clone());
    let outcome = match payment {
        Some((status, _, _)) if status == "CAPTURED" && !refunded_at_provider => {
            // Captured since we looked: roll back and come again to refund first.
            return Err(HandlerError::Transient(anyhow::anyhow!("payment captured meanwhile; refunding on the next attempt")));
        }
        Some((status, amount_minor, version)) if status == "CAPTURED" => {
            set_status(&mut tx, order_id, "REFUNDED", Some(&event.reason), version + 1).await?;
            let refunded = PaymentRefunded { event_id, aggregate_id: id.clone(), aggregate_version: version + 1, occurred_at, order_id: id, amount_minor, reason: event.reason.clone() };
            steps.outbox.append(&mut tx, &refunded, &trace).await.map_err(|e| HandlerError::Transient(e.into()))?;
            Outcome::Applied
        }
        Some((status, _, version)) if status == "PENDING" => {
            set_status(&mut tx, order_id, "FAILED", Some("order_cancelled"), version + 1).await?;
            let failed = PaymentFailed { event_id, aggregate_id: id.clone(), aggregate_version: version + 1, occurred_at, order_id: id, transaction_id: None, reason: "order_cancelled".into() };
            steps.outbox.append(&mut tx, &failed, &trace).await.map_err(|e| HandlerError::Transient(e.into()))?;
            Outcome::Applied
        }
        _ => Outcome::Skipped,
    };
    tx.commit().await.map_err(db)?;
    Ok(outcome)
}

pub async fn set_status(tx: &mut sqlx::PgConnection, order_id: Uuid, status: &str, reason: Option<&str>, version: i64) -> Result<(), HandlerError> {
    sqlx::query("update payments set status = $2, failure_reason = coalesce($3, failure_reason), version = $4, updated_at = now() where order_id = $1")
        .bind(order_id)
        .bind(status)
        .bind(reason)
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    Ok(())
}
