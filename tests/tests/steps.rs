//! The saga steps as the services run them, over every interleaving of the
//! events a participant reads for one order, with redeliveries.
//!
//! The payments consumer's steps (`outflow_payments_consumer::Steps`, the code
//! the service runs) over every interleaving of the two events it reads for one
//! order from two topics, StockReserved (inventory topic) and OrderCancelled
//! (order topic), each delivered twice, on a fresh payments database and the
//! running provider sandbox; and the same two events handled at the same time,
//! over and over, to race the steps' transactions. Whatever the order, the
//! order ends given up: no payment, or one voided before it could be paid,
//! nothing left payable at the provider, and each event claimed once.
//!
//! The inventory consumer's steps over every order of OrderPlaced and
//! OrderCancelled, each twice (one key, so Kafka keeps them in order; only a
//! rebalance redelivering across instances could swap them): the stock always
//! ends as it began, nothing reserved. (OrderConfirmed cannot come before
//! OrderPlaced: it follows the StockReserved that OrderPlaced produced.)
//!
//! The notifications consumer over every order of OrderPlaced and
//! PaymentRefunded (two topics), each twice: every event is told to the
//! order's customer once, and queued once for the customer's webhook.

mod shop;

use std::sync::Arc;

use outflow_consumer::{Delivery, Dispatch, Outcome};
use outflow_events::{
    inventory::{ReservedLine, StockReserved},
    order::{OrderCancelled, OrderLine, OrderPlaced},
    payment::PaymentRefunded,
    DomainEvent,
};
use outflow_outbox::{new_event_id, now_millis, Outbox};
use outflow_payments_consumer::Steps;
use outflow_provider::ProviderClient;
use outflow_stack_tests::Stack;
use secrecy::SecretString;
use shop::Shop;
use uuid::Uuid;

#[derive(Clone, Copy, Debug)]
enum Input {
    First,
    Second,
}

/// Every distinct order of two events delivered twice each ({First, First,
/// Second, Second}): each event first seen at any point, and redelivered at
/// any later one.
fn interleavings() -> Vec<Vec<Input>> {
    let mut all = Vec::new();
    for mask in 0u8..16 {
        if mask.count_ones() == 2 {
            all.push((0..4).map(|i| if mask & (1 << i) != 0 { Input::First } else { Input::Second }).collect());
        }
    }
    all
}

struct Saga {
    order: String,
    reserved: Delivery,
    cancelled: Delivery,
}

impl Saga {
    fn new() -> Self {
        let order = Uuid::now_v7().to_string();
        let reserved = StockReserved {
            event_id: new_event_id(),
            aggregate_id: order.clone(),
            aggregate_version: 1,
            occurred_at: now_millis(),
            order_id: order.clone(),
            customer_id: "steps-customer".into(),
            total_minor: 1250,
            currency: "EUR".into(),
            lines: vec![ReservedLine { sku: "STEPS-1".into(), quantity: 1, on_hand: 5, reserved: 1, product_version: 2 }],
        };
        let cancelled = cancelled_by_customer(&order);
        Saga {
            reserved: delivery(DomainEvent::StockReserved(reserved), "outflow.inventory.events"),
            cancelled: delivery(DomainEvent::OrderCancelled(cancelled), "outflow.order.events"),
            order,
        }
    }

    fn input(&self, input: Input) -> Delivery {
        match input {
            Input::First => self.reserved.clone(),
            Input::Second => self.cancelled.clone(),
        }
    }
}

/// `order` placed by the steps' customer: `quantity` of STEPS-1 at 12.50.
fn placed(order: &str, quantity: i32) -> OrderPlaced {
    OrderPlaced {
        event_id: new_event_id(),
        aggregate_id: order.to_owned(),
        aggregate_version: 1,
        occurred_at: now_millis(),
        customer_id: "steps-customer".into(),
        lines: vec![OrderLine { sku: "STEPS-1".into(), quantity, unit_price_minor: 1250 }],
        total_minor: 1250 * i64::from(quantity),
        currency: "EUR".into(),
    }
}

/// The customer's cancellation of `order` (after OrderPlaced, version 1).
fn cancelled_by_customer(order: &str) -> OrderCancelled {
    OrderCancelled {
        event_id: new_event_id(),
        aggregate_id: order.to_owned(),
        aggregate_version: 2,
        occurred_at: now_millis(),
        customer_id: "steps-customer".into(),
        reason: "customer_cancelled".into(),
    }
}

fn delivery(event: DomainEvent, topic: &str) -> Delivery {
    Delivery { event_id: Uuid::parse_str(event.event_id()).unwrap(), event, traceparent: None, topic: topic.into(), partition: 0, offset: 0 }
}

async fn steps(stack: &Stack) -> (String, Arc<Steps>) {
    let (database, pool) = stack.fresh_database("steps").await.unwrap();
    outflow_payments::startup::MIGRATOR.run(&pool).await.unwrap();
    let outbox = Outbox::registered(&stack.registry()).await.unwrap();
    let provider = ProviderClient::new(shop::SANDBOX, SecretString::from(stack.provider_server_key.clone()));
    (database, Arc::new(Steps { pool, outbox, provider }))
}

/// What the payments side holds for a given-up order, and what the provider does.
async fn assert_given_up(shop: &Shop, steps: &Steps, saga: &Saga, case: &str) {
    let id = Uuid::parse_str(&saga.order).unwrap();
    let given_up: bool = sqlx::query_scalar("select exists (select 1 from given_up_orders where order_id = $1)").bind(id).fetch_one(&steps.pool).await.unwrap();
    assert!(given_up, "{case}: the order is recorded as given up");
    let payment: Option<(String, Option<String>)> =
        sqlx::query_as("select status, failure_reason from payments where order_id = $1").bind(id).fetch_optional(&steps.pool).await.unwrap();
    assert!(
        payment.is_none() || payment == Some(("FAILED".into(), Some("order_cancelled".into()))),
        "{case}: a given-up order has no payment, or one voided: {payment:?}"
    );
    let claims: i64 = sqlx::query_scalar("select count(*) from processed_events where event_id = any($1)")
        .bind(vec![saga.reserved.event_id, saga.cancelled.event_id])
        .fetch_one(&steps.pool)
        .await
        .unwrap();
    assert_eq!(claims, 2, "{case}: both events claimed, once each");
    let at_provider = shop.http.get(format!("{}/v1/transactions/{}", shop::SANDBOX, saga.order)).send().await.unwrap();
    if at_provider.status().as_u16() == 200 {
        let transaction: serde_json::Value = at_provider.json().await.unwrap();
        assert_eq!(transaction["transaction_status"], "cancel", "{case}: a transaction opened for a given-up order is cancelled, never payable");
    }
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn every_order_of_stock_reserved_and_order_cancelled_and_their_redeliveries_ends_given_up() {
    let shop = Shop::new().await;
    let (database, steps) = steps(&shop.stack).await;
    for sequence in interleavings() {
        let saga = Saga::new();
        shop.force(&saga.order, "never").await;
        let mut outcomes = Vec::new();
        for input in &sequence {
            outcomes.push(steps.dispatch(saga.input(*input)).await.unwrap_or_else(|e| panic!("{sequence:?}: {e}")));
        }
        let case = format!("{sequence:?} → {outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Duplicate).count(), 2, "{case}: each redelivery is a duplicate");
        assert_given_up(&shop, &steps, &saga, &case).await;
    }
    steps.pool.close().await;
    shop.stack.drop_database(&database).await.unwrap();
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn stock_reserved_and_order_cancelled_handled_at_once_end_given_up() {
    let shop = Shop::new().await;
    let (database, steps) = steps(&shop.stack).await;
    for round in 0..20 {
        let saga = Saga::new();
        shop.force(&saga.order, "never").await;
        let (reserved, cancelled) = tokio::join!(steps.dispatch(saga.reserved.clone()), steps.dispatch(saga.cancelled.clone()));
        let case = format!("round {round}: {reserved:?}, {cancelled:?}");
        reserved.unwrap_or_else(|e| panic!("{case}: {e}"));
        cancelled.unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_given_up(&shop, &steps, &saga, &case).await;
    }
    steps.pool.close().await;
    shop.stack.drop_database(&database).await.unwrap();
}

/// The inventory steps on a fresh inventory database with one product of 5.
async fn inventory_steps(stack: &Stack) -> (String, outflow_inventory_consumer::Steps) {
    let (database, pool) = stack.fresh_database("steps").await.unwrap();
    sqlx::migrate!("../writers/inventory/migrations").run(&pool).await.unwrap();
    sqlx::query("insert into products (sku, name, price_minor, currency, on_hand, version) values ('STEPS-1', 'Steps', 1250, 'EUR', 5, 1)")
        .execute(&pool)
        .await
        .unwrap();
    let outbox = Outbox::registered(&stack.registry()).await.unwrap();
    (database, outflow_inventory_consumer::Steps { pool, outbox })
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn every_order_of_order_placed_and_order_cancelled_and_their_redeliveries_leaves_the_stock_as_it_was() {
    let stack = Stack::from_env();
    let (database, steps) = inventory_steps(&stack).await;
    for sequence in interleavings() {
        let order = Uuid::now_v7().to_string();
        let placed = placed(&order, 2);
        let cancelled = cancelled_by_customer(&order);
        let (placed, cancelled) =
            (delivery(DomainEvent::OrderPlaced(placed), "outflow.order.events"), delivery(DomainEvent::OrderCancelled(cancelled), "outflow.order.events"));
        for input in &sequence {
            let event = match input {
                Input::First => placed.clone(),
                Input::Second => cancelled.clone(),
            };
            steps.dispatch(event).await.unwrap_or_else(|e| panic!("{sequence:?}: {e}"));
        }
        let stock: (i32, i32) = sqlx::query_as("select on_hand, reserved from products where sku = 'STEPS-1'").fetch_one(&steps.pool).await.unwrap();
        assert_eq!(stock, (5, 0), "{sequence:?}: the stock is as it was, nothing held");
        let reservation: String = sqlx::query_scalar("select status from reservations where order_id = $1")
            .bind(Uuid::parse_str(&order).unwrap())
            .fetch_one(&steps.pool)
            .await
            .unwrap();
        assert_eq!(reservation, "RELEASED", "{sequence:?}");
    }
    steps.pool.close().await;
    stack.drop_database(&database).await.unwrap();
}

/// The notifications consumer (`outflow_notifications_consumer::Notifications`,
/// the code the service runs) over every order of an order's OrderPlaced
/// (order topic) and its PaymentRefunded (payment topic), each twice, on a
/// fresh notifications database with one webhook of the customer's. A refund
/// seen first (a lagging partition or a rebalance can do that) is told to
/// the order's customer all the same; each event is one notification and one
/// delivery to the webhook, whatever came first.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn every_order_of_order_placed_and_payment_refunded_notifies_the_customer_once_each() {
    use futures::TryStreamExt;
    use mongodb::bson::{doc, Document};
    let stack = Stack::from_env();
    let (database, pool) = stack.fresh_database("steps").await.unwrap();
    sqlx::migrate!("../writers/notifications/migrations").run(&pool).await.unwrap();
    let webhook = Uuid::new_v4();
    sqlx::query(
        "insert into webhooks (id, owner, shop_wide, url, secret, created_by, created_at)
         values ($1, 'steps-customer', false, 'https://receiver.example/hook', 'whsec_c3RlcHM=', 'steps-customer', now() - interval '1 minute')",
    )
    .bind(webhook)
    .execute(&pool)
    .await
    .unwrap();
    let views = stack.mongo().await.unwrap().database("outflow");
    let collection = views.collection::<Document>("notifications");
    let notifications = outflow_notifications_consumer::Notifications { db: views, pool: pool.clone() };
    let mut orders = Vec::new();
    for sequence in interleavings() {
        let (order, placed, refunded) = placed_and_refunded();
        let mut outcomes = Vec::new();
        for input in &sequence {
            let event = if matches!(input, Input::First) { placed.clone() } else { refunded.clone() };
            outcomes.push(notifications.dispatch(event).await.unwrap_or_else(|e| panic!("{sequence:?}: {e}")));
        }
        let case = format!("{sequence:?} → {outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Duplicate).count(), 2, "{case}: each redelivery is a duplicate");
        let mut told: Vec<(String, String)> = collection
            .find(doc! { "order_id": &order })
            .await
            .unwrap()
            .map_ok(|d| (d.get_str("kind").unwrap_or_default().to_owned(), d.get_str("customer_id").unwrap_or_default().to_owned()))
            .try_collect()
            .await
            .unwrap();
        told.sort();
        let customer = "steps-customer".to_owned();
        assert_eq!(
            told,
            [("order_placed".to_owned(), customer.clone()), ("payment_refunded".to_owned(), customer)],
            "{case}: one notification per event, to the customer"
        );
        let mut delivered: Vec<String> = sqlx::query_scalar("select event_id from deliveries where webhook_id = $1 and order_id = $2")
            .bind(webhook)
            .bind(&order)
            .fetch_all(&pool)
            .await
            .unwrap();
        delivered.sort();
        let mut expected = vec![placed.event_id.to_string(), refunded.event_id.to_string()];
        expected.sort();
        assert_eq!(delivered, expected, "{case}: one delivery per event to the customer's webhook");
        orders.push(order);
    }
    collection.delete_many(doc! { "order_id": { "$in": &orders } }).await.unwrap();
    pool.close().await;
    stack.drop_database(&database).await.unwrap();
}

/// A new order's OrderPlaced, and the refund of its payment (which names
/// the customer, as refunds do since they carry `customer_id`).
fn placed_and_refunded() -> (String, Delivery, Delivery) {
    let order = Uuid::now_v7().to_string();
    let placed = placed(&order, 1);
    let refunded = PaymentRefunded {
        event_id: new_event_id(),
        aggregate_id: Uuid::now_v7().to_string(),
        aggregate_version: 3,
        occurred_at: now_millis(),
        order_id: order.clone(),
        amount_minor: placed.total_minor,
        reason: "order_cancelled".into(),
        customer_id: "steps-customer".into(),
    };
    (order, delivery(DomainEvent::OrderPlaced(placed), "outflow.order.events"), delivery(DomainEvent::PaymentRefunded(refunded), "outflow.payment.events"))
}
