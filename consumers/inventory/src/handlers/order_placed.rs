//! OrderPlaced → reserve every line or none: `StockReserved` or `StockRejected`.

use outflow_consumer::{db, Delivery, HandlerError, Outcome};
use outflow_events::{
    inventory::{Shortage, StockRejected, StockReserved},
    order::OrderPlaced,
};
use outflow_outbox::{inbox, new_event_id, now_millis, TraceContext};
use sqlx::{PgConnection, Row};
use tracing::instrument;
use uuid::Uuid;

use super::StockAfter;
use crate::Steps;

#[instrument(skip_all, fields(order_id = %event.aggregate_id), err(Debug))]
pub async fn reserve_stock(steps: &Steps, delivery: &Delivery, event: &OrderPlaced) -> Result<Outcome, HandlerError> {
    let order_id = Uuid::parse_str(&event.aggregate_id).map_err(|_| HandlerError::Rejected(format!("order id {} is not a UUID", event.aggregate_id)))?;
    let mut tx = steps.pool.begin().await.map_err(db)?;
    if !inbox::claim(&mut tx, delivery.event_id, "OrderPlaced").await.map_err(db)? {
        return Ok(Outcome::Duplicate);
    }
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from reservations where order_id = $1)").bind(order_id).fetch_one(&mut *tx).await.map_err(db)?;
    if exists {
        tx.commit().await.map_err(db)?;
        return Ok(Outcome::Skipped);
    }
    let shortages = lock_and_compare(&mut tx, event).await.map_err(db)?;
    let trace = TraceContext::child_of(delivery.traceparent.as_deref());
    let status = if shortages.is_empty() { "RESERVED" } else { "REJECTED" };
    sqlx::query("insert into reservations (order_id, customer_id, status, version) values ($1, $2, $3, 1)")
        .bind(order_id)
        .bind(&event.customer_id)
        .bind(status)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    if shortages.is_empty() {
        let reserved = reserve_lines(&mut tx, order_id, event).await.map_err(db)?;
        steps.outbox.append(&mut tx, &reserved, &trace).await.map_err(|e| HandlerError::Transient(e.into()))?;
    } else {
        let rejected = StockRejected {
            event_id: new_event_id(),
            aggregate_id: event.aggregate_id.clone(),
            aggregate_version: 1,
            occurred_at: now_millis(),
            order_id: event.aggregate_id.clone(),
            reason: "out_of_stock".into(),
            shortages,
        };
        steps.outbox.append(&mut tx, &rejected, &trace).await.map_err(|e| HandlerError::Transient(e.into()))?;
    }
    tx.commit().await.map_err(db)?;
    Ok(Outcome::Applied)
}

/// Locks the order's products in SKU order (two orders over the same SKUs
/// never deadlock) and returns the lines the available stock cannot cover.
async fn lock_and_compare(tx: &mut PgConnection, event: &OrderPlaced) -> Result<Vec<Shortage>, sqlx::Error> {
    let mut skus: Vec<&str> = event.lines.iter().map(|l| l.sku.as_str()).collect();
    skus.sort_unstable();
    let products = sqlx::query("select sku, on_hand - reserved as available from products where sku = any($1) order by sku for update")
        .bind(&skus)
        .fetch_all(&mut *tx)
        .await?;
    Ok(event
        .lines
        .iter()
        .filter_map(|line| {
            let available: i32 = products.iter().find(|p| p.get::<&str, _>("sku") == line.sku).map_or(0, |p| p.get("available"));
            (available < line.quantity).then(|| Shortage { sku: line.sku.clone(), requested: line.quantity, available })
        })
        .collect())
}

/// Holds every line's quantity and returns the `StockReserved` that says so.
async fn reserve_lines(tx: &mut PgConnection, order_id: Uuid, event: &OrderPlaced) -> Result<StockReserved, sqlx::Error> {
    let quantities: Vec<i32> = event.lines.iter().map(|l| l.quantity).collect();
    let line_skus: Vec<&str> = event.lines.iter().map(|l| l.sku.as_str()).collect();
    sqlx::query("insert into reservation_lines (order_id, sku, quantity) select $1, * from unnest($2::text[], $3::int[])")
        .bind(order_id)
        .bind(&line_skus)
        .bind(&quantities)
        .execute(&mut *tx)
        .await?;
    let stock: Vec<StockAfter> = super::move_stock(&mut *tx, order_id, 0, 1).await?;
    Ok(StockReserved {
        event_id: new_event_id(),
        aggregate_id: event.aggregate_id.clone(),
        aggregate_version: 1,
        occurred_at: now_millis(),
        order_id: event.aggregate_id.clone(),
        customer_id: event.customer_id.clone(),
        total_minor: event.total_minor,
        currency: event.currency.clone(),
        lines: stock.iter().map(Into::into).collect(),
    })
}
