//! # Layout
//!
//! The orders consumer: the orders database's saga steps.
//!
//! - [`handlers`]: `payment_captured` (PENDING → CONFIRMED + `OrderConfirmed`),
//!   `order_failed` (StockRejected / PaymentFailed → CANCELLED with the reason +
//!   `OrderCancelled`), `catalog` (ProductCreated / StockAdjusted → the local
//!   catalog replica that prices new orders, guarded by product version),
//!   `shipment_ended` (ShipmentDelivered → COMPLETED + `OrderCompleted`,
//!   ShipmentFailed → DELIVERY_FAILED + `OrderDeliveryFailed`);
//! - [`Steps`]: what every step needs and the dispatch.

pub mod handlers;

use outflow_consumer::{Delivery, Dispatch, HandlerError, Outcome};
use outflow_events::DomainEvent;
use outflow_outbox::Outbox;
use sqlx::PgPool;

pub const GROUP: &str = "outflow-orders";

pub struct Steps {
    pub pool: PgPool,
    pub outbox: Outbox,
}

impl Dispatch for Steps {
    async fn dispatch(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        use handlers::{
            catalog, order_failed, payment_captured,
            shipment_ended::{self, Ended},
        };
        match &delivery.event {
            DomainEvent::PaymentCaptured(e) => payment_captured::confirm_order(self, &delivery, e).await,
            DomainEvent::StockRejected(e) => order_failed::cancel_order(self, &delivery, &e.order_id, "out_of_stock").await,
            DomainEvent::PaymentFailed(e) => {
                let reason = if e.reason == "expired" { "expired" } else { "payment_failed" };
                order_failed::cancel_order(self, &delivery, &e.order_id, reason).await
            }
            DomainEvent::ProductCreated(e) => catalog::upsert(self, &e.sku, &e.name, e.price_minor, &e.currency, e.aggregate_version).await,
            DomainEvent::StockAdjusted(e) => catalog::upsert(self, &e.sku, &e.name, e.price_minor, &e.currency, e.aggregate_version).await,
            DomainEvent::ShipmentDelivered(e) => shipment_ended::end_order(self, &delivery, &e.order_id, Ended::Delivered).await,
            DomainEvent::ShipmentFailed(e) => shipment_ended::end_order(self, &delivery, &e.order_id, Ended::Failed(&e.reason)).await,
            _ => Ok(Outcome::Skipped),
        }
    }
}

pub fn topics() -> Vec<String> {
    use outflow_events::AggregateType::*;
    vec![Inventory.topic(), Payment.topic(), Shipment.topic()]
}
