//! One event, folded into the views it touches.

use mongodb::{
    bson::{doc, Bson, Document},
    error::{Error, ErrorKind, WriteFailure},
    Collection, Database,
};
use outflow_consumer::{Delivery, Outcome};
use outflow_events::DomainEvent;

pub fn occurred_at(event: &DomainEvent) -> i64 {
    use DomainEvent::*;
    let at = match event {
        OrderPlaced(e) => e.occurred_at,
        OrderConfirmed(e) => e.occurred_at,
        OrderCancelled(e) => e.occurred_at,
        StockReserved(e) => e.occurred_at,
        StockRejected(e) => e.occurred_at,
        StockReleased(e) => e.occurred_at,
        StockCommitted(e) => e.occurred_at,
        ProductCreated(e) => e.occurred_at,
        StockAdjusted(e) => e.occurred_at,
        PaymentRequested(e) => e.occurred_at,
        PaymentCaptured(e) => e.occurred_at,
        PaymentFailed(e) => e.occurred_at,
        PaymentRefunded(e) => e.occurred_at,
    };
    at.0
}

pub async fn apply(db: &Database, delivery: &Delivery) -> Result<Outcome, Error> {
    use DomainEvent::*;
    let orders = db.collection::<Document>("order_views");
    let customers = db.collection::<Document>("customer_orders");
    let at = Bson::DateTime(mongodb::bson::DateTime::from_millis(occurred_at(&delivery.event)));
    let mut applied = false;
    let order_id = match &delivery.event {
        OrderPlaced(e) => {
            let lines: Vec<Document> = e.lines.iter().map(|l| doc! { "sku": &l.sku, "quantity": l.quantity, "unit_price_minor": l.unit_price_minor }).collect();
            let v = e.aggregate_version;
            applied |= guarded(&orders, &e.aggregate_id, "order_version", v, doc! { "customer_id": &e.customer_id, "status": "PENDING", "lines": lines, "total_minor": e.total_minor, "currency": &e.currency, "placed_at": at.clone() }).await?;
            applied |= guarded(&customers, &e.aggregate_id, "order_version", v, doc! { "customer_id": &e.customer_id, "status": "PENDING", "total_minor": e.total_minor, "currency": &e.currency, "placed_at": at.clone() }).await?;
            Some(&e.aggregate_id)
        }
        OrderConfirmed(e) => {
            applied |= order_status(&orders, &customers, &e.aggregate_id, e.aggregate_version, doc! { "status": "CONFIRMED" }).await?;
            Some(&e.aggregate_id)
        }
        OrderCancelled(e) => {
            applied |= order_status(&orders, &customers, &e.aggregate_id, e.aggregate_version, doc! { "status": "CANCELLED", "cancel_reason": &e.reason }).await?;
            Some(&e.aggregate_id)
        }
        StockReserved(e) => {
            let lines: Vec<Document> = e.lines.iter().map(|l| doc! { "sku": &l.sku, "quantity": l.quantity }).collect();
            applied |= guarded(&orders, &e.order_id, "reservation.version", e.aggregate_version, doc! { "reservation.status": "RESERVED", "reservation.lines": lines }).await?;
            for l in &e.lines {
                applied |= availability(db, &l.sku, l.on_hand, l.reserved, l.product_version).await?;
            }
            Some(&e.order_id)
        }
        StockRejected(e) => {
            let shortages: Vec<Document> = e.shortages.iter().map(|s| doc! { "sku": &s.sku, "requested": s.requested, "available": s.available }).collect();
            applied |= guarded(&orders, &e.order_id, "reservation.version", e.aggregate_version, doc! { "reservation.status": "REJECTED", "reservation.shortages": shortages }).await?;
            Some(&e.order_id)
        }
        StockReleased(e) => {
            applied |= guarded(&orders, &e.order_id, "reservation.version", e.aggregate_version, doc! { "reservation.status": "RELEASED" }).await?;
            for l in &e.lines {
                applied |= availability(db, &l.sku, l.on_hand, l.reserved, l.product_version).await?;
            }
            Some(&e.order_id)
        }
        StockCommitted(e) => {
            applied |= guarded(&orders, &e.order_id, "reservation.version", e.aggregate_version, doc! { "reservation.status": "COMMITTED" }).await?;
            for l in &e.lines {
                applied |= availability(db, &l.sku, l.on_hand, l.reserved, l.product_version).await?;
            }
            Some(&e.order_id)
        }
        ProductCreated(e) => {
            applied |= availability(db, &e.sku, e.on_hand, 0, e.aggregate_version).await?;
            None
        }
        StockAdjusted(e) => {
            applied |= availability(db, &e.sku, e.on_hand, e.reserved, e.aggregate_version).await?;
            None
        }
        PaymentRequested(e) => {
            applied |= guarded(&orders, &e.order_id, "payment.version", e.aggregate_version, doc! { "payment.status": "PENDING", "payment.amount_minor": e.amount_minor, "payment.currency": &e.currency, "payment.redirect_url": &e.redirect_url }).await?;
            Some(&e.order_id)
        }
        PaymentCaptured(e) => {
            applied |= guarded(&orders, &e.order_id, "payment.version", e.aggregate_version, doc! { "payment.status": "CAPTURED", "payment.transaction_id": &e.transaction_id }).await?;
            Some(&e.order_id)
        }
        PaymentFailed(e) => {
            applied |= guarded(&orders, &e.order_id, "payment.version", e.aggregate_version, doc! { "payment.status": "FAILED", "payment.reason": &e.reason }).await?;
            Some(&e.order_id)
        }
        PaymentRefunded(e) => {
            applied |= guarded(&orders, &e.order_id, "payment.version", e.aggregate_version, doc! { "payment.status": "REFUNDED", "payment.reason": &e.reason }).await?;
            Some(&e.order_id)
        }
    };
    if let Some(order_id) = order_id {
        applied |= timeline(&orders, order_id, &delivery.event_id.to_string(), delivery.event.name(), at).await?;
    }
    Ok(if applied { Outcome::Applied } else { Outcome::Duplicate })
}

/// Sets `fields` and `version_field = version` on document `id` unless it already
/// holds `version` or newer; true when it wrote.
async fn guarded(collection: &Collection<Document>, id: &str, version_field: &str, version: i64, mut fields: Document) -> Result<bool, Error> {
    let filter = doc! { "_id": id, "$or": [ { version_field: { "$lt": version } }, { version_field: { "$exists": false } } ] };
    fields.insert(version_field, version);
    upsert(collection, filter, doc! { "$set": fields }).await
}

async fn order_status(orders: &Collection<Document>, customers: &Collection<Document>, id: &str, version: i64, fields: Document) -> Result<bool, Error> {
    let a = guarded(orders, id, "order_version", version, fields.clone()).await?;
    let b = guarded(customers, id, "order_version", version, fields).await?;
    Ok(a || b)
}

async fn availability(db: &Database, sku: &str, on_hand: i32, reserved: i32, version: i64) -> Result<bool, Error> {
    let products = db.collection::<Document>("product_availability");
    guarded(&products, sku, "version", version, doc! { "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved }).await
}

/// One timeline entry per event id.
async fn timeline(orders: &Collection<Document>, id: &str, event_id: &str, event_type: &str, at: Bson) -> Result<bool, Error> {
    let filter = doc! { "_id": id, "timeline.event_id": { "$ne": event_id } };
    upsert(orders, filter, doc! { "$push": { "timeline": { "event_id": event_id, "type": event_type, "at": at } } }).await
}

/// An upsert whose filter did not match an existing document collides on
/// `_id`: the guard said no, which is an answer, not a failure.
async fn upsert(collection: &Collection<Document>, filter: Document, update: Document) -> Result<bool, Error> {
    match collection.update_one(filter, update).upsert(true).await {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate_key(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_duplicate_key(error: &Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        _ => error.to_string().contains("E11000"),
    }
}
