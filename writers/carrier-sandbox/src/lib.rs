//! # Layout
//!
//! A stand-in for an external carrier, for development, tests and the
//! benchmark. Besides the payment provider sandbox it is the only simulated
//! part of Outflow: it sits outside the system and talks to it the way a real
//! carrier would, so the shipping side meets the same failures (late, repeated
//! and replayed callbacks) that it would in production.
//!
//! - `POST /v1/shipments` (HTTP Basic, the key as user name): takes a shipment
//!   for an order and answers it in transit; idempotent on the order id (201
//!   the first time, 200 with the same shipment after);
//! - `GET /v1/shipments/{order_id}` (HTTP Basic): the carrier's word on the
//!   shipment, which the shipping writer asks before it believes a callback;
//! - after `--delivery-delay-ms` it delivers or fails the shipment (failed with
//!   probability `--failure-rate`, or as forced per order) and POSTs a callback
//!   signed with the key to `--callback-url`, retrying until it is accepted;
//! - `PUT /sandbox/shipments/{order_id}/outcome` forces the outcome of an order
//!   (`deliver`, `fail` or `never`), for tests; forcing `deliver` or `fail` on a
//!   shipment held back with `never` releases it;
//! - `POST /sandbox/shipments/{order_id}/callback` sends the callback of a
//!   decided shipment again, for tests of duplicates;
//! - `GET /sandbox/shipments/{order_id}`: the shipment with what only the
//!   carrier knows (the customer, whether the callback was accepted);
//! - `GET`/`PUT /sandbox/behaviour` reads or changes the delivery delay and the
//!   failure rate of a running sandbox.
//!
//! With `--journal` every shipment survives a restart, as it would at a real
//! carrier: one in transit is still decided, a callback not yet accepted is
//! sent again. Without it the state is in memory only (the tests' in-process
//! sandboxes).

mod journal;
mod routes;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Result;
use axum::{
    http::header::CONTENT_TYPE,
    routing::{get, post, put},
    Json, Router,
};
use backon::{ExponentialBuilder, Retryable};
use clap::Parser;
use outflow_carrier::{signature, Callback, Shipment, ShipmentStatus};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

/// Why the sandbox fails a shipment, as a carrier would report it.
pub const FAILURE_REASON: &str = "recipient_unreachable";

#[derive(Clone, Debug, Parser)]
#[command(about = "Carrier sandbox for Outflow")]
pub struct SandboxConfig {
    #[arg(long, env = "OUTFLOW_CARRIER_SANDBOX_PORT", default_value_t = 7198)]
    pub port: u16,
    /// Where callbacks go: the shipping writer's callback endpoint.
    #[arg(long, env = "OUTFLOW_CARRIER_CALLBACK_URL", default_value = "http://127.0.0.1:7104/v1/shipments/callbacks")]
    pub callback_url: String,
    /// Shared with the shipping side: the Basic auth user of its requests and
    /// the HMAC key of the callbacks.
    #[arg(long, env = "OUTFLOW_CARRIER_KEY", hide_env_values = true)]
    pub key: String,
    /// How long a parcel "takes" to reach its recipient.
    #[arg(long, env = "OUTFLOW_CARRIER_DELIVERY_DELAY_MS", default_value_t = 300)]
    pub delivery_delay_ms: u64,
    /// Share of shipments that fail, 0.0 to 1.0.
    #[arg(long, env = "OUTFLOW_CARRIER_FAILURE_RATE", default_value_t = 0.0, value_parser = probability)]
    pub failure_rate: f64,
    /// Where shipments are kept across restarts (in memory only without it).
    #[arg(long, env = "OUTFLOW_CARRIER_JOURNAL")]
    pub journal: Option<PathBuf>,
}

fn probability(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("must be between 0.0 and 1.0".into())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Deliver,
    Fail,
    /// The parcel is never delivered nor lost: no callback is ever sent.
    Never,
}

/// A shipment as the carrier keeps it: what it answers, and what only it knows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Parcel {
    pub shipment: Shipment,
    pub customer_id: String,
    /// The shipping writer accepted the callback of the decided status.
    pub notified: bool,
}

#[derive(Debug, Deserialize)]
pub struct RequestShipment {
    pub order_id: String,
    pub customer_id: String,
}

/// What a running sandbox does with new shipments; changeable at run time.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    pub delivery_delay_ms: u64,
    pub failure_rate: f64,
}

#[derive(Clone)]
pub struct Sandbox {
    config: Arc<SandboxConfig>,
    behaviour: Arc<std::sync::RwLock<Behaviour>>,
    parcels: Arc<Mutex<HashMap<String, Parcel>>>,
    forced: Arc<Mutex<HashMap<String, Outcome>>>,
    journal: Option<Arc<journal::Journal>>,
    http: reqwest::Client,
}

impl Sandbox {
    /// A sandbox that keeps its shipments in memory only.
    pub fn new(mut config: SandboxConfig) -> Self {
        config.journal = None;
        Sandbox::with(config, None, journal::Recovered::default())
    }

    /// A sandbox that keeps its shipments in its journal, if it has one, and
    /// takes up what was under way when it last stopped: shipments in transit
    /// are decided, callbacks not yet accepted are sent again.
    pub fn open(config: SandboxConfig) -> Result<Self> {
        let Some(path) = config.journal.clone() else { return Ok(Sandbox::new(config)) };
        let (journal, recovered) = journal::Journal::open(&path)?;
        let under_way = recovered.under_way();
        tracing::info!(shipments = recovered.parcels.len(), deciding = under_way.deciding.len(), notifying = under_way.notifying.len(), "journal read");
        let sandbox = Sandbox::with(config, Some(Arc::new(journal)), recovered);
        for order_id in under_way.deciding {
            tokio::spawn(sandbox.clone().decide_later(order_id));
        }
        for parcel in under_way.notifying {
            tokio::spawn(sandbox.clone().notify(parcel));
        }
        Ok(sandbox)
    }

    fn with(config: SandboxConfig, journal: Option<Arc<journal::Journal>>, recovered: journal::Recovered) -> Self {
        // A rate out of bounds (possible only from code, the command line refuses
        // it) would otherwise panic at the first decision, in a task nobody watches.
        let failure_rate = if config.failure_rate.is_nan() { 0.0 } else { config.failure_rate.clamp(0.0, 1.0) };
        let behaviour = Behaviour { delivery_delay_ms: config.delivery_delay_ms, failure_rate };
        Sandbox {
            config: Arc::new(config),
            behaviour: Arc::new(std::sync::RwLock::new(behaviour)),
            parcels: Arc::new(Mutex::new(recovered.parcels)),
            forced: Arc::new(Mutex::new(recovered.forced)),
            journal,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a reqwest client"),
        }
    }

    /// Journals a parcel's new state; called with the parcels locked, so that
    /// the journal's order is the order of the changes.
    fn keep(&self, parcel: &Parcel) {
        self.write(&journal::Entry::Shipment(parcel.clone()));
    }

    fn write(&self, entry: &journal::Entry) {
        if let Some(journal) = &self.journal {
            journal.keep(entry);
        }
    }

    pub fn router(self) -> Router {
        use routes::*;
        Router::new()
            .route("/v1/shipments", post(request_shipment))
            .route("/v1/shipments/{order_id}", get(get_shipment))
            .route("/sandbox/shipments/{order_id}", get(get_parcel))
            .route("/sandbox/shipments/{order_id}/outcome", put(force_outcome))
            .route("/sandbox/shipments/{order_id}/callback", post(send_callback_again))
            .route("/sandbox/behaviour", get(get_behaviour).put(set_behaviour))
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .with_state(self)
    }

    fn behaviour(&self) -> Behaviour {
        *self.behaviour.read().expect("behaviour lock")
    }

    async fn decide_later(self, order_id: String) {
        let behaviour = self.behaviour();
        tokio::time::sleep(Duration::from_millis(behaviour.delivery_delay_ms)).await;
        let forced = self.forced.lock().await.get(&order_id).copied();
        let outcome = forced.unwrap_or_else(|| if rand::rng().random_bool(behaviour.failure_rate) { Outcome::Fail } else { Outcome::Deliver });
        let (status, reason) = match outcome {
            Outcome::Deliver => (ShipmentStatus::Delivered, None),
            Outcome::Fail => (ShipmentStatus::Failed, Some(FAILURE_REASON.to_owned())),
            Outcome::Never => return,
        };
        let parcel = {
            let mut parcels = self.parcels.lock().await;
            let Some(parcel) = parcels.get_mut(&order_id) else { return };
            if parcel.shipment.status != ShipmentStatus::InTransit {
                return; // a forced outcome released it meanwhile: decided once
            }
            parcel.shipment.status = status;
            parcel.shipment.reason = reason;
            self.keep(parcel);
            parcel.clone()
        };
        self.notify(parcel).await;
    }

    /// POSTs the signed callback of the parcel's status, retrying with capped
    /// backoff until the shipping writer accepts it, as a carrier does: the
    /// writer may be down for longer than any fixed number of attempts.
    async fn notify(self, parcel: Parcel) {
        let Shipment { shipment_id, order_id, status, reason } = parcel.shipment;
        // Serialized once: the signature is over these very bytes.
        let body = serde_json::to_vec(&Callback { shipment_id, order_id: order_id.clone(), status, reason }).expect("a callback serializes");
        let send = || self.send_signed(&body);
        // With no limit on the attempts this ends only once one is accepted.
        let _accepted = send
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(50)).with_max_delay(Duration::from_millis(12_800)).without_max_times())
            .notify(|e: &reqwest::Error, retry_in| tracing::warn!(%order_id, error = %e, ?retry_in, "callback not accepted"))
            .await;
        let mut parcels = self.parcels.lock().await;
        if let Some(kept) = parcels.get_mut(&order_id).filter(|kept| kept.shipment.status == status && !kept.notified) {
            kept.notified = true;
            self.keep(kept);
        }
    }

    /// One attempt, stamped and signed anew: a retry carries its own time, so
    /// a receiver that refuses stale callbacks still accepts a late retry.
    async fn send_signed(&self, body: &[u8]) -> reqwest::Result<()> {
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs()).to_string();
        let signature = signature::sign(&self.config.key, &timestamp, body);
        let response = self
            .http
            .post(&self.config.callback_url)
            .header(CONTENT_TYPE, "application/json")
            .header(signature::TIMESTAMP_HEADER, &timestamp)
            .header(signature::SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await?;
        response.error_for_status().map(drop)
    }
}
