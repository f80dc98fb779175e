use outflow_orders::{settings::Settings, startup};
use outflow_service::auth::Role;
pub use outflow_stack_tests::service::{assert_error, TestService};
use serde_json::Value;

/// The orders writer on a fresh database, with SKU-1 (250) and SKU-2 (1000)
/// in its catalog replica.
pub async fn spawn_app() -> TestService {
    TestService::spawn(
        "orders",
        "insert into catalog (sku, name, price_minor, currency, version) values ('SKU-1', 'Mug', 250, 'EUR', 1), ('SKU-2', 'Lamp', 1000, 'EUR', 1)",
        |service| startup::build(Settings::defaults_with(service)),
    )
    .await
}

pub trait OrdersClient {
    fn customer_token(&self, customer: &str) -> String;
    async fn place_order(&self, token: &str, key: &str, body: &Value) -> reqwest::Response;
    async fn order_count(&self) -> i64;
}

impl OrdersClient for TestService {
    fn customer_token(&self, customer: &str) -> String {
        self.token(customer, Role::Customer)
    }

    async fn place_order(&self, token: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url("/v1/orders")).bearer_auth(token).header("Idempotency-Key", key).json(body).send().await.expect("request sent")
    }

    async fn order_count(&self) -> i64 {
        self.count("orders").await
    }
}
