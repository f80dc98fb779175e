//! # Layout
//!
//! The notification consumer: one document in MongoDB's `notifications` per
//! customer-visible event, with the event id as `_id`, so a redelivered event
//! finds its notification already there and records nothing twice; and, in
//! the `notifications` database, one delivery per webhook that wants the
//! event (the customer's own, and every shop-wide one), keyed by webhook and
//! event id, so a redelivered event adds none. [`dispatch`] sends them.
//!
//! A notification's body, as POSTed: `{"type": <kind>, "timestamp": <when
//! the event happened, RFC 3339>, "data": {"event_id", "order_id",
//! "customer_id", "text"}}`.

pub mod dispatch;

use mongodb::{
    bson::{doc, Document},
    error::{ErrorKind, WriteFailure},
    Database,
};
use outflow_consumer::{Delivery, Dispatch, HandlerError, Outcome};
use outflow_events::DomainEvent;

pub const GROUP: &str = "outflow-notifications";

pub fn topics() -> Vec<String> {
    use outflow_events::AggregateType::*;
    vec![Order.topic(), Payment.topic(), Shipment.topic()]
}

pub struct Notifications {
    pub db: Database,
    pub pool: sqlx::PgPool,
}

/// What the customer is told, for the events a customer sees.
fn message(event: &DomainEvent) -> Option<(&str, &str, String)> {
    match event {
        DomainEvent::OrderPlaced(e) => Some((&e.aggregate_id, "order_placed", format!("We received your order of {} {}.", e.total_minor, e.currency))),
        DomainEvent::OrderConfirmed(e) => Some((&e.aggregate_id, "order_confirmed", "Your order is paid and confirmed.".into())),
        DomainEvent::OrderCancelled(e) => Some((&e.aggregate_id, "order_cancelled", format!("Your order was cancelled ({}).", e.reason))),
        DomainEvent::PaymentRefunded(e) => Some((&e.order_id, "payment_refunded", format!("We refunded {} to you.", e.amount_minor))),
        DomainEvent::ShipmentRequested(e) => Some((&e.order_id, "order_shipped", format!("Your order is on its way (shipment {}).", e.shipment_id))),
        DomainEvent::OrderCompleted(e) => Some((&e.aggregate_id, "order_delivered", "Your order was delivered.".into())),
        DomainEvent::OrderDeliveryFailed(e) => {
            Some((&e.aggregate_id, "order_delivery_failed", format!("We could not deliver your order ({}); your payment is refunded.", e.reason)))
        }
        _ => None,
    }
}

fn customer_of(event: &DomainEvent) -> Option<&str> {
    match event {
        DomainEvent::OrderPlaced(e) => Some(&e.customer_id),
        DomainEvent::OrderConfirmed(e) => Some(&e.customer_id),
        DomainEvent::OrderCancelled(e) => Some(&e.customer_id),
        DomainEvent::OrderCompleted(e) => Some(&e.customer_id),
        DomainEvent::OrderDeliveryFailed(e) => Some(&e.customer_id),
        DomainEvent::ShipmentRequested(e) => Some(&e.customer_id),
        // Refunds from before refunds named their customer carry "".
        DomainEvent::PaymentRefunded(e) if !e.customer_id.is_empty() => Some(&e.customer_id),
        _ => None,
    }
}

impl Dispatch for Notifications {
    async fn dispatch(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        // Bounded: a frozen server fails the attempt, which is retried (the
        // notification's id is the event's, so a write that landed anyway is a duplicate).
        match tokio::time::timeout(std::time::Duration::from_secs(10), self.record(delivery)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(HandlerError::Transient(anyhow::anyhow!("no answer from PostgreSQL or MongoDB within 10 s"))),
        }
    }
}

impl Notifications {
    async fn record(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        let Some((order_id, kind, text)) = message(&delivery.event) else { return Ok(Outcome::Skipped) };
        let event_id = delivery.event_id.to_string();
        let customer = self.customer(order_id, customer_of(&delivery.event)).await?;
        let body = serde_json::json!({
            "type": kind,
            "timestamp": chrono::DateTime::from_timestamp_millis(delivery.event.occurred_at()).map(|t| t.to_rfc3339()),
            "data": { "event_id": event_id, "order_id": order_id, "customer_id": customer, "text": text },
        });
        let queued = self.queue_deliveries(&delivery, kind, order_id, &customer, &body.to_string()).await?;
        let notification = doc! { "_id": &event_id, "order_id": order_id, "customer_id": &customer, "kind": kind, "text": text };
        let recorded = match self.db.collection::<Document>("notifications").insert_one(notification).await {
            Ok(_) => true,
            Err(e) if matches!(e.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000) => false,
            Err(e) => return Err(transient(e)),
        };
        Ok(if recorded || queued > 0 { Outcome::Applied } else { Outcome::Duplicate })
    }

    /// The order's customer: the one the event names (kept for the order's
    /// later events), or the one an earlier event of the order named.
    async fn customer(&self, order_id: &str, named: Option<&str>) -> Result<String, HandlerError> {
        if let Some(customer) = named {
            sqlx::query("insert into order_customers (order_id, customer_id) values ($1, $2) on conflict (order_id) do nothing")
                .bind(order_id)
                .bind(customer)
                .execute(&self.pool)
                .await
                .map_err(outflow_consumer::db)?;
            return Ok(customer.to_owned());
        }
        // Only a refund from before refunds named their customer gets here;
        // its order's events came long before it, and were noted here or,
        // before this table, in the order's first notification.
        let known: Option<String> = sqlx::query_scalar("select customer_id from order_customers where order_id = $1")
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(outflow_consumer::db)?;
        if let Some(customer) = known {
            return Ok(customer);
        }
        let placed =
            self.db.collection::<Document>("notifications").find_one(doc! { "order_id": order_id, "kind": "order_placed" }).await.map_err(transient)?;
        Ok(placed.and_then(|d| d.get_str("customer_id").ok().map(str::to_owned)).unwrap_or_default())
    }

    /// One delivery per webhook that wants this customer's notifications and
    /// was registered before the event happened (a replay of the topics
    /// sends a new webhook nothing from before it); how many were new. The
    /// dispatchers are woken at the commit.
    async fn queue_deliveries(&self, delivery: &Delivery, kind: &str, order_id: &str, customer: &str, body: &str) -> Result<u64, HandlerError> {
        let occurred_at = chrono::DateTime::from_timestamp_millis(delivery.event.occurred_at()).unwrap_or_default();
        let mut tx = self.pool.begin().await.map_err(outflow_consumer::db)?;
        let queued = sqlx::query(
            "insert into deliveries (webhook_id, event_id, kind, order_id, body)
             select id, $1, $2, $3, $4 from webhooks
             where (shop_wide or (owner = $5 and $5 <> '')) and created_at <= $6
             on conflict (webhook_id, event_id) do nothing",
        )
        .bind(delivery.event_id.to_string())
        .bind(kind)
        .bind(order_id)
        .bind(body)
        .bind(customer)
        .bind(occurred_at)
        .execute(&mut *tx)
        .await
        .map_err(outflow_consumer::db)?
        .rows_affected();
        if queued > 0 {
            sqlx::query("select pg_notify($1, '')").bind(dispatch::CHANNEL).execute(&mut *tx).await.map_err(outflow_consumer::db)?;
        }
        tx.commit().await.map_err(outflow_consumer::db)?;
        Ok(queued)
    }
}

fn transient(error: mongodb::error::Error) -> HandlerError {
    HandlerError::Transient(anyhow::Error::new(error).context("MongoDB"))
}
