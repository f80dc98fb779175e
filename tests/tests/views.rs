//! The view fold (`outflow_views_consumer::fold::apply`) against the real
//! MongoDB API, into a scratch database, with the real events of one order
//! that the saga drove to COMPLETED (read from the topics and decoded through
//! the registry, as the view consumer decodes them).
//!
//! Kafka keeps the events of one aggregate in order (one key, one partition),
//! but the order, its reservation, its payment, its shipment and its product
//! travel on different partitions, so the view consumer may see them in any
//! interleaving, and in parallel (one worker per partition). These tests fold
//! the five streams in every order, and all five at once, and prove that the
//! views end exactly as an in-order fold leaves them: a StockReserved arriving
//! after the view shows CONFIRMED does not move the order back, a product's
//! first stock arriving after its last does not move availability back, a
//! redelivered event changes nothing, and no event is lost to a concurrent
//! write of the same document.

mod shop;

use std::time::Duration;

use futures::TryStreamExt;
use mongodb::{
    bson::{doc, Bson, Document},
    Database,
};
use outflow_consumer::{decode::Decoder, Delivery, Outcome};
use outflow_stack_tests::{header_map, read_topic, Stack};
use outflow_views_consumer::fold::apply;
use rdkafka::Message;
use serde_json::Value;
use shop::Shop;

const STOCK: i64 = 5;
const QUANTITY: i64 = 2;
/// The order's events as the saga produced them, one stream per aggregate.
const STREAMS: [(&str, &[&str]); 5] = [
    ("order", &["OrderPlaced", "OrderConfirmed", "OrderCompleted"]),
    ("reservation", &["StockReserved", "StockCommitted"]),
    ("payment", &["PaymentRequested", "PaymentCaptured"]),
    ("shipment", &["ShipmentRequested", "ShipmentDelivered"]),
    ("product", &["ProductCreated"]),
];
/// Each versioned part of the views: its version field and the fields that
/// version guards.
const PARTS: [(&str, &[&str]); 6] = [
    ("/order/order_version", &["/order/status"]),
    ("/order/reservation/version", &["/order/reservation/status"]),
    ("/order/payment/version", &["/order/payment/status"]),
    ("/order/shipment/version", &["/order/shipment/status"]),
    ("/customer/order_version", &["/customer/status"]),
    ("/product/version", &["/product/on_hand", "/product/reserved", "/product/available"]),
];

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn events_folded_in_any_order_across_aggregates_end_in_the_in_order_views_and_never_move_back() {
    let order = CompletedOrder::drive().await;
    let scratch = Scratch::new(&order.shop.stack).await;

    for stream in &order.streams {
        scratch.fold(stream).await;
    }
    let expected = scratch.views(&order).await;
    assert_eq!(expected["order"]["status"], "COMPLETED", "{expected:#}");
    assert_eq!(expected["order"]["reservation"]["status"], "COMMITTED", "{expected:#}");
    assert_eq!(expected["order"]["payment"]["status"], "CAPTURED", "{expected:#}");
    assert_eq!(expected["order"]["shipment"]["status"], "DELIVERED", "{expected:#}");
    assert_eq!(expected["order"]["timeline"].as_array().map(Vec::len), Some(9), "one timeline entry per order event: {expected:#}");
    assert_eq!((expected["product"]["on_hand"].as_i64(), expected["product"]["reserved"].as_i64()), (Some(STOCK - QUANTITY), Some(0)), "{expected:#}");

    // A redelivery of every event, newest first, changes nothing.
    for delivery in order.streams.iter().flatten().rev() {
        let outcome = apply(&scratch.db, delivery).await.unwrap();
        assert_eq!(outcome, Outcome::Duplicate, "{} delivered again changed the views: {:#}", delivery.event.name(), scratch.views(&order).await);
    }
    assert_eq!(scratch.views(&order).await, expected, "a redelivery changed the views");

    // Every interleaving of the five streams, each stream in its own order.
    for permutation in permutations(order.streams.len()) {
        scratch.clear().await;
        let mut before = scratch.views(&order).await;
        let mut applied: Vec<&str> = Vec::new();
        for delivery in permutation.iter().flat_map(|&s| &order.streams[s]) {
            apply(&scratch.db, delivery).await.unwrap();
            applied.push(delivery.event.name());
            let now = scratch.views(&order).await;
            never_moved_back(&before, &now, &expected, &applied);
            before = now;
        }
        assert_eq!(before, expected, "folded as {applied:?}, the views differ from the in-order fold");
    }
    scratch.drop().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_streams_of_one_order_folded_in_parallel_lose_no_write() {
    let order = CompletedOrder::drive().await;
    let scratch = Scratch::new(&order.shop.stack).await;
    for stream in &order.streams {
        scratch.fold(stream).await;
    }
    let expected = scratch.views(&order).await;

    // As the view consumer's partition workers do: each stream in order, the
    // streams at the same time. Lost updates are a race: try it a few times.
    for round in 1..=15 {
        scratch.clear().await;
        futures::future::join_all(order.streams.iter().map(|stream| scratch.fold(stream))).await;
        let views = scratch.views(&order).await;
        assert_eq!(views, expected, "round {round}: folded in parallel, the views differ from the in-order fold");
    }
    scratch.drop().await;
}

/// An order driven through the saga to COMPLETED, and its events.
struct CompletedOrder {
    shop: Shop,
    id: String,
    sku: String,
    /// Its events in [`STREAMS`] order, each stream in the order Kafka keeps it.
    streams: Vec<Vec<Delivery>>,
}

impl CompletedOrder {
    async fn drive() -> Self {
        let shop = Shop::new().await;
        let sku = shop.product(STOCK).await;
        let id = shop.place("fold-customer", &[(&sku, QUANTITY)]).await;
        shop.force(&id, "settle").await;
        shop.ship(&id, "deliver").await;
        shop.wait_order(&id, "COMPLETED").await;

        let stack = &shop.stack;
        let mut records = Vec::new();
        for (topic, keys, last) in [
            ("outflow.order.events", vec![id.clone()], vec!["OrderCompleted"]),
            ("outflow.inventory.events", vec![id.clone(), sku.clone()], vec!["ProductCreated", "StockCommitted"]),
            ("outflow.payment.events", vec![id.clone()], vec!["PaymentCaptured"]),
            ("outflow.shipment.events", vec![id.clone()], vec!["ShipmentDelivered"]),
        ] {
            let found = read_topic(
                stack,
                topic,
                Duration::from_secs(30),
                |m| m.key().is_some_and(|k| keys.iter().any(|key| key.as_bytes() == k)),
                |kept| last.iter().all(|t| kept.iter().any(|m| event_type(m) == *t)),
            )
            .await
            .unwrap();
            records.extend(found);
        }
        let decoder = Decoder::new(&stack.registry());
        let mut streams: Vec<Vec<Delivery>> = vec![Vec::new(); STREAMS.len()];
        for record in &records {
            let delivery = decoder
                .decode(record)
                .await
                .unwrap_or_else(|e| panic!("{} at {}[{}]@{}: {e}", event_type(record), record.topic(), record.partition(), record.offset()));
            let stream = STREAMS
                .iter()
                .position(|(_, types)| types.contains(&delivery.event.name()))
                .unwrap_or_else(|| panic!("an unexpected {} of order {id}", delivery.event.name()));
            streams[stream].push(delivery);
        }
        for (stream, (name, types)) in streams.iter().zip(STREAMS) {
            let names: Vec<&str> = stream.iter().map(|d| d.event.name()).collect();
            assert_eq!(names, types, "the {name} events of order {id} on Kafka, in offset order");
        }
        CompletedOrder { shop, id, sku, streams }
    }
}

fn event_type(record: &impl Message) -> String {
    header_map(record).get("eventType").cloned().unwrap_or_default()
}

/// A MongoDB database of its own on the stack's MongoDB API.
struct Scratch {
    db: Database,
}

impl Scratch {
    async fn new(stack: &Stack) -> Self {
        let client = stack.mongo().await.unwrap();
        Scratch { db: client.database(&format!("test_views_{}", &uuid::Uuid::new_v4().simple().to_string()[..16])) }
    }

    async fn fold(&self, events: &[Delivery]) {
        for delivery in events {
            apply(&self.db, delivery).await.unwrap_or_else(|e| panic!("folding {}: {e}", delivery.event.name()));
        }
    }

    /// Empties the views the way scripts/rebuild-views does (which also
    /// makes the fold forget the documents it wrote).
    async fn clear(&self) {
        outflow_views_consumer::Views { db: self.db.clone() }.drop_all().await.unwrap();
    }

    async fn drop(&self) {
        self.db.drop().await.unwrap();
    }

    /// The three views of the order and its product, as JSON; the timeline
    /// sorted by event id, without `viewed_at` (the wall clock of the fold)
    /// and without the revision (how many writes the fold took, which
    /// depends on how many changes it could fold into one write).
    async fn views(&self, order: &CompletedOrder) -> Value {
        let one = |collection: &'static str, id: String| async move {
            let found: Vec<Document> = self.db.collection::<Document>(collection).find(doc! { "_id": id }).await.unwrap().try_collect().await.unwrap();
            found.into_iter().next().map_or(Value::Null, |mut d| {
                d.remove(outflow_views_consumer::fold::REVISION);
                Bson::Document(d).into_relaxed_extjson()
            })
        };
        let mut view = one("order_views", order.id.clone()).await;
        if let Some(timeline) = view.get_mut("timeline").and_then(Value::as_array_mut) {
            for entry in timeline.iter_mut() {
                entry.as_object_mut().map(|e| e.remove("viewed_at"));
            }
            timeline.sort_by_key(|e| e["event_id"].as_str().unwrap_or_default().to_owned());
        }
        serde_json::json!({
            "order": view,
            "customer": one("customer_orders", order.id.clone()).await,
            "product": one("product_availability", order.sku.clone()).await,
        })
    }
}

/// After each event: no version went down, and a part that reached its final
/// version shows its final fields (so an older event applied after it changed
/// nothing there).
fn never_moved_back(before: &Value, now: &Value, last: &Value, applied: &[&str]) {
    for (version, fields) in PARTS {
        let (was, is) = (before.pointer(version).and_then(Value::as_i64), now.pointer(version).and_then(Value::as_i64));
        assert!(is >= was, "after {applied:?}, {version} went back from {was:?} to {is:?}");
        if is.is_some() && is == last.pointer(version).and_then(Value::as_i64) {
            for field in fields.iter() {
                assert_eq!(now.pointer(field), last.pointer(field), "after {applied:?}, {field} is not what its final version {version} = {is:?} shows");
            }
        }
    }
}

/// Every order of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    permutations(n - 1)
        .into_iter()
        .flat_map(|p| {
            (0..n).map(move |at| {
                let mut p = p.clone();
                p.insert(at, n - 1);
                p
            })
        })
        .collect()
}

/// Why one view consumer per views database: FerretDB v1 does not make a
/// conditional replace atomic, so two writers replacing a document at the
/// same revision both succeed and one change is lost. (Should this start to
/// fail, FerretDB serializes them now, and two view consumers may be safe.)
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn two_concurrent_replaces_at_the_same_revision_can_both_succeed_on_ferretdb() {
    let stack = Stack::from_env();
    let client = stack.mongo().await.unwrap();
    let db = client.database(&format!("test_rev_{}", uuid::Uuid::new_v4().simple()));
    let docs = db.collection::<Document>("docs");
    let mut both = 0;
    for i in 0..200 {
        docs.insert_one(doc! { "_id": i, "_rev": 0 }).await.unwrap();
        let replace = |writer: &'static str| docs.replace_one(doc! { "_id": i, "_rev": 0 }, doc! { "_id": i, "_rev": 1, "writer": writer });
        let (a, b) = tokio::join!(replace("a"), replace("b"));
        if a.unwrap().modified_count + b.unwrap().modified_count == 2 {
            both += 1;
        }
    }
    db.drop().await.unwrap();
    println!("both replaces at the same revision succeeded for {both} of 200 documents");
    assert!(both > 0, "FerretDB serialized every pair of conditional replaces");
}

/// So a second view consumer refuses to start, and says why, while the one
/// `scripts/up` started keeps its lease.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_second_view_consumer_refuses_to_start() {
    let mut second = outflow_stack_tests::services::Instance::spawn("views-consumer", 7139).unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = second.exited().unwrap() {
            break status;
        }
        assert!(tokio::time::Instant::now() < until, "a second view consumer still runs after 40 s; its log:\n{}", second.tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!status.success(), "the second view consumer exited with {status}");
    assert!(second.output().contains("another views consumer"), "it says why; its log:\n{}", second.output());
    let healthy = reqwest::get("http://127.0.0.1:7124/healthz").await.is_ok_and(|r| r.status().is_success());
    assert!(healthy, "the first view consumer still runs");
}

/// A write that went unanswered (FerretDB frozen) can still run later, after
/// the fold retried it and wrote newer changes on top, and put an older
/// document back (a chaos run lost a PaymentCaptured that way). The late
/// write is done here by hand, exactly as FerretDB would run it; the fold
/// must write the newer document over it, on its next change of that
/// document or, when none comes, by itself.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_document_put_back_by_a_late_write_is_restored() {
    use outflow_views_consumer::fold::{self, Change};
    let scratch = Scratch::new(&Stack::from_env()).await;
    let views = scratch.db.collection::<Document>("order_views");
    let change = |i: i64| Change {
        version_field: "order_version",
        version: i,
        fields: doc! { "status": format!("S{i}") },
        entry: Some(doc! { "event_id": format!("e{i}") }),
    };
    let timeline = |document: &Document| document.get_array("timeline").map_or(0, Vec::len);
    for id in ["next-change", "no-change"] {
        assert!(fold::write(views.clone(), id.into(), change(1)).await.unwrap());
        let older = views.find_one(doc! { "_id": id }).await.unwrap().unwrap();
        for i in 2..=3 {
            assert!(fold::write(views.clone(), id.into(), change(i)).await.unwrap());
        }
        fold::unanswered(&views, id);
        views.replace_one(doc! { "_id": id }, &older).await.unwrap();
    }

    assert!(fold::write(views.clone(), "next-change".into(), change(4)).await.unwrap());
    let restored = views.find_one(doc! { "_id": "next-change" }).await.unwrap().unwrap();
    assert_eq!((restored.get_str("status"), timeline(&restored)), (Ok("S4"), 4), "the next change was folded onto the older document: {restored}");

    let until = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = views.find_one(doc! { "_id": "no-change" }).await.unwrap().unwrap();
        if now.get_str("status") == Ok("S3") && timeline(&now) == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "the older document was left in place: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    scratch.drop().await;
}
