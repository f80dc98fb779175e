//! Reading a [`Snapshot`] from the sources. Each database is read in one
//! repeatable-read transaction, so rows that belong together (a product and
//! the reservations of its SKU) come from one moment; the sources are read
//! one after the other, which is why a check is meant for a caught-up stack.

pub mod dead_letters;
pub mod events;
pub mod inbox;
pub mod kafka;
pub mod postgres;
pub mod views;

use std::collections::HashSet;

use anyhow::Context;
use uuid::Uuid;

use crate::{snapshot::Snapshot, Options, Scope, Sources};

/// Which record keys a check reads: all but poison, or the scope's order ids and SKUs.
pub struct Keys {
    scoped: bool,
    orders: HashSet<Uuid>,
    skus: HashSet<String>,
}

impl Keys {
    pub fn of(scope: &Scope) -> Self {
        match scope {
            Scope::All => Keys { scoped: false, orders: HashSet::new(), skus: HashSet::new() },
            Scope::Only { orders, skus } => Keys { scoped: true, orders: orders.iter().copied().collect(), skus: skus.iter().cloned().collect() },
        }
    }

    /// Deliberate poison is never kept; a record without a key only when
    /// everything is checked.
    pub fn keeps(&self, key: Option<&[u8]>) -> bool {
        let Some(key) = key else { return !self.scoped };
        if key.starts_with(b"poison-") {
            return false;
        }
        if !self.scoped {
            return true;
        }
        let Ok(text) = std::str::from_utf8(key) else {
            return false;
        };
        Uuid::parse_str(text).is_ok_and(|id| self.orders.contains(&id)) || self.skus.contains(text)
    }
}

pub async fn snapshot(sources: &Sources, scope: &Scope, options: &Options) -> anyhow::Result<Snapshot> {
    let keys = Keys::of(scope);
    let tables = postgres::read(sources, scope).await?;
    let events = events::read(sources, &keys, options.read_deadline).await?;
    let (dead_letters, dead_letters_read) = dead_letters::read(sources, &keys, options.read_deadline).await?;
    let scoped_ids = matches!(scope, Scope::Only { .. }).then(|| events.event_ids());
    let inbox_duplicates = inbox::duplicates_in_every_inbox(sources, scoped_ids.as_deref()).await?;
    let order_ids: Vec<String> = tables.orders.iter().map(|o| o.id.to_string()).collect();
    let skus: Vec<String> = tables.products.iter().map(|p| p.sku.clone()).collect();
    let views = views::read(&sources.views, scope, &order_ids, &skus)
        .await
        .with_context(|| format!("MongoDB database {} on {}", sources.settings.views_database, sources.settings.mongo_url))?;
    Ok(Snapshot {
        orders: tables.orders,
        missing_orders: tables.missing_orders,
        payments: tables.payments,
        reservations: tables.reservations,
        shipments: tables.shipments,
        products: tables.products,
        missing_skus: tables.missing_skus,
        events,
        order_views: views.orders,
        order_summaries: views.summaries,
        product_views: views.products,
        inbox_duplicates,
        dead_letters,
        dead_letters_read,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_keeps_its_orders_and_skus_and_nothing_keeps_poison() {
        let order = Uuid::from_u128(7);
        let scoped = Keys::of(&Scope::Only { orders: vec![order], skus: vec!["MUG-1".into()] });
        assert!(scoped.keeps(Some(order.to_string().as_bytes())));
        assert!(scoped.keeps(Some(b"MUG-1")));
        assert!(!scoped.keeps(Some(Uuid::from_u128(8).to_string().as_bytes())));
        assert!(!scoped.keeps(None));
        let all = Keys::of(&Scope::All);
        assert!(all.keeps(Some(b"anything")) && all.keeps(None));
        assert!(!all.keeps(Some(b"poison-123")) && !scoped.keeps(Some(b"poison-MUG-1")));
    }
}
