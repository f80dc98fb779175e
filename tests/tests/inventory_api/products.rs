use std::time::Duration;

use outflow_inventory::{settings::Settings, startup};
use outflow_service::auth::Role;
use outflow_stack_tests::{
    header_map, read_topic,
    service::{assert_error, bad_tokens, TestService},
    TestConnector,
};
use rdkafka::Message;
use serde_json::{json, Value};

async fn spawn_app() -> TestService {
    TestService::spawn("inventory", "", |service| startup::build(Settings::defaults_with(service))).await
}

fn mug() -> Value {
    json!({"sku": "MUG-1", "name": "Mug", "price_minor": 250, "currency": "EUR", "stock": 10})
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn an_admin_creates_and_restocks_a_product_and_each_change_is_one_event_on_the_topic() {
    let app = spawn_app().await;
    let connector = TestConnector::start(&app.stack, &app.pool, &app.database).await.unwrap();
    let admin = app.token("root", Role::Admin);

    let created = app.http.post(app.url("/v1/products")).bearer_auth(&admin).json(&mug()).send().await.unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let restocked = app.http.post(app.url("/v1/products/MUG-1/restock")).bearer_auth(&admin).json(&json!({"quantity": 5})).send().await.unwrap();
    assert_eq!(restocked.status().as_u16(), 200);
    let product: Value = app.http.get(app.url("/v1/products/MUG-1")).send().await.unwrap().json().await.unwrap();
    assert_eq!((product["on_hand"].as_i64(), product["available"].as_i64(), product["version"].as_i64()), (Some(15), Some(15), Some(2)));

    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["ProductCreated", "StockAdjusted"]);
    let topic = connector.topic("inventory");
    // The topic read to its end, once both changes are there: nothing beyond them.
    let records = read_topic(&app.stack, &topic, Duration::from_secs(30), |_| true, |kept| kept.len() >= 2).await.unwrap();
    let types: Vec<String> = records.iter().map(|r| header_map(r)["eventType"].clone()).collect();
    assert_eq!(types, vec!["ProductCreated", "StockAdjusted"], "one record per change, in order");
    assert!(records.iter().all(|r| r.key() == Some(b"MUG-1".as_slice())), "keyed by SKU");

    connector.stop(&["inventory"]).await.unwrap();
    app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn every_bad_product_request_is_refused_with_its_status_and_writes_nothing() {
    let app = spawn_app().await;
    sqlx::query("insert into products (sku, name, price_minor, currency, on_hand, version) values ('LAMP-1', 'Lamp', 1000, 'EUR', 999990, 1)")
        .execute(&app.pool)
        .await
        .unwrap();
    let before = app.probe.changes().await.unwrap().len();
    let admin = app.token("root", Role::Admin);
    let customer = app.token("alice", Role::Customer);
    let post = |path: &str, token: &str, body: Value| app.http.post(app.url(path)).bearer_auth(token.to_owned()).json(&body).send();

    let with = |key: &str, value: Value| {
        let mut body = mug();
        body[key] = value;
        body
    };
    for (body, code) in [
        (with("sku", json!("has space")), "invalid_product"),
        (with("name", json!("")), "invalid_product"),
        (with("price_minor", json!(-1)), "invalid_product"),
        (with("currency", json!("euro")), "invalid_product"),
        (with("stock", json!(-5)), "invalid_product"),
        (with("colour", json!("red")), "invalid_body"),
        (json!({"sku": "X"}), "invalid_body"),
    ] {
        assert_error(post("/v1/products", &admin, body).await.unwrap(), 422, code).await;
    }
    let duplicate = with("sku", json!("LAMP-1"));
    assert_error(post("/v1/products", &admin, duplicate).await.unwrap(), 409, "product_exists").await;
    assert_error(post("/v1/products", &customer, mug()).await.unwrap(), 403, "forbidden").await;
    for bad in bad_tokens(&app.jwt, "root") {
        assert_error(post("/v1/products", &bad, mug()).await.unwrap(), 401, "invalid_token").await;
    }
    let no_token = app.http.post(app.url("/v1/products")).json(&mug()).send().await.unwrap();
    assert_error(no_token, 401, "missing_token").await;
    let malformed =
        app.http.post(app.url("/v1/products")).bearer_auth(&admin).header("content-type", "application/json").body("{\"sku\":").send().await.unwrap();
    assert_error(malformed, 400, "malformed_json").await;
    let huge = app
        .http
        .post(app.url("/v1/products"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{}\"}}", "x".repeat(65 * 1024)))
        .send()
        .await
        .unwrap();
    assert_error(huge, 413, "body_too_large").await;

    for (quantity, status, code) in [(0, 422, "invalid_product"), (-1, 422, "invalid_product"), (11, 422, "stock_limit")] {
        assert_error(post("/v1/products/LAMP-1/restock", &admin, json!({"quantity": quantity})).await.unwrap(), status, code).await;
    }
    assert_error(post("/v1/products/NOPE/restock", &admin, json!({"quantity": 1})).await.unwrap(), 404, "not_found").await;
    assert_error(post("/v1/products/LAMP-1/restock", &customer, json!({"quantity": 1})).await.unwrap(), 403, "forbidden").await;
    assert_error(app.http.get(app.url("/v1/products/NOPE")).send().await.unwrap(), 404, "not_found").await;

    assert_eq!(app.probe.changes().await.unwrap().len(), before, "a refused request writes nothing");
    assert_eq!(app.count("products").await, 1);
    app.cleanup().await;
}
