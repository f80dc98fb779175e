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
    // The event's entry in its order's timeline: when it happened and when
    // this view first showed it, so the view's own lag can be read back.
    let entry = doc! { "event_id": delivery.event_id.to_string(), "type": delivery.event.name(), "at": at.clone(), "viewed_at": mongodb::bson::DateTime::now() };
    let orders = OrderViews { orders: &orders, entry: &entry };
    let mut applied = false;
    match &delivery.event {
        OrderPlaced(e) => {
            let lines: Vec<Document> = e.lines.iter().map(|l| doc! { "sku": &l.sku, "quantity": l.quantity, "unit_price_minor": l.unit_price_minor }).collect();
            let v = e.aggregate_version;
            applied |= orders.guarded(&e.aggregate_id, "order_version", v, doc! { "customer_id": &e.customer_id, "status": "PENDING", "lines": lines, "total_minor": e.total_minor, "currency": &e.currency, "placed_at": at.clone() }).await?;
            applied |= guarded(&customers, &e.aggregate_id, "order_version", v, doc! { "customer_id": &e.customer_id, "status": "PENDING", "total_minor": e.total_minor, "currency": &e.currency, "placed_at": at.clone() }).await?;
        }
        OrderConfirmed(e) => {
            applied |= order_status(&orders, &customers, &e.aggregate_id, e.aggregate_version, doc! { "status": "CONFIRMED" }).await?;
        }
        OrderCancelled(e) => {
            applied |= order_status(&orders, &customers, &e.aggregate_id, e.aggregate_version, doc! { "status": "CANCELLED", "cancel_reason": &e.reason }).await?;
        }
        StockReserved(e) => {
            let lines: Vec<Document> = e.lines.iter().map(|l| doc! { "sku": &l.sku, "quantity": l.quantity }).collect();
            applied |= orders.guarded(&e.order_id, "reservation.version", e.aggregate_version, doc! { "reservation.status": "RESERVED", "reservation.lines": lines }).await?;
            for l in &e.lines {
                applied |= availability(db, &l.sku, l.on_hand, l.reserved, l.product_version).await?;
            }
        }
        StockRejected(e) => {
            let shortages: Vec<Document> = e.shortages.iter().map(|s| doc! { "sku": &s.sku, "requested": s.requested, "available": s.available }).collect();
            applied |= orders.guarded(&e.order_id, "reservation.version", e.aggregate_version, doc! { "reservation.status": "REJECTED", "reservation.shortages": shortages }).await?;
        }
        StockReleased(e) => {
            applied |= orders.guarded(&e.order_id, "reservation.version", e.aggregate_version, doc! { "reservation.status": "RELEASED" }).await?;
            for l in &e.lines {
                applied |= availability(db, &l.sku, l.on_hand, l.reserved, l.product_version).await?;
            }
        }
        StockCommitted(e) => {
            applied |= orders.guarded(&e.order_id, "reservation.version", e.aggregate_version, doc! { "reservation.status": "COMMITTED" }).await?;
            for l in &e.lines {
                applied |= availability(db, &l.sku, l.on_hand, l.reserved, l.product_version).await?;
            }
        }
        ProductCreated(e) => {
            applied |= availability(db, &e.sku, e.on_hand, 0, e.aggregate_version).await?;
        }
        StockAdjusted(e) => {
            applied |= availability(db, &e.sku, e.on_hand, e.reserved, e.aggregate_version).await?;
        }
        PaymentRequested(e) => {
            applied |= orders.guarded(&e.order_id, "payment.version", e.aggregate_version, doc! { "payment.status": "PENDING", "payment.amount_minor": e.amount_minor, "payment.currency": &e.currency, "payment.redirect_url": &e.redirect_url }).await?;
        }
        PaymentCaptured(e) => {
            applied |= orders.guarded(&e.order_id, "payment.version", e.aggregate_version, doc! { "payment.status": "CAPTURED", "payment.transaction_id": &e.transaction_id }).await?;
        }
        PaymentFailed(e) => {
            applied |= orders.guarded(&e.order_id, "payment.version", e.aggregate_version, doc! { "payment.status": "FAILED", "payment.reason": &e.reason }).await?;
        }
        PaymentRefunded(e) => {
            applied |= orders.guarded(&e.order_id, "payment.version", e.aggregate_version, doc! { "payment.status": "REFUNDED", "payment.reason": &e.reason }).await?;
        }
    }
    Ok(if applied { Outcome::Applied } else { Outcome::Duplicate })
}

/// Sets `fields` and `version_field = version` on document `id` unless it already
/// holds `version` or newer; true when it wrote.
async fn guarded(collection: &Collection<Document>, id: &str, version_field: &str, version: i64, mut fields: Document) -> Result<bool, Error> {
    let filter = guard(id, version_field, version);
    fields.insert(version_field, version);
    upsert(collection, filter, doc! { "$set": fields }).await
}

/// `order_views`, where every write of an event also adds the event's
/// timeline entry, in the same update when it can.
struct OrderViews<'a> {
    orders: &'a Collection<Document>,
    entry: &'a Document,
}

impl OrderViews<'_> {
    /// [`guarded`] plus the timeline entry, in one update when the version
    /// guard passes and the entry is new (the usual case); when that update
    /// is refused, the entry alone, once per event id.
    async fn guarded(&self, id: &str, version_field: &str, version: i64, mut fields: Document) -> Result<bool, Error> {
        let event_id = self.entry.get_str("event_id").unwrap_or_default();
        let mut filter = guard(id, version_field, version);
        filter.insert("$nor", vec![timeline_has(event_id)]);
        fields.insert(version_field, version);
        if upsert(self.orders, filter, doc! { "$set": fields, "$push": { "timeline": self.entry } }).await? {
            return Ok(true);
        }
        let filter = doc! { "_id": id, "$nor": [timeline_has(event_id)] };
        upsert(self.orders, filter, doc! { "$push": { "timeline": self.entry } }).await
    }
}

/// "The timeline has an entry of this event", to be used under `$nor`: FerretDB v1
/// matches `{"timeline.event_id": {"$ne": x}}` as soon as any one entry differs
/// from x, so a `$ne` guard let every redelivery push its entry again; "no entry
/// equals x" (`$nor` of an equality) means the same on MongoDB and FerretDB.
fn timeline_has(event_id: &str) -> Document {
    doc! { "timeline.event_id": event_id }
}

/// Document `id` unless it already holds `version` (or newer) in `version_field`.
fn guard(id: &str, version_field: &str, version: i64) -> Document {
    doc! { "_id": id, "$or": [ { version_field: { "$lt": version } }, { version_field: { "$exists": false } } ] }
}

async fn order_status(orders: &OrderViews<'_>, customers: &Collection<Document>, id: &str, version: i64, fields: Document) -> Result<bool, Error> {
    let a = orders.guarded(id, "order_version", version, fields.clone()).await?;
    let b = guarded(customers, id, "order_version", version, fields).await?;
    Ok(a || b)
}

async fn availability(db: &Database, sku: &str, on_hand: i32, reserved: i32, version: i64) -> Result<bool, Error> {
    let products = db.collection::<Document>("product_availability");
    guarded(&products, sku, "version", version, doc! { "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved }).await
}

/// An upsert whose filter did not match an existing document collides on
/// `_id`: the guard said no, which is an answer, not a failure.
///
/// Writes to one document are serialized in this process ([`document_lock`]):
/// FerretDB v1 applies an update by reading the document, changing it in
/// memory and writing all of it back, with nothing to stop a concurrent update
/// of the same document in between, whose change is then lost; and of two
/// upserts creating one document, the loser collides on `_id` as if its guard
/// had said no. The partition workers fold different topics in parallel, often
/// into the same order view, so without the lock the views lost fields and
/// timeline entries. (One view consumer process per views database: the lock
/// does not reach across processes.)
async fn upsert(collection: &Collection<Document>, filter: Document, update: Document) -> Result<bool, Error> {
    let _one_writer = document_lock(collection.name(), filter.get_str("_id").unwrap_or_default()).lock().await;
    match collection.update_one(filter, update).upsert(true).await {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate_key(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One of a fixed set of locks, chosen by collection and `_id`: bounded memory,
/// and two documents rarely share one.
fn document_lock(collection: &str, id: &str) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{Hash, Hasher};
    static LOCKS: std::sync::LazyLock<Vec<tokio::sync::Mutex<()>>> = std::sync::LazyLock::new(|| (0..1024).map(|_| tokio::sync::Mutex::new(())).collect());
    let mut hasher = std::hash::DefaultHasher::new();
    (collection, id).hash(&mut hasher);
    &LOCKS[(hasher.finish() % LOCKS.len() as u64) as usize]
}

fn is_duplicate_key(error: &Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        _ => error.to_string().contains("E11000"),
    }
}
