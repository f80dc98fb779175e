use std::{sync::Arc, time::Duration};

use outflow_consumer::service::{self, ServiceSettings};
use outflow_outbox::Outbox;
use outflow_payments_consumer::{expiry, topics, Steps, GROUP};
use outflow_provider::ProviderClient;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    #[serde(flatten)]
    service: ServiceSettings,
    provider_url: String,
    provider_server_key: SecretString,
    /// How long a payment may stay pending before it expires.
    payment_deadline_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("payments-consumer");
    let defaults = service::defaults(7122, "lanes = 4\nprovider_url = \"http://127.0.0.1:7199\"\nprovider_server_key = \"\"\npayment_deadline_ms = 900000");
    let settings: Settings = outflow_service::settings::load(&defaults)?;
    outflow_service::settings::require_secret(&settings.provider_server_key, "OUTFLOW_PROVIDER_SERVER_KEY")?;
    let database = settings.service.database.clone().ok_or_else(|| anyhow::anyhow!("OUTFLOW_DATABASE__URL is not set"))?;
    let pool = database.pool()?;
    let provider = ProviderClient::new(&settings.provider_url, settings.provider_server_key.clone());
    let outbox = Outbox::registered(&settings.service.registry()).await?;
    let steps = Arc::new(Steps { pool: pool.clone(), outbox, provider: provider.clone() });
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(expiry::sweep(
        pool,
        Arc::new(Outbox::registered(&settings.service.registry()).await?),
        provider,
        Duration::from_millis(settings.payment_deadline_ms),
        Duration::from_secs(1),
        stopping,
    ));
    let result =
        service::serve("payments-consumer", &settings.service, GROUP, topics(), outflow_consumer::handler(steps), outflow_service::ops::shutdown_signal())
            .await;
    let _ = stop.send(true);
    let _ = sweeper.await;
    result
}
