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
//! With `--journal` (scripts/up gives it `.state/sandbox/journal.jsonl`) every
//! transaction survives a restart, as it would at a real provider: a pending
//! one still settles, a notification not yet accepted is sent again, a capture
//! can still be refunded. Without it the state is in memory only (the tests'
//! in-process sandboxes).

mod journal;
mod routes;

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Result;
use axum::{
    http::HeaderMap,
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
    /// Where transactions are kept across restarts (in memory only without it).
    #[arg(long, env = "OUTFLOW_SANDBOX_JOURNAL")]
    pub journal: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Settle,
    Deny,
    /// The customer never pays: no notification is ever sent.
    Never,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Transaction {
    pub transaction_id: String,
    pub order_id: String,
    pub gross_amount: String,
    pub token: String,
    pub redirect_url: String,
    pub outcome: Option<Outcome>,
    pub transaction_status: Status,
    /// The merchant accepted the notification of the decided status.
    pub notified: bool,
    pub refunded: bool,
}

/// Midtrans's `transaction_status` values that the sandbox uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Settlement,
    Deny,
    Cancel,
    Refund,
}

impl Transaction {
    /// Midtrans's status code for the transaction's status.
    fn status_code(&self) -> &'static str {
        match self.transaction_status {
            Status::Settlement | Status::Refund => "200",
            Status::Pending => "201",
            Status::Deny | Status::Cancel => "202",
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
    journal: Option<Arc<journal::Journal>>,
    http: reqwest::Client,
}

impl Sandbox {
    /// A sandbox that keeps its transactions in memory only.
    pub fn new(mut config: SandboxConfig) -> Self {
        config.journal = None;
        Sandbox::with(config, None, journal::Recovered::default())
    }

    /// A sandbox that keeps its transactions in its journal, if it has one,
    /// and takes up what was under way when it last stopped: pending
    /// transactions settle, notifications not yet accepted are sent again.
    pub fn open(config: SandboxConfig) -> Result<Self> {
        let Some(path) = config.journal.clone() else { return Ok(Sandbox::new(config)) };
        let (journal, recovered) = journal::Journal::open(&path)?;
        let sandbox = Sandbox::with(config, Some(Arc::new(journal)), recovered);
        sandbox.resume();
        Ok(sandbox)
    }

    fn with(config: SandboxConfig, journal: Option<Arc<journal::Journal>>, recovered: journal::Recovered) -> Self {
        let behaviour = Behaviour { settle_delay_ms: config.settle_delay_ms, failure_rate: config.failure_rate.clamp(0.0, 1.0) };
        Sandbox {
            config: Arc::new(config),
            behaviour: Arc::new(std::sync::RwLock::new(behaviour)),
            transactions: Arc::new(Mutex::new(recovered.transactions)),
            forced: Arc::new(Mutex::new(recovered.forced)),
            journal,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a reqwest client"),
        }
    }

    fn resume(&self) {
        let transactions = self.transactions.try_lock().expect("nobody else holds a sandbox being opened");
        let (mut settling, mut notifying) = (0, 0);
        for t in transactions.values() {
            match t.transaction_status {
                Status::Pending if t.outcome != Some(Outcome::Never) => {
                    settling += 1;
                    tokio::spawn(self.clone().settle_later(t.order_id.clone()));
                }
                Status::Settlement | Status::Deny if !t.notified && !t.refunded => {
                    notifying += 1;
                    let (sandbox, t) = (self.clone(), t.clone());
                    tokio::spawn(async move { sandbox.notify(t).await });
                }
                _ => {}
            }
        }
        tracing::info!(transactions = transactions.len(), settling, notifying, "journal read");
    }

    /// Journals a transaction's new state; called with the transactions
    /// locked, so that the journal's order is the order of the changes.
    fn keep(&self, transaction: &Transaction) {
        self.write(&journal::Entry::Transaction(transaction.clone()));
    }

    fn write(&self, entry: &journal::Entry) {
        if let Some(journal) = &self.journal {
            journal.keep(entry);
        }
    }

    pub fn router(self) -> Router {
        use routes::*;
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
            Outcome::Settle => Status::Settlement,
            Outcome::Deny => Status::Deny,
            Outcome::Never => return,
        };
        let transaction = {
            let mut transactions = self.transactions.lock().await;
            let Some(t) = transactions.get_mut(&order_id) else { return };
            if t.transaction_status != Status::Pending {
                return; // cancelled by the merchant meanwhile: nothing to pay
            }
            t.outcome = Some(outcome);
            t.transaction_status = status;
            self.keep(t);
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
                self.keep(t);
            }
            return;
        }
        tracing::error!(%order_id, "notification never accepted; giving up");
    }
}
