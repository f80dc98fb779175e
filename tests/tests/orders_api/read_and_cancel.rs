use outflow_service::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, OrdersClient};

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn an_owner_reads_and_cancels_a_pending_order_once() {
    let app = spawn_app().await;
    let token = app.customer_token("erin");
    let placed: Value = app.place_order(&token, "k", &json!({"items": [{"sku": "SKU-2", "quantity": 3}]})).await.json().await.unwrap();
    let id = placed["order_id"].as_str().unwrap();

    let order: Value = app.http.get(app.url(&format!("/v1/orders/{id}"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!((order["status"].as_str(), order["total_minor"].as_i64()), (Some("PENDING"), Some(3000)));
    assert_eq!(order["items"][0]["unit_price_minor"], 1000);

    let other = app.customer_token("mallory");
    let peek = app.http.get(app.url(&format!("/v1/orders/{id}"))).bearer_auth(&other).send().await.unwrap();
    assert_error(peek, 403, "forbidden").await;
    let cancel_other = app.http.post(app.url(&format!("/v1/orders/{id}/cancel"))).bearer_auth(&other).send().await.unwrap();
    assert_error(cancel_other, 403, "forbidden").await;
    let missing = app.http.get(app.url(&format!("/v1/orders/{}", uuid::Uuid::new_v4()))).bearer_auth(&token).send().await.unwrap();
    assert_error(missing, 404, "not_found").await;
    let admin = app.token("root", Role::Admin);
    let as_admin = app.http.get(app.url(&format!("/v1/orders/{id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(as_admin.status().as_u16(), 200);

    for _ in 0..2 {
        let cancelled = app.http.post(app.url(&format!("/v1/orders/{id}/cancel"))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(cancelled.status().as_u16(), 200);
        assert_eq!(cancelled.json::<Value>().await.unwrap()["status"], "CANCELLED");
    }
    let (status, reason, version): (String, String, i64) =
        sqlx::query_as("select status, cancel_reason, version from orders").fetch_one(&app.pool).await.unwrap();
    assert_eq!((status.as_str(), reason.as_str(), version), ("CANCELLED", "customer_request", 2));
    assert_eq!(app.probe.outbox_event_types().await.unwrap(), vec!["OrderPlaced", "OrderCancelled"]);
    app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn a_confirmed_order_cannot_be_cancelled() {
    let app = spawn_app().await;
    let token = app.customer_token("frank");
    let placed: Value = app.place_order(&token, "k", &json!({"items": [{"sku": "SKU-1", "quantity": 1}]})).await.json().await.unwrap();
    let id = placed["order_id"].as_str().unwrap();
    sqlx::query("update orders set status = 'CONFIRMED', version = 2").execute(&app.pool).await.unwrap();
    let before = app.probe.changes().await.unwrap().len();

    let refused = app.http.post(app.url(&format!("/v1/orders/{id}/cancel"))).bearer_auth(&token).send().await.unwrap();
    assert_error(refused, 409, "order_confirmed").await;
    assert_eq!(app.probe.changes().await.unwrap().len(), before, "a refused cancel writes nothing");
    app.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the stack: scripts/up (scripts/test runs it)"]
async fn health_readiness_metrics_and_openapi_are_served() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let metrics = app.http.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    app.cleanup().await;
}
