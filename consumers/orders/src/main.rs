use std::sync::Arc;

use outflow_consumer::service::{self, ServiceSettings};
use outflow_orders_consumer::{topics, Steps, GROUP};
use outflow_outbox::Outbox;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("orders-consumer");
    let settings: ServiceSettings = outflow_service::settings::load(&service::defaults(7123, "lanes = 4"))?;
    let database = settings.database.clone().ok_or_else(|| anyhow::anyhow!("OUTFLOW_DATABASE__URL is not set"))?;
    let steps = Arc::new(Steps { pool: database.pool()?, outbox: Outbox::registered(&settings.registry()).await? });
    service::serve("orders-consumer", &settings, GROUP, topics(), outflow_consumer::handler(steps), outflow_service::ops::shutdown_signal()).await
}
