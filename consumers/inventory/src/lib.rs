//! # Layout
//!
//! The inventory consumer: the inventory database's saga steps.
//!
//! - [`handlers`]: one file per event it reacts to on `outflow.order.events`:
//!   `order_placed` (reserve every line or none), `order_cancelled` (release),
//!   `order_confirmed` (commit the sale), `order_delivery_failed` (take the
//!   goods of a failed delivery back on hand);
//! - [`Steps`]: what every step needs (pool, outbox) and the dispatch.
//!
//! Each step is one transaction: claim the event in the inbox, change the rows,
//! append the next event to the outbox, commit. Products are locked in SKU
//! order (`for update`), so concurrent reservations of one SKU queue up instead
//! of overselling, and the table's checks stop any that would.

pub mod handlers;

use outflow_consumer::{Delivery, Dispatch, HandlerError, Outcome};
use outflow_events::DomainEvent;
use outflow_outbox::Outbox;
use sqlx::PgPool;

pub const GROUP: &str = "outflow-inventory";

pub struct Steps {
    pub pool: PgPool,
    pub outbox: Outbox,
}

impl Dispatch for Steps {
    async fn dispatch(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        match &delivery.event {
            DomainEvent::OrderPlaced(e) => handlers::order_placed::reserve_stock(self, &delivery, e).await,
            DomainEvent::OrderCancelled(e) => handlers::order_cancelled::release_stock(self, &delivery, e).await,
            DomainEvent::OrderConfirmed(e) => handlers::order_confirmed::commit_stock(self, &delivery, e).await,
            DomainEvent::OrderDeliveryFailed(e) => handlers::order_delivery_failed::return_stock(self, &delivery, e).await,
            _ => Ok(Outcome::Skipped),
        }
    }
}

/// The order topic this consumer reads.
pub fn topics() -> Vec<String> {
    vec![outflow_events::AggregateType::Order.topic()]
}
