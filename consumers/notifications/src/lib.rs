//! # Layout
//!
//! The notification consumer: one document in MongoDB's `notifications` per
//! customer-visible event, with the event id as `_id`, so a redelivered event
//! finds its notification already there and records nothing twice. Delivering
//! notifications (mail, push) is a later step that reads this collection.

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
        _ => None,
    }
}

impl Dispatch for Notifications {
    async fn dispatch(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        // Bounded: a frozen server fails the attempt, which is retried (the
        // notification's id is the event's, so a write that landed anyway is a duplicate).
        match tokio::time::timeout(std::time::Duration::from_secs(10), self.record(delivery)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(HandlerError::Transient(anyhow::anyhow!("MongoDB: no answer within 10 s"))),
        }
    }
}

impl Notifications {
    async fn record(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        let Some((order_id, kind, text)) = message(&delivery.event) else { return Ok(Outcome::Skipped) };
        let collection = self.db.collection::<Document>("notifications");
        // A refund event does not name the customer; the order's first notification does.
        let customer = match customer_of(&delivery.event) {
            Some(c) => c.to_owned(),
            None => collection
                .find_one(doc! { "order_id": order_id, "kind": "order_placed" })
                .await
                .map_err(transient)?
                .and_then(|d| d.get_str("customer_id").ok().map(str::to_owned))
                .unwrap_or_default(),
        };
        let notification = doc! { "_id": delivery.event_id.to_string(), "order_id": order_id, "customer_id": customer, "kind": kind, "text": text };
        match collection.insert_one(notification).await {
            Ok(_) => Ok(Outcome::Applied),
            Err(e) if matches!(e.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000) => Ok(Outcome::Duplicate),
            Err(e) => Err(transient(e)),
        }
    }
}

fn transient(error: mongodb::error::Error) -> HandlerError {
    HandlerError::Transient(anyhow::Error::new(error).context("MongoDB"))
}
