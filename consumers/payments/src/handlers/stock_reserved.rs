//! StockReserved → a payment for the order, in three steps so that no lock is
//! held across the provider call: (1) record the payment PENDING, unless the
//! order was given up already (its OrderCancelled came first, on the other
//! topic); (2) open the transaction at the provider (idempotent on the order
//! id, so a redelivery gets the same one); (3) store the provider's
//! transaction, claim the event and append `PaymentRequested`. An order
//! cancelled between (1) and (3) has its payment voided by OrderCancelled; step
//! (3) then cancels the provider's transaction instead, so it is never paid.
//! Steps (1) and (3) are `pub` so that the bench's saga ceiling runs them
//! around the provider call it leaves out.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_events::{inventory::StockReserved, payment::PaymentRequested};
use outflow_outbox::{inbox, new_event_id, now_millis, TraceContext};
use outflow_provider::OpenedTransaction;
use tracing::{instrument, warn};
use uuid::Uuid;

use crate::{lock_order, Steps};

/// What step (1) found.
pub enum Recorded {
    /// The event was handled already.
    Duplicate,
    /// Nothing to open: the order was given up, or its payment is no longer
    /// waiting to be opened.
    GivenUp,
    /// Recorded PENDING: to be opened at the provider.
    Pending,
}

#[instrument(skip_all, fields(order_id = %event.order_id), err(Debug))]
pub async fn request_payment(steps: &Steps, delivery: &Delivery, event: &StockReserved) -> Result<Outcome, HandlerError> {
    let order_id = Uuid::parse_str(&event.order_id).map_err(|_| HandlerError::Rejected(format!("order id {} is not a UUID", event.order_id)))?;
    match record(steps, delivery, event, order_id).await? {
        Recorded::Duplicate => return Ok(Outcome::Duplicate),
        Recorded::GivenUp => return Ok(Outcome::Skipped),
        Recorded::Pending => {}
    }
    let opened = steps
        .provider
        .open_transaction(&event.order_id, event.total_minor)
        .await
        .map_err(|e| HandlerError::Transient(e.context("opening the provider transaction")))?;
    let outcome = store_opened(steps, delivery, event, order_id, opened).await?;
    if outcome == Outcome::Skipped {
        // Given up while the transaction was being opened: make sure it is never paid.
        if let Err(e) = steps.provider.cancel(&event.order_id).await {
            warn!(error = format!("{e:#}"), "cancelling the provider transaction of a given-up order failed; a late capture would be refunded");
        }
    }
    Ok(outcome)
}

/// Step (1), under the order's lock: the payment recorded PENDING with no
/// provider transaction yet, or the event claimed at once for a given-up order.
pub async fn record(steps: &Steps, delivery: &Delivery, event: &StockReserved, order_id: Uuid) -> Result<Recorded, HandlerError> {
    let mut tx = steps.pool.begin().await.map_err(db)?;
    lock_order(&mut tx, order_id).await?;
    if inbox::seen(&mut tx, delivery.event_id).await.map_err(db)? {
        return Ok(Recorded::Duplicate);
    }
    let given_up: bool =
        sqlx::query_scalar("select exists (select 1 from given_up_orders where order_id = $1)").bind(order_id).fetch_one(&mut *tx).await.map_err(db)?;
    if given_up {
        inbox::claim(&mut tx, delivery.event_id, "StockReserved").await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        return Ok(Recorded::GivenUp);
    }
    sqlx::query(
        "insert into payments (order_id, customer_id, status, amount_minor, currency, version, traceparent)
         values ($1, $2, 'PENDING', $3, $4, 1, $5) on conflict (order_id) do nothing",
    )
    .bind(order_id)
    .bind(&event.customer_id)
    .bind(event.total_minor)
    .bind(&event.currency)
    .bind(TraceContext::child_of(delivery.traceparent.as_deref()).to_header())
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    // A payment voided or expired before it was opened, or opened by another
    // event for the same order, needs nothing from the provider.
    let to_open: bool = sqlx::query_scalar("select status = 'PENDING' and provider_token is null from payments where order_id = $1")
        .bind(order_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    if !to_open {
        inbox::claim(&mut tx, delivery.event_id, "StockReserved").await.map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(if to_open { Recorded::Pending } else { Recorded::GivenUp })
}

/// Step (3): the provider's transaction on a payment still PENDING and not yet
/// opened, with `PaymentRequested`; Skipped when it was voided meanwhile.
pub async fn store_opened(
    steps: &Steps,
    delivery: &Delivery,
    event: &StockReserved,
    order_id: Uuid,
    opened: OpenedTransaction,
) -> Result<Outcome, HandlerError> {
    let mut tx = steps.pool.begin().await.map_err(db)?;
    lock_order(&mut tx, order_id).await?;
    if !inbox::claim(&mut tx, delivery.event_id, "StockReserved").await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    // The opened transaction is recorded whatever became of the payment: a
    // capture of it that beats the cancellation is then known, and refunded.
    sqlx::query("update payments set provider_transaction_id = $2 where order_id = $1 and provider_transaction_id is null")
        .bind(order_id)
        .bind(&opened.transaction_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let updated = sqlx::query(
        "update payments set provider_token = $2, redirect_url = $3, updated_at = now() where order_id = $1 and status = 'PENDING' and provider_token is null",
    )
    .bind(order_id)
    .bind(&opened.token)
    .bind(&opened.redirect_url)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if updated.rows_affected() == 0 {
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
