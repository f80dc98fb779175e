use outflow_http::{auth::{JwtKeys, Role}, settings::{DatabaseSettings, HttpSettings, ServiceSettings}};
use outflow_orders::{settings::Settings, startup::Application};
use outflow_stack_tests::{Stack, WalProbe};
use secrecy::SecretString;
use serde_json::Value;
use sqlx::PgPool;

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    pub database: String,
    pub stack: Stack,
    pub jwt: JwtKeys,
    pub probe: WalProbe,
    pub http: reqwest::Client,
}

/// Builds the orders writer on a fresh database, with SKU-1 (250) and SKU-2
/// (1000) in its catalog replica, and starts watching the WAL.
pub async fn spawn_app() -> TestApp {
    let stack = Stack::from_env();
    let (database, pool) = stack.fresh_database("orders").await.expect("fresh database");
    let settings = Settings::defaults_with(ServiceSettings {
        http: HttpSettings { host: "127.0.0.1".into(), port: 0 },
        database: DatabaseSettings { url: SecretString::from(stack.database_url(&database)), max_connections: 5 },
        registry_url: stack.registry_url.clone(),
        jwt_secret: SecretString::from(stack.jwt_secret.clone()),
    });
    let jwt = JwtKeys::new(&settings.service.jwt_secret);
    let app = Application::build(settings).await.expect("the orders writer builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    sqlx::query("insert into catalog (sku, name, price_minor, currency, version) values ('SKU-1', 'Mug', 250, 'EUR', 1), ('SKU-2', 'Lamp', 1000, 'EUR', 1)")
        .execute(&pool)
        .await
        .expect("catalog rows");
    let probe = WalProbe::start(&pool).await.expect("WAL probe");
    TestApp { address, pool, database, stack, jwt, probe, http: reqwest::Client::new() }
}

impl TestApp {
    pub fn customer_token(&self, customer: &str) -> String {
        self.jwt.mint(customer, Role::Customer, 600)
    }

    pub async fn place_order(&self, token: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/orders", self.address))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn order_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from orders").fetch_one(&self.pool).await.unwrap()
    }

    pub async fn cleanup(self) {
        self.probe.stop().await.ok();
        self.pool.close().await;
        self.stack.drop_database(&self.database).await.expect("test database dropped");
    }
}

/// Asserts the status and the JSON error code of a refused request.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}
