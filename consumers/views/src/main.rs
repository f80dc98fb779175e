use std::sync::Arc;

use outflow_consumer::service::{self, ServiceSettings};
use outflow_views_consumer::{topics, Views, GROUP};
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
    outflow_http::telemetry::init("views-consumer");
    let defaults = service::defaults(7124, "lanes = 8\nmongo_url = \"mongodb://127.0.0.1:57017/\"\nviews_database = \"outflow\"");
    let settings: Settings = outflow_http::settings::load(&defaults)?;
    let client = mongodb::Client::with_uri_str(&settings.mongo_url).await?;
    let views = Arc::new(Views { db: client.database(&settings.views_database) });
    // scripts/rebuild-views: empty the views, then the consumer replays the topics into them.
    if std::env::args().any(|a| a == "--drop-views") {
        views.drop_all().await?;
        tracing::info!(database = %settings.views_database, "views dropped");
        return Ok(());
    }
    views.prepare().await?;
    service::serve("views-consumer", &settings.service, GROUP, topics(), outflow_consumer::handler(views), outflow_http::ops::shutdown_signal()).await
}
