//! StockReserved → open the payment with the provider (idempotent on the order
//! id, so a redelivery gets the same token), then payment PENDING +
//! `PaymentRequested` in one transaction.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_events::{inventory::StockReserved, payment::PaymentRequested};
use outflow_outbox::{inbox, new_event_id, now_millis, TraceContext};
use tracing::instrument;
use uuid::Uuid;

use crate::Steps;

#[instrument(skip_all, fields(order_id = %event.order_id), err(Debug))]
pub async fn request_payment(steps: &Steps, delivery: &Delivery, event: &StockReserved) -> Result<Outcome, HandlerError> {
    let order_id = Uuid::parse_str(&event.order_id).map_err(|_| HandlerError::Rejected(format!("order id {} is not a UUID", event.order_id)))?;
    let seen: bool = sqlx::query_scalar("select exists (select 1 from processed_events where event_id = $1)")
        .bind(delivery.event_id)
        .fetch_one(&steps.pool)
        .await
        .map_err(db)?;
    if seen {
        return Ok(Outcome::Duplicate);
    }
    let opened = steps.provider.open_transaction(&event.order_id, event.total_minor).await.map_err(|e| HandlerError::Transient(e.context("opening the provider transaction")))?;
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if !inbox::claim(&mut tx, delivery.event_id, "StockReserved").await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    let inserted = sqlx::query(
        "insert into payments (order_id, customer_id, status, amount_minor, currency, provider_token, redirect_url, version)
         values ($1, $2, 'PENDING', $3, $4, $5, $6, 1) on conflict (order_id) do nothing",
    )
    .bind(order_id)
    .bind(&event.customer_id)
    .bind(event.total_minor)
    .bind(&event.currency)
    .bind(&opened.token)
    .bind(&opened.redirect_url)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if inserted.rows_affected() == 0 {
        tx.commit().await.map_err(db)?;
        return Ok(Outcome::Skipped);
    }
    let requested = PaymentRequested {
        event_id: new_event_id(),
        aggregate_id: event.order_id.clone(),
        aggregate_version: 1,
        occurred_at: now_millis(),
        order_id: event.order_id.clone(),
        amount_minor: event.total_minor,
        currency: event.currency.clone(),
        provider_token: opened.token,
        redirect_url: opened.redirect_url,
    };
    steps.outbox.append(&mut tx, &requested, &TraceContext::child_of(delivery.traceparent.as_deref())).await.map_err(|e| HandlerError::Transient(e.into()))?;
    tx.commit().await.map_err(db)?;
    Ok(Outcome::Applied)
}
