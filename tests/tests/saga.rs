//! The order saga end to end on the running stack: REST → PostgreSQL →
//! Debezium → Kafka → the consumers → back through the outbox, until the order
//! is CONFIRMED or CANCELLED and every compensation ran. Each test uses its own
//! SKUs and customers, so tests run side by side on the shared stack.

mod shop;

use std::time::Duration;

use shop::Shop;

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_paid_order_is_confirmed_and_its_stock_sold() {
    let shop = Shop::new().await;
    let sku = shop.product(5).await;
    let order = shop.place("happy-customer", &[(&sku, 2)]).await;
    shop.force(&order, "settle").await;

    let confirmed = shop.wait_order(&order, "CONFIRMED").await;
    assert_eq!(confirmed["total_minor"], 2 * shop::PRICE);
    shop.wait_reservation(&order, "COMMITTED").await;
    assert_eq!(shop.stock(&sku).await, (3, 0), "on hand goes down by what was sold; nothing stays reserved");
    assert_eq!(shop.payment(&order).await["status"], "CAPTURED");
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn an_order_beyond_the_stock_is_cancelled_out_of_stock_and_reserves_nothing() {
    let shop = Shop::new().await;
    let (scarce, plenty) = (shop.product(1).await, shop.product(10).await);
    let order = shop.place("greedy-customer", &[(&plenty, 3), (&scarce, 2)]).await;

    let cancelled = shop.wait_order(&order, "CANCELLED").await;
    assert_eq!(cancelled["cancel_reason"], "out_of_stock");
    shop.wait_reservation(&order, "REJECTED").await;
    assert_eq!(shop.stock(&scarce).await, (1, 0));
    assert_eq!(shop.stock(&plenty).await, (10, 0), "all lines or none");
    assert!(shop.payment_status(&order).await.is_none(), "no payment is opened for a rejected order");
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_denied_payment_cancels_the_order_and_releases_the_stock() {
    let shop = Shop::new().await;
    let sku = shop.product(4).await;
    let order = shop.place("denied-customer", &[(&sku, 3)]).await;
    shop.force(&order, "deny").await;

    let cancelled = shop.wait_order(&order, "CANCELLED").await;
    assert_eq!(cancelled["cancel_reason"], "payment_failed");
    shop.wait_reservation(&order, "RELEASED").await;
    assert_eq!(shop.stock(&sku).await, (4, 0), "availability is restored");
    assert_eq!(shop.payment(&order).await["status"], "FAILED");
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_payment_captured_after_the_customer_cancelled_is_refunded() {
    let shop = Shop::new().await;
    let sku = shop.product(2).await;
    let order = shop.place("fickle-customer", &[(&sku, 1)]).await;
    shop.force(&order, "never").await;
    shop.wait_payment(&order, "PENDING").await;
    shop.wait_payment_opened(&order).await;

    let cancel = shop.http.post(format!("{}/v1/orders/{order}/cancel", shop::ORDERS)).bearer_auth(shop.customer("fickle-customer")).send().await.unwrap();
    assert_eq!(cancel.status().as_u16(), 200);
    shop.wait_reservation(&order, "RELEASED").await;
    shop.wait_payment(&order, "FAILED").await; // voided: the order is gone

    // The customer pays anyway, just before the cancellation reached the
    // provider: the late capture is refunded.
    shop.pay_now(&order).await;
    let payment = shop.wait_payment(&order, "REFUNDED").await;
    assert_eq!(payment["failure_reason"], "late_capture");
    assert_eq!(shop.sandbox_transaction(&order).await["refunded"], true, "refunded at the provider");
    assert_eq!(shop.stock(&sku).await, (2, 0));
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_payment_pending_past_its_deadline_expires_and_cancels_the_order() {
    let shop = Shop::new().await;
    let sku = shop.product(3).await;
    let order = shop.place("slow-customer", &[(&sku, 1)]).await;
    shop.force(&order, "never").await;

    let deadline = Duration::from_millis(shop::payment_deadline_ms()) + Duration::from_secs(30);
    let cancelled = shop.wait_order_within(&order, "CANCELLED", deadline).await;
    assert_eq!(cancelled["cancel_reason"], "expired");
    shop.wait_reservation(&order, "RELEASED").await;
    assert_eq!(shop.stock(&sku).await, (3, 0));
    let payment = shop.payment(&order).await;
    assert_eq!((payment["status"].as_str(), payment["failure_reason"].as_str()), (Some("FAILED"), Some("expired")));
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn two_hundred_concurrent_orders_for_ten_units_confirm_exactly_ten() {
    let shop = std::sync::Arc::new(Shop::new().await);
    let sku = shop.product(10).await;
    // What no table constraint guards: the availability view, folded from the
    // stock events of 200 racing orders, never moves back (its version only
    // grows), stays consistent (available = on hand − reserved) and never
    // shows stock that does not exist.
    let watcher = {
        let (shop, sku) = (shop.clone(), sku.clone());
        tokio::spawn(async move {
            let (url, token) = (format!("{}/v1/products/{sku}/availability", shop::QUERY), shop.customer("watcher"));
            let mut samples: Vec<serde_json::Value> = Vec::new();
            for _ in 0..100 {
                let view: serde_json::Value = shop.http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
                if view["version"].is_i64() {
                    samples.push(view);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };
    let placed = futures::future::join_all((0..200).map(|i| {
        let (shop, sku) = (shop.clone(), sku.clone());
        async move { shop.place(&format!("crowd-{i}"), &[(&sku, 1)]).await }
    }))
    .await;

    let mut confirmed = 0;
    for order in &placed {
        let status = shop.wait_terminal(order, Duration::from_secs(120)).await;
        // `place` holds the shipment in transit, but only once the order is
        // placed: among 200 at once, an order can be confirmed, shipped and
        // delivered (the carrier's 300 ms) before that reaches the carrier.
        if ["CONFIRMED", "COMPLETED"].contains(&status["status"].as_str().unwrap_or_default()) {
            confirmed += 1;
        } else {
            assert_eq!(status["cancel_reason"], "out_of_stock", "{status}");
        }
    }
    assert_eq!(confirmed, 10);
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while shop.stock(&sku).await != (0, 0) {
        assert!(tokio::time::Instant::now() < until, "stock did not settle at (0, 0): {:?}", shop.stock(&sku).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let samples = watcher.await.unwrap();
    assert!(samples.len() > 10, "the availability view was seen {} times", samples.len());
    for pair in samples.windows(2) {
        assert!(pair[1]["version"].as_i64() >= pair[0]["version"].as_i64(), "the availability view moved back: {} then {}", pair[0], pair[1]);
    }
    for view in &samples {
        let (on_hand, reserved, available) = (view["on_hand"].as_i64().unwrap(), view["reserved"].as_i64().unwrap(), view["available"].as_i64().unwrap());
        assert!(available == on_hand - reserved && (0..=10).contains(&available) && reserved <= on_hand && on_hand <= 10, "an impossible availability: {view}");
    }
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_query_service_shows_the_confirmed_order_its_payment_reservation_and_availability() {
    let shop = Shop::new().await;
    let sku = shop.product(6).await;
    let customer = format!("viewer-{}", uuid::Uuid::new_v4().simple());
    let order = shop.place(&customer, &[(&sku, 2)]).await;
    shop.force(&order, "settle").await;
    shop.wait_order(&order, "CONFIRMED").await;

    let token = shop.customer(&customer);
    let view = shop
        .until_json(&format!("{}/v1/orders/{order}", shop::QUERY), &token, |v| {
            // The timeline entry and the fields of one event are two writes: wait for both.
            v["status"] == "CONFIRMED"
                && v["payment"]["status"] == "CAPTURED"
                && v["reservation"]["status"] == "COMMITTED"
                && v["timeline"].as_array().is_some_and(|t| t.len() >= 6)
        })
        .await;
    assert_eq!(view["customer_id"], customer.as_str());
    assert_eq!(view["lines"][0]["quantity"], 2);
    let types: Vec<&str> = view["timeline"].as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap()).collect();
    for expected in ["OrderPlaced", "StockReserved", "PaymentRequested", "PaymentCaptured", "OrderConfirmed", "StockCommitted"] {
        assert_eq!(types.iter().filter(|t| **t == expected).count(), 1, "{expected} once in {types:?}");
    }
    let list = shop.until_json(&format!("{}/v1/customers/{customer}/orders?per_page=10", shop::QUERY), &token, |v| v["total"] == 1).await;
    assert_eq!(list["orders"][0]["order_id"], order.as_str());
    let availability = shop.until_json(&format!("{}/v1/products/{sku}/availability", shop::QUERY), &token, |v| v["on_hand"] == 4).await;
    assert_eq!((availability["reserved"].as_i64(), availability["available"].as_i64()), (Some(0), Some(4)));

    let other = shop.http.get(format!("{}/v1/orders/{order}", shop::QUERY)).bearer_auth(shop.customer("someone-else")).send().await.unwrap();
    assert_eq!(other.status().as_u16(), 403);

    // One notification per customer-visible event.
    let notifications = shop.stack.mongo().await.unwrap().database("outflow").collection::<mongodb::bson::Document>("notifications");
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut kinds: Vec<String> =
            futures::TryStreamExt::try_collect::<Vec<_>>(notifications.find(mongodb::bson::doc! { "order_id": &order }).await.unwrap())
                .await
                .unwrap()
                .iter()
                .map(|d| format!("{}:{}", d.get_str("kind").unwrap(), d.get_str("customer_id").unwrap()))
                .collect();
        kinds.sort();
        if kinds == vec![format!("order_confirmed:{customer}"), format!("order_placed:{customer}"), format!("order_shipped:{customer}")] {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "notifications: {kinds:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
