//! The view documents of the orders and SKUs a check read from the tables,
//! with only the fields the tables also hold (FerretDB reads whole
//! documents slowly; a projection keeps the transfer small).

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::{
    bson::{doc, Bson, Document},
    Collection, Database,
};

use crate::{
    snapshot::{OrderView, ProductView},
    Scope,
};

/// Order views and `customer_orders` statuses by order id, product views by SKU.
pub struct Views {
    pub orders: HashMap<String, OrderView>,
    pub summaries: HashMap<String, String>,
    pub products: HashMap<String, ProductView>,
}

pub async fn read(db: &Database, scope: &Scope, orders: &[String], skus: &[String]) -> anyhow::Result<Views> {
    let by_id = |ids: &[String]| match scope {
        Scope::All => doc! {},
        Scope::Only { .. } => doc! { "_id": { "$in": ids } },
    };
    let mut views = Views { orders: HashMap::new(), summaries: HashMap::new(), products: HashMap::new() };
    if !orders.is_empty() {
        let projection = doc! { "status": 1, "order_version": 1, "payment.status": 1, "reservation.status": 1, "shipment.status": 1 };
        for (id, document) in documents(db.collection("order_views"), by_id(orders), projection).await? {
            views.orders.insert(id, order_view(&document));
        }
        for (id, document) in documents(db.collection("customer_orders"), by_id(orders), doc! { "status": 1 }).await? {
            views.summaries.insert(id, text(&document, "status").unwrap_or_else(|| "none".into()));
        }
    }
    if !skus.is_empty() {
        let projection = doc! { "on_hand": 1, "reserved": 1, "available": 1 };
        for (sku, document) in documents(db.collection("product_availability"), by_id(skus), projection).await? {
            let view =
                ProductView { on_hand: number(&document, "on_hand"), reserved: number(&document, "reserved"), available: number(&document, "available") };
            views.products.insert(sku, view);
        }
    }
    Ok(views)
}

async fn documents(collection: Collection<Document>, filter: Document, projection: Document) -> anyhow::Result<Vec<(String, Document)>> {
    let name = collection.name().to_owned();
    let mut cursor = collection.find(filter).projection(projection).await.map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?;
    let mut found = Vec::new();
    while let Some(document) = cursor.try_next().await.map_err(|e| anyhow::anyhow!("reading {name}: {e}"))? {
        if let Ok(id) = document.get_str("_id").map(str::to_owned) {
            found.push((id, document));
        }
    }
    Ok(found)
}

fn order_view(document: &Document) -> OrderView {
    let nested = |field: &str| document.get_document(field).ok().and_then(|inner| text(inner, "status"));
    OrderView {
        status: text(document, "status"),
        order_version: number(document, "order_version"),
        payment_status: nested("payment"),
        reservation_status: nested("reservation"),
        shipment_status: nested("shipment"),
    }
}

fn text(document: &Document, field: &str) -> Option<String> {
    document.get_str(field).ok().map(str::to_owned)
}

fn number(document: &Document, field: &str) -> Option<i64> {
    match document.get(field)? {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}
