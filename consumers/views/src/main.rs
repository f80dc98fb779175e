use std::sync::Arc;

use outflow_consumer::service::{self, ServiceSettings};
use outflow_views_consumer::{topics, Views, GROUP};
use outflow_http::settings::ViewsDatabase;
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
    outflow_http::telemetry::init("views-consumer");
    let defaults = service::defaults(7124, &format!("lanes = 8\n{}", ViewsDatabase::DEFAULTS));
    let settings: Settings = outflow_http::settings::load(&defaults)?;
    let views = Arc::new(Views { db: settings.views.database().await? });
    // scripts/rebuild-views: empty the views, then the consumer replays the topics into them.
    if std::env::args().any(|a| a == "--drop-views") {
        views.drop_all().await?;
        tracing::info!(database = %settings.views.views_database, "views dropped");
        return Ok(());
    }
    views.prepare().await?;
    service::serve("views-consumer", &settings.service, GROUP, topics(), outflow_consumer::handler(views), outflow_http::ops::shutdown_signal()).await
}
