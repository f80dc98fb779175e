//! One event, folded into the views it touches.
//!
//! An event becomes one [`Change`] per document it touches: fields guarded by
//! a version (and, in `order_views`, the event's timeline entry). The changes
//! waiting for one document are folded into it together and written once
//! ([`write`]): every waiting change is applied under its guard to the
//! document as this process last wrote it (or as read, the first time), and
//! the result replaces it, or nothing is written when every guard said no.
//! Under load the view consumer keeps many events in flight (lanes on every
//! partition of every topic), so a busy document, a product's availability
//! above all, takes one write for many events, and a redelivered or older
//! event costs no write at all.

mod doubt;

use std::{collections::HashMap, sync::LazyLock};

use anyhow::anyhow;
use mongodb::{
    bson::{doc, Bson, Document},
    error::{Error, ErrorKind, WriteFailure},
    Collection, Database,
};
use outflow_consumer::{Delivery, Outcome};
use outflow_events::DomainEvent;
pub use outflow_service::views::REVISION;
use outflow_service::views::{integer, revision as revision_of};
use tokio::sync::oneshot;

const ORDERS: &str = "order_views";
const CUSTOMERS: &str = "customer_orders";
const PRODUCTS: &str = "product_availability";

/// Folds one event into every view it touches; `Duplicate` when no guard let
/// it change anything (a redelivery, or an event older than the view).
pub async fn apply(db: &Database, delivery: &Delivery) -> anyhow::Result<Outcome> {
    let writes = changes(delivery).into_iter().map(|(collection, id, change)| write(db.collection(collection), id, change));
    let applied = futures::future::try_join_all(writes).await?;
    Ok(if applied.contains(&true) { Outcome::Applied } else { Outcome::Duplicate })
}

/// Per document an event touches: its collection, its id and the change.
pub type Touched = Vec<(&'static str, String, Change)>;

/// The documents an event touches and what it changes in each.
pub fn changes(delivery: &Delivery) -> Touched {
    use DomainEvent::*;
    let touch = Touch::of(delivery);
    match &delivery.event {
        OrderPlaced(e) => touch.placed(e),
        OrderConfirmed(e) => touch.order_status(&e.aggregate_id, e.aggregate_version, doc! { "status": "CONFIRMED" }),
        OrderCancelled(e) => touch.order_status(&e.aggregate_id, e.aggregate_version, doc! { "status": "CANCELLED", "cancel_reason": &e.reason }),
        OrderCompleted(e) => touch.order_status(&e.aggregate_id, e.aggregate_version, doc! { "status": "COMPLETED" }),
        OrderDeliveryFailed(e) => {
            touch.order_status(&e.aggregate_id, e.aggregate_version, doc! { "status": "DELIVERY_FAILED", "cancel_reason": &e.reason })
        }
        StockReserved(e) => {
            let lines: Vec<Document> = e.lines.iter().map(|l| doc! { "sku": &l.sku, "quantity": l.quantity }).collect();
            let products = e.lines.iter().map(|l| product(&l.sku, l.on_hand, l.reserved, l.product_version));
            touch.reservation(&e.order_id, e.aggregate_version, doc! { "reservation.status": "RESERVED", "reservation.lines": lines }, products)
        }
        StockRejected(e) => {
            let shortages: Vec<Document> = e.shortages.iter().map(|s| doc! { "sku": &s.sku, "requested": s.requested, "available": s.available }).collect();
            touch.reservation(&e.order_id, e.aggregate_version, doc! { "reservation.status": "REJECTED", "reservation.shortages": shortages }, [])
        }
        StockReleased(e) => {
            let products = e.lines.iter().map(|l| product(&l.sku, l.on_hand, l.reserved, l.product_version));
            touch.reservation(&e.order_id, e.aggregate_version, doc! { "reservation.status": "RELEASED" }, products)
        }
        StockCommitted(e) => {
            let products = e.lines.iter().map(|l| product(&l.sku, l.on_hand, l.reserved, l.product_version));
            touch.reservation(&e.order_id, e.aggregate_version, doc! { "reservation.status": "COMMITTED" }, products)
        }
        StockReturned(e) => {
            let products = e.lines.iter().map(|l| product(&l.sku, l.on_hand, l.reserved, l.product_version));
            touch.reservation(&e.order_id, e.aggregate_version, doc! { "reservation.status": "RETURNED" }, products)
        }
        ProductCreated(e) => vec![product(&e.sku, e.on_hand, 0, e.aggregate_version)],
        StockAdjusted(e) => vec![product(&e.sku, e.on_hand, e.reserved, e.aggregate_version)],
        PaymentRequested(e) => touch.payment(
            &e.order_id,
            e.aggregate_version,
            doc! { "payment.status": "PENDING", "payment.amount_minor": e.amount_minor, "payment.currency": &e.currency, "payment.redirect_url": &e.redirect_url },
        ),
        PaymentCaptured(e) => touch.payment(&e.order_id, e.aggregate_version, doc! { "payment.status": "CAPTURED", "payment.transaction_id": &e.transaction_id }),
        PaymentFailed(e) => touch.payment(&e.order_id, e.aggregate_version, doc! { "payment.status": "FAILED", "payment.reason": &e.reason }),
        PaymentRefunded(e) => touch.payment(&e.order_id, e.aggregate_version, doc! { "payment.status": "REFUNDED", "payment.reason": &e.reason }),
        ShipmentRequested(e) => {
            touch.shipment(&e.order_id, e.aggregate_version, doc! { "shipment.status": "IN_TRANSIT", "shipment.shipment_id": &e.shipment_id })
        }
        ShipmentDelivered(e) => touch.shipment(&e.order_id, e.aggregate_version, doc! { "shipment.status": "DELIVERED" }),
        ShipmentFailed(e) => touch.shipment(&e.order_id, e.aggregate_version, doc! { "shipment.status": "FAILED", "shipment.reason": &e.reason }),
    }
}

/// A product's availability at the product's version.
fn product(sku: &str, on_hand: i32, reserved: i32, version: i64) -> (&'static str, String, Change) {
    let fields = doc! { "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved };
    (PRODUCTS, sku.to_owned(), Change { version_field: "version", version, fields, entry: None })
}

/// The order-side documents one event touches, with the event's entry in its
/// order's timeline: when it happened and when this view first showed it, so
/// the view's own lag can be read back.
struct Touch {
    at: Bson,
    entry: Document,
}

impl Touch {
    fn of(delivery: &Delivery) -> Self {
        let at = Bson::DateTime(mongodb::bson::DateTime::from_millis(delivery.event.occurred_at()));
        let entry =
            doc! { "event_id": delivery.event_id.to_string(), "type": delivery.event.name(), "at": at.clone(), "viewed_at": mongodb::bson::DateTime::now() };
        Touch { at, entry }
    }

    fn order(&self, id: &str, version_field: &'static str, version: i64, fields: Document) -> (&'static str, String, Change) {
        (ORDERS, id.to_owned(), Change { version_field, version, fields, entry: Some(self.entry.clone()) })
    }

    fn customer(id: &str, version: i64, fields: Document) -> (&'static str, String, Change) {
        (CUSTOMERS, id.to_owned(), Change { version_field: "order_version", version, fields, entry: None })
    }

    fn placed(&self, e: &outflow_events::order::OrderPlaced) -> Touched {
        let lines: Vec<Document> = e.lines.iter().map(|l| doc! { "sku": &l.sku, "quantity": l.quantity, "unit_price_minor": l.unit_price_minor }).collect();
        let (id, v, at) = (&e.aggregate_id, e.aggregate_version, &self.at);
        vec![
            self.order(
                id,
                "order_version",
                v,
                doc! { "customer_id": &e.customer_id, "status": "PENDING", "lines": lines, "total_minor": e.total_minor, "currency": &e.currency, "placed_at": at.clone() },
            ),
            Self::customer(id, v, doc! { "customer_id": &e.customer_id, "status": "PENDING", "total_minor": e.total_minor, "currency": &e.currency, "placed_at": at.clone() }),
        ]
    }

    /// The order's own status, in its view and in its customer's list.
    fn order_status(&self, id: &str, version: i64, fields: Document) -> Touched {
        vec![self.order(id, "order_version", version, fields.clone()), Self::customer(id, version, fields)]
    }

    /// The order's reservation, and the availability of each product it moved.
    fn reservation(&self, order_id: &str, version: i64, fields: Document, products: impl IntoIterator<Item = (&'static str, String, Change)>) -> Touched {
        let mut all = vec![self.order(order_id, "reservation.version", version, fields)];
        all.extend(products);
        all
    }

    fn payment(&self, order_id: &str, version: i64, fields: Document) -> Touched {
        vec![self.order(order_id, "payment.version", version, fields)]
    }

    fn shipment(&self, order_id: &str, version: i64, fields: Document) -> Touched {
        vec![self.order(order_id, "shipment.version", version, fields)]
    }
}

/// What one event changes in one document: `fields` (dotted paths) and
/// `version_field = version`, unless the document already holds `version`
/// or newer there; and, in an order view, the event's timeline entry, once
/// per event id (a redelivery finds its entry and changes nothing, an older
/// event adds its entry without moving the fields back).
#[derive(Debug, Clone)]
pub struct Change {
    pub version_field: &'static str,
    pub version: i64,
    pub fields: Document,
    pub entry: Option<Document>,
}

impl Change {
    /// Applies the change to `document`; true when it changed anything.
    pub fn apply_to(&self, document: &mut Document) -> bool {
        if let Some(entry) = &self.entry {
            let id = entry.get_str("event_id").unwrap_or_default();
            let seen = matches!(document.get("timeline"), Some(Bson::Array(timeline))
                if timeline.iter().any(|e| matches!(e, Bson::Document(e) if e.get_str("event_id") == Ok(id))));
            if seen {
                return false;
            }
        }
        let newer = get_path(document, self.version_field).and_then(integer).is_none_or(|held| held < self.version);
        if newer {
            for (path, value) in &self.fields {
                set_path(document, path, value.clone());
            }
            set_path(document, self.version_field, Bson::Int64(self.version));
        }
        if let Some(entry) = &self.entry {
            match document.get_mut("timeline") {
                Some(Bson::Array(timeline)) => timeline.push(Bson::Document(entry.clone())),
                _ => {
                    document.insert("timeline", vec![Bson::Document(entry.clone())]);
                }
            }
            return true;
        }
        newer
    }
}

fn get_path<'a>(document: &'a Document, path: &str) -> Option<&'a Bson> {
    match path.split_once('.') {
        None => document.get(path),
        Some((head, rest)) => match document.get(head) {
            Some(Bson::Document(inner)) => get_path(inner, rest),
            _ => None,
        },
    }
}

fn set_path(document: &mut Document, path: &str, value: Bson) {
    match path.split_once('.') {
        None => {
            document.insert(path, value);
        }
        Some((head, rest)) => {
            if !matches!(document.get(head), Some(Bson::Document(_))) {
                document.insert(head, Document::new());
            }
            if let Some(Bson::Document(inner)) = document.get_mut(head) {
                set_path(inner, rest, value);
            }
        }
    }
}

/// A change waiting for its document, and where its answer goes.
struct Queued {
    change: Change,
    done: oneshot::Sender<Result<bool, String>>,
}

/// A document: its database and collection (`db.collection`) and its `_id`.
type Key = (String, String);

/// The changes waiting per document.
static QUEUES: LazyLock<std::sync::Mutex<HashMap<Key, Vec<Queued>>>> = LazyLock::new(Default::default);

/// Documents as this process last read or wrote them. Every write carries a
/// revision (`_rev`, one more per write) and replaces the document only at
/// the revision it was folded from, so a document changed behind the cache's
/// back (dropped views, a second writer) is read again instead of
/// overwritten.
static DOCUMENTS: LazyLock<moka::sync::Cache<Key, Document>> = LazyLock::new(|| moka::sync::Cache::new(4_096));

/// Applies `change` to document `id`, together with every other change
/// waiting for that document: the first caller to get the document's lock
/// takes the whole queue, folds it into one write and answers every waiter;
/// a waiter that gets the lock later finds its answer there.
///
/// How long one document's read and write may take before it is retried.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes to one document are serialized in this process ([`document_lock`]):
/// FerretDB v1 applies an update by reading the document and writing all of
/// it back, with nothing to stop a concurrent update of the same document in
/// between, whose change is then lost; the consumer folds several partitions
/// in parallel, often into the same order view. One view consumer process
/// per views database: the lock does not reach across processes.
pub async fn write(collection: Collection<Document>, id: String, change: Change) -> anyhow::Result<bool> {
    let key = (collection.namespace().to_string(), id);
    let (done, mut answer) = oneshot::channel();
    queues().entry(key.clone()).or_default().push(Queued { change, done });
    let _one_writer = document_lock(&key).lock().await;
    if let Ok(answer) = answer.try_recv() {
        return answer.map_err(|e| anyhow!(e));
    }
    let batch = queues().remove(&key).unwrap_or_default();
    let changes: Vec<&Change> = batch.iter().map(|q| &q.change).collect();
    // Bounded: a frozen server fails the batch, and every waiter retries it
    // (a write that landed anyway is found again by its revision).
    let outcome = match tokio::time::timeout(WRITE_TIMEOUT, fold_into(&collection, &key, &changes)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow!("no answer within {WRITE_TIMEOUT:?}")),
    };
    if outcome.is_err() {
        doubt::unanswered(&collection, &key);
    }
    for (i, queued) in batch.into_iter().enumerate() {
        let _ = queued.done.send(match &outcome {
            Ok(applied) => Ok(applied[i]),
            Err(e) => Err(format!("MongoDB: writing {} {}: {e:#}", key.0, key.1)),
        });
    }
    match answer.try_recv() {
        Ok(answer) => answer.map_err(|e| anyhow!(e)),
        // Our change was taken by this very batch, so its answer is there;
        // this arm is for the impossible case, and retrying is safe.
        Err(_) => Err(anyhow!("the write of {} {} lost its answer", key.0, key.1)),
    }
}

/// Treats document `id` of `collection` as if a write of it had gone
/// unanswered (what a frozen server does), so that tests can put an older
/// document back and watch it restored.
pub fn unanswered(collection: &Collection<Document>, id: &str) {
    doubt::unanswered(collection, &(collection.namespace().to_string(), id.to_owned()));
}

/// Forgets the cached documents of `database` (after its views were
/// dropped); those of other databases stay, so that a rebuild of one views
/// database leaves the fold of another as it was.
pub fn forget_documents(database: &str) {
    let prefix = format!("{database}.");
    for (key, _) in DOCUMENTS.iter() {
        if key.0.starts_with(&prefix) {
            DOCUMENTS.invalidate(&*key);
        }
    }
}

fn queues() -> std::sync::MutexGuard<'static, HashMap<Key, Vec<Queued>>> {
    QUEUES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Applies `changes` in order to the document (cached, or read) and writes
/// it once if any of them changed it; which of them did.
async fn fold_into(collection: &Collection<Document>, key: &Key, changes: &[&Change]) -> anyhow::Result<Vec<bool>> {
    metrics::counter!("view_changes_total", "collection" => collection.name().to_owned()).increment(changes.len() as u64);
    let id = key.1.as_str();
    let mut attempt = 0;
    loop {
        attempt += 1;
        // None: the document does not exist yet.
        let (mut document, revision) = match DOCUMENTS.get(key) {
            Some(cached) => {
                let revision = revision_of(&cached);
                (cached, Some(revision))
            }
            None => match collection.find_one(doc! { "_id": id }).await? {
                Some(found) => {
                    let revision = revision_of(&found);
                    (found, Some(revision))
                }
                None => (doc! { "_id": id }, None),
            },
        };
        let applied: Vec<bool> = changes.iter().map(|c| c.apply_to(&mut document)).collect();
        if !applied.contains(&true) {
            if revision.is_some() {
                DOCUMENTS.insert(key.clone(), document);
            }
            return Ok(applied);
        }
        document.insert(REVISION, revision.map_or(1, |r| r + 1));
        let mut written = match revision {
            None => match collection.insert_one(&document).await {
                Ok(_) => true,
                Err(e) if is_duplicate_key(&e) => false,
                Err(e) => return Err(e.into()),
            },
            Some(revision) => collection.replace_one(at_revision(id, revision), &document).await.inspect_err(|_| DOCUMENTS.invalidate(key))?.matched_count == 1,
        };
        if let (false, Some(revision)) = (written, revision) {
            // A late write of our own put an older document back: ours goes over it.
            if let Some(found) = doubt::rolled_back(collection, key, revision).await? {
                written = collection.replace_one(at_revision(id, found), &document).await?.matched_count == 1;
            }
        }
        if written {
            metrics::counter!("view_document_writes_total", "collection" => collection.name().to_owned()).increment(1);
            DOCUMENTS.insert(key.clone(), document);
            return Ok(applied);
        }
        // Created or changed by someone else since we read it: read again.
        DOCUMENTS.invalidate(key);
        if attempt == 3 {
            return Err(anyhow!("{} {id} kept changing under the view consumer (another writer on the views database?)", key.0));
        }
    }
}

/// Document `id` at `revision` (documents written before revisions have none).
fn at_revision(id: &str, revision: i64) -> Document {
    if revision == 0 {
        doc! { "_id": id, REVISION: { "$exists": false } }
    } else {
        doc! { "_id": id, REVISION: revision }
    }
}

/// One of a fixed set of locks, chosen by document: bounded memory,
/// and two documents rarely share one.
fn document_lock(key: &Key) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{Hash, Hasher};
    static LOCKS: LazyLock<Vec<tokio::sync::Mutex<()>>> = LazyLock::new(|| (0..1024).map(|_| tokio::sync::Mutex::new(())).collect());
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    &LOCKS[(hasher.finish() % LOCKS.len() as u64) as usize]
}

fn is_duplicate_key(error: &Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        _ => error.to_string().contains("E11000"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(version_field: &'static str, version: i64, fields: Document, event: Option<&str>) -> Change {
        Change { version_field, version, fields, entry: event.map(|id| doc! { "event_id": id }) }
    }

    #[test]
    fn an_older_or_repeated_change_changes_nothing_and_any_order_ends_the_same() {
        let placed = change("order_version", 1, doc! { "status": "PENDING", "customer_id": "c" }, Some("e1"));
        let confirmed = change("order_version", 2, doc! { "status": "CONFIRMED" }, Some("e2"));
        let reserved = change("reservation.version", 1, doc! { "reservation.status": "RESERVED" }, Some("e3"));

        let mut in_order = doc! { "_id": "o" };
        assert!([&placed, &reserved, &confirmed].iter().all(|c| c.apply_to(&mut in_order)));
        assert_eq!(in_order.get_str("status"), Ok("CONFIRMED"));
        assert_eq!(get_path(&in_order, "reservation.status"), Some(&Bson::String("RESERVED".into())));
        assert_eq!(get_path(&in_order, "reservation.version"), Some(&Bson::Int64(1)));

        let before = in_order.clone();
        for c in [&placed, &reserved, &confirmed] {
            assert!(!c.apply_to(&mut in_order), "a repeated change applied");
        }
        assert_eq!(in_order, before);

        // The older event arrives last: its entry is added, its fields are not.
        let mut reordered = doc! { "_id": "o" };
        assert!(confirmed.apply_to(&mut reordered) && reserved.apply_to(&mut reordered) && placed.apply_to(&mut reordered));
        assert_eq!(reordered.get_str("status"), Ok("CONFIRMED"));
        assert_eq!(reordered.get_str("customer_id").ok(), None, "the older OrderPlaced set its fields over a newer version");
        assert_eq!(reordered.get_array("timeline").map(Vec::len), Ok(3));
    }

    #[test]
    fn a_change_without_timeline_is_guarded_by_its_version_only() {
        let mut product = doc! { "_id": "sku" };
        assert!(change("version", 3, doc! { "on_hand": 7 }, None).apply_to(&mut product));
        assert!(!change("version", 2, doc! { "on_hand": 9 }, None).apply_to(&mut product));
        assert!(!change("version", 3, doc! { "on_hand": 9 }, None).apply_to(&mut product));
        assert_eq!(product.get_i32("on_hand"), Ok(7));
        // Versions read back from the database may come as 32-bit integers.
        let mut stored = doc! { "_id": "sku", "version": 4_i32, "on_hand": 1 };
        assert!(!change("version", 4, doc! { "on_hand": 9 }, None).apply_to(&mut stored));
        assert!(change("version", 5, doc! { "on_hand": 9 }, None).apply_to(&mut stored));
    }
}
