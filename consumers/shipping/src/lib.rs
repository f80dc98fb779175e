//! # Layout
//!
//! The shipping consumer: the shipping database's saga step.
//!
//! - [`handlers`]: `order_confirmed` (record the shipment, hand it to the
//!   carrier, then `ShipmentRequested`);
//! - [`Steps`]: what the step needs and the dispatch.
//!
//! The shipment ends by the carrier's callback to the shipping writer
//! (`ShipmentDelivered` or `ShipmentFailed`), which the orders, payments and
//! inventory consumers turn into the order's end and, for a failed delivery,
//! its compensation.

pub mod handlers;

use outflow_carrier::CarrierClient;
use outflow_consumer::{Delivery, Dispatch, HandlerError, Outcome};
use outflow_events::DomainEvent;
use outflow_outbox::Outbox;
use sqlx::PgPool;

pub const GROUP: &str = "outflow-shipping";

pub struct Steps {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub carrier: CarrierClient,
}

impl Dispatch for Steps {
    async fn dispatch(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        match &delivery.event {
            DomainEvent::OrderConfirmed(e) => handlers::order_confirmed::request_shipment(self, &delivery, e).await,
            _ => Ok(Outcome::Skipped),
        }
    }
}

pub fn topics() -> Vec<String> {
    vec![outflow_events::AggregateType::Order.topic()]
}
