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
    let defaults = service::defaults(7124, "mongo_url = \"mongodb://127.0.0.1:57017/\"\nviews_database = \"outflow\"");
    let settings: Settings = outflow_http::settings::load(&defaults)?;
    let client = mongodb::Client::with_uri_str(&settings.mongo_url).await?;
    let views = Arc::new(Views { db: client.database(&settings.views_database) });
    views.prepare().await?;
    service::serve("views-consumer", &settings.service, GROUP, topics(), views.handler(), outflow_http::ops::shutdown_signal()).await
}
