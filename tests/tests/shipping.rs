//! Shipping, the saga after confirmation, on the running stack:
//!
//! - delivered: the order ends COMPLETED, its payment stays captured and its
//!   goods sold, and the customer is told it shipped and arrived;
//! - delivery failed: the order ends DELIVERY_FAILED with the carrier's
//!   reason, the payment is refunded at the provider (`delivery_failed`) and
//!   the goods are on hand again (the reservation RETURNED);
//! - a cancel after confirmation is refused and changes nothing;
//! - the carrier's callback is believed only when signed, fresh, about the
//!   shipment the carrier took, and confirmed by the carrier itself; a repeated
//!   callback changes nothing.
//!
//! Every test ends with the shared invariant checker over its orders and SKUs.

mod shop;

use outflow_carrier::signature;
use serde_json::{json, Value};
use shop::{invariants_hold, Shop};

async fn cancel(shop: &Shop, customer: &str, order: &str) -> (u16, Value) {
    let response = shop.http.post(format!("{}/v1/orders/{order}/cancel", shop::ORDERS)).bearer_auth(shop.customer(customer)).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// The kinds of the notifications recorded for `order`, sorted, once `want` are all there.
async fn notified(shop: &Shop, order: &str, want: &[&str]) -> Vec<String> {
    let notifications = shop.stack.mongo().await.unwrap().database("outflow").collection::<mongodb::bson::Document>("notifications");
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found: Vec<mongodb::bson::Document> =
            futures::TryStreamExt::try_collect(notifications.find(mongodb::bson::doc! { "order_id": order }).await.unwrap()).await.unwrap();
        let mut kinds: Vec<String> = found.iter().map(|d| d.get_str("kind").unwrap_or_default().to_owned()).collect();
        kinds.sort();
        if want.iter().all(|w| kinds.iter().any(|k| k == w)) {
            return kinds;
        }
        assert!(tokio::time::Instant::now() < until, "notifications of {order}: {kinds:?}, waiting for {want:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_delivered_order_completes_and_keeps_its_payment_and_its_sale() {
    let shop = Shop::new().await;
    let sku = shop.product(5).await;
    let order = shop.place("shipping-delivered", &[(&sku, 2)]).await;
    shop.force(&order, "settle").await;
    shop.ship(&order, "deliver").await;
    let completed = shop.wait_order(&order, "COMPLETED").await;
    assert_eq!(completed["version"], 3, "placed, confirmed, completed: {completed}");
    let shipment = shop.wait_shipment(&order, "DELIVERED").await;
    assert!(shipment["shipment_id"].as_str().is_some_and(|id| !id.is_empty()), "{shipment}");
    assert_eq!(shop.payment_status(&order).await.as_deref(), Some("CAPTURED"));
    shop.wait_reservation(&order, "COMMITTED").await;
    assert_eq!(shop.stock(&sku).await, (3, 0), "two sold and kept");
    invariants_hold(&[&order], &[&sku]).await;
    let view = shop.until_json(&format!("{}/v1/orders/{order}", shop::QUERY), &shop.customer("shipping-delivered"), |v| v["status"] == "COMPLETED").await;
    assert_eq!(view["shipment"]["status"], "DELIVERED", "{view}");
    let kinds = notified(&shop, &order, &["order_shipped", "order_delivered"]).await;
    assert_eq!(kinds, ["order_confirmed", "order_delivered", "order_placed", "order_shipped"]);
    assert_eq!(cancel(&shop, "shipping-delivered", &order).await.0, 409, "a completed order cannot be cancelled");
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_failed_delivery_refunds_the_payment_and_returns_the_goods() {
    let shop = Shop::new().await;
    let sku = shop.product(5).await;
    let order = shop.place("shipping-failed", &[(&sku, 2)]).await;
    shop.force(&order, "settle").await;
    shop.ship(&order, "fail").await;
    let failed = shop.wait_order(&order, "DELIVERY_FAILED").await;
    assert_eq!(failed["cancel_reason"], "recipient_unreachable", "the carrier's reason: {failed}");
    assert_eq!(shop.wait_shipment(&order, "FAILED").await["failure_reason"], "recipient_unreachable");
    let refunded = shop.wait_payment(&order, "REFUNDED").await;
    assert_eq!(refunded["failure_reason"], "delivery_failed", "{refunded}");
    assert_eq!(shop.sandbox_transaction(&order).await["refunded"], true, "refunded at the provider");
    shop.wait_reservation(&order, "RETURNED").await;
    assert_eq!(shop.stock(&sku).await, (5, 0), "the goods are on hand again");
    invariants_hold(&[&order], &[&sku]).await;
    let token = shop.customer("shipping-failed");
    let view = shop.until_json(&format!("{}/v1/orders/{order}", shop::QUERY), &token, |v| v["payment"]["status"] == "REFUNDED").await;
    assert_eq!((view["status"].as_str(), view["shipment"]["status"].as_str()), (Some("DELIVERY_FAILED"), Some("FAILED")), "{view}");
    assert_eq!(view["reservation"]["status"], "RETURNED", "{view}");
    let availability = shop.until_json(&format!("{}/v1/products/{sku}/availability", shop::QUERY), &token, |v| v["on_hand"] == 5).await;
    assert_eq!(availability["available"], 5, "{availability}");
    notified(&shop, &order, &["order_delivery_failed", "payment_refunded"]).await;
    assert_eq!(cancel(&shop, "shipping-failed", &order).await.0, 409, "an order whose delivery failed has ended");
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_cancel_after_confirmation_is_refused_and_changes_nothing() {
    let shop = Shop::new().await;
    let sku = shop.product(3).await;
    let order = shop.place("shipping-late-cancel", &[(&sku, 1)]).await;
    shop.force(&order, "settle").await;
    shop.wait_order(&order, "CONFIRMED").await;
    let shipment = shop.wait_shipment(&order, "IN_TRANSIT").await;
    let (status, body) = cancel(&shop, "shipping-late-cancel", &order).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("order_confirmed")), "{body}");
    let after = shop.order(&order).await;
    assert_eq!((after["status"].as_str(), after["version"].as_i64()), (Some("CONFIRMED"), Some(2)), "{after}");
    assert_eq!(shop.shipment(&order).await, shipment, "the shipment did not move");
    assert_eq!(shop.payment_status(&order).await.as_deref(), Some("CAPTURED"));
    invariants_hold(&[&order], &[&sku]).await;
}

/// A callback as the carrier would send it: (timestamp, signature, body).
fn signed(key: &str, timestamp: i64, body: &Value) -> (String, String, Vec<u8>) {
    let bytes = serde_json::to_vec(body).unwrap();
    let timestamp = timestamp.to_string();
    (timestamp.clone(), signature::sign(key, &timestamp, &bytes), bytes)
}

async fn post_callback(shop: &Shop, (timestamp, signature, body): (String, String, Vec<u8>)) -> (u16, Value) {
    let response = shop
        .http
        .post(format!("{}/v1/shipments/callbacks", shop::SHIPPING))
        .header(signature::TIMESTAMP_HEADER, timestamp)
        .header(signature::SIGNATURE_HEADER, signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_callback_is_believed_only_when_signed_fresh_and_confirmed_by_the_carrier() {
    let shop = Shop::new().await;
    let sku = shop.product(2).await;
    let order = shop.place("shipping-callbacks", &[(&sku, 1)]).await;
    shop.force(&order, "settle").await;
    let shipment = shop.wait_shipment(&order, "IN_TRANSIT").await;
    let shipment_id = shipment["shipment_id"].as_str().unwrap().to_owned();
    let (key, now) = (shop.stack.carrier_key.clone(), chrono_now());
    let delivered = json!({"shipment_id": shipment_id, "order_id": order, "status": "delivered"});

    let refused = [
        ("unsigned", (now.to_string(), String::new(), serde_json::to_vec(&delivered).unwrap()), 401, "invalid_signature"),
        ("another key", signed("not-the-carrier-key", now, &delivered), 401, "invalid_signature"),
        ("a replay an hour old", signed(&key, now - 3600, &delivered), 401, "stale_timestamp"),
        ("another shipment", signed(&key, now, &json!({"shipment_id": "forged", "order_id": order, "status": "delivered"})), 422, "unknown_shipment"),
        ("not a callback", signed(&key, now, &json!({"order_id": order})), 400, "invalid_callback"),
        // Signed with the real key, but the carrier itself still has it in transit.
        ("what the carrier does not say", signed(&key, now, &delivered), 409, "carrier_disagrees"),
    ];
    for (what, request, status, code) in refused {
        let (got, body) = post_callback(&shop, request).await;
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{what}: {body}");
    }
    let unknown = json!({"shipment_id": shipment_id, "order_id": uuid::Uuid::new_v4().to_string(), "status": "delivered"});
    assert_eq!(post_callback(&shop, signed(&key, now, &unknown)).await.0, 404, "no shipment for that order");
    let untouched = shop.shipment(&order).await;
    assert_eq!((untouched["status"].as_str(), untouched["version"].as_i64()), (Some("IN_TRANSIT"), Some(1)), "{untouched}");
    assert_eq!(shop.order(&order).await["status"], "CONFIRMED");

    // The carrier delivers: its own callback ends the shipment; the same
    // callback again (signed anew, as a retry would be) changes nothing.
    shop.ship(&order, "deliver").await;
    shop.wait_order(&order, "COMPLETED").await;
    let (status, body) = post_callback(&shop, signed(&key, chrono_now(), &delivered)).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("duplicate")), "{body}");
    let (status, body) = post_callback(&shop, signed(&key, chrono_now(), &json!({"shipment_id": shipment_id, "order_id": order, "status": "failed"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("carrier_disagrees")), "a contradiction the carrier does not make: {body}");
    assert_eq!(shop.shipment(&order).await["version"], 2, "delivered once");
    assert_eq!(shop.order(&order).await["version"], 3, "completed once");
    invariants_hold(&[&order], &[&sku]).await;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
