use std::sync::Arc;

use outflow_consumer::service::{self, ServiceSettings};
use outflow_notifications_consumer::{topics, Notifications, GROUP};
use outflow_service::settings::ViewsDatabase;
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    #[serde(flatten)]
    service: ServiceSettings,
    #[serde(flatten)]
    views: ViewsDatabase,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_service::telemetry::init("notifications-consumer");
    let defaults = service::defaults(7125, &format!("lanes = 8\n{}", ViewsDatabase::DEFAULTS));
    let settings: Settings = outflow_service::settings::load(&defaults)?;
    let notifications = Arc::new(Notifications { db: settings.views.database().await? });
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
