#![allow(dead_code)] // shared by several test binaries, each using part of it
//! A client of the running shop: the writers' REST APIs, the sandbox's test
//! controls, and read-only looks into the service databases.

use std::time::Duration;

use outflow_provider::signature;
use outflow_service::auth::{JwtKeys, Role};
use outflow_stack_tests::Stack;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::PgPool;

pub const ORDERS: &str = "http://127.0.0.1:7101";
pub const INVENTORY: &str = "http://127.0.0.1:7102";
pub const PAYMENTS: &str = "http://127.0.0.1:7103";
pub const SHIPPING: &str = "http://127.0.0.1:7104";
pub const CARRIER: &str = "http://127.0.0.1:7198";
pub const SANDBOX: &str = "http://127.0.0.1:7199";
pub const QUERY: &str = "http://127.0.0.1:7110";
pub const PRICE: i64 = 1250;
const WAIT: Duration = Duration::from_secs(30);

/// The shared checker over a test's orders and products, once every
/// consumer group has caught up (views may trail the tables a moment longer).
pub async fn invariants_hold(orders: &[&str], skus: &[&str]) {
    use outflow_invariants::{Options, Scope, Sources};
    let sources = Sources::from_env().await.expect("the checker's sources");
    let scope = Scope::parse(orders, skus).expect("order ids are UUIDs");
    outflow_invariants::wait_caught_up(&sources, Duration::from_secs(120)).await.expect("every consumer group catches up");
    let report = outflow_invariants::check_until_held(&sources, &scope, &Options::from_env(), Duration::from_secs(30)).await.expect("the checker runs");
    report.ensure_held().unwrap_or_else(|e| panic!("{e:#}"));
}

pub fn payment_deadline_ms() -> u64 {
    std::env::var("OUTFLOW_PAYMENT_DEADLINE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

pub struct Shop {
    pub stack: Stack,
    pub http: reqwest::Client,
    jwt: JwtKeys,
    inventory_db: PgPool,
    orders_db: PgPool,
}

impl Shop {
    pub async fn new() -> Self {
        let stack = Stack::from_env();
        let jwt = JwtKeys::new(&SecretString::from(stack.jwt_secret.clone()));
        let pool = |db: &str| sqlx::postgres::PgPoolOptions::new().max_connections(3).connect_lazy(&stack.database_url(db)).unwrap();
        Shop { inventory_db: pool("inventory"), orders_db: pool("orders"), stack, http: reqwest::Client::new(), jwt }
    }

    pub fn customer(&self, id: &str) -> String {
        self.jwt.mint(id, Role::Customer, 600)
    }

    pub fn admin(&self) -> String {
        self.jwt.mint("e2e-admin", Role::Admin, 600)
    }

    /// A new product with `stock` units, once the orders side's catalog has it.
    pub async fn product(&self, stock: i64) -> String {
        let sku = format!("E2E-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let body = json!({"sku": sku, "name": "End-to-end item", "price_minor": PRICE, "currency": "EUR", "stock": stock});
        let created = self.http.post(format!("{INVENTORY}/v1/products")).bearer_auth(self.admin()).json(&body).send().await.unwrap();
        assert_eq!(created.status().as_u16(), 201, "{}", created.text().await.unwrap());
        self.until(WAIT, "the catalog replica to learn the product", || async {
            sqlx::query_scalar::<_, i64>("select count(*) from catalog where sku = $1").bind(&sku).fetch_one(&self.orders_db).await.unwrap() == 1
        })
        .await;
        sku
    }

    /// Places an order whose shipment, once confirmed, stays in transit at the
    /// carrier: the tests that are not about shipping check the CONFIRMED
    /// their saga reaches. [`Shop::ship`] says how a shipment ends instead.
    pub async fn place(&self, customer: &str, lines: &[(&str, i64)]) -> String {
        let order = self.place_any(customer, lines).await;
        self.ship(&order, "never").await;
        order
    }

    /// Places an order and leaves its shipment to the carrier's behaviour.
    pub async fn place_any(&self, customer: &str, lines: &[(&str, i64)]) -> String {
        let items: Vec<Value> = lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect();
        let response = self
            .http
            .post(format!("{ORDERS}/v1/orders"))
            .bearer_auth(self.customer(customer))
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({"items": items}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        response.json::<Value>().await.unwrap()["order_id"].as_str().unwrap().to_owned()
    }

    /// Tells the provider sandbox how this order's payment ends.
    pub async fn force(&self, order: &str, outcome: &str) {
        let response = self.http.put(format!("{SANDBOX}/sandbox/orders/{order}/outcome")).json(&json!({"outcome": outcome})).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 204);
    }

    /// Tells the carrier sandbox how this order's shipment ends: `deliver`,
    /// `fail` or `never` (stays in transit); decided when the carrier's
    /// delivery delay after the shipment request has passed, or at once for
    /// a shipment held with `never`.
    pub async fn ship(&self, order: &str, outcome: &str) {
        let response = self.http.put(format!("{CARRIER}/sandbox/shipments/{order}/outcome")).json(&json!({"outcome": outcome})).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 204);
    }

    /// The shipment as the shipping writer sees it (Null when there is none).
    pub async fn shipment(&self, order: &str) -> Value {
        let response = self.http.get(format!("{SHIPPING}/v1/shipments/{order}")).bearer_auth(self.admin()).send().await.unwrap();
        if response.status().as_u16() != 200 {
            return Value::Null;
        }
        response.json().await.unwrap()
    }

    pub async fn wait_shipment(&self, order: &str, status: &str) -> Value {
        self.until(WAIT, &format!("shipment of {order} to be {status}"), || async { self.shipment(order).await["status"] == status }).await;
        self.shipment(order).await
    }

    pub async fn order(&self, order: &str) -> Value {
        self.http.get(format!("{ORDERS}/v1/orders/{order}")).bearer_auth(self.admin()).send().await.unwrap().json().await.unwrap()
    }

    pub async fn wait_order(&self, order: &str, status: &str) -> Value {
        self.wait_order_within(order, status, WAIT).await
    }

    pub async fn wait_order_within(&self, order: &str, status: &str, within: Duration) -> Value {
        self.until(within, &format!("order {order} to be {status}"), || async { self.order(order).await["status"] == status }).await;
        self.order(order).await
    }

    pub async fn wait_terminal(&self, order: &str, within: Duration) -> Value {
        self.until(within, &format!("order {order} to end"), || async { self.order(order).await["status"] != "PENDING" }).await;
        self.order(order).await
    }

    pub async fn wait_reservation(&self, order: &str, status: &str) {
        let id = uuid::Uuid::parse_str(order).unwrap();
        self.until(WAIT, &format!("reservation of {order} to be {status}"), || async {
            sqlx::query_scalar::<_, String>("select status from reservations where order_id = $1")
                .bind(id)
                .fetch_optional(&self.inventory_db)
                .await
                .unwrap()
                .as_deref()
                == Some(status)
        })
        .await;
    }

    /// (on hand, reserved) of a product.
    pub async fn stock(&self, sku: &str) -> (i32, i32) {
        sqlx::query_as("select on_hand, reserved from products where sku = $1").bind(sku).fetch_one(&self.inventory_db).await.unwrap()
    }

    pub async fn payment_status(&self, order: &str) -> Option<String> {
        let response = self.http.get(format!("{PAYMENTS}/v1/payments/{order}")).bearer_auth(self.admin()).send().await.unwrap();
        if response.status().as_u16() != 200 {
            return None;
        }
        response.json::<Value>().await.unwrap()["status"].as_str().map(str::to_owned)
    }

    pub async fn payment(&self, order: &str) -> Value {
        self.http.get(format!("{PAYMENTS}/v1/payments/{order}")).bearer_auth(self.admin()).send().await.unwrap().json().await.unwrap()
    }

    pub async fn wait_payment(&self, order: &str, status: &str) -> Value {
        self.until(WAIT, &format!("payment of {order} to be {status}"), || async { self.payment_status(order).await.as_deref() == Some(status) }).await;
        self.payment(order).await
    }

    /// Waits until the payment is open at the provider (its redirect URL known).
    pub async fn wait_payment_opened(&self, order: &str) -> Value {
        self.until(WAIT, &format!("payment of {order} to be opened at the provider"), || async { self.payment(order).await["redirect_url"].is_string() }).await;
        self.payment(order).await
    }

    pub async fn sandbox_transaction(&self, order: &str) -> Value {
        self.http.get(format!("{SANDBOX}/v1/transactions/{order}")).send().await.unwrap().json().await.unwrap()
    }

    /// The customer pays at the provider now, whatever the shop did meanwhile
    /// (the payment beat the cancellation): the sandbox settles and notifies.
    pub async fn pay_now(&self, order: &str) {
        let response = self.http.post(format!("{SANDBOX}/sandbox/orders/{order}/settle")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 202, "{}", response.text().await.unwrap());
    }

    /// A notification for `order` signed with the server key, as the provider
    /// would sign it (the signature covers order id, status code and amount only).
    pub fn signed_notification(&self, order: &str, transaction_id: &str, status_code: &str, transaction_status: &str, amount_minor: i64) -> Value {
        let gross = signature::gross_amount(amount_minor);
        json!({
            "order_id": order, "transaction_id": transaction_id, "transaction_status": transaction_status,
            "status_code": status_code, "gross_amount": gross,
            "signature_key": signature::sign(order, status_code, &gross, &self.stack.provider_server_key),
        })
    }

    /// POSTs a notification to the payments webhook: (status, body).
    pub async fn notify(&self, body: &Value) -> (u16, Value) {
        let response = self.http.post(format!("{PAYMENTS}/v1/payments/notifications")).json(body).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// GETs `url` until its JSON satisfies `done`, and returns that JSON.
    pub async fn until_json(&self, url: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let until = tokio::time::Instant::now() + WAIT;
        loop {
            let response = self.http.get(url).bearer_auth(token).send().await.unwrap();
            let last: Value = response.json().await.unwrap_or(Value::Null);
            if done(&last) {
                return last;
            }
            assert!(tokio::time::Instant::now() < until, "timed out waiting on {url}; last answer: {last}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn until<F, Fut>(&self, within: Duration, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let until = tokio::time::Instant::now() + within;
        while !check().await {
            assert!(tokio::time::Instant::now() < until, "timed out after {within:?} waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
