//! Refunds run in three steps so that no database lock is held across the
//! provider call: the refund is recorded (status `REFUNDING`, committed by
//! whoever decided it: the webhook for a late capture, the payments consumer
//! for a cancelled order), the provider is asked (idempotent on the order id),
//! and [`finish`] commits `REFUNDED` with `PaymentRefunded`. A crash or a failed
//! call between the steps leaves `REFUNDING`, which the next delivery, the
//! provider's retry or the payments consumer's sweep finds and finishes.

use std::time::Duration;

use outflow_events::payment::PaymentRefunded;
use outflow_outbox::{new_event_id, now_millis, Outbox, TraceContext};
use sqlx::PgPool;
use uuid::Uuid;

use outflow_provider::ProviderClient;

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("the provider did not refund: {0:#}")]
    Provider(anyhow::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Outbox(#[from] outflow_outbox::OutboxError),
}

/// Refunds at the provider, then moves the payment from `REFUNDING` to
/// `REFUNDED` and appends `PaymentRefunded`; false when it was not (or no
/// longer) `REFUNDING`, e.g. finished meanwhile by another caller.
pub async fn finish(pool: &PgPool, outbox: &Outbox, provider: &ProviderClient, order_id: Uuid, trace: &TraceContext) -> Result<bool, RefundError> {
    if let Err(e) = provider.refund(&order_id.to_string()).await {
        // To the back of the sweep's queue: one refund the provider keeps
        // refusing must not hold up the others.
        sqlx::query("update payments set updated_at = now() where order_id = $1 and status = 'REFUNDING'").bind(order_id).execute(pool).await?;
        return Err(RefundError::Provider(e));
    }
    let mut tx = pool.begin().await?;
    let payment: Option<(i64, i64, Option<String>, String)> =
        sqlx::query_as("select version, amount_minor, failure_reason, customer_id from payments where order_id = $1 and status = 'REFUNDING' for update")
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((version, amount_minor, reason, customer_id)) = payment else { return Ok(false) };
    sqlx::query("update payments set status = 'REFUNDED', version = $2, updated_at = now() where order_id = $1")
        .bind(order_id)
        .bind(version + 1)
        .execute(&mut *tx)
        .await?;
    let id = order_id.to_string();
    let refunded = PaymentRefunded {
        event_id: new_event_id(),
        aggregate_id: id.clone(),
        aggregate_version: version + 1,
        occurred_at: now_millis(),
        order_id: id,
        amount_minor,
        reason: reason.unwrap_or_else(|| "refund".into()),
        customer_id,
    };
    outbox.append(&mut tx, &refunded, trace).await?;
    tx.commit().await?;
    Ok(true)
}

/// Finishes every refund left `REFUNDING` for longer than `older_than` (its
/// first caller crashed or the provider was down); returns how many. A refund
/// the provider refuses stays owed, is logged, and is tried again later.
pub async fn finish_stuck(pool: &PgPool, outbox: &Outbox, provider: &ProviderClient, older_than: Duration) -> Result<usize, RefundError> {
    let stuck: Vec<Uuid> = sqlx::query_scalar(
        "select order_id from payments where status = 'REFUNDING' and updated_at < now() - make_interval(secs => $1) order by updated_at limit 100",
    )
    .bind(older_than.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut finished = 0;
    for order_id in stuck {
        match finish(pool, outbox, provider, order_id, &TraceContext::new_root()).await {
            Ok(true) => finished += 1,
            Ok(false) => {}
            Err(RefundError::Provider(e)) => tracing::warn!(%order_id, error = format!("{e:#}"), "the provider refused an owed refund; it stays owed"),
            Err(e) => return Err(e),
        }
    }
    Ok(finished)
}
