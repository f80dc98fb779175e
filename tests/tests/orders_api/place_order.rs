use std::time::Duration;

use outflow_events::{order::OrderPlaced, DomainEvent};
use outflow_service::auth::Role;
use outflow_stack_tests::{consume, header_map, read_topic, service::bad_tokens, TestConnector};
use rdkafka::Message;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, OrdersClient};

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_placed_order_is_one_pending_order_one_outbox_event_and_one_record_on_its_topic() {
    let app = spawn_app().await;
    let connector = TestConnector::start(&app.stack, &app.pool, &app.database).await.unwrap();
    let token = app.customer_token("alice");

    let response = app.place_order(&token, "key-1", &json!({"items": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}]})).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "PENDING");
    let order_id = body["order_id"].as_str().unwrap().to_owned();

    let (status, total, customer): (String, i64, String) =
        sqlx::query_as("select status, total_minor, customer_id from orders").fetch_one(&app.pool).await.unwrap();
    assert_eq!((status.as_str(), total, customer.as_str()), ("PENDING", 2 * 250 + 1000, "alice"));
    let items: Vec<(String, i32, i64)> =
        sqlx::query_as("select sku, quantity, unit_price_minor from order_items order by line_no").fetch_all(&app.pool).await.unwrap();
    assert_eq!(items, vec![("SKU-1".into(), 2, 250), ("SKU-2".into(), 1, 1000)]);
    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["OrderPlaced"]);
    let left: i64 = sqlx::query_scalar("select count(*) from outbox").fetch_one(&app.pool).await.unwrap();
    assert_eq!(left, 0, "outbox rows are deleted in the transaction that inserts them");

    let topic = connector.topic("order");
    let records = consume(&app.stack, &topic, 1, Duration::from_secs(60), |_| true).await.unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.key(), Some(order_id.as_bytes()));
    assert_eq!(header_map(record).get("eventType").map(String::as_str), Some("OrderPlaced"));
    let decoded = AvroDecoder::new(app.stack.registry().settings()).decode(record.payload()).await.unwrap();
    let event = DomainEvent::from_avro(&decoded.name.unwrap().fullname(None), decoded.value).unwrap();
    let DomainEvent::OrderPlaced(OrderPlaced { aggregate_id, aggregate_version, customer_id, lines, total_minor, currency, event_id, .. }) = event else {
        panic!("expected OrderPlaced, got {event:?}");
    };
    assert_eq!((aggregate_id.as_str(), aggregate_version, customer_id.as_str()), (order_id.as_str(), 1, "alice"));
    assert_eq!((lines.len(), total_minor, currency.as_str()), (2, 1500, "EUR"));
    assert_eq!(header_map(record).get("id"), Some(&event_id));
    // Nothing else: the topic read to its end holds one change, one event.
    let all = read_topic(&app.stack, &topic, Duration::from_secs(30), |_| true, |kept| !kept.is_empty()).await.unwrap();
    assert_eq!(all.len(), 1);

    connector.stop(&["order"]).await.unwrap();
    app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn the_same_key_and_body_returns_the_same_order_and_another_body_is_a_conflict() {
    let app = spawn_app().await;
    let token = app.customer_token("bob");
    let body = json!({"items": [{"sku": "SKU-1", "quantity": 1}]});
    let first: Value = app.place_order(&token, "k", &body).await.json().await.unwrap();
    let again = app.place_order(&token, "k", &body).await;
    assert_eq!(again.status().as_u16(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["order_id"], again["order_id"]);

    let other = app.place_order(&token, "k", &json!({"items": [{"sku": "SKU-1", "quantity": 2}]})).await;
    assert_error(other, 409, "idempotency_key_reused").await;
    // Another customer may use the same key for an order of their own.
    let carol: Value = app.place_order(&app.customer_token("carol"), "k", &body).await.json().await.unwrap();
    assert_ne!(carol["order_id"], first["order_id"]);

    assert_eq!(app.order_count().await, 2);
    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["OrderPlaced", "OrderPlaced"]);
    app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn every_bad_placement_is_refused_with_its_status_and_writes_nothing() {
    let app = spawn_app().await;
    let token = app.customer_token("dave");
    let url = format!("{}/v1/orders", app.address);
    let line = |sku: &str, quantity: i64| json!({"sku": sku, "quantity": quantity});
    let many: Vec<Value> = (0..101).map(|i| line(&format!("S{i}"), 1)).collect();

    let json_cases = [
        (json!({"items": []}), 422, "empty_order"),
        (json!({"items": [line("SKU-1", 0)]}), 422, "invalid_quantity"),
        (json!({"items": [line("SKU-1", -3)]}), 422, "invalid_quantity"),
        (json!({"items": [line("SKU-1", 1001)]}), 422, "invalid_quantity"),
        (json!({"items": many}), 422, "too_many_lines"),
        (json!({"items": [line("NOPE", 1)]}), 422, "unknown_sku"),
        (json!({"items": [line("SKU-1", 1), line("SKU-1", 2)]}), 422, "duplicate_sku"),
        (json!({"items": [line("SKU-1", 1)], "coupon": "FREE"}), 422, "invalid_body"),
        (json!({"items": [{"sku": "SKU-1", "quantity": 1, "price": 0}]}), 422, "invalid_body"),
        (json!({"lines": []}), 422, "invalid_body"),
    ];
    for (body, status, code) in json_cases {
        assert_error(app.place_order(&token, "k", &body).await, status, code).await;
    }

    let raw = |body: String| app.http.post(&url).bearer_auth(&token).header("Idempotency-Key", "k").header("content-type", "application/json").body(body);
    assert_error(raw("{\"items\": [".into()).send().await.unwrap(), 400, "malformed_json").await;
    let huge = format!("{{\"items\": [], \"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    assert_error(raw(huge).send().await.unwrap(), 413, "body_too_large").await;
    let ok_body = json!({"items": [line("SKU-1", 1)]});
    let no_key = app.http.post(&url).bearer_auth(&token).json(&ok_body).send().await.unwrap();
    assert_error(no_key, 400, "idempotency_key_required").await;

    // Authentication and role.
    let admin = app.token("root", Role::Admin);
    let no_token = app.http.post(&url).header("Idempotency-Key", "k").json(&ok_body).send().await.unwrap();
    assert_error(no_token, 401, "missing_token").await;
    for bad in bad_tokens(&app.jwt, "dave") {
        assert_error(app.place_order(&bad, "k", &ok_body).await, 401, "invalid_token").await;
    }
    assert_error(app.place_order(&admin, "k", &ok_body).await, 403, "forbidden").await;

    assert_eq!(app.order_count().await, 0);
    assert_eq!(app.probe.changes().await.unwrap(), Vec::<String>::new(), "a refused request writes nothing");
    app.cleanup().await;
}
