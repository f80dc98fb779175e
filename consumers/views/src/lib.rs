//! # Layout
//!
//! The view consumer: every event topic folded into MongoDB.
//!
//! - `order_views`: one document per order: its lines and status (guarded by
//!   the order's version), its reservation (guarded by the reservation's
//!   version), its payment (guarded by the payment's version) and a timeline
//!   with one entry per event id;
//! - `customer_orders`: one small document per order, indexed by customer, for
//!   the paginated list;
//! - `product_availability`: on hand, reserved, available per SKU, guarded by
//!   the product's version (every stock event carries it per line).
//!
//! Every change is guarded: an older or repeated event changes nothing. So
//! duplicates and reordering across topics never move a view backwards, and
//! replaying the topics from offset 0 into an empty database rebuilds every
//! view. The changes waiting for one document are folded into it in memory
//! and written once (see `fold::write`); writes to one document are
//! serialized inside the process, because FerretDB v1 updates a document by
//! reading and rewriting all of it; [`lease`] keeps a second process from
//! folding into the same database.

pub mod fold;
pub mod lease;

use mongodb::{bson::doc, Database};
use outflow_consumer::{Delivery, Dispatch, HandlerError, Outcome};

pub const GROUP: &str = "outflow-views";

/// Events per partition the view consumer folds at a time (`lanes`).
pub const LANES: usize = 8;

pub fn topics() -> Vec<String> {
    outflow_events::AggregateType::ALL.iter().map(|t| t.topic()).collect()
}

pub struct Views {
    pub db: Database,
}

impl Views {
    /// Creates the indexes the query service reads by.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        let index = mongodb::IndexModel::builder().keys(doc! { "customer_id": 1, "placed_at": -1 }).build();
        self.db.collection::<mongodb::bson::Document>("customer_orders").create_index(index).await?;
        Ok(())
    }

    /// Drops every view collection (before a rebuild by replay).
    pub async fn drop_all(&self) -> anyhow::Result<()> {
        for name in ["order_views", "customer_orders", "product_availability"] {
            self.db.collection::<mongodb::bson::Document>(name).drop().await?;
        }
        fold::forget_documents(self.db.name());
        Ok(())
    }
}

impl Dispatch for Views {
    async fn dispatch(&self, delivery: Delivery) -> Result<Outcome, HandlerError> {
        let lag = chrono::Utc::now().timestamp_millis() - delivery.event.occurred_at();
        let outcome = fold::apply(&self.db, &delivery).await.map_err(HandlerError::Transient)?;
        metrics::histogram!("view_commit_to_view_seconds").record(lag.max(0) as f64 / 1000.0);
        Ok(outcome)
    }
}
