//! Cross-topic interleavings, forced on the running stack: a consumer reads
//! events of one order from two topics (or from a topic and a REST call), and
//! the order in which they reach it is decided here by freezing (SIGSTOP) the
//! participant that would otherwise win, for a moment. Whatever the order,
//! the saga ends in a state that the shared invariant checker accepts:
//!
//! - payments consumer, OrderCancelled (order topic) before StockReserved
//!   (inventory topic): the order is given up, no payment is ever opened;
//! - orders consumer, the customer's cancel before PaymentCaptured (payment
//!   topic): the order stays cancelled and the capture is refunded;
//! - payments writer and consumer, a capture or a denial after the payment
//!   expired: the capture is refunded, the denial changes nothing;
//! - inventory consumer, a delivery that failed (refunded, the order ended)
//!   before the sale was even committed: the goods are sold, then returned.
//!
//! The tests freeze shared consumers, so they take turns ([`ALONE`]).

mod shop;

use std::time::Duration;

use outflow_stack_tests::services::Frozen;
use shop::{invariants_hold, Shop};
use sqlx::PgPool;
use uuid::Uuid;

static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pool(shop: &Shop, database: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_lazy(&shop.stack.database_url(database)).expect("a database URL")
}

async fn until(within: Duration, what: &str, check: impl AsyncFn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cancel(shop: &Shop, customer: &str, order: &str) -> u16 {
    shop.http.post(format!("{}/v1/orders/{order}/cancel", shop::ORDERS)).bearer_auth(shop.customer(customer)).send().await.unwrap().status().as_u16()
}

/// The first bug: the inventory consumer lags, the customer cancels,
/// and the payments consumer sees OrderCancelled before StockReserved.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_cancel_seen_before_the_reservation_opens_no_payment() {
    let _alone = ALONE.lock().await;
    let shop = Shop::new().await;
    let payments = pool(&shop, "payments");
    let sku = shop.product(3).await;
    let order = {
        let _inventory = Frozen::freeze("inventory-consumer").unwrap();
        let order = shop.place("early-canceller", &[(&sku, 2)]).await;
        shop.force(&order, "settle").await;
        assert_eq!(cancel(&shop, "early-canceller", &order).await, 200, "a pending order can be cancelled");
        let id = Uuid::parse_str(&order).unwrap();
        until(Duration::from_secs(8), "the payments consumer to give the order up", async || {
            sqlx::query_scalar::<_, bool>("select exists (select 1 from given_up_orders where order_id = $1)").bind(id).fetch_one(&payments).await.unwrap()
        })
        .await;
        order
    };
    shop.wait_reservation(&order, "RELEASED").await;
    invariants_hold(&[&order], &[&sku]).await;
    assert_eq!(shop.order(&order).await["status"], "CANCELLED");
    assert!(shop.payment_status(&order).await.is_none(), "no payment was opened for the given-up order");
    let at_provider = shop.http.get(format!("{}/v1/transactions/{order}", shop::SANDBOX)).send().await.unwrap().status().as_u16();
    assert_eq!(at_provider, 404, "nothing was opened at the provider");
    assert_eq!(shop.stock(&sku).await, (3, 0));
}

/// The customer cancels while the orders consumer has not yet seen the
/// capture: the order stays CANCELLED and the money goes back.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_cancel_before_the_capture_is_seen_refunds_the_capture() {
    let _alone = ALONE.lock().await;
    let shop = Shop::new().await;
    let sku = shop.product(3).await;
    let order = {
        let _orders = Frozen::freeze("orders-consumer").unwrap();
        let order = shop.place("late-canceller", &[(&sku, 1)]).await;
        shop.force(&order, "settle").await;
        shop.wait_payment(&order, "CAPTURED").await;
        assert_eq!(cancel(&shop, "late-canceller", &order).await, 200, "still pending: the orders consumer has not confirmed it");
        shop.wait_payment(&order, "REFUNDED").await;
        order
    };
    invariants_hold(&[&order], &[&sku]).await;
    let view = shop.order(&order).await;
    assert_eq!(view["status"], "CANCELLED", "the late PaymentCaptured does not confirm a cancelled order");
    assert_eq!(shop.sandbox_transaction(&order).await["refunded"], true, "refunded at the provider");
    assert_eq!(shop.stock(&sku).await, (3, 0));
}

/// After the payment deadline: the provider's capture is refunded, its denial
/// changes nothing, and both orders stay cancelled as expired.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_capture_or_a_denial_after_expiry_leaves_the_order_expired_and_unpaid() {
    let _alone = ALONE.lock().await;
    let shop = Shop::new().await;
    let sku = shop.product(4).await;
    let (paid_late, denied_late) = (shop.place("slow-payer", &[(&sku, 1)]).await, shop.place("slow-denied", &[(&sku, 1)]).await);
    for order in [&paid_late, &denied_late] {
        shop.force(order, "never").await;
    }
    let deadline = Duration::from_millis(shop::payment_deadline_ms()) + Duration::from_secs(30);
    for order in [&paid_late, &denied_late] {
        assert_eq!(shop.wait_order_within(order, "CANCELLED", deadline).await["cancel_reason"], "expired");
        shop.wait_payment(order, "FAILED").await;
    }
    shop.pay_now(&paid_late).await;
    let denial = shop.http.post(format!("{}/sandbox/orders/{denied_late}/deny", shop::SANDBOX)).send().await.unwrap();
    assert_eq!(denial.status().as_u16(), 202);
    let refunded = shop.wait_payment(&paid_late, "REFUNDED").await;
    assert_eq!(refunded["failure_reason"], "late_capture");
    until(Duration::from_secs(15), "the sandbox to deliver the denial", async || shop.sandbox_transaction(&denied_late).await["notified"] == true).await;
    let denied = shop.payment(&denied_late).await;
    assert_eq!((denied["status"].as_str(), denied["failure_reason"].as_str()), (Some("FAILED"), Some("expired")));
    invariants_hold(&[&paid_late, &denied_late], &[&sku]).await;
    assert_eq!(shop.stock(&sku).await, (4, 0));
}

/// The inventory consumer lags behind the whole life of an order after its
/// reservation: the order is confirmed, shipped, its delivery fails and it is
/// refunded while OrderConfirmed and OrderDeliveryFailed wait for it. It then
/// commits the sale and returns the goods, in that order.
#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_delivery_that_failed_before_the_sale_was_committed_returns_the_goods() {
    let _alone = ALONE.lock().await;
    let shop = Shop::new().await;
    let sku = shop.product(4).await;
    let order = shop.place("returned-early", &[(&sku, 3)]).await;
    shop.force(&order, "never").await;
    shop.wait_reservation(&order, "RESERVED").await;
    {
        let _inventory = Frozen::freeze("inventory-consumer").unwrap();
        shop.ship(&order, "fail").await;
        shop.pay_now(&order).await;
        assert_eq!(shop.wait_order(&order, "DELIVERY_FAILED").await["cancel_reason"], "recipient_unreachable");
        shop.wait_payment(&order, "REFUNDED").await;
        assert_eq!(shop.stock(&sku).await, (4, 3), "the frozen inventory consumer still holds the reservation");
    }
    shop.wait_reservation(&order, "RETURNED").await;
    invariants_hold(&[&order], &[&sku]).await;
    assert_eq!(shop.stock(&sku).await, (4, 0), "sold, then returned");
}
