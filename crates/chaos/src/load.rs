//! The orders of a run, placed at a steady rate through the real REST APIs.
//! Each order gets an intended ending: paid, denied by the provider, cancelled
//! by its customer at a random moment, or never paid (left to expire); some
//! run out of stock. Faults make requests fail: each is retried (a placement
//! with its idempotency key, so a retry never places twice) until it is
//! answered, as a client of a shop would.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{bail, Context, Result};
use outflow_service::auth::{JwtKeys, Role};
use outflow_stack_tests::Stack;
use rand::{rngs::StdRng, Rng, SeedableRng};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{json, Value};

pub const ORDERS: &str = "http://127.0.0.1:7101";
pub const INVENTORY: &str = "http://127.0.0.1:7102";
pub const SANDBOX: &str = "http://127.0.0.1:7199";
/// How long one request is retried through a fault before the run gives up on it.
const PATIENCE: Duration = Duration::from_secs(240);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Pay,
    Deny,
    Cancel { after_ms: u64 },
    Expire,
}

#[derive(Clone, Debug, Serialize)]
pub struct Placed {
    pub order_id: String,
    pub intent: Intent,
}

/// What the load did, counted as it goes (the progress line reads it).
#[derive(Default)]
pub struct Progress {
    pub placed: AtomicUsize,
    /// Requests that failed (no answer, or 5xx) and were sent again.
    pub retried: AtomicUsize,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    jwt: JwtKeys,
    progress: Arc<Progress>,
}

impl Client {
    pub fn new(stack: &Stack, progress: Arc<Progress>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a reqwest client");
        Client { http, jwt: JwtKeys::new(&SecretString::from(stack.jwt_secret.clone())), progress }
    }

    /// Sends the request built by `request` until it is answered with a status
    /// in `accepted`; a 5xx or no answer is a fault to wait out, any other
    /// answer is an error.
    async fn send(&self, what: &str, accepted: &[u16], request: impl Fn() -> reqwest::RequestBuilder) -> Result<Value> {
        let until = tokio::time::Instant::now() + PATIENCE;
        loop {
            let failure = match request().send().await {
                Ok(r) if accepted.contains(&r.status().as_u16()) => return Ok(r.json().await.unwrap_or(Value::Null)),
                Ok(r) if r.status().is_server_error() || r.status() == StatusCode::TOO_MANY_REQUESTS => format!("{}", r.status()),
                Ok(r) => bail!("{what}: {} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() > until {
                bail!("{what}: still failing after {PATIENCE:?}: {failure}");
            }
            self.progress.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn product(&self, sku: &str, stock: i64) -> Result<()> {
        let body = json!({"sku": sku, "name": "Chaos item", "price_minor": 990, "currency": "EUR", "stock": stock});
        let admin = self.jwt.mint("chaos-admin", Role::Admin, 3600);
        self.send(&format!("creating {sku}"), &[201], || self.http.post(format!("{INVENTORY}/v1/products")).bearer_auth(&admin).json(&body)).await?;
        Ok(())
    }

    async fn place(&self, customer: &str, sku: &str) -> Result<String> {
        let token = self.jwt.mint(customer, Role::Customer, 3600);
        let key = uuid::Uuid::new_v4().to_string();
        let body = json!({"items": [{"sku": sku, "quantity": 1}]});
        let placed = self
            .send("placing an order", &[200, 202], || {
                self.http.post(format!("{ORDERS}/v1/orders")).bearer_auth(&token).header("Idempotency-Key", &key).json(&body)
            })
            .await?;
        placed["order_id"].as_str().map(str::to_owned).context("the placement answered without an order_id")
    }

    async fn force(&self, order: &str, outcome: &str) -> Result<()> {
        let body = json!({"outcome": outcome});
        self.send(&format!("the sandbox outcome of {order}"), &[204], || self.http.put(format!("{SANDBOX}/sandbox/orders/{order}/outcome")).json(&body))
            .await?;
        Ok(())
    }

    async fn cancel(&self, customer: &str, order: &str) -> Result<()> {
        let token = self.jwt.mint(customer, Role::Customer, 3600);
        // 409: the order ended first (paid, out of stock or expired).
        self.send(&format!("cancelling {order}"), &[200, 409], || self.http.post(format!("{ORDERS}/v1/orders/{order}/cancel")).bearer_auth(&token)).await?;
        Ok(())
    }

    /// One order from placement to its customer's last word.
    async fn order(&self, customer: String, sku: String, intent: Intent) -> Result<Placed> {
        let order_id = self.place(&customer, &sku).await?;
        self.progress.placed.fetch_add(1, Ordering::Relaxed);
        let outcome = match intent {
            Intent::Deny => "deny",
            Intent::Expire => "never",
            Intent::Pay | Intent::Cancel { .. } => "settle",
        };
        self.force(&order_id, outcome).await?;
        if let Intent::Cancel { after_ms } = intent {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            self.cancel(&customer, &order_id).await?;
        }
        Ok(Placed { order_id, intent })
    }
}

/// The products of a run: one that never runs out, and smaller ones that do
/// part of the way (their later orders are rejected for want of stock).
pub fn products(seed: u64, orders: usize) -> Vec<(String, i64)> {
    let n = orders as i64;
    [n, n / 4, n / 10 + 5]
        .iter()
        .enumerate()
        .map(|(i, stock)| (format!("CHAOS-{seed}-{i}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]), *stock))
        .collect()
}

fn intent(rng: &mut StdRng) -> Intent {
    match rng.random_range(0..100) {
        0..8 => Intent::Deny,
        8..16 => Intent::Cancel { after_ms: rng.random_range(0..3000) },
        16..20 => Intent::Expire,
        _ => Intent::Pay,
    }
}

/// Places `orders` orders at `rate` a second over `skus`; returns each order
/// with its intent once every order's requests were answered.
pub async fn run(client: Client, skus: Vec<String>, orders: usize, rate: f64, seed: u64) -> Result<Vec<Placed>> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.01)));
    let mut tasks = Vec::with_capacity(orders);
    for i in 0..orders {
        tick.tick().await;
        let (sku, intent) = (skus[rng.random_range(0..skus.len())].clone(), intent(&mut rng));
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.order(format!("chaos-{}", i % 40), sku, intent).await }));
    }
    let mut placed = Vec::with_capacity(orders);
    for task in tasks {
        placed.push(task.await??);
    }
    Ok(placed)
}
