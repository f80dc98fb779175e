//! # Layout
//!
//! The payments consumer: the payments database's saga steps.
//!
//! - [`handlers`]: `stock_reserved` (open the payment with the provider, then
//!   `PaymentRequested`), `order_cancelled` (refund a captured payment, void a
//!   pending one);
//! - [`expiry`]: the saga timeout: a payment still pending past its deadline
//!   fails (`PaymentFailed`, reason `expired`), which cancels its order;
//! - [`Steps`]: what every step needs and the dispatch.

pub mod expiry;
pub mod handlers;

use outflow_consumer::{Delivery, Dispatch, HandlerError, Outcome};
use outflow_events::DomainEvent;
use outflow_outbox::Outbox;
use outflow_payments::provider::ProviderClient;
use sqlx::PgPool;

pub const GROUP: &str = "outflow-payments";

pub struct Steps {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub provider: ProviderClient,
}

impl Dispatch for Steps {
    async fn dispatch(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        match &delivery.event {
            DomainEvent::StockReserved(e) => handlers::stock_reserved::request_payment(self, &delivery, e).await,
            DomainEvent::OrderCancelled(e) => handlers::order_cancelled::refund_or_void(self, &delivery, e).await,
            _ => Ok(Outcome::Skipped),
        }
    }

}

pub fn topics() -> Vec<String> {
    vec![outflow_events::AggregateType::Inventory.topic(), outflow_events::AggregateType::Order.topic()]
}
