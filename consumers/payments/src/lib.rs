//! # Layout
//!
//! The payments consumer: the payments database's saga steps.
//!
//! - [`handlers`]: `stock_reserved` (record the payment, open it with the
//!   provider, then `PaymentRequested`; nothing for an order given up already),
//!   `order_cancelled` (give the order up: refund a captured payment, void a
//!   pending one, or record it so that its payment is never opened), and the
//!   same for `OrderDeliveryFailed` (its captured payment is refunded);
//! - [`expiry`]: the saga timeout: a payment still pending past its deadline
//!   fails (`PaymentFailed`, reason `expired`), which cancels its order; and
//!   refunds left owed by a crash or a provider outage are finished;
//! - [`Steps`]: what every step needs and the dispatch.

pub mod expiry;
pub mod handlers;

use outflow_consumer::{db, Delivery, Dispatch, HandlerError, Outcome};
use outflow_events::DomainEvent;
use outflow_outbox::Outbox;
use outflow_provider::ProviderClient;
use sqlx::PgPool;

pub const GROUP: &str = "outflow-payments";

/// The reason of the refund of an order whose delivery failed.
pub const DELIVERY_FAILED: &str = "delivery_failed";

pub struct Steps {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub provider: ProviderClient,
}

impl Dispatch for Steps {
    async fn dispatch(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        match &delivery.event {
            DomainEvent::StockReserved(e) => handlers::stock_reserved::request_payment(self, &delivery, e).await,
            DomainEvent::OrderCancelled(e) => handlers::order_cancelled::refund_or_void(self, &delivery, &e.aggregate_id, &e.reason).await,
            DomainEvent::OrderDeliveryFailed(e) => handlers::order_cancelled::refund_or_void(self, &delivery, &e.aggregate_id, DELIVERY_FAILED).await,
            _ => Ok(Outcome::Skipped),
        }
    }
}

/// Serializes the steps of one order: StockReserved and OrderCancelled come on
/// different topics, so they may run at the same time, and before the payment
/// row exists there is no row to lock.
pub async fn lock_order(tx: &mut sqlx::PgConnection, order_id: uuid::Uuid) -> Result<(), HandlerError> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1::text, 0))").bind(order_id).execute(&mut *tx).await.map_err(db)?;
    Ok(())
}

pub fn topics() -> Vec<String> {
    vec![outflow_events::AggregateType::Inventory.topic(), outflow_events::AggregateType::Order.topic()]
}
