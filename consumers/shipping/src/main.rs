use std::sync::Arc;

use outflow_carrier::CarrierClient;
use outflow_consumer::service::{self, ServiceSettings};
use outflow_outbox::Outbox;
use outflow_shipping_consumer::{topics, Steps, GROUP};
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    #[serde(flatten)]
    service: ServiceSettings,
    carrier_url: String,
    carrier_key: SecretString,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("shipping-consumer");
    let defaults = service::defaults(7126, "lanes = 4\ncarrier_url = \"http://127.0.0.1:7198\"\ncarrier_key = \"\"");
    let settings: Settings = outflow_service::settings::load(&defaults)?;
    outflow_service::settings::require_secret(&settings.carrier_key, "OUTFLOW_CARRIER_KEY")?;
    let database = settings.service.database.clone().ok_or_else(|| anyhow::anyhow!("OUTFLOW_DATABASE__URL is not set"))?;
    let steps = Arc::new(Steps {
        pool: database.pool()?,
        outbox: Outbox::registered(&settings.service.registry()).await?,
        carrier: CarrierClient::new(&settings.carrier_url, settings.carrier_key.clone()),
    });
    service::serve("shipping-consumer", &settings.service, GROUP, topics(), outflow_consumer::handler(steps), outflow_service::ops::shutdown_signal()).await
}
