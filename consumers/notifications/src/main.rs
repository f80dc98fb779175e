use std::sync::Arc;

use outflow_consumer::service::{self, ServiceSettings};
use outflow_notifications_consumer::{
    dispatch::{DispatchSettings, Dispatcher},
    topics, Notifications, GROUP,
};
use outflow_service::settings::ViewsDatabase;
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    #[serde(flatten)]
    service: ServiceSettings,
    #[serde(flatten)]
    views: ViewsDatabase,
    #[serde(default)]
    dispatch: DispatchSettings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("notifications-consumer");
    let defaults = service::defaults(7125, &format!("lanes = 8\n{}", ViewsDatabase::DEFAULTS));
    let settings: Settings = outflow_service::settings::load(&defaults)?;
    use outflow_service::environment::{refuse_private_networks, Environment};
    refuse_private_networks(Environment::current()?, settings.dispatch.allow_private_networks, "dispatch.allow_private_networks")?;
    settings.dispatch.check()?;
    let database = settings.service.database.clone().ok_or_else(|| anyhow::anyhow!("OUTFLOW_DATABASE__URL is not set"))?;
    let pool = database.pool()?;
    let notifications = Arc::new(Notifications { db: settings.views.database().await?, pool: pool.clone() });
    // In-flight POSTs end with the process; their deliveries are due again
    // when their lease runs out (the receiver drops a repeat by its id).
    tokio::spawn(std::sync::Arc::new(Dispatcher::new(pool, settings.dispatch)?).run());
    service::serve(
        "notifications-consumer",
        &settings.service,
        GROUP,
        topics(),
        outflow_consumer::handler(notifications),
        outflow_service::ops::shutdown_signal(),
    )
    .await
}
