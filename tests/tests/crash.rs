//! Crash: a consumer is killed (SIGKILL, by its own failpoint
//! `OUTFLOW_FAILPOINT_KILL_AFTER_EFFECT`) after its effect was committed and
//! before the event's offset was stored; the restarted consumer gets the event
//! again, sees it as a duplicate, and the effect still exists exactly once; the
//! saga ends as if nothing had happened. One test per consumer:
//!
//! - inventory, killed after OrderPlaced: one reservation, the stock held once,
//!   one `StockReserved` on Kafka;
//! - payments, killed after StockReserved: one payment, one inbox claim, one
//!   `PaymentRequested` on Kafka;
//! - orders, killed after PaymentCaptured: the order confirmed once at its next
//!   version, one `OrderConfirmed` on Kafka;
//! - shipping, killed after OrderConfirmed: one shipment handed to the
//!   carrier once, one `ShipmentRequested` on Kafka, delivered once;
//! - views, killed after OrderConfirmed: the order view shows the confirmation
//!   at the order's version, with that event once in its timeline, and every
//!   other event of the saga once too.
//!
//! A test starts only once the consumer has caught up with its topics (the
//! armed consumer resumes where the real one stopped, and a backlog would make
//! the failpoint fire on another order's event). Each test stops the running
//! consumer for its duration, so they take turns ([`ALONE`]) in their own test
//! binary. Whatever happens in a test, even a
//! failed assertion, it ends by starting the real consumer again the way
//! `scripts/up` starts it (`start_service` of `scripts/services.sh`) and
//! checking that it runs healthy, since the stack is shared with later tests.

mod shop;

use std::{any::Any, os::unix::process::ExitStatusExt, panic::AssertUnwindSafe, time::Duration};

use anyhow::{ensure, Context, Result};
use futures::{FutureExt, TryStreamExt};
use mongodb::bson::{doc, Document};
use outflow_stack_tests::{header_map, lag, read_topic, services, Stack};
use rdkafka::Message;
use shop::Shop;
use sqlx::PgPool;

const STOCK: i32 = 5;
const QUANTITY: i32 = 2;

/// Held by each test for its whole run: while one consumer is stopped or
/// armed, the other tests' orders would go through it.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A consumer as `scripts/services.sh` runs it, and where its failpoint fires.
struct Consumer {
    /// The component's name in the scripts (pid file, port, binary).
    name: &'static str,
    port: u16,
    /// Its consumer group and the topics it reads.
    group: &'static str,
    topics: fn() -> Vec<String>,
    /// The event after whose effect the armed consumer kills itself.
    failpoint: &'static str,
    /// The topic that event travels on, keyed by the order id.
    topic: &'static str,
}

static INVENTORY: Consumer = Consumer {
    name: "inventory-consumer",
    port: 7121,
    group: outflow_inventory_consumer::GROUP,
    topics: outflow_inventory_consumer::topics,
    failpoint: "OrderPlaced",
    topic: "outflow.order.events",
};
static PAYMENTS: Consumer = Consumer {
    name: "payments-consumer",
    port: 7122,
    group: outflow_payments_consumer::GROUP,
    topics: outflow_payments_consumer::topics,
    failpoint: "StockReserved",
    topic: "outflow.inventory.events",
};
static ORDERS: Consumer = Consumer {
    name: "orders-consumer",
    port: 7123,
    group: outflow_orders_consumer::GROUP,
    topics: outflow_orders_consumer::topics,
    failpoint: "PaymentCaptured",
    topic: "outflow.payment.events",
};
static SHIPPING: Consumer = Consumer {
    name: "shipping-consumer",
    port: 7126,
    group: outflow_shipping_consumer::GROUP,
    topics: outflow_shipping_consumer::topics,
    failpoint: "OrderConfirmed",
    topic: "outflow.order.events",
};
static VIEWS: Consumer = Consumer {
    name: "views-consumer",
    port: 7124,
    group: outflow_views_consumer::GROUP,
    topics: outflow_views_consumer::topics,
    failpoint: "OrderConfirmed",
    topic: "outflow.order.events",
};

/// The order placed while the consumer was armed, and the id of the event the
/// failpoint fired on (the inbox key, the timeline entry).
struct Crashed {
    order: String,
    event_id: String,
}

/// Inventory: the reservation is committed once, the stock held once.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_inventory_consumer_killed_between_its_commit_and_its_offset_reserves_once() -> Result<()> {
    let _alone = ALONE.lock().await;
    let shop = Shop::new().await;
    let sku = shop.product(i64::from(STOCK)).await;
    let inventory = pool(&shop.stack, "inventory");

    let crashed = crash(&INVENTORY, async |armed: &mut Armed| {
        let order = shop.place("crash-inventory", &[(&sku, i64::from(QUANTITY))]).await;
        shop.force(&order, "settle").await;
        let event_id = armed.killed_by_the_failpoint(&shop.stack, &order).await?;
        // What the killed process committed: the reservation, once, and the stock held.
        let rows: Vec<(String,)> = sqlx::query_as("select status from reservations where order_id = $1").bind(uuid(&order)?).fetch_all(&inventory).await?;
        ensure!(rows.len() == 1 && rows[0].0 == "RESERVED", "reservations of {order} after the crash: {rows:?}");
        let (on_hand, reserved) = shop.stock(&sku).await;
        ensure!((on_hand, reserved) == (STOCK, QUANTITY), "stock after the crash: on hand {on_hand}, reserved {reserved}");
        ensure!(inbox_claims(&inventory, &event_id, "OrderPlaced").await? == 1, "OrderPlaced {event_id} is not claimed in the inventory inbox");
        Ok(Crashed { order, event_id })
    })
    .await?;

    // The restarted consumer gets OrderPlaced again; the inbox makes it a duplicate.
    wait_for_the_redelivery(&INVENTORY, &crashed.event_id).await?;
    let order = &crashed.order;
    shop.wait_order(order, "CONFIRMED").await;
    shop.wait_reservation(order, "COMMITTED").await;
    assert_eq!(shop.stock(&sku).await, (STOCK - QUANTITY, 0), "sold once, nothing left reserved");
    let reservations: i64 = sqlx::query_scalar("select count(*) from reservations where order_id = $1").bind(uuid(order)?).fetch_one(&inventory).await?;
    assert_eq!(reservations, 1, "still one reservation of {order}");
    assert_eq!(inbox_claims(&inventory, &crashed.event_id, "OrderPlaced").await?, 1, "still one inbox claim of OrderPlaced");
    let reserved = event_types(&shop.stack, "outflow.inventory.events", order, "StockCommitted").await?;
    assert_eq!(count(&reserved, "StockReserved"), 1, "exactly one StockReserved for order {order}: {reserved:?}");
    Ok(())
}

/// Payments: the payment is opened once, one `PaymentRequested`.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_payments_consumer_killed_between_its_commit_and_its_offset_opens_one_payment() -> Result<()> {
    let _alone = ALONE.lock().await;
    let shop = Shop::new().await;
    let sku = shop.product(i64::from(STOCK)).await;
    let payments = pool(&shop.stack, "payments");

    let crashed = crash(&PAYMENTS, async |armed: &mut Armed| {
        let order = shop.place("crash-payments", &[(&sku, i64::from(QUANTITY))]).await;
        shop.force(&order, "settle").await;
        let event_id = armed.killed_by_the_failpoint(&shop.stack, &order).await?;
        // What the killed process committed: the payment (the provider may have
        // settled it already through the webhook, which the writer takes).
        let rows: Vec<(String,)> = sqlx::query_as("select status from payments where order_id = $1").bind(uuid(&order)?).fetch_all(&payments).await?;
        ensure!(rows.len() == 1 && ["PENDING", "CAPTURED"].contains(&rows[0].0.as_str()), "payments of {order} after the crash: {rows:?}");
        ensure!(inbox_claims(&payments, &event_id, "StockReserved").await? == 1, "StockReserved {event_id} is not claimed in the payments inbox");
        Ok(Crashed { order, event_id })
    })
    .await?;

    // The restarted consumer gets StockReserved again; the inbox makes it a duplicate.
    wait_for_the_redelivery(&PAYMENTS, &crashed.event_id).await?;
    let order = &crashed.order;
    shop.wait_order(order, "CONFIRMED").await;
    shop.wait_reservation(order, "COMMITTED").await;
    let payment = shop.wait_payment(order, "CAPTURED").await;
    assert_eq!(payment["amount_minor"], i64::from(QUANTITY) * shop::PRICE, "{payment}");
    let rows: i64 = sqlx::query_scalar("select count(*) from payments where order_id = $1").bind(uuid(order)?).fetch_one(&payments).await?;
    assert_eq!(rows, 1, "still one payment of {order}");
    assert_eq!(inbox_claims(&payments, &crashed.event_id, "StockReserved").await?, 1, "still one inbox claim of StockReserved");
    let events = event_types(&shop.stack, "outflow.payment.events", order, "PaymentCaptured").await?;
    assert_eq!(count(&events, "PaymentRequested"), 1, "exactly one PaymentRequested for order {order}: {events:?}");
    assert_eq!(count(&events, "PaymentCaptured"), 1, "exactly one PaymentCaptured for order {order}: {events:?}");
    assert_eq!(shop.stock(&sku).await, (STOCK - QUANTITY, 0), "sold once");
    Ok(())
}

/// Shipping: the shipment is handed to the carrier once, one `ShipmentRequested`.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_shipping_consumer_killed_between_its_commit_and_its_offset_ships_once() -> Result<()> {
    let _alone = ALONE.lock().await;
    let shop = Shop::new().await;
    let sku = shop.product(i64::from(STOCK)).await;
    let shipping = pool(&shop.stack, "shipping");

    let crashed = crash(&SHIPPING, async |armed: &mut Armed| {
        let order = shop.place("crash-shipping", &[(&sku, i64::from(QUANTITY))]).await;
        shop.force(&order, "settle").await;
        shop.ship(&order, "deliver").await;
        let event_id = armed.killed_by_the_failpoint(&shop.stack, &order).await?;
        // What the killed process committed: the shipment with the carrier's id
        // (the carrier may have delivered it already through the callback).
        let rows: Vec<(String,)> = sqlx::query_as("select status from shipments where order_id = $1").bind(uuid(&order)?).fetch_all(&shipping).await?;
        ensure!(rows.len() == 1 && ["IN_TRANSIT", "DELIVERED"].contains(&rows[0].0.as_str()), "shipments of {order} after the crash: {rows:?}");
        ensure!(inbox_claims(&shipping, &event_id, "OrderConfirmed").await? == 1, "OrderConfirmed {event_id} is not claimed in the shipping inbox");
        Ok(Crashed { order, event_id })
    })
    .await?;

    // The restarted consumer gets OrderConfirmed again; the inbox makes it a duplicate.
    wait_for_the_redelivery(&SHIPPING, &crashed.event_id).await?;
    let order = &crashed.order;
    shop.wait_order(order, "COMPLETED").await;
    shop.wait_shipment(order, "DELIVERED").await;
    let rows: i64 = sqlx::query_scalar("select count(*) from shipments where order_id = $1").bind(uuid(order)?).fetch_one(&shipping).await?;
    assert_eq!(rows, 1, "still one shipment of {order}");
    assert_eq!(inbox_claims(&shipping, &crashed.event_id, "OrderConfirmed").await?, 1, "still one inbox claim of OrderConfirmed");
    let events = event_types(&shop.stack, "outflow.shipment.events", order, "ShipmentDelivered").await?;
    assert_eq!(count(&events, "ShipmentRequested"), 1, "exactly one ShipmentRequested for order {order}: {events:?}");
    assert_eq!(count(&events, "ShipmentDelivered"), 1, "exactly one ShipmentDelivered for order {order}: {events:?}");
    assert_eq!(shop.stock(&sku).await, (STOCK - QUANTITY, 0), "sold once");
    Ok(())
}

/// Orders: the order is confirmed once, one `OrderConfirmed`.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_orders_consumer_killed_between_its_commit_and_its_offset_confirms_once() -> Result<()> {
    let _alone = ALONE.lock().await;
    let shop = Shop::new().await;
    // Before the orders consumer stops: its catalog replica must know the SKU.
    let sku = shop.product(i64::from(STOCK)).await;
    let orders = pool(&shop.stack, "orders");

    let crashed = crash(&ORDERS, async |armed: &mut Armed| {
        let order = shop.place("crash-orders", &[(&sku, i64::from(QUANTITY))]).await;
        shop.force(&order, "settle").await;
        let event_id = armed.killed_by_the_failpoint(&shop.stack, &order).await?;
        // What the killed process committed: the confirmation, at the order's next version.
        let row = order_row(&orders, &order).await?;
        ensure!(row == ("CONFIRMED".to_owned(), 2), "order {order} after the crash: {row:?}");
        ensure!(inbox_claims(&orders, &event_id, "PaymentCaptured").await? == 1, "PaymentCaptured {event_id} is not claimed in the orders inbox");
        Ok(Crashed { order, event_id })
    })
    .await?;

    // The restarted consumer gets PaymentCaptured again; the inbox makes it a duplicate.
    wait_for_the_redelivery(&ORDERS, &crashed.event_id).await?;
    let order = &crashed.order;
    shop.wait_reservation(order, "COMMITTED").await;
    assert_eq!(order_row(&orders, order).await?, ("CONFIRMED".to_owned(), 2), "confirmed once: one version step");
    assert_eq!(inbox_claims(&orders, &crashed.event_id, "PaymentCaptured").await?, 1, "still one inbox claim of PaymentCaptured");
    let events = event_types(&shop.stack, "outflow.order.events", order, "OrderConfirmed").await?;
    assert_eq!(events, ["OrderPlaced", "OrderConfirmed"], "the events of order {order}");
    assert_eq!(shop.stock(&sku).await, (STOCK - QUANTITY, 0), "sold once, nothing left reserved");
    Ok(())
}

/// Views: the confirmation is in the order view once, at the order's version.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_view_consumer_killed_between_its_write_and_its_offset_shows_the_event_once() -> Result<()> {
    let _alone = ALONE.lock().await;
    let shop = Shop::new().await;
    let sku = shop.product(i64::from(STOCK)).await;
    let orders = pool(&shop.stack, "orders");
    let views = shop.stack.mongo().await?.database("outflow");

    let crashed = crash(&VIEWS, async |armed: &mut Armed| {
        let order = shop.place("crash-views", &[(&sku, i64::from(QUANTITY))]).await;
        shop.force(&order, "settle").await;
        let event_id = armed.killed_by_the_failpoint(&shop.stack, &order).await?;
        // What the killed process wrote: the confirmation, at the order's version, once.
        let (_, version) = order_row(&orders, &order).await?;
        let view = order_view(&views, &order).await?;
        ensure!(
            view.get_str("status") == Ok("CONFIRMED") && view.get_i64("order_version") == Ok(version),
            "the view of order {order} (version {version}) after the crash: {view}"
        );
        ensure!(
            timeline(&view).iter().filter(|(id, _)| *id == event_id).count() == 1,
            "OrderConfirmed {event_id} is not in the timeline once after the crash: {view}"
        );
        Ok(Crashed { order, event_id })
    })
    .await?;

    // The restarted consumer gets OrderConfirmed again; the version guard and
    // the timeline's event id make it a duplicate.
    wait_for_the_redelivery(&VIEWS, &crashed.event_id).await?;
    let order = &crashed.order;
    shop.wait_reservation(order, "COMMITTED").await;
    let (_, version) = order_row(&orders, order).await?;
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    let view = loop {
        let view = order_view(&views, order).await?;
        let done = view.get_document("reservation").is_ok_and(|r| r.get_str("status") == Ok("COMMITTED"));
        // The saga's last events: the sale committed and the shipment handed to the carrier (its test order stays in transit).
        if done && ["StockCommitted", "ShipmentRequested"].iter().all(|last| timeline(&view).iter().any(|(_, t)| t == last)) {
            break view;
        }
        ensure!(tokio::time::Instant::now() < until, "the view of order {order} did not reach the end of the saga: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((view.get_str("status"), view.get_i64("order_version")), (Ok("CONFIRMED"), Ok(version)), "the view of {order}: {view}");
    let entries = timeline(&view);
    assert_eq!(entries.iter().filter(|(id, _)| *id == crashed.event_id).count(), 1, "OrderConfirmed {} once in the timeline: {view}", crashed.event_id);
    let types: Vec<&str> = entries.iter().map(|(_, t)| t.as_str()).collect();
    let every = ["OrderPlaced", "StockReserved", "PaymentRequested", "PaymentCaptured", "OrderConfirmed", "StockCommitted", "ShipmentRequested"];
    for expected in every {
        assert_eq!(count(&types, expected), 1, "{expected} once in the timeline of {order}: {types:?}");
    }
    assert_eq!(types.len(), every.len(), "nothing else in the timeline of {order}: {types:?}");
    let listed: Option<Document> = views.collection::<Document>("customer_orders").find_one(doc! { "_id": order.as_str() }).await?;
    let listed = listed.with_context(|| format!("order {order} is not in customer_orders"))?;
    assert_eq!((listed.get_str("status"), listed.get_i64("order_version")), (Ok("CONFIRMED"), Ok(version)), "customer_orders of {order}: {listed}");
    Ok(())
}

/// Runs `case` against the consumer armed with its failpoint (the running one
/// stopped first), then starts the real consumer again, whatever happened in
/// `case`, panics included.
async fn crash<T>(consumer: &'static Consumer, case: impl AsyncFnOnce(&mut Armed) -> Result<T>) -> Result<T> {
    wait_caught_up(consumer).await?;
    let armed_part = async {
        services::stop(consumer.name).await?;
        let mut armed = Armed::spawn(consumer)?;
        armed.wait_healthy().await?;
        case(&mut armed).await
        // `armed` is dropped here: killed and reaped if it still runs.
    };
    let crashed = match AssertUnwindSafe(armed_part).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(anyhow::anyhow!("panicked: {}", panic_text(&*panic))),
    };
    let restored = services::start(consumer.name, consumer.port).await;
    match (crashed, restored) {
        (Ok(crashed), Ok(())) => Ok(crashed),
        (Err(e), Ok(())) => Err(e.context(format!("the crash part failed ({} was restarted and is healthy)", consumer.name))),
        (Ok(_), Err(restore)) => Err(restore),
        (Err(e), Err(restore)) => Err(e.context(format!("the crash part failed, and so did the restart: {restore:#}"))),
    }
}

/// Waits (up to 60 s) until the consumer's group has committed every record of
/// its topics. The armed consumer starts where the real one stopped: with a
/// backlog, its failpoint would fire on an older event of another order.
async fn wait_caught_up(consumer: &Consumer) -> Result<()> {
    let (stack, topics) = (Stack::from_env(), (consumer.topics)());
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let behind = lag(&stack, consumer.group, &topics)?;
        if behind == 0 {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < until,
            "{} ({}) is still {behind} records behind on {topics:?} after 60 s; the crash needs a consumer that has caught up (nothing was stopped)",
            consumer.name,
            consumer.group
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The consumer's binary with the failpoint armed, in the environment the
/// scripts give the real one, on the real one's port; killed and reaped on
/// drop if it still runs.
struct Armed {
    instance: services::Instance,
    consumer: &'static Consumer,
}

impl Armed {
    fn spawn(consumer: &'static Consumer) -> Result<Self> {
        let instance = services::Instance::spawn_armed(consumer.name, consumer.port, &format!("OUTFLOW_FAILPOINT_KILL_AFTER_EFFECT={}", consumer.failpoint))?;
        Ok(Armed { instance, consumer })
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        self.instance.wait_healthy().await
    }

    /// Waits until the failpoint killed the process (SIGKILL), and checks that
    /// it fired on `order`'s event; returns that event's id.
    async fn killed_by_the_failpoint(&mut self, stack: &Stack, order: &str) -> Result<String> {
        let (name, failpoint) = (self.consumer.name, self.consumer.failpoint);
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.instance.exited()? {
                break status;
            }
            ensure!(tokio::time::Instant::now() < until, "{name} did not crash within 30 s of order {order}; its log:\n{}", self.instance.tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ensure!(status.signal() == Some(9), "{name} ended with {status}, not by SIGKILL; its log:\n{}", self.instance.tail());
        let found = read_topic(stack, self.consumer.topic, Duration::from_secs(30), |m| is_event_of(m, order, failpoint), |kept| !kept.is_empty()).await?;
        let event_id = header_map(&found[0]).get("id").cloned().with_context(|| format!("{failpoint} of {order} has no id header"))?;
        let text = self.instance.output();
        ensure!(
            text.lines().any(|l| l.contains("failpoint: killing the process") && l.contains(&event_id)),
            "the failpoint of {name} fired for another event than {failpoint} {event_id} of order {order} (traffic of another test or a benchmark?); its log:\n{}",
            self.instance.tail()
        );
        Ok(event_id)
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A lazily connecting pool on one of the service databases (per test: a pool
/// belongs to the runtime of the test that made it).
fn pool(stack: &Stack, database: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_lazy(&stack.database_url(database)).expect("a database URL")
}

fn uuid(id: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(id).with_context(|| format!("{id} is not a UUID"))
}

async fn inbox_claims(pool: &PgPool, event_id: &str, event_type: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("select count(*) from processed_events where event_id = $1 and event_type = $2")
        .bind(uuid(event_id)?)
        .bind(event_type)
        .fetch_one(pool)
        .await?)
}

/// (status, version) of an order in the orders database.
async fn order_row(orders: &PgPool, order: &str) -> Result<(String, i64)> {
    Ok(sqlx::query_as("select status, version from orders where id = $1").bind(uuid(order)?).fetch_one(orders).await?)
}

async fn order_view(views: &mongodb::Database, order: &str) -> Result<Document> {
    let found: Vec<Document> = views.collection::<Document>("order_views").find(doc! { "_id": order }).await?.try_collect().await?;
    found.into_iter().next().with_context(|| format!("no order view of {order}"))
}

/// (event id, type) of every timeline entry of an order view.
fn timeline(view: &Document) -> Vec<(String, String)> {
    view.get_array("timeline")
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e.as_document())
                .map(|e| (e.get_str("event_id").unwrap_or_default().to_owned(), e.get_str("type").unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn is_event_of(message: &impl Message, order: &str, event_type: &str) -> bool {
    message.key() == Some(order.as_bytes()) && header_map(message).get("eventType").map(String::as_str) == Some(event_type)
}

/// The types of the events keyed by `order` on `topic`, in order, read to the
/// end of the topic once `last` is among them.
async fn event_types(stack: &Stack, topic: &str, order: &str, last: &str) -> Result<Vec<String>> {
    let found =
        read_topic(stack, topic, Duration::from_secs(30), |m| m.key() == Some(order.as_bytes()), |kept| kept.iter().any(|m| is_event_of(m, order, last)))
            .await?;
    Ok(found.iter().map(|m| header_map(m).get("eventType").cloned().unwrap_or_default()).collect())
}

fn count<S: AsRef<str>>(items: &[S], wanted: &str) -> usize {
    items.iter().filter(|i| i.as_ref() == wanted).count()
}

/// Waits until the restarted consumer logged the crashed event itself (its
/// id, not merely its type) as a redelivery that changed nothing: it got the
/// very event whose offset the killed process never stored. The group first
/// waits out the killed member's session (10 s).
async fn wait_for_the_redelivery(consumer: &Consumer, event_id: &str) -> Result<()> {
    let log = services::state().join(consumer.name).join(format!("{}.log", consumer.name));
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
        if text.lines().any(|l| l.contains(outflow_consumer::REDELIVERED) && l.contains(event_id)) {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < until,
            "the restarted {} did not log {} {event_id} as a redelivery within 60 s ({})",
            consumer.name,
            consumer.failpoint,
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
