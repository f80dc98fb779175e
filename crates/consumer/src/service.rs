//! What a consumer process is: settings from the environment, `/healthz` and
//! `/metrics` on its own port, and the consumer loop until SIGTERM.

use std::future::Future;

use anyhow::Context;
use axum::{routing::get, Json, Router};
use outflow_service::settings::DatabaseSettings;
use serde::Deserialize;

use crate::{runtime::run_with_lanes, ConsumerSettings, Handler};

#[derive(Clone, Debug, Deserialize)]
pub struct ServiceSettings {
    pub kafka_brokers: String,
    pub registry_url: String,
    /// The registry's login (`OUTFLOW_REGISTRY_USER`, `OUTFLOW_REGISTRY_PASSWORD`).
    #[serde(default)]
    pub registry_user: Option<String>,
    #[serde(default)]
    pub registry_password: Option<secrecy::SecretString>,
    #[serde(flatten)]
    pub kafka_login: outflow_service::settings::KafkaLogin,
    pub http: outflow_service::settings::HttpSettings,
    #[serde(default)]
    pub database: Option<DatabaseSettings>,
    /// Events in flight per partition (different aggregates overlap; one
    /// aggregate's events stay in order). `OUTFLOW_LANES`.
    #[serde(default = "one_lane")]
    pub lanes: usize,
}

impl ServiceSettings {
    pub fn registry(&self) -> outflow_outbox::Registry {
        outflow_outbox::Registry::new(&self.registry_url, self.registry_user.clone(), self.registry_password.clone())
    }
}

fn one_lane() -> usize {
    1
}

/// Defaults shared by every consumer, with its own port and its own top-level
/// `extra` keys (TOML), which must come before the `[http]` table.
pub fn defaults(port: u16, extra: &str) -> String {
    format!("kafka_brokers = \"127.0.0.1:59092\"\nregistry_url = \"http://127.0.0.1:58081\"\n{extra}\n[http]\nhost = \"127.0.0.1\"\nport = {port}\n")
}

/// Serves `/healthz` and `/metrics`, then consumes until `shutdown`.
pub async fn serve(
    name: &'static str,
    settings: &ServiceSettings,
    group_id: &str,
    topics: Vec<String>,
    handler: Handler,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let handle = outflow_service::ops::metrics_handle();
    let ops = Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/metrics", get(move || std::future::ready(handle.render())));
    let address = format!("{}:{}", settings.http.host, settings.http.port);
    let listener = tokio::net::TcpListener::bind(&address).await.with_context(|| format!("{name}: binding {address}"))?;
    tokio::spawn(async move { axum::serve(listener, ops).await });
    let consumer = ConsumerSettings {
        brokers: settings.kafka_brokers.clone(),
        group_id: group_id.to_owned(),
        topics,
        registry: settings.registry(),
        login: settings.kafka_login.clone(),
    };
    let consumed = run_with_lanes(consumer, settings.lanes, handler, shutdown).await;
    outflow_service::telemetry::flush().await;
    consumed
}
