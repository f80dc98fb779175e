use std::sync::Arc;

use outflow_consumer::service::{self, ServiceSettings};
use outflow_notifications_consumer::{topics, Notifications, GROUP};
use serde::Deserialize;

#[derive(Deserialize)]
struct Settings {
    #[serde(flatten)]
    service: ServiceSettings,
    mongo_url: String,
    views_database: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    outflow_http::telemetry::init("notifications-consumer");
    let defaults = service::defaults(7125, "lanes = 8\nmongo_url = \"mongodb://127.0.0.1:57017/\"\nviews_database = \"outflow\"");
    let settings: Settings = outflow_http::settings::load(&defaults)?;
    let client = mongodb::Client::with_uri_str(&settings.mongo_url).await?;
    let notifications = Arc::new(Notifications { db: client.database(&settings.views_database) });
    service::serve("notifications-consumer", &settings.service, GROUP, topics(), outflow_consumer::handler(notifications), outflow_http::ops::shutdown_signal()).await
}
