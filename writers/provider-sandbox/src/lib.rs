//! # Layout
//!
//! A stand-in for an external Snap-style payment provider, for development,
//! tests and the benchmark. It is the only simulated part of Outflow: it sits
//! outside the system and talks to it the way a real provider would.
//!
//! - `POST /v1/transactions` (HTTP Basic, the server key as user name): opens a
//!   transaction for an order and answers a token and a redirect URL;
//!   idempotent on the order id;
//! - after `--settle-delay-ms` it settles or denies the transaction (denied with
//!   probability `--failure-rate`, or as forced per order) and POSTs a notification
//!   signed with the server key to `--notify-url`, retrying until it is accepted;
//! - `PUT /sandbox/orders/{order_id}/outcome` forces the outcome of an order
//!   (`settle`, `deny` or `never`), for tests;
//! - `GET`/`PUT /sandbox/behaviour` reads or changes the settle delay and the
//!   failure rate of a running sandbox (the benchmark sets the delay to 0, the
//!   demo denies a share of payments);
//! - `POST /v1/transactions/{order_id}/refund`: refunds it (idempotent);
//! - `GET /v2/{order_id}/status` (HTTP Basic): the provider's word on the
//!   transaction, as Midtrans's status API answers it (`status_code`,
//!   `transaction_status`, `transaction_id`, `gross_amount`, `fraud_status`);
//! - `POST /v2/{order_id}/cancel` (HTTP Basic): cancels a transaction not yet
//!   paid (412 once it is settled), so it never settles;
//! - `POST /sandbox/orders/{order_id}/settle`: the customer pays now, even a
//!   cancelled transaction (the race where the payment beat the cancellation),
//!   and the notification is sent, for tests of late captures;
//!   `POST /sandbox/orders/{order_id}/deny` the same with a denial;
//! - `GET /v1/transactions/{order_id}`: the transaction and its state.
//!
//! State is in memory: a restarted sandbox forgets open transactions, which the
//! saga's payment deadline then expires, as it would with a provider outage.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post, put},
    Json, Router,
};
use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use clap::Parser;
use outflow_provider::signature;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

#[derive(Clone, Debug, Parser)]
#[command(about = "Payment provider sandbox for Outflow")]
pub struct SandboxConfig {
    #[arg(long, env = "OUTFLOW_SANDBOX_PORT", default_value_t = 7199)]
    pub port: u16,
    /// Where notifications go: the payments writer's webhook.
    #[arg(long, env = "OUTFLOW_SANDBOX_NOTIFY_URL", default_value = "http://127.0.0.1:7103/v1/payments/notifications")]
    pub notify_url: String,
    #[arg(long, env = "OUTFLOW_PROVIDER_SERVER_KEY", hide_env_values = true)]
    pub server_key: String,
    /// How long a customer "takes" to pay.
    #[arg(long, env = "OUTFLOW_SANDBOX_SETTLE_DELAY_MS", default_value_t = 200)]
    pub settle_delay_ms: u64,
    /// Share of transactions the provider denies, 0.0 to 1.0.
    #[arg(long, env = "OUTFLOW_SANDBOX_FAILURE_RATE", default_value_t = 0.1)]
    pub failure_rate: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Settle,
    Deny,
    /// The customer never pays: no notification is ever sent.
    Never,
}

#[derive(Clone, Debug, Serialize)]
pub struct Transaction {
    pub transaction_id: String,
    pub order_id: String,
    pub gross_amount: String,
    pub token: String,
    pub redirect_url: String,
    pub outcome: Option<Outcome>,
    /// `pending`, `settlement`, `deny`, `cancel` or `refund`.
    pub transaction_status: &'static str,
    pub notified: bool,
    pub refunded: bool,
}

impl Transaction {
    /// Midtrans's status code for the transaction's status.
    fn status_code(&self) -> &'static str {
        match self.transaction_status {
            "settlement" | "refund" => "200",
            "pending" => "201",
            _ => "202",
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateTransaction {
    pub order_id: String,
    pub gross_amount: String,
}

/// What a running sandbox does with new transactions; changeable at run time.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    pub settle_delay_ms: u64,
    pub failure_rate: f64,
}

#[derive(Clone)]
pub struct Sandbox {
    config: Arc<SandboxConfig>,
    behaviour: Arc<std::sync::RwLock<Behaviour>>,
    transactions: Arc<Mutex<HashMap<String, Transaction>>>,
    forced: Arc<Mutex<HashMap<String, Outcome>>>,
    http: reqwest::Client,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let behaviour = Behaviour { settle_delay_ms: config.settle_delay_ms, failure_rate: config.failure_rate.clamp(0.0, 1.0) };
        Sandbox {
            config: Arc::new(config),
            behaviour: Arc::new(std::sync::RwLock::new(behaviour)),
            transactions: Default::default(),
            forced: Default::default(),
            http: reqwest::Client::new(),
        }
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/transactions", post(create_transaction))
            .route("/v1/transactions/{order_id}", get(get_transaction))
            .route("/v1/transactions/{order_id}/refund", post(refund_transaction))
            .route("/v2/{order_id}/status", get(transaction_status))
            .route("/v2/{order_id}/cancel", post(cancel_transaction))
            .route("/sandbox/orders/{order_id}/settle", post(settle_now))
            .route("/sandbox/orders/{order_id}/deny", post(deny_now))
            .route("/sandbox/orders/{order_id}/outcome", put(force_outcome))
            .route("/sandbox/behaviour", get(get_behaviour).put(set_behaviour))
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .with_state(self)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("{}:", self.config.server_key));
        headers.get("authorization").and_then(|h| h.to_str().ok()) == Some(format!("Basic {expected}").as_str())
    }

    fn behaviour(&self) -> Behaviour {
        *self.behaviour.read().expect("behaviour lock")
    }

    async fn settle_later(self, order_id: String) {
        let behaviour = self.behaviour();
        tokio::time::sleep(Duration::from_millis(behaviour.settle_delay_ms)).await;
        let forced = self.forced.lock().await.get(&order_id).copied();
        let outcome = forced.unwrap_or_else(|| if rand::rng().random_bool(behaviour.failure_rate) { Outcome::Deny } else { Outcome::Settle });
        let status = match outcome {
            Outcome::Settle => "settlement",
            Outcome::Deny => "deny",
            Outcome::Never => return,
        };
        let transaction = {
            let mut transactions = self.transactions.lock().await;
            let Some(t) = transactions.get_mut(&order_id) else { return };
            if t.transaction_status != "pending" {
                return; // cancelled by the merchant meanwhile: nothing to pay
            }
            t.outcome = Some(outcome);
            t.transaction_status = status;
            t.clone()
        };
        self.notify(transaction).await;
    }

    /// POSTs the signed notification of the transaction's status, retrying
    /// with backoff until the merchant accepts it, as a provider does.
    async fn notify(&self, transaction: Transaction) {
        let (order_id, code) = (transaction.order_id.clone(), transaction.status_code());
        let body = json!({
            "order_id": order_id,
            "transaction_id": transaction.transaction_id,
            "transaction_status": transaction.transaction_status,
            "status_code": code,
            "gross_amount": transaction.gross_amount,
            "signature_key": signature::sign(&order_id, code, &transaction.gross_amount, &self.config.server_key),
            "payment_type": "sandbox",
        });
        let deliver = || async { self.http.post(&self.config.notify_url).json(&body).send().await?.error_for_status().map(drop) };
        let delivered = deliver
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(50)).with_max_delay(Duration::from_millis(12_800)).with_max_times(11))
            .notify(|e: &reqwest::Error, retry_in| tracing::warn!(%order_id, error = %e, ?retry_in, "notification not accepted"))
            .await;
        if delivered.is_ok() {
            if let Some(t) = self.transactions.lock().await.get_mut(&order_id) {
                t.notified = true;
            }
            return;
        }
        tracing::error!(%order_id, "notification never accepted; giving up");
    }
}

async fn create_transaction(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Json(body): Json<CreateTransaction>,
) -> Result<(StatusCode, Json<Transaction>), (StatusCode, Json<serde_json::Value>)> {
    if !sandbox.authorized(&headers) {
        return Err((StatusCode::UNAUTHORIZED, Json(json!({"error": {"code": "unauthorized", "message": "Basic auth with the server key"}}))));
    }
    let mut transactions = sandbox.transactions.lock().await;
    if let Some(existing) = transactions.get(&body.order_id) {
        return Ok((StatusCode::OK, Json(existing.clone())));
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let transaction = Transaction {
        transaction_id: uuid::Uuid::new_v4().to_string(),
        order_id: body.order_id.clone(),
        gross_amount: body.gross_amount,
        redirect_url: format!("http://127.0.0.1:{}/pay/{token}", sandbox.config.port),
        token,
        outcome: None,
        transaction_status: "pending",
        notified: false,
        refunded: false,
    };
    transactions.insert(body.order_id.clone(), transaction.clone());
    drop(transactions);
    tokio::spawn(sandbox.clone().settle_later(body.order_id));
    Ok((StatusCode::CREATED, Json(transaction)))
}

async fn get_transaction(State(sandbox): State<Sandbox>, Path(order_id): Path<String>) -> Result<Json<Transaction>, StatusCode> {
    sandbox.transactions.lock().await.get(&order_id).cloned().map(Json).ok_or(StatusCode::NOT_FOUND)
}

/// Refunds are idempotent: refunding twice is refunding once.
async fn refund_transaction(State(sandbox): State<Sandbox>, headers: HeaderMap, Path(order_id): Path<String>) -> Result<Json<Transaction>, StatusCode> {
    if !sandbox.authorized(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut transactions = sandbox.transactions.lock().await;
    let transaction = transactions.get_mut(&order_id).ok_or(StatusCode::NOT_FOUND)?;
    if transaction.transaction_status != "settlement" && transaction.transaction_status != "refund" {
        return Err(StatusCode::PRECONDITION_FAILED); // nothing was paid
    }
    transaction.refunded = true;
    transaction.transaction_status = "refund";
    Ok(Json(transaction.clone()))
}

async fn transaction_status(State(sandbox): State<Sandbox>, headers: HeaderMap, Path(order_id): Path<String>) -> Result<Json<serde_json::Value>, StatusCode> {
    if !sandbox.authorized(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let transactions = sandbox.transactions.lock().await;
    let t = transactions.get(&order_id).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(json!({
        "status_code": t.status_code(),
        "transaction_id": t.transaction_id,
        "order_id": t.order_id,
        "gross_amount": t.gross_amount,
        "transaction_status": t.transaction_status,
        "fraud_status": "accept",
    })))
}

/// Cancels a transaction not yet paid; one already settled cannot be (412).
async fn cancel_transaction(State(sandbox): State<Sandbox>, headers: HeaderMap, Path(order_id): Path<String>) -> Result<Json<Transaction>, StatusCode> {
    if !sandbox.authorized(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut transactions = sandbox.transactions.lock().await;
    let transaction = transactions.get_mut(&order_id).ok_or(StatusCode::NOT_FOUND)?;
    match transaction.transaction_status {
        "pending" | "cancel" => {
            transaction.transaction_status = "cancel";
            Ok(Json(transaction.clone()))
        }
        _ => Err(StatusCode::PRECONDITION_FAILED),
    }
}

/// The customer pays now, whatever the merchant did meanwhile.
async fn settle_now(State(sandbox): State<Sandbox>, Path(order_id): Path<String>) -> Result<StatusCode, StatusCode> {
    decide_now(sandbox, order_id, Outcome::Settle).await
}

/// The provider denies now (even after the merchant gave the payment up).
async fn deny_now(State(sandbox): State<Sandbox>, Path(order_id): Path<String>) -> Result<StatusCode, StatusCode> {
    decide_now(sandbox, order_id, Outcome::Deny).await
}

async fn decide_now(sandbox: Sandbox, order_id: String, outcome: Outcome) -> Result<StatusCode, StatusCode> {
    let transaction = {
        let mut transactions = sandbox.transactions.lock().await;
        let t = transactions.get_mut(&order_id).ok_or(StatusCode::NOT_FOUND)?;
        t.outcome = Some(outcome);
        t.transaction_status = if outcome == Outcome::Settle { "settlement" } else { "deny" };
        t.clone()
    };
    tokio::spawn(async move { sandbox.notify(transaction).await });
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize)]
struct ForceOutcome {
    outcome: Outcome,
}

async fn force_outcome(State(sandbox): State<Sandbox>, Path(order_id): Path<String>, Json(body): Json<ForceOutcome>) -> StatusCode {
    sandbox.forced.lock().await.insert(order_id, body.outcome);
    StatusCode::NO_CONTENT
}

async fn get_behaviour(State(sandbox): State<Sandbox>) -> Json<Behaviour> {
    Json(sandbox.behaviour())
}

async fn set_behaviour(State(sandbox): State<Sandbox>, Json(body): Json<Behaviour>) -> Result<Json<Behaviour>, (StatusCode, Json<serde_json::Value>)> {
    if !(0.0..=1.0).contains(&body.failure_rate) {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": {"code": "invalid_failure_rate", "message": "failure_rate must be between 0.0 and 1.0"}})),
        ));
    }
    *sandbox.behaviour.write().expect("behaviour lock") = body;
    tracing::info!(settle_delay_ms = body.settle_delay_ms, failure_rate = body.failure_rate, "behaviour changed");
    Ok(Json(body))
}
